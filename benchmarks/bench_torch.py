"""Benchmark: generated PyTorch Adam and SGD-momentum against torch.optim, in one run.

    python benchmarks/bench_torch.py [--sizes 1e5,1e6,1e7] [--repeats 7] [--steps 5] [--markdown]

For each total size, the parameters are 1 tensor or 100 equal tensors of float32. Implementations:
the generated optimizer with foreach=True and foreach=False, and torch.optim with foreach=False,
foreach=True and fused=True. Each time is the median over repeats of the mean step time of a
burst of steps, after a warm-up step; ratios are computed against baselines of this same run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "generated" / "torch"))

import symopt_torch  # noqa: E402

LR = 1e-3

ALGORITHMS = {
    "adam": {
        "generated foreach": lambda p: symopt_torch.Adam(p, lr=LR, foreach=True),
        "generated single": lambda p: symopt_torch.Adam(p, lr=LR, foreach=False),
        "torch single": lambda p: torch.optim.Adam(p, lr=LR, foreach=False),
        "torch foreach": lambda p: torch.optim.Adam(p, lr=LR, foreach=True),
        "torch fused": lambda p: torch.optim.Adam(p, lr=LR, fused=True),
    },
    "momentum": {
        "generated foreach": lambda p: symopt_torch.Momentum(p, lr=LR, rho=0.9, foreach=True),
        "generated single": lambda p: symopt_torch.Momentum(p, lr=LR, rho=0.9, foreach=False),
        "torch single": lambda p: torch.optim.SGD(p, lr=LR, momentum=0.9, foreach=False),
        "torch foreach": lambda p: torch.optim.SGD(p, lr=LR, momentum=0.9, foreach=True),
        "torch fused": lambda p: torch.optim.SGD(p, lr=LR, momentum=0.9, fused=True),
    },
}


def time_step(make, total: int, tensors: int, steps: int, repeats: int) -> float:
    """Median over repeats of the mean seconds per step."""
    gen = torch.Generator().manual_seed(0)
    params = [
        torch.nn.Parameter(torch.randn(total // tensors, generator=gen)) for _ in range(tensors)
    ]
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen) * 1e-2
    try:
        opt = make(params)
        opt.step()  # warm-up: allocates state
    except (RuntimeError, ValueError) as e:  # e.g. a fused kernel this build lacks
        print(f"  skipped: {e}", file=sys.stderr)
        return float("nan")
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            opt.step()
        times.append((time.perf_counter() - start) / steps)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1e5,1e6,1e7")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--algorithms", default="adam,momentum")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    sizes = [int(float(s)) for s in args.sizes.split(",")]
    names = list(ALGORITHMS["adam"])
    header = ["algorithm", "elements", "layout", *(f"{n} ms" for n in names)]
    header += ["torch foreach / generated foreach"]
    rows = []
    for algorithm in args.algorithms.split(","):
        for total in sizes:
            for tensors in (1, 100):
                ms = {
                    name: 1e3 * time_step(make, total, tensors, args.steps, args.repeats)
                    for name, make in ALGORITHMS[algorithm].items()
                }
                ratio = ms["torch foreach"] / ms["generated foreach"]
                layout = "1 tensor" if tensors == 1 else f"{tensors} tensors"
                rows.append(
                    [algorithm, f"{total:.0e}", layout, *(f"{ms[n]:.3f}" for n in names)]
                    + [f"{ratio:.2f}"]
                )
                print(" | ".join(rows[-1]), file=sys.stderr)
    if args.markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for row in rows:
            print("| " + " | ".join(row) + " |")
    else:
        print("\t".join(header))
        for row in rows:
            print("\t".join(row))


if __name__ == "__main__":
    main()

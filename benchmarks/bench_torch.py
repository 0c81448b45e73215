"""Benchmark: generated PyTorch Adam and SGD-momentum against torch.optim, in one run.

    python benchmarks/bench_torch.py [--sizes 1e5,1e6,1e7] [--repeats 7] [--steps 5] [--markdown]

For each total size, the parameters are 1 tensor or 100 equal tensors of float32. Implementations:
the generated optimizer with foreach=True and foreach=False, and torch.optim with foreach=False,
foreach=True and fused=True. Each time is the median over repeats of the mean step time of a
burst of steps, after a warm-up step; the implementations take turns within each repeat, and the
ratios (above 1: the generated foreach path is faster) are computed from this same run.
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


def make_params(total: int, tensors: int) -> list[torch.nn.Parameter]:
    """Equal float32 parameters with gradients, the same values for every implementation."""
    gen = torch.Generator().manual_seed(0)
    params = [
        torch.nn.Parameter(torch.randn(total // tensors, generator=gen)) for _ in range(tensors)
    ]
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen) * 1e-2
    return params


def time_steps(makers: dict, total: int, tensors: int, steps: int, repeats: int) -> dict:
    """Median over repeats of the mean seconds per step, for each implementation.

    The implementations take turns (in a rotating order) within each repeat, so that a slow
    spell of a shared machine hits all of them alike rather than one.
    """
    optimizers = {}
    for name, make in makers.items():
        try:
            opt = make(make_params(total, tensors))
            opt.step()  # warm-up: allocates state
        except (RuntimeError, ValueError) as e:  # e.g. a fused kernel this build lacks
            print(f"  {name} skipped: {e}", file=sys.stderr)
            continue
        optimizers[name] = opt
    times: dict[str, list[float]] = {name: [] for name in optimizers}
    order = list(optimizers)
    for r in range(repeats):
        for name in order[r % len(order) :] + order[: r % len(order)]:
            opt = optimizers[name]
            start = time.perf_counter()
            for _ in range(steps):
                opt.step()
            times[name].append((time.perf_counter() - start) / steps)
    return {
        name: statistics.median(times[name]) if name in times else float("nan") for name in makers
    }


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
    header += ["torch foreach / generated foreach", "torch fused / generated foreach"]
    rows = []
    for algorithm in args.algorithms.split(","):
        for total in sizes:
            for tensors in (1, 100):
                seconds = time_steps(
                    ALGORITHMS[algorithm], total, tensors, args.steps, args.repeats
                )
                ms = {name: 1e3 * s for name, s in seconds.items()}
                ratios = [ms[n] / ms["generated foreach"] for n in ("torch foreach", "torch fused")]
                layout = "1 tensor" if tensors == 1 else f"{tensors} tensors"
                rows.append(
                    [algorithm, f"{total:.0e}", layout, *(f"{ms[n]:.3f}" for n in names)]
                    + [f"{r:.2f}" for r in ratios]
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

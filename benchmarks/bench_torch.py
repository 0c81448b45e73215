"""Benchmark: generated PyTorch optimizers with fused=True against their foreach path, torch.optim
(foreach and fused) and an in-place bandwidth ceiling, all in one run.

    python benchmarks/bench_torch.py [--sizes 1e5,1e6,1e7] [--repeats 7] [--steps 5]
        [--algorithms adam,adabelief,momentum,rmsprop,lamb] [--device cpu|cuda] [--markdown]

For each total size the parameters are 1 tensor or 100 equal tensors of float32. Implementations
per algorithm:

* ``generated fused``: the generated class with fused=True (one C kernel per step on the CPU,
  built before timing; Triton on CUDA);
* ``generated foreach``: the same class with foreach=True;
* ``baseline foreach`` / ``baseline fused``: torch.optim's class (Adam; SGD with momentum=0.9;
  RMSprop, which has no fused kernel), or pytorch_optimizer's AdaBelief (torch has none);
* LAMB, whose norms need whole tensors: ``generated foreach`` is its tensor path (whole-tensor
  statements, parameter by parameter; it has no foreach path) and ``baseline foreach``
  pytorch_optimizer's Lamb (parameter by parameter too); its fused kernel is two passes;
* ``ceiling``: ``a.add_(b, alpha=s)`` over two float32 tensors of twice the elements, with
  torch's threads: the bandwidth this machine gives an in-place element-wise kernel.

Each time is the median over repeats of the mean step time of a burst of steps after a warm-up
step; the implementations take turns within each repeat. "vs baseline fused" is baseline fused
time / generated fused time (above 1: ours is faster); "of ceiling" is the fused step's bytes/s
(28 bytes per parameter for Adam and AdaBelief: w, g and two states read, three written; 20 for
momentum and RMSprop; 44 for LAMB's two passes: w, g, m, v read by each, three written by the
second) over the ceiling's (12 bytes per element).
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
from symopt_torch._rmsprop import RMSprop as GeneratedRMSprop  # noqa: E402

LR = 1e-3


def _adabelief_baseline(p):
    from pytorch_optimizer import AdaBelief  # torch.optim has no AdaBelief

    return AdaBelief(p, lr=LR, weight_decouple=False, eps=1e-16)


def _lamb_baseline(p):
    from pytorch_optimizer import Lamb  # torch.optim has no LAMB

    return Lamb(p, lr=LR)


#: algorithm -> (bytes moved per parameter, {implementation: maker})
ALGORITHMS = {
    "adam": (
        28,
        {
            "generated fused": lambda p: symopt_torch.Adam(p, lr=LR, fused=True),
            "generated foreach": lambda p: symopt_torch.Adam(p, lr=LR, foreach=True),
            "baseline foreach": lambda p: torch.optim.Adam(p, lr=LR, foreach=True),
            "baseline fused": lambda p: torch.optim.Adam(p, lr=LR, fused=True),
        },
    ),
    "adabelief": (
        28,
        {
            "generated fused": lambda p: symopt_torch.AdaBelief(p, lr=LR, fused=True),
            "generated foreach": lambda p: symopt_torch.AdaBelief(p, lr=LR, foreach=True),
            "baseline foreach": _adabelief_baseline,
        },
    ),
    "momentum": (
        20,
        {
            "generated fused": lambda p: symopt_torch.SGD(p, lr=LR, momentum=0.9, fused=True),
            "generated foreach": lambda p: symopt_torch.SGD(p, lr=LR, momentum=0.9, foreach=True),
            "baseline foreach": lambda p: torch.optim.SGD(p, lr=LR, momentum=0.9, foreach=True),
            "baseline fused": lambda p: torch.optim.SGD(p, lr=LR, momentum=0.9, fused=True),
        },
    ),
    "rmsprop": (
        20,
        {
            "generated fused": lambda p: GeneratedRMSprop(p, lr=LR, fused=True),
            "generated foreach": lambda p: GeneratedRMSprop(p, lr=LR, foreach=True),
            "baseline foreach": lambda p: torch.optim.RMSprop(p, lr=LR, foreach=True),
        },
    ),
    "lamb": (
        44,
        {
            "generated fused": lambda p: symopt_torch.Lamb(p, lr=LR, fused=True),
            "generated foreach": lambda p: symopt_torch.Lamb(p, lr=LR),
            "baseline foreach": _lamb_baseline,
        },
    ),
}
COLUMNS = ["generated fused", "generated foreach", "baseline foreach", "baseline fused"]


def make_params(total: int, tensors: int, device: str) -> list[torch.nn.Parameter]:
    """Equal float32 parameters with gradients, the same values for every implementation."""
    gen = torch.Generator().manual_seed(0)
    params = [torch.randn(total // tensors, generator=gen) for _ in range(tensors)]
    params = [torch.nn.Parameter(p.to(device)) for p in params]
    for p in params:
        p.grad = (torch.randn(p.shape, generator=gen) * 1e-2).to(device)
    return params


class Ceiling:
    """``a += s*b`` in place over two tensors of twice the elements: a step-like callable."""

    def __init__(self, total: int, device: str):
        self.a = torch.randn(2 * total, device=device)
        self.b = torch.randn(2 * total, device=device)

    def step(self) -> None:
        self.a.add_(self.b, alpha=1e-7)


def time_steps(makers: dict, total: int, tensors: int, steps: int, repeats: int, device: str):
    """Median over repeats of the mean seconds per step, for each implementation (and the
    ceiling); the implementations take turns (in a rotating order) within each repeat."""
    runners = {"ceiling": Ceiling(total, device)}
    for name, make in makers.items():
        try:
            runners[name] = make(make_params(total, tensors, device))
            runners[name].step()  # warm-up: allocates state, builds a fused kernel
        except (ImportError, RuntimeError, ValueError) as e:
            print(f"  {name} skipped: {e}", file=sys.stderr)
            runners.pop(name, None)
    times: dict[str, list[float]] = {name: [] for name in runners}
    order = list(runners)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    for r in range(repeats):
        for name in order[r % len(order) :] + order[: r % len(order)]:
            runner = runners[name]
            sync()
            start = time.perf_counter()
            for _ in range(steps):
                runner.step()
            sync()
            times[name].append((time.perf_counter() - start) / steps)
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1e5,1e6,1e7")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--algorithms", default=",".join(ALGORITHMS))
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    sizes = [int(float(s)) for s in args.sizes.split(",")]
    where = (
        torch.cuda.get_device_name()
        if args.device == "cuda"
        else f"{torch.get_num_threads()} threads"
    )
    print(f"device: {args.device} ({where}), torch {torch.__version__}", file=sys.stderr)
    header = ["algorithm", "elements", "layout", *(f"{n} ms" for n in COLUMNS), "ceiling ms"]
    header += ["vs baseline foreach", "vs baseline fused", "of ceiling"]
    rows = []
    for algorithm in args.algorithms.split(","):
        moved, makers = ALGORITHMS[algorithm]
        for total in sizes:
            for tensors in (1, 100):
                seconds = time_steps(makers, total, tensors, args.steps, args.repeats, args.device)
                ms = {name: 1e3 * seconds.get(name, float("nan")) for name in [*COLUMNS, "ceiling"]}
                fused = ms["generated fused"]
                ceiling = (moved * total / fused) / (12 * 2 * total / ms["ceiling"])
                layout = "1 tensor" if tensors == 1 else f"{tensors} tensors"
                rows.append(
                    [algorithm, f"{total:.0e}", layout]
                    + [f"{ms[n]:.3f}" if ms[n] == ms[n] else "-" for n in [*COLUMNS, "ceiling"]]
                    + [_ratio(ms["baseline foreach"], fused), _ratio(ms["baseline fused"], fused)]
                    + [f"{ceiling:.2f}"]
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


def _ratio(baseline: float, ours: float) -> str:
    return f"{baseline / ours:.2f}" if baseline == baseline else "-"


if __name__ == "__main__":
    main()

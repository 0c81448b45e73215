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
step; the implementations take turns within each repeat. The ratios are medians over repeats of
the ratio within a repeat (the two measured back to back), so that the machine's drifting memory
bandwidth cancels. "vs baseline fused" is baseline fused
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
NAN = float("nan")


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
    """The mean seconds per step of each repeat, for each implementation (and the ceiling).

    The implementations take turns (in a rotating order) within each repeat. Half of the repeats
    run on a second set of runners built in the reverse order: where a buffer lands in memory
    moves a 10^7-element step by up to 5% here (the same kernel on buffers allocated earlier or
    later), which would otherwise favour whichever implementation was built last."""
    sets = [_runners(makers, total, tensors, device, list(names)) for names in _orders(makers)]
    times: dict[str, list[float]] = {name: [] for name in sets[0]}
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    for r in range(repeats):
        runners = sets[r % len(sets)]
        order = list(runners)
        for name in order[r % len(order) :] + order[: r % len(order)]:
            runner = runners[name]
            sync()
            start = time.perf_counter()
            for _ in range(steps):
                runner.step()
            sync()
            times[name].append((time.perf_counter() - start) / steps)
    return times


def _orders(makers: dict) -> list[tuple[str, ...]]:
    names = ("ceiling", *makers)
    return [names, names[::-1]]


def _runners(makers: dict, total: int, tensors: int, device: str, names: list[str]) -> dict:
    """The ceiling and each implementation, built (state allocated by a warm-up step, a fused
    kernel built) in the order ``names``; an implementation that cannot run is left out."""
    runners = {}
    for name in names:
        if name == "ceiling":
            runners[name] = Ceiling(total, device)
            continue
        try:
            runners[name] = makers[name](make_params(total, tensors, device))
            runners[name].step()
        except (ImportError, RuntimeError, ValueError) as e:
            print(f"  {name} skipped: {e}", file=sys.stderr)
    return runners


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
                layout = "1 tensor" if tensors == 1 else f"{tensors} tensors"
                rows.append([algorithm, f"{total:.0e}", layout, *_cells(seconds, moved)])
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


def _cells(seconds: dict[str, list[float]], moved: int) -> list[str]:
    """A row's times (medians, ms), its ratios to the baselines and its share of the ceiling."""
    shown = [*COLUMNS, "ceiling"]
    ms = {n: 1e3 * statistics.median(seconds[n]) if n in seconds else NAN for n in shown}
    ours = seconds["generated fused"]
    ratios = [_paired(seconds.get(n), ours) for n in ("baseline foreach", "baseline fused")]
    # bytes per second of the step over those of the ceiling's (12 bytes per element of 2x)
    ceiling = [(moved / f) / (12 * 2 / c) for f, c in zip(ours, seconds["ceiling"], strict=True)]
    return [
        *(f"{ms[n]:.3f}" if ms[n] == ms[n] else "-" for n in shown),
        *(f"{r:.2f}" if r == r else "-" for r in ratios),
        f"{statistics.median(ceiling):.2f}",
    ]


def _paired(baseline: list[float] | None, ours: list[float]) -> float:
    """The median over repeats of baseline time / our time, each pair measured back to back: the
    machine's bandwidth drifts between repeats, which a ratio of medians would take in."""
    if baseline is None:
        return NAN
    return statistics.median(b / o for b, o in zip(baseline, ours, strict=True))


if __name__ == "__main__":
    main()

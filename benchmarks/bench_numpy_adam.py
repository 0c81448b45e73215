"""Benchmark: generated NumPy Adam against hand-written NumPy and torch.optim.Adam, in one run.

    python benchmarks/bench_numpy_adam.py [--sizes 1e5,1e6,1e7] [--repeats 7] [--markdown]

Every implementation steps the same float32 arrays; each timing is the median over repeats of the
mean step time of a short burst of steps, after warm-up. Ratios compare against baselines measured
in this same run (never against stored numbers), because this machine is shared and noisy.

``generated`` is what a user calls: ``symopt_numpy.Adam(params, lr=..., betas=(...), eps=...)``,
torch.optim's arguments, which checks them and picks the kernel of their setting at every step.
``generated kernel`` is that kernel's class alone (``symopt_numpy._adam.Adam``, the spec's names):
the difference between the two is the cost of the arguments' checks and the dispatch.
``torch default`` is ``torch.optim.Adam`` as most code calls it (no ``foreach``/``fused``: on CPU
its loop over tensors of in-place ops, each using torch's threads).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "generated" / "numpy"))

import symopt_numpy._runtime as numpy_runtime  # noqa: E402
from symopt_numpy import Adam  # noqa: E402
from symopt_numpy._adam import Adam as AdamKernel  # noqa: E402

LR, B1, B2, EPS = 1e-3, 0.9, 0.999, 1e-8


class TextbookAdam:
    """Adam as usually written in NumPy: every operation allocates a new full-size array."""

    def __init__(self, params):
        self.params = params
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]
        self.t = 0

    def step(self, grads):
        self.t += 1
        for p, g, m, v in zip(self.params, grads, self.m, self.v, strict=True):
            m[...] = B1 * m + (1 - B1) * g
            v[...] = B2 * v + (1 - B2) * g * g
            m_hat = m / (1 - B1**self.t)
            v_hat = v / (1 - B2**self.t)
            p -= LR * m_hat / (np.sqrt(v_hat) + EPS)


class InPlaceAdam:
    """Hand-tuned NumPy Adam: in-place ufuncs with out=, two preallocated full-size temporaries,
    scalar bias corrections folded into the step size (the best one can do without chunking)."""

    def __init__(self, params):
        self.params = params
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]
        self.tmp = [(np.empty_like(p), np.empty_like(p)) for p in params]
        self.t = 0

    def step(self, grads):
        self.t += 1
        step_size = -LR / (1 - B1**self.t)
        inv_sqrt_bc2 = 1.0 / (1 - B2**self.t) ** 0.5
        for p, g, m, v, (a, b) in zip(self.params, grads, self.m, self.v, self.tmp, strict=True):
            m *= B1
            np.multiply(g, 1 - B1, out=a)
            m += a
            v *= B2
            np.multiply(g, g, out=a)
            a *= 1 - B2
            v += a
            np.sqrt(v, out=b)
            b *= inv_sqrt_bc2
            b += EPS
            np.divide(m, b, out=a)
            a *= step_size
            p += a


class SingleThreaded:
    """The generated optimizer with its worker threads switched off (THREADS = 1)."""

    def __init__(self, params):
        self.opt = Adam(params, lr=LR, betas=(B1, B2), eps=EPS)

    def step(self, grads):
        saved, numpy_runtime.THREADS = numpy_runtime.THREADS, 1
        try:
            self.opt.step(grads)
        finally:
            numpy_runtime.THREADS = saved


def torch_adam(params, grads, **options):
    import torch

    tparams = [torch.from_numpy(p) for p in params]
    for p, g in zip(tparams, grads, strict=True):
        p.grad = torch.from_numpy(g)
    opt = torch.optim.Adam(tparams, lr=LR, betas=(B1, B2), eps=EPS, **options)

    class Wrapper:
        def step(self, _grads):
            opt.step()

    return Wrapper()


def layouts(total: int) -> list[tuple[str, list[int]]]:
    return [("1 tensor", [total]), ("100 tensors", [total // 100] * 100)]


def time_steps(step: Callable[[], None], steps: int, repeats: int) -> float:
    """Median over repeats of the mean seconds per step."""
    for _ in range(2):
        step()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            step()
        samples.append((time.perf_counter() - start) / steps)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1e5,1e6,1e7")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    try:
        import torch

        have_torch = True
        threads = torch.get_num_threads()
    except ImportError:
        have_torch, threads = False, 0
    rng = np.random.default_rng(0)
    makers: dict[str, Callable] = {
        "generated": lambda ps, gs: Adam(ps, lr=LR, betas=(B1, B2), eps=EPS),
        "generated kernel": lambda ps, gs: AdamKernel(ps, lr=LR, beta1=B1, beta2=B2, eps=EPS),
        "generated, 1 thread": lambda ps, gs: SingleThreaded(ps),
        "textbook": lambda ps, gs: TextbookAdam(ps),
        "in-place": lambda ps, gs: InPlaceAdam(ps),
    }
    if have_torch:
        makers["torch default"] = lambda ps, gs: torch_adam(ps, gs)
        makers["torch foreach"] = lambda ps, gs: torch_adam(ps, gs, foreach=True)
        makers["torch fused"] = lambda ps, gs: torch_adam(ps, gs, fused=True)
    print(
        f"float32 Adam step; numpy {np.__version__}; generated THREADS={numpy_runtime.THREADS}; "
        f"torch threads {threads}; median of {args.repeats} repeats\n"
    )
    header = "| elements | layout | implementation | ms/step | Mparams/s | time / generated's |"
    print(header)
    print("|" + "---|" * 6)
    for size in (int(float(s)) for s in args.sizes.split(",")):
        steps = max(3, int(3e7 // size))
        for layout, shapes in layouts(size):
            params = [rng.standard_normal(n).astype(np.float32) for n in shapes]
            grads = [rng.standard_normal(n).astype(np.float32) for n in shapes]
            times = {}
            for name, make in makers.items():
                ps = [p.copy() for p in params]
                opt = make(ps, grads)
                times[name] = time_steps(lambda o=opt, gs=grads: o.step(gs), steps, args.repeats)
            for name, sec in times.items():
                ratio = "" if name == "generated" else f"{sec / times['generated']:.2f}x"
                print(
                    f"| {size:.0e} | {layout} | {name} | {sec * 1e3:.3f} | "
                    f"{size / sec / 1e6:.0f} | {ratio} |"
                )
        sys.stdout.flush()


if __name__ == "__main__":
    main()

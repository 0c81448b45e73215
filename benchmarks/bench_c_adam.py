"""Benchmark: generated C Adam against a hand-written fused C loop, torch.optim.Adam(fused=True)
and an in-place bandwidth kernel, all in one run.

    python benchmarks/bench_c_adam.py [--sizes 1e5,1e6,1e7] [--repeats 7] [--threads 1,2]

Rows, for each size, layout (one tensor, or 100 equal tensors), dtype and thread count:

* ``generated``: the generated multi-tensor kernel of Adam's default setting
  (``symopt_adam_step_multi_f32``, bound in ``symopt_c._adam``) called through ctypes with
  prebuilt pointer tables: the C code alone.
* ``generated, class``: ``symopt_c.Adam(params, lr=..., betas=(...), eps=...).step(grads)``, the
  Python API a user calls (torch.optim's arguments, checked and dispatched to the kernel of their
  setting at every step).
* ``hand-written``: Adam as an expert writes it in C with the same compiler and flags: restrict
  pointers, the bias corrections folded into two scalars, one loop per tensor, and with threads
  one OpenMP parallel region whose ``omp for nowait`` splits each tensor.
* ``torch fused``: ``torch.optim.Adam(fused=True)`` on CPU, with ``torch.set_num_threads``.
* ``ceiling``: ``a += s*b`` in place over two arrays of twice the elements (the same 16-byte-per-
  parameter footprint as Adam's four float32 arrays), split between threads like the generated
  kernel: the memory bandwidth this machine gives an in-place kernel.

Adam moves 28 bytes per float32 parameter (reads w, g, m, v; writes w, m, v) and 56 per float64
one; the ceiling moves 12 (24) per element. GB/s counts those bytes. Each timing is the median over
repeats of the mean time of a burst of steps after warm-up; ratios compare rows of this same run,
never stored numbers, because the machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "generated" / "c"))

import symopt_c  # noqa: E402
from symopt_c import Adam, _lib  # noqa: E402
from symopt_c._adam import kernels  # noqa: E402

LR, B1, B2, EPS = 1e-3, 0.9, 0.999, 1e-8
#: Seconds of rest before each timed burst (see time_round_robin).
PAUSE = 0.05

HAND_WRITTEN = r"""
#include <math.h>
#include <stddef.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(__x86_64__) && defined(__GLIBC__) && !defined(NO_CLONES)
#define CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CLONES
#endif

CLONES static void adam_f32(size_t n, float *restrict w, const float *restrict g,
                            float *restrict m, float *restrict v, float a, float b, float b1,
                            float b2, float step, float e)
{
    size_t i;
    for (i = 0; i < n; ++i) {
        const float gi = g[i];
        const float mi = a * gi + b1 * m[i];
        const float vi = b * (gi * gi) + b2 * v[i];
        m[i] = mi;
        v[i] = vi;
        w[i] += step * mi / (e + sqrtf(vi));
    }
}

CLONES static void adam_f64(size_t n, double *restrict w, const double *restrict g,
                            double *restrict m, double *restrict v, double a, double b,
                            double b1, double b2, double step, double e)
{
    size_t i;
    for (i = 0; i < n; ++i) {
        const double gi = g[i];
        const double mi = a * gi + b1 * m[i];
        const double vi = b * (gi * gi) + b2 * v[i];
        m[i] = mi;
        v[i] = vi;
        w[i] += step * mi / (e + sqrt(vi));
    }
}

CLONES static void axpy_f32(size_t n, float *restrict x, const float *restrict y, float s)
{
    size_t i;
    for (i = 0; i < n; ++i) {
        x[i] += s * y[i];
    }
}

CLONES static void axpy_f64(size_t n, double *restrict x, const double *restrict y, double s)
{
    size_t i;
    for (i = 0; i < n; ++i) {
        x[i] += s * y[i];
    }
}

/* This thread's share [lo, hi) of total elements: one even cut, like the generated code. */
static void share(size_t total, size_t *lo, size_t *hi)
{
#ifdef _OPENMP
    const size_t parts = (size_t)omp_get_num_threads(), id = (size_t)omp_get_thread_num();
    *lo = total / parts * id + total % parts * id / parts;
    *hi = total / parts * (id + 1) + total % parts * (id + 1) / parts;
#else
    *lo = 0;
    *hi = total;
#endif
}

#define FOR_MY_SHARE(count, n, BODY)                                                     \
    {                                                                                    \
        size_t total_ = 0, k_;                                                           \
        for (k_ = 0; k_ < count; ++k_) total_ += n[k_];                                  \
        _Pragma("omp parallel if (total_ >= 32768)")                                     \
        {                                                                                \
            size_t lo_, hi_, start_ = 0, k;                                              \
            share(total_, &lo_, &hi_);                                                   \
            for (k = 0; k < count && start_ < hi_; start_ += n[k], ++k) {                \
                const size_t a_ = lo_ > start_ ? lo_ - start_ : 0;                       \
                const size_t b_ = hi_ - start_ < n[k] ? hi_ - start_ : n[k];             \
                if (a_ < b_) {                                                           \
                    const size_t at = a_, len = b_ - a_;                                 \
                    BODY;                                                                \
                }                                                                        \
            }                                                                            \
        }                                                                                \
    }

void hand_adam_f32(size_t count, float *const *w, const float *const *g, float *const *m,
                   float *const *v, const size_t *n, long t, double lr, double b1, double b2,
                   double eps)
{
    const double bc2 = sqrt(1 - pow(b2, t));
    const float step = (float)(-lr / (1 - pow(b1, t)) * bc2), e = (float)(eps * bc2);
    const float a = (float)(1 - b1), b = (float)(1 - b2), fb1 = (float)b1, fb2 = (float)b2;
    FOR_MY_SHARE(count, n, adam_f32(len, w[k] + at, g[k] + at, m[k] + at, v[k] + at, a, b,
                                    fb1, fb2, step, e))
}

void hand_adam_f64(size_t count, double *const *w, const double *const *g, double *const *m,
                   double *const *v, const size_t *n, long t, double lr, double b1, double b2,
                   double eps)
{
    const double bc2 = sqrt(1 - pow(b2, t));
    const double step = -lr / (1 - pow(b1, t)) * bc2, e = eps * bc2, a = 1 - b1, b = 1 - b2;
    FOR_MY_SHARE(count, n, adam_f64(len, w[k] + at, g[k] + at, m[k] + at, v[k] + at, a, b,
                                    b1, b2, step, e))
}

void ceiling_f32(size_t count, float *const *x, const float *const *y, const size_t *n, double s)
{
    const float fs = (float)s;
    FOR_MY_SHARE(count, n, axpy_f32(len, x[k] + at, y[k] + at, fs))
}

void ceiling_f64(size_t count, double *const *x, const double *const *y, const size_t *n,
                 double s)
{
    FOR_MY_SHARE(count, n, axpy_f64(len, x[k] + at, y[k] + at, s))
}
"""


def build_hand_written(folder: Path) -> ctypes.CDLL:
    """The hand-written kernels, with the compiler and flags of the generated library."""
    source = folder / "hand.c"
    source.write_text(HAND_WRITTEN)
    library = folder / "libhand.so"
    flags = _lib.OPENMP_FLAGS if symopt_c.openmp() else ()
    _lib.compile_c(library, [source], flags=flags)
    lib = ctypes.CDLL(str(library))
    for name in ("hand_adam_f32", "hand_adam_f64"):
        fn = getattr(lib, name)
        fn.argtypes = [ctypes.c_size_t] + [ctypes.c_void_p] * 5 + [ctypes.c_long]
        fn.argtypes += [ctypes.c_double] * 4
        fn.restype = None
    for name in ("ceiling_f32", "ceiling_f64"):
        fn = getattr(lib, name)
        fn.argtypes = [ctypes.c_size_t] + [ctypes.c_void_p] * 3 + [ctypes.c_double]
        fn.restype = None
    return lib


def table(arrays: list[np.ndarray]) -> np.ndarray:
    return np.array([a.ctypes.data for a in arrays], dtype=np.uintp)


class Tensors:
    """Fresh w, g, m, v for one implementation (state starts at zero, as in training)."""

    def __init__(self, rng, shapes, dtype):
        self.w = [rng.standard_normal(n).astype(dtype) for n in shapes]
        self.g = [rng.standard_normal(n).astype(dtype) * 1e-3 for n in shapes]
        self.m = [np.zeros(n, dtype=dtype) for n in shapes]
        self.v = [np.zeros(n, dtype=dtype) for n in shapes]
        self.tables = [table(x) for x in (self.w, self.g, self.m, self.v)]
        self.addresses = [t.ctypes.data for t in self.tables]
        self.sizes = np.array(shapes, dtype=np.uintp)
        self.t = 0

    def stepper(self, fn) -> Callable[[], None]:
        count, addresses, sizes = len(self.w), self.addresses, self.sizes.ctypes.data

        def step() -> None:
            self.t += 1
            fn(count, *addresses, sizes, self.t, LR, B1, B2, EPS)

        return step


def implementations(rng, shapes, dtype, hand, torch) -> dict[str, Callable[[], None]]:
    """name -> one step, each over its own arrays (built here, kept alive by the closures)."""
    name = "f32" if dtype == np.float32 else "f64"
    steps = {"generated": Tensors(rng, shapes, dtype).stepper(kernels()[np.dtype(dtype)][1])}
    x = Tensors(rng, shapes, dtype)
    opt = Adam(x.w, lr=LR, betas=(B1, B2), eps=EPS)
    steps["generated, class"] = lambda o=opt, grads=x.g: o.step(grads)
    steps["hand-written"] = Tensors(rng, shapes, dtype).stepper(getattr(hand, f"hand_adam_{name}"))
    if torch is not None:
        y = Tensors(rng, shapes, dtype)
        params = [torch.from_numpy(w) for w in y.w]
        for p, g in zip(params, y.g, strict=True):
            p.grad = torch.from_numpy(g)
        fused = torch.optim.Adam(params, lr=LR, betas=(B1, B2), eps=EPS, fused=True)
        steps["torch fused"] = lambda o=fused, keep=y: o.step()
    # The ceiling: a += s*b over arrays of twice the elements (Adam's footprint, 16 bytes per
    # float32 parameter), cut between threads like the generated kernel.
    a = [rng.standard_normal(2 * n).astype(dtype) for n in shapes]
    b = [rng.standard_normal(2 * n).astype(dtype) for n in shapes]
    ta, tb = table(a), table(b)
    sizes = np.array([2 * n for n in shapes], dtype=np.uintp)
    ceiling = getattr(hand, f"ceiling_{name}")
    keep = (a, b, ta, tb, sizes)
    steps["ceiling"] = lambda k=keep: ceiling(
        len(a), ta.ctypes.data, tb.ctypes.data, sizes.ctypes.data, 1e-9
    )
    return steps


def time_round_robin(steps: dict[str, Callable[[], None]], burst: int, repeats: int) -> dict:
    """Median over repeats of the mean seconds per step. Every repeat times each implementation
    once, in a shuffled order, so a slow spell of the machine, or whatever one implementation
    leaves behind for the next (spinning threads, a cold cache), hits all of them alike."""
    for step in steps.values():
        for _ in range(2):
            step()
    samples: dict[str, list[float]] = {name: [] for name in steps}
    order = list(steps)
    shuffle = random.Random(0).shuffle
    for _ in range(repeats):
        shuffle(order)
        for name in order:
            step = steps[name]
            # Idle OpenMP threads spin for a few milliseconds before they sleep; torch has its own
            # OpenMP runtime, whose threads would otherwise fight the spinning ones for the cores.
            time.sleep(PAUSE)
            start = time.perf_counter()
            for _ in range(burst):
                step()
            samples[name].append((time.perf_counter() - start) / burst)
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1e5,1e6,1e7", help="float32 sizes")
    parser.add_argument("--float64-sizes", default="1e7")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--no-torch", action="store_true")
    args = parser.parse_args()
    torch = None
    if not args.no_torch:
        try:
            import torch
        except ImportError:
            pass
    hand = build_hand_written(Path(tempfile.mkdtemp(prefix="bench_c_adam_")))
    rng = np.random.default_rng(0)
    print(
        f"Adam step; {platform.machine()}, {os.cpu_count()} cores; compiler "
        f"{' '.join(_lib.compiler())}, flags {' '.join(_lib.CFLAGS)}, OpenMP {symopt_c.openmp()}; "
        f"torch {torch.__version__ if torch else 'absent'}; median of {args.repeats} repeats\n"
    )
    print(
        "| elements | layout | dtype | threads | implementation | ms/step | GB/s | "
        "time / generated's | of ceiling |"
    )
    print("|" + "---|" * 9)
    runs = [(int(float(s)), np.float32) for s in args.sizes.split(",") if s]
    runs += [(int(float(s)), np.float64) for s in args.float64_sizes.split(",") if s]
    for size, dtype in runs:
        item = np.dtype(dtype).itemsize
        name = "f32" if dtype == np.float32 else "f64"
        burst = max(3, int(3e7 // size))
        for layout, shapes in (("1 tensor", [size]), ("100 tensors", [size // 100] * 100)):
            for threads in (int(k) for k in args.threads.split(",")):
                symopt_c.set_num_threads(threads)  # the same OpenMP runtime as the hand-written
                if torch is not None:
                    torch.set_num_threads(threads)
                steps = implementations(rng, shapes, dtype, hand, torch)
                times = time_round_robin(steps, burst, args.repeats)
                del steps
                ceiling_bw = 2 * size * 3 * item / times["ceiling"]
                for impl, sec in times.items():
                    moved = (2 * size * 3 if impl == "ceiling" else size * 7) * item
                    bw = moved / sec
                    mine = times["generated, class" if impl == "torch fused" else "generated"]
                    versus = f"{sec / mine:.2f}" if impl in ("hand-written", "torch fused") else ""
                    share = f"{bw / ceiling_bw:.2f}" if impl.startswith("generated") else ""
                    print(
                        f"| {size:.0e} | {layout} | {name} | {threads} | {impl} | "
                        f"{sec * 1e3:.3f} | {bw / 1e9:.1f} | {versus} | {share} |"
                    )
                sys.stdout.flush()
    print(
        "\n'time / generated's': the row's time over the generated kernel's (hand-written) or over"
        " the generated class's (torch fused, also called from Python); above 1.00 the generated"
        " code is faster. 'of ceiling': the row's GB/s over the in-place kernel's."
    )


if __name__ == "__main__":
    main()

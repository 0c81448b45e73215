"""What the generated tests of symopt_c share: the spec loader, the tolerances and gradient
streams of the comparisons with symopt's reference stepper, and the sanitizer driver build.

The tests of each spec import this (it sits next to them; conftest.py puts this folder on the
path). The class mechanics every optimizer shares (threads, state_dict, argument checks) are
tested once, in symopt's tests/test_c_runtime.py.
"""

import importlib
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from symopt_c import _lib

from symopt.spec import load_variant

HERE = Path(__file__).resolve().parent

STEPS = 100
SHAPES = [(1,), (7,), (3, 5), (4099,)]
SEEDS = [0, 1, 2]
DTYPES = [np.float64, np.float32]
#: float64 results must agree to 1e-10 of each array's scale (about 100 steps of ~10 roundings of
#: 1.1e-16, with a wide margin); float32 results to 2e-4 (float32 rounds at 6e-8, and the errors
#: of 100 steps x ~10 operations accumulate).
RTOL = {np.float64: 1e-10, np.float32: 2e-4}
TINY = {np.float64: 1e-300, np.float32: 1e-37}
#: Largest |g| per dtype for the edge cases: float32 cannot hold (1e30)**2, so it gets 1e15.
HUGE = {np.float64: 1e30, np.float32: 1e15}


def load(name: str, module: str | None = None):
    """The spec these tests were generated from (specs/NAME.toml next to them); for a spec with
    flags, the variant generated as ``module``."""
    return load_variant(HERE / "specs" / f"{name}.toml", module or name)


def assert_close(actual, expected, dtype, what, scale=0.0):
    """|actual - expected| <= rtol * (|expected| + scale), scale >= max|expected|.

    Rounding errors are relative to the magnitudes a quantity has had, so callers pass the
    largest magnitude seen during the run (a float32 value that went to 1e13 and back keeps an
    error of about 1e13 x 6e-8, although every operation was correctly rounded).
    """
    assert actual.dtype == dtype, f"{what}: dtype {actual.dtype}, expected {np.dtype(dtype)}"
    expected = np.asarray(expected, dtype=np.float64)
    err = np.abs(actual.astype(np.float64) - expected)
    finite = np.isfinite(expected)
    scale = max(scale, float(np.max(np.abs(expected[finite]), initial=0.0)))
    bound = RTOL[dtype] * (np.abs(expected) + scale) + TINY[dtype]
    assert np.all(np.isfinite(actual) == finite), f"{what}: non-finite mismatch"
    worst = float(np.max(err[finite] - bound[finite], initial=-1.0))
    assert worst <= 0, f"{what}: max error {float(np.max(err[finite])):.3e} exceeds the tolerance"


def gradient_stream(rng, shape, dtype, steps=STEPS):
    """Random gradients at varying scales, with exact zeros mixed in."""
    for _ in range(steps):
        g = rng.standard_normal(shape) * 10.0 ** rng.uniform(-3, 1)
        g[rng.random(shape) < 0.1] = 0.0
        yield g.astype(dtype)


def edge_gradients(kind, dtype, steps=20):
    """Zero, tiny, huge or mixed gradients of 33 elements with alternating signs."""
    signs = np.where(np.arange(33) % 2 == 0, 1.0, -1.0)
    for k in range(steps):
        if kind == "zeros":
            g = np.zeros(33)
        elif kind == "tiny":
            g = 1e-30 * signs
        elif kind == "huge":
            g = HUGE[dtype] * signs
        else:
            g = signs * np.array([0.0, 1e-30, 1.0, HUGE[dtype]] * 8 + [1e-3]) * (-1) ** k
        yield g.astype(dtype)


def compare(opt, ref, what, scales=None):
    """Compare every parameter and state array; ``scales`` keeps each one's running max |value|."""
    scales = {} if scales is None else scales
    for i, p in enumerate(opt.params):
        pairs = [(f"w[{i}]", p, ref.params[i])]
        pairs += [(f"{n}[{i}]", opt.state[i][n], ref.state[i][n]) for n in opt.STATE]
        for label, actual, expected in pairs:
            top = float(np.max(np.abs(expected[np.isfinite(expected)]), initial=0.0))
            scales[label] = max(scales.get(label, 0.0), top)
            assert_close(actual, expected, p.dtype.type, f"{what}: {label}", scales[label])


def arrays_of(opt, i):
    """Tensor i's parameter and state arrays, in the C driver's order."""
    return [opt.params[i], *(opt.state[i][n] for n in opt.STATE)]


def snapshot(opt):
    return [a.copy() for i in range(len(opt.params)) for a in arrays_of(opt, i)]


def sanitized_driver(name, folder, *, element_wise=True):
    """tests/driver_NAME.c and src/NAME.c (with src/runtime*.c) built with AddressSanitizer and
    UndefinedBehaviorSanitizer into folder; skips where the compiler cannot.

    Element-wise drivers run every size on the parallel path (SYMOPT_PARALLEL_MIN=1), so with
    three threads the cuts fall inside tensors, and the SSE2 baseline loop (SYMOPT_NO_CLONES), so
    comparing with the library, which runs the machine's widest, checks that vector width changes
    no bit."""
    cc = _lib.compiler()
    probe = folder / "probe.c"
    probe.write_text("int main(void) { return 0; }\n")
    try:
        _lib.compile_c(folder / "probe", [probe], flags=_lib.SANITIZE_FLAGS, shared=False, cc=cc)
    except _lib.BuildError as exc:
        pytest.skip(f"the C compiler cannot build with sanitizers here: {exc}")
    sources = [_lib.ROOT / "src" / f"{name}.c", *sorted((_lib.ROOT / "src").glob("runtime*.c"))]
    sources.append(_lib.ROOT / "tests" / f"driver_{name}.c")
    driver = folder / f"driver_{name}"
    flags = _lib.SANITIZE_FLAGS
    if element_wise:
        flags = (*flags, "-DSYMOPT_PARALLEL_MIN=1", "-DSYMOPT_NO_CLONES")
        try:
            _lib.compile_c(driver, sources, flags=(*flags, *_lib.OPENMP_FLAGS), shared=False, cc=cc)
            return driver
        except _lib.BuildError:
            pass
    _lib.compile_c(driver, sources, flags=flags, shared=False, cc=cc)
    return driver


def run_sanitized(command, **kwargs):
    """Runs a sanitizer driver (three OpenMP threads); fails on any report."""
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "3",
        "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:exitcode=99",
        "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
    }
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, **kwargs)
    if "LeakSanitizer has encountered a fatal error" in done.stderr:
        # LeakSanitizer cannot run under ptrace and in some sandboxes: check without it.
        env["ASAN_OPTIONS"] = "detect_leaks=0:abort_on_error=0:exitcode=99"
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    assert "runtime error" not in done.stderr, done.stderr[-4000:]
    return done


def sanitized_steps(driver, cls, dtype, folder):
    """A few steps of cls under the sanitizers over sizes 0 to 4099, each array its own
    allocation, from a state reached by real steps; the driver's final arrays must equal the
    library's bit for bit."""
    rng = np.random.default_rng(12)
    sizes = [0, 1, 7, 33, 1000, 4099]
    steps = 5
    opt = cls([rng.standard_normal(n).astype(dtype) for n in sizes])
    for _ in range(3):
        opt.step([rng.standard_normal(n).astype(dtype) for n in sizes])
    grads = [[rng.standard_normal(n).astype(dtype) for n in sizes] for _ in range(steps)]
    t = cls.T_START + opt.steps
    hyper = [cls.DEFAULTS[h] for h in cls.hyperparameters]
    blob = [np.array([len(sizes), steps, t], dtype=np.int64), np.array(hyper, dtype=np.float64)]
    blob += [np.array(sizes, dtype=np.int64)]
    blob += [a for i in range(len(sizes)) for a in arrays_of(opt, i)]
    blob += [g for gs in grads for g in gs]
    source = folder / f"input_{np.dtype(dtype).name}.bin"
    source.write_bytes(b"".join(a.tobytes() for a in blob))
    for gs in grads:
        opt.step(gs)
    result = folder / f"output_{np.dtype(dtype).name}.bin"
    precision = "f32" if dtype == np.float32 else "f64"
    run_sanitized([str(driver), precision, str(source), str(result)])
    out = np.frombuffer(result.read_bytes(), dtype=dtype)
    np.testing.assert_array_equal(out, np.concatenate([a.reshape(-1) for a in snapshot(opt)]))


def run_driver(driver, source, result):
    """A second-order sanitizer driver on INPUT, OUTPUT; its output as float64 values."""
    run_sanitized([str(driver), str(source), str(result)])
    return np.frombuffer(result.read_bytes(), dtype=np.float64)


def numpy_version(name):
    """symopt_numpy.NAME when the NumPy target was generated next to this folder (it shares no
    code with the C backend), else skip."""
    folder = HERE.parents[1] / "numpy"
    if not (folder / "symopt_numpy" / f"{name}.py").is_file():
        pytest.skip(f"the NumPy target's {name} module is not generated next to this folder")
    if str(folder) not in sys.path:
        sys.path.append(str(folder))
    return importlib.import_module(f"symopt_numpy.{name}")


def spd(rng, n):
    """A symmetric positive definite matrix with eigenvalues in [1, 10]."""
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    return (q * rng.uniform(1.0, 10.0, n)) @ q.T


def symmetric(rng, n, eigenvalues):
    """A random symmetric matrix with these eigenvalues, and its eigenvectors."""
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    h = (q * np.asarray(eigenvalues, dtype=float)) @ q.T
    return (h + h.T) / 2, q


def model(H, g, d):
    """m(d) - m(0) = g.d + d.H d / 2."""
    return g @ d + 0.5 * (d @ (H @ d))


#: The kinds of trust-region subproblem instance() draws.
KINDS = ["positive definite", "indefinite", "hard case", "near hard case", "zero gradient"]


def global_solution(H, g, radius):
    """lam* and a global minimiser d* of the model over ||d|| <= radius, from H = Q diag(w) Q^T:
    d(lam) = -Q (Q^T g / (w + lam)); lam* = 0 when H is positive definite and ||d(0)|| <= r; in
    the hard case (Q^T g vanishes on the lowest eigenspace and ||d(-w_1)|| < r) lam* = -w_1 and
    d* = d(-w_1) + tau q_1 on the boundary; else lam* solves ||d(lam)|| = r (bisection)."""
    w, q = np.linalg.eigh(H)
    c = q.T @ g
    lowest = w <= w[0] + 1e-9 * max(1.0, float(np.abs(w).max()))

    def step(lam, keep):
        out = np.zeros_like(c)
        out[keep] = -c[keep] / (w[keep] + lam)
        return q @ out

    everything = np.ones(w.size, dtype=bool)
    if w[0] > 0 and np.linalg.norm(step(0.0, everything)) <= radius:
        return 0.0, step(0.0, everything)
    lo = max(0.0, -w[0])
    if np.all(np.abs(c[lowest]) <= 1e-12 * max(1.0, float(np.linalg.norm(g)))):
        inner = step(lo, ~lowest)
        if np.linalg.norm(inner) <= radius:
            return lo, inner + math.sqrt(radius**2 - inner @ inner) * q[:, 0]
    hi = lo + (1.0 + 1e-9) * float(np.linalg.norm(g)) / radius + 1e-300
    for _ in range(300):
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        if np.linalg.norm(step(mid, everything)) > radius:
            lo = mid
        else:
            hi = mid
    return hi, step(hi, everything)


def instance(kind, seed, n):
    """H, g and a radius of one kind of subproblem."""
    rng = np.random.default_rng(seed)
    radius = float(10.0 ** rng.uniform(-1, 1))
    if kind == "positive definite":
        return spd(rng, n), rng.standard_normal(n), radius
    if kind == "indefinite":
        w = rng.uniform(-3.0, 3.0, n)
        w[0] = -abs(w[0]) - 0.1
        return symmetric(rng, n, w)[0], rng.standard_normal(n), radius
    if kind == "zero gradient":
        w = rng.uniform(-3.0, 3.0, n)
        w[0] = -abs(w[0]) - 0.1
        return symmetric(rng, n, w)[0], np.zeros(n), radius
    # the hard case: g orthogonal to the eigenvector of the lowest eigenvalue -1, and a radius
    # larger than ||(H + I)^+ g||
    w = np.concatenate([[-1.0], rng.uniform(0.5, 5.0, n - 1)])
    H, q = symmetric(rng, n, w)
    g = q[:, 1:] @ rng.standard_normal(n - 1)
    if kind == "near hard case":
        g = g + 1e-6 * q[:, 0]
    inner = np.linalg.lstsq(H + np.eye(n), -g, rcond=None)[0]
    return H, g, 1.5 * float(np.linalg.norm(inner)) + 0.1


def cases():
    """(kind, seed, n) of the subproblems the tests solve."""
    return [
        (kind, seed, n)
        for kind in KINDS
        for seed in range(4)
        for n in (1, 2, 3, 6, 12)
        if not (kind in ("hard case", "near hard case") and n == 1)
    ]


def masked(message):
    """A message with its floating-point numbers masked (they differ in the last digits)."""
    return re.sub(r"\d\.\d+e[+-]\d+", "#", message)

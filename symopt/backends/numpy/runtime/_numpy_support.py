"""What the generated NumPy tests share: the settings, the tolerance and the gradient streams;
for the trust-region tests, the subproblem's optimality conditions and its reference solution;
for the K-FAC tests, random factors and a linear layer with its statistics.

The oracle is symopt's reference stepper, which evaluates a spec's SymPy equations directly in
float64 and shares no code with the generator. Tolerances: float64 results must agree to 1e-10
of each array's scale (about 100 steps of ~10 roundings of 1.1e-16, with a wide margin); float32
results to 2e-4 (float32 rounds at 6e-8, and the errors of 100 steps x ~10 operations
accumulate).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

#: The spec files these tests were generated from (copies, with a header).
SPECS = Path(__file__).resolve().parent / "specs"
STEPS = 100
#: (4099,) spans several test-sized chunks (see conftest.py) and ends in a ragged one.
SHAPES = [(1,), (7,), (3, 5), (4099,)]
SEEDS = [0, 1]
DTYPES = [np.float64, np.float32]
RTOL = {np.float64: 1e-10, np.float32: 2e-4}
TINY = {np.float64: 1e-300, np.float32: 1e-37}
#: Largest |g| per dtype for the edge cases: float32 cannot hold (1e30)**2, so it gets 1e15.
HUGE = {np.float64: 1e30, np.float32: 1e15}
EDGE_KINDS = ["zeros", "tiny", "huge", "mixed"]


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


def edge_gradient(kind, k, dtype, size=33):
    """Step k's gradient of an edge case: zeros, tiny, huge, or all of them mixed."""
    signs = np.where(np.arange(size) % 2 == 0, 1.0, -1.0)
    if kind == "zeros":
        g = np.zeros(size)
    elif kind == "tiny":
        g = 1e-30 * signs
    elif kind == "huge":
        g = HUGE[dtype] * signs
    else:
        pattern = np.resize([0.0, 1e-30, 1.0, HUGE[dtype]], size)
        pattern[-1] = 1e-3
        g = signs * pattern * (-1) ** k
    return g.astype(dtype)


def compare(opt, ref, dtype, what, scales=None):
    """Compare every parameter and state array; ``scales`` keeps each one's running max |value|."""
    scales = {} if scales is None else scales
    for i, p in enumerate(opt.params):
        pairs = [(f"w[{i}]", p, ref.params[i])]
        pairs += [(f"{n}[{i}]", opt.state[i][n], ref.state[i][n]) for n in opt.state[i]]
        for label, actual, expected in pairs:
            top = float(np.max(np.abs(expected[np.isfinite(expected)]), initial=0.0))
            scales[label] = max(scales.get(label, 0.0), top)
            assert_close(actual, expected, dtype, f"{what}: {label}", scales[label])


# --- trust-region subproblem: optimality conditions and the reference solution ---------------


def check_exact_conditions(h, g, radius, step, k_easy, tol=1e-8) -> float:
    """lam >= 0, H + lam I PSD, lam (r - ||d||) = 0 up to the solver's tolerance (||d|| within
    k_easy r of r when lam > 0); returns the stationarity residual ||(H + lam I) d + g||."""
    n = g.size
    d, lam = step.d, step.lam
    d_norm = np.linalg.norm(d)
    scale = max(1.0, np.linalg.norm(h, 2))
    assert lam >= 0.0
    assert d_norm <= radius * (1 + k_easy) + 1e-12
    assert np.linalg.eigvalsh(h + lam * np.eye(n))[0] >= -tol * scale
    if lam > 0.0:
        assert abs(d_norm - radius) <= k_easy * radius + 1e-12  # complementarity
    np.testing.assert_allclose(step.hd, h @ d, rtol=1e-12, atol=1e-12 * scale)
    return float(np.linalg.norm((h + lam * np.eye(n)) @ d + g))


def model(h, g, d):
    """The quadratic model m(d) - f = g.d + d.H d / 2."""
    return g @ d + 0.5 * d @ h @ d


def true_solution(h, g, radius):
    """Global minimiser of the model on the ball, from the eigendecomposition (reference)."""
    w, q = np.linalg.eigh(h)
    c = q.T @ g

    def norm_at(lam):
        return np.linalg.norm(c / (w + lam))

    lo = max(0.0, -w[0])
    if w[0] > 0 and norm_at(0.0) <= radius:
        return q @ (-c / w), 0.0
    if (
        np.linalg.norm(c[w > w[0] + 1e-12] / (w[w > w[0] + 1e-12] - w[0])) < radius
        and abs(c[0]) < 1e-14
    ):
        # hard case: lam = -w_min, add the eigenvector to reach the boundary
        lam = -w[0]
        mask = w > w[0] + 1e-12
        y = np.zeros_like(c)
        y[mask] = -c[mask] / (w[mask] + lam)
        y[0] = math.sqrt(radius**2 - y @ y)
        return q @ y, lam
    hi = lo + np.linalg.norm(g) / radius + 1.0
    while norm_at(hi) > radius:
        hi *= 2
    lo = lo + 1e-15 * max(1.0, abs(lo))
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if norm_at(mid) > radius else (lo, mid)
    return q @ (-c / (w + hi)), hi


def random_symmetric(rng, n, shift):
    """A random symmetric n x n matrix plus shift I."""
    a = rng.standard_normal((n, n))
    return (a + a.T) / 2 + shift * np.eye(n)


# --- K-FAC: random factors and a linear layer --------------------------------------------------


def vec(M):
    """Column-major vec."""
    return np.asarray(M).ravel(order="F")


def psd(rng, n, rank=None):
    """A random positive semidefinite n x n matrix of the given rank (default n)."""
    a = rng.standard_normal((n, rank or n))
    return a @ a.T / a.shape[1]


def linear_layer(rng, n, fan_in, fan_out, dtype=np.float64):
    """A layer s = a @ W + b with squared error 1/(2n) sum ||s - y||^2: its gradients, and the
    K-FAC statistics of its GGN (output Hessian I: one row e_j / n per datum and output)."""
    W = rng.standard_normal((fan_in, fan_out)).astype(dtype)
    b = rng.standard_normal(fan_out).astype(dtype)
    a = rng.standard_normal((n, fan_in))
    y = rng.standard_normal((n, fan_out))
    r = (a @ W + b - y) / n
    grads = [(a.T @ r).astype(dtype), r.sum(axis=0).astype(dtype)]
    rows = np.kron(np.ones((n, 1)), np.eye(fan_out)) / n
    return [W, b], grads, a, rows

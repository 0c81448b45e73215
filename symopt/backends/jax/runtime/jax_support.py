"""What the generated tests of the optax transformations share: tolerances, gradient streams and
the comparison with the reference stepper (passed in by each test; this file imports neither
symopt nor the transformations).

Tolerances as for the NumPy and PyTorch targets: 1e-10 of each array's scale in float64, 2e-4
in float32. The tests run with ``jax_enable_x64`` (conftest.py), so float64 is float64.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

#: The spec files these tests were generated from (copies, with a header).
SPECS = Path(__file__).resolve().parent / "specs"
STEPS = 100
SEEDS = [0, 1]
DTYPES = [np.float64, np.float32]
RTOL = {np.float64: 1e-10, np.float32: 2e-4}
TINY = {np.float64: 1e-300, np.float32: 1e-37}
#: Largest |g| per dtype for the edge cases: float32 cannot hold (1e30)**2, so it gets 1e15.
HUGE = {np.float64: 1e30, np.float32: 1e15}
EDGES = ["zeros", "tiny", "huge", "mixed"]
#: Parameters stepped together, by (applies_to, has an [otherwise] update); (4099,) is large.
SHAPES = {
    ("any", False): [(1,), (7,), (3, 5), (4099,)],
    ("matrix", False): [(3, 5), (6, 2), (1, 4)],
    ("matrix", True): [(7,), (3, 5), (6, 2), (2, 3, 2)],
    ("multidim", False): [(3, 5), (2, 3, 4)],
    ("multidim", True): [(7,), (3, 5), (2, 3, 4), (2, 1, 3, 3)],
}


def assert_close(actual, expected, dtype, what, scale=0.0):
    """|actual - expected| <= rtol * (|expected| + scale), scale >= max|expected| (rounding
    errors are relative to the magnitudes a quantity has had)."""
    actual = np.asarray(actual)
    assert actual.dtype == dtype, f"{what}: dtype {actual.dtype}, expected {np.dtype(dtype)}"
    expected = np.asarray(expected, dtype=np.float64)
    err = np.abs(actual.astype(np.float64) - expected)
    finite = np.isfinite(expected)
    scale = max(scale, float(np.max(np.abs(expected[finite]), initial=0.0)))
    bound = RTOL[dtype] * (np.abs(expected) + scale) + TINY[dtype]
    assert np.all(np.isfinite(actual) == finite), f"{what}: non-finite mismatch"
    worst = float(np.max(err[finite] - bound[finite], initial=-1.0))
    assert worst <= 0, f"{what}: max error {float(np.max(err[finite])):.3e} exceeds the tolerance"


def gradient(rng, shape, dtype):
    """A random gradient at a random scale, with exact zeros mixed in."""
    g = rng.standard_normal(shape) * 10.0 ** rng.uniform(-3, 1)
    g[rng.random(shape) < 0.1] = 0.0
    return g.astype(dtype)


def edge_gradient(kind, k, dtype, shape):
    """Step k's gradient of an edge case: zeros, tiny, huge, or all of them mixed."""
    size = int(np.prod(shape))
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
    return g.reshape(shape).astype(dtype)


class Run:
    """A transformation and the reference stepper on the same parameters, compared after every
    step: parameters, and every state the reference keeps."""

    def __init__(self, transformation, reference, params):
        self.params = [jnp.asarray(p) for p in params]
        self.state = transformation.init(self.params)
        self.update = jax.jit(transformation.update)
        self.reference = reference
        self.scales = {}

    def step(self, grads, **hyper):
        updates, self.state = self.update([jnp.asarray(g) for g in grads], self.state, self.params)
        self.params = optax.apply_updates(self.params, updates)
        self.reference.step(list(grads), **hyper)

    def compare(self, dtype, what):
        for i, p in enumerate(self.params):
            pairs = [(f"w[{i}]", p, self.reference.params[i])]
            pairs += [
                (f"{n}[{i}]", getattr(self.state, n)[i], value)
                for n, value in self.reference.state[i].items()
            ]
            for label, actual, expected in pairs:
                expected = np.asarray(expected, dtype=np.float64)
                top = float(np.max(np.abs(expected[np.isfinite(expected)]), initial=0.0))
                self.scales[label] = max(self.scales.get(label, 0.0), top)
                assert_close(actual, expected, dtype, f"{what}: {label}", self.scales[label])

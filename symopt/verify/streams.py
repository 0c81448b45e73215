"""The gradient streams an implementation and the reference are driven by: random, sparse, tiny,
huge, sign-alternating, and a Rosenbrock gradient that depends on the parameters."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def _rosenbrock_grad(w: np.ndarray) -> np.ndarray:
    """Gradient of sum over pairs (x, y) of (1 - x)^2 + 10 (y - x^2)^2 (mild, so runs stay tame)."""
    flat = w.reshape(-1)
    x, y = flat[0::2], flat[1::2]
    g = np.empty_like(flat)
    with np.errstate(all="ignore"):  # a broken optimizer may run off to infinity
        g[0::2] = -2 * (1 - x) - 40 * x * (y - x**2)
        g[1::2] = 20 * (y - x**2)
    return g.reshape(w.shape)


StreamFn = Callable[[np.random.Generator, tuple[int, ...], int, np.ndarray], np.ndarray]

STREAMS: dict[str, StreamFn] = {
    "random": lambda rng, shape, k, w: rng.standard_normal(shape) * 10 ** rng.uniform(-2, 1),
    "sparse": lambda rng, shape, k, w: rng.standard_normal(shape) * (rng.random(shape) < 0.5),
    "tiny": lambda rng, shape, k, w: rng.standard_normal(shape) * 1e-9,
    "huge": lambda rng, shape, k, w: rng.standard_normal(shape) * 1e8,
    "alternating": lambda rng, shape, k, w: (-1.0) ** k * np.abs(rng.standard_normal(shape)),
    "rosenbrock": lambda rng, shape, k, w: _rosenbrock_grad(w),
}
PARAMETER_DEPENDENT = {"rosenbrock"}
SHAPES = ((6,), (2, 5))
#: For specs that refuse other shapes: a wide and a tall matrix (and a 3-D tensor if it may).
MATRIX_SHAPES = ((2, 5), (6, 3))


def shapes_for(spec) -> tuple[tuple[int, ...], ...]:
    """The parameter shapes a spec is verified on (those it takes, when it refuses others)."""
    if spec.kind != "elementwise" or spec.otherwise:
        return SHAPES
    if spec.applies_to == "matrix":
        return MATRIX_SHAPES
    if spec.applies_to == "multidim":
        return (*MATRIX_SHAPES, (2, 2, 3))
    return SHAPES

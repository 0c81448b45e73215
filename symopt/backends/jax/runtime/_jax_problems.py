"""The test problems of ``symopt.problems`` (Moré, Garbow & Hillstrom 1981) in ``jax.numpy``:
the same formulas, starting points and minima, as functions f only (the minimiser derives the
rest). The tests of the generated JAX trust region run on them, and symopt's own tests compare
the JAX minimiser on them with the NumPy minimiser on ``symopt.problems``. Depends on JAX only.

Problems are built by functions, called once 64-bit mode is on (their x0 is float64).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp

Array = jax.Array


@dataclass(frozen=True)
class Problem:
    """A smooth test function, a start point and its known global minimum."""

    name: str  # as in symopt.problems
    f: Callable[[Array], Array]
    x0: Array
    f_min: float
    x_min: Array


# f(x) = sum_{i<n-1} 100 (x_{i+1} - x_i^2)^2 + (1 - x_i)^2  (chained, as scipy.optimize.rosen)
def rosen(x: Array) -> Array:
    return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def rosenbrock(n: int) -> Problem:
    x0 = jnp.array([-1.2 if i % 2 == 0 else 1.0 for i in range(n)], dtype=jnp.float64)
    return Problem(f"Rosen n={n}", rosen, x0, 0.0, jnp.ones(n, dtype=jnp.float64))


# f(x) = sum_{k=1..3} r_k^2,  r_k = c_k - x1 (1 - x2^k)  (MGH 5)
def beale(x: Array) -> Array:
    residuals = (c - x[0] * (1.0 - x[1] ** k) for k, c in enumerate((1.5, 2.25, 2.625), 1))
    return sum(r * r for r in residuals)


# f(x) = (x1 + 10 x2)^2 + 5 (x3 - x4)^2 + (x2 - 2 x3)^4 + 10 (x1 - x4)^4  (MGH 13)
def powell(x: Array) -> Array:
    x1, x2, x3, x4 = x
    return (x1 + 10 * x2) ** 2 + 5 * (x3 - x4) ** 2 + (x2 - 2 * x3) ** 4 + 10 * (x1 - x4) ** 4


# MGH 14
def wood(x: Array) -> Array:
    x1, x2, x3, x4 = x
    return (
        100 * (x2 - x1**2) ** 2
        + (1 - x1) ** 2
        + 90 * (x4 - x3**2) ** 2
        + (1 - x3) ** 2
        + 10.1 * ((x2 - 1) ** 2 + (x4 - 1) ** 2)
        + 19.8 * (x2 - 1) * (x4 - 1)
    )


def _helical_theta(x1: Array, x2: Array) -> Array:
    """atan(x2 / x1) / (2 pi) + (1/2 if x1 < 0): MGH's branch, cut on x1 = 0, x2 < 0 (smooth at
    the start (-1, 0, 0)); at x1 = 0 the limit from x1 > 0, as symopt.problems takes it."""
    x1_safe = jnp.where(x1 == 0.0, 1.0, x1)
    theta = jnp.arctan(x2 / x1_safe) / (2 * math.pi) + jnp.where(x1 < 0, 0.5, 0.0)
    return jnp.where(x1 == 0.0, jnp.where(x2 >= 0.0, 0.25, -0.25), theta)


# f(x) = 100 [(x3 - 10 theta)^2 + (r - 1)^2] + x3^2,  r = sqrt(x1^2 + x2^2)  (MGH 7)
def helical(x: Array) -> Array:
    x1, x2, x3 = x
    r = jnp.hypot(x1, x2)
    return 100 * ((x3 - 10 * _helical_theta(x1, x2)) ** 2 + (r - 1) ** 2) + x3**2


def _problem(name: str, f: Callable, x0: tuple, x_min: tuple) -> Problem:
    as_array = partial(jnp.array, dtype=jnp.float64)
    return Problem(name, f, as_array(x0), 0.0, as_array(x_min))


#: Name -> a builder of the problem, in symopt.problems.all_problems()'s order.
BUILDERS: dict[str, Callable[[], Problem]] = {
    "Rosen n=2": partial(rosenbrock, 2),
    "Rosen n=10": partial(rosenbrock, 10),
    "Rosen n=100": partial(rosenbrock, 100),
    "Beale": partial(_problem, "Beale", beale, (1.0, 1.0), (3.0, 0.5)),
    "Powell singular": partial(
        _problem, "Powell singular", powell, (3.0, -1.0, 0.0, 1.0), (0.0, 0.0, 0.0, 0.0)
    ),
    "Wood": partial(_problem, "Wood", wood, (-3.0, -1.0, -3.0, -1.0), (1.0, 1.0, 1.0, 1.0)),
    "Helical valley": partial(
        _problem, "Helical valley", helical, (-1.0, 0.0, 0.0), (1.0, 0.0, 0.0)
    ),
}


def all_problems() -> list[Problem]:
    """The benchmark set, in a fixed order (symopt.problems.all_problems()'s)."""
    return [build() for build in BUILDERS.values()]

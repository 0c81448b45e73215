"""Unconstrained test problems of Moré, Garbow & Hillstrom (1981), with exact derivatives.

Each problem gives f, its gradient, its dense Hessian and a Hessian-vector product, the standard
starting point and the known global minimum value, so second-order methods (Newton, trust region)
can be checked and benchmarked against scipy.optimize on the same functions.

Reference: J. J. Moré, B. S. Garbow, K. E. Hillstrom, "Testing unconstrained optimization
software", ACM TOMS 7(1), 1981, problems 1 (Rosenbrock), 5 (Beale), 7 (helical valley),
13 (Powell singular) and 14 (Wood). Rosenbrock is the chained form used by scipy.optimize.rosen.
All 35 problems of the paper, and larger ones, are in symopt/mgh.py (mgh_problems(),
benchmark_problems()), built on the Problem below.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Array = np.ndarray


@dataclass(frozen=True)
class Problem:
    """A smooth test function with derivatives, a start point and its known minimum."""

    name: str
    f: Callable[[Array], float]
    grad: Callable[[Array], Array]
    hess: Callable[[Array], Array]
    hessp: Callable[[Array, Array], Array]
    x0: Array
    f_min: float | None  # the known (global) minimum value; None where the source gives none
    x_min: Array | None = None  # a global minimiser, where it is known in closed form
    f_local: tuple[float, ...] = ()  # values at other minima the source notes (local, at infinity)
    residuals: Callable[[Array], Array] | None = None  # r(x) where f = sum r_i^2
    jacobian: Callable[[Array], Array] | None = None  # dr/dx, rows per residual

    @property
    def n(self) -> int:
        return self.x0.size


# --- Rosenbrock (chained, as scipy.optimize.rosen) ---------------------------------------------
# f(x) = sum_{i<n-1} 100 (x_{i+1} - x_i^2)^2 + (1 - x_i)^2


def rosen(x: Array) -> float:
    return float(np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2))


def rosen_grad(x: Array) -> Array:
    # df/dx_i = -400 x_i (x_{i+1} - x_i^2) - 2 (1 - x_i)   [term i]
    #           + 200 (x_i - x_{i-1}^2)                      [term i-1]
    t = x[1:] - x[:-1] ** 2
    g = np.zeros_like(x, dtype=float)
    g[:-1] += -400.0 * x[:-1] * t - 2.0 * (1.0 - x[:-1])
    g[1:] += 200.0 * t
    return g


def rosen_hess(x: Array) -> Array:
    # d2f/dx_i^2 = 1200 x_i^2 - 400 x_{i+1} + 2 [i < n-1]  + 200 [i > 0]
    # d2f/dx_i dx_{i+1} = -400 x_i
    n = x.size
    diag = np.zeros(n)
    diag[:-1] += 1200.0 * x[:-1] ** 2 - 400.0 * x[1:] + 2.0
    diag[1:] += 200.0
    off = -400.0 * x[:-1]
    return np.diag(diag) + np.diag(off, 1) + np.diag(off, -1)


def rosen_hessp(x: Array, p: Array) -> Array:
    # H p for the tridiagonal Hessian above, without forming H.
    hp = np.zeros_like(x, dtype=float)
    hp[:-1] += (1200.0 * x[:-1] ** 2 - 400.0 * x[1:] + 2.0) * p[:-1]
    hp[1:] += 200.0 * p[1:]
    off = -400.0 * x[:-1]
    hp[:-1] += off * p[1:]
    hp[1:] += off * p[:-1]
    return hp


def rosenbrock(n: int) -> Problem:
    x0 = np.array([-1.2 if i % 2 == 0 else 1.0 for i in range(n)])
    return Problem(f"Rosen n={n}", rosen, rosen_grad, rosen_hess, rosen_hessp, x0, 0.0, np.ones(n))


# --- Beale (MGH 5) -----------------------------------------------------------------------------
# f(x) = sum_{k=1..3} r_k^2,  r_k = c_k - x1 (1 - x2^k),  c = (1.5, 2.25, 2.625)

_BEALE_C = (1.5, 2.25, 2.625)


def _beale_parts(x: Array) -> tuple[list[float], list[Array], list[Array]]:
    """Residuals r_k, their gradients and Hessians."""
    x1, x2 = float(x[0]), float(x[1])
    r, dr, d2r = [], [], []
    for k, c in enumerate(_BEALE_C, start=1):
        r.append(c - x1 * (1.0 - x2**k))
        # grad r_k = (-(1 - x2^k), k x1 x2^(k-1))
        dr.append(np.array([-(1.0 - x2**k), k * x1 * x2 ** (k - 1)]))
        # hess r_k = [[0, k x2^(k-1)], [k x2^(k-1), k (k-1) x1 x2^(k-2)]]
        cross = k * x2 ** (k - 1)
        curv = k * (k - 1) * x1 * x2 ** (k - 2) if k >= 2 else 0.0
        d2r.append(np.array([[0.0, cross], [cross, curv]]))
    return r, dr, d2r


def beale(x: Array) -> float:
    r, _, _ = _beale_parts(x)
    return float(sum(rk * rk for rk in r))


def beale_grad(x: Array) -> Array:
    # grad f = 2 sum_k r_k grad r_k
    r, dr, _ = _beale_parts(x)
    return 2.0 * sum(rk * gk for rk, gk in zip(r, dr, strict=True))


def beale_hess(x: Array) -> Array:
    # hess f = 2 sum_k (grad r_k grad r_k^T + r_k hess r_k)
    r, dr, d2r = _beale_parts(x)
    return 2.0 * sum(np.outer(gk, gk) + rk * hk for rk, gk, hk in zip(r, dr, d2r, strict=True))


def beale_hessp(x: Array, p: Array) -> Array:
    return beale_hess(x) @ p


def beale_problem() -> Problem:
    return Problem(
        "Beale",
        beale,
        beale_grad,
        beale_hess,
        beale_hessp,
        np.array([1.0, 1.0]),
        0.0,
        np.array([3.0, 0.5]),
    )


# --- Powell singular (MGH 13) ------------------------------------------------------------------
# f(x) = (x1 + 10 x2)^2 + 5 (x3 - x4)^2 + (x2 - 2 x3)^4 + 10 (x1 - x4)^4
# The Hessian is singular (rank 2) at the minimiser x* = 0.


def powell(x: Array) -> float:
    x1, x2, x3, x4 = (float(v) for v in x)
    return (x1 + 10 * x2) ** 2 + 5 * (x3 - x4) ** 2 + (x2 - 2 * x3) ** 4 + 10 * (x1 - x4) ** 4


def powell_grad(x: Array) -> Array:
    x1, x2, x3, x4 = (float(v) for v in x)
    a, b, c, d = x1 + 10 * x2, x3 - x4, x2 - 2 * x3, x1 - x4
    # chain rule on each square / fourth power above
    return np.array(
        [
            2 * a + 40 * d**3,
            20 * a + 4 * c**3,
            10 * b - 8 * c**3,
            -10 * b - 40 * d**3,
        ]
    )


def powell_hess(x: Array) -> Array:
    x1, x2, x3, x4 = (float(v) for v in x)
    c, d = x2 - 2 * x3, x1 - x4
    c2, d2 = 12 * c**2, 120 * d**2  # second derivatives of c^4 and 10 d^4
    return np.array(
        [
            [2 + d2, 20, 0, -d2],
            [20, 200 + c2, -2 * c2, 0],
            [0, -2 * c2, 10 + 4 * c2, -10],
            [-d2, 0, -10, 10 + d2],
        ]
    )


def powell_hessp(x: Array, p: Array) -> Array:
    return powell_hess(x) @ p


def powell_problem() -> Problem:
    return Problem(
        "Powell singular",
        powell,
        powell_grad,
        powell_hess,
        powell_hessp,
        np.array([3.0, -1.0, 0.0, 1.0]),
        0.0,
        np.zeros(4),
    )


# --- Wood (MGH 14) -----------------------------------------------------------------------------
# f(x) = 100 (x2 - x1^2)^2 + (1 - x1)^2 + 90 (x4 - x3^2)^2 + (1 - x3)^2
#        + 10.1 ((x2 - 1)^2 + (x4 - 1)^2) + 19.8 (x2 - 1)(x4 - 1)


def wood(x: Array) -> float:
    x1, x2, x3, x4 = (float(v) for v in x)
    return (
        100 * (x2 - x1**2) ** 2
        + (1 - x1) ** 2
        + 90 * (x4 - x3**2) ** 2
        + (1 - x3) ** 2
        + 10.1 * ((x2 - 1) ** 2 + (x4 - 1) ** 2)
        + 19.8 * (x2 - 1) * (x4 - 1)
    )


def wood_grad(x: Array) -> Array:
    x1, x2, x3, x4 = (float(v) for v in x)
    return np.array(
        [
            -400 * x1 * (x2 - x1**2) - 2 * (1 - x1),
            200 * (x2 - x1**2) + 20.2 * (x2 - 1) + 19.8 * (x4 - 1),
            -360 * x3 * (x4 - x3**2) - 2 * (1 - x3),
            180 * (x4 - x3**2) + 20.2 * (x4 - 1) + 19.8 * (x2 - 1),
        ]
    )


def wood_hess(x: Array) -> Array:
    x1, x2, x3, x4 = (float(v) for v in x)
    return np.array(
        [
            [1200 * x1**2 - 400 * x2 + 2, -400 * x1, 0, 0],
            [-400 * x1, 220.2, 0, 19.8],
            [0, 0, 1080 * x3**2 - 360 * x4 + 2, -360 * x3],
            [0, 19.8, -360 * x3, 200.2],
        ]
    )


def wood_hessp(x: Array, p: Array) -> Array:
    return wood_hess(x) @ p


def wood_problem() -> Problem:
    return Problem(
        "Wood",
        wood,
        wood_grad,
        wood_hess,
        wood_hessp,
        np.array([-3.0, -1.0, -3.0, -1.0]),
        0.0,
        np.ones(4),
    )


# --- Helical valley (MGH 7) --------------------------------------------------------------------
# f(x) = 100 [(x3 - 10 theta)^2 + (r - 1)^2] + x3^2,  r = sqrt(x1^2 + x2^2),
# theta = atan(x2 / x1) / (2 pi) + (1/2 if x1 < 0 else 0)   (MGH's branch: cut on x1 = 0, x2 < 0;
# smooth at the start (-1, 0, 0), unlike atan2 whose cut lies on the negative x1 axis).


def _helical_theta(x1: float, x2: float) -> float:
    if x1 == 0.0:
        return 0.25 if x2 >= 0.0 else -0.25  # limit from x1 > 0 (MGH leave x1 = 0 undefined)
    return math.atan(x2 / x1) / (2 * math.pi) + (0.5 if x1 < 0 else 0.0)


def helical(x: Array) -> float:
    x1, x2, x3 = (float(v) for v in x)
    theta = _helical_theta(x1, x2)
    r = math.hypot(x1, x2)
    return 100 * ((x3 - 10 * theta) ** 2 + (r - 1) ** 2) + x3**2


def _helical_parts(x: Array) -> tuple[float, float, Array, Array, Array, Array]:
    """u = x3 - 10 theta, v = r - 1, grad/hess of theta and r in (x1, x2)."""
    x1, x2, x3 = (float(v) for v in x)
    r2 = x1 * x1 + x2 * x2
    r = math.sqrt(r2)
    u = x3 - 10 * _helical_theta(x1, x2)
    v = r - 1
    tp = 1 / (2 * math.pi)
    # d theta = (-x2, x1) / (2 pi r^2)
    # d2 theta = [[2 x1 x2, x2^2 - x1^2], [x2^2 - x1^2, -2 x1 x2]] / (2 pi r^4)
    dth = tp * np.array([-x2, x1]) / r2
    d2th = (
        tp * np.array([[2 * x1 * x2, x2 * x2 - x1 * x1], [x2 * x2 - x1 * x1, -2 * x1 * x2]]) / r2**2
    )
    # d r = (x1, x2) / r;  d2 r = (r^2 I - x x^T) / r^3
    dr = np.array([x1, x2]) / r
    d2r = (r2 * np.eye(2) - np.outer([x1, x2], [x1, x2])) / r**3
    return u, v, dth, d2th, dr, d2r


def helical_grad(x: Array) -> Array:
    u, v, dth, _, dr, _ = _helical_parts(x)
    g = np.zeros(3)
    # df/dx_{1,2} = 200 u (-10 dtheta) + 200 v dr;  df/dx3 = 200 u + 2 x3
    g[:2] = -2000 * u * dth + 200 * v * dr
    g[2] = 200 * u + 2 * float(x[2])
    return g


def helical_hess(x: Array) -> Array:
    u, v, dth, d2th, dr, d2r = _helical_parts(x)
    h = np.zeros((3, 3))
    # d2f/dx_i dx_j (i, j <= 2) = 200 (100 dth_i dth_j - 10 u d2th_ij) + 200 (dr_i dr_j + v d2r_ij)
    h[:2, :2] = 200 * (100 * np.outer(dth, dth) - 10 * u * d2th) + 200 * (
        np.outer(dr, dr) + v * d2r
    )
    h[2, :2] = h[:2, 2] = -2000 * dth  # d2f/dx3 dx_i = 200 (-10 dth_i)
    h[2, 2] = 202.0
    return h


def helical_hessp(x: Array, p: Array) -> Array:
    return helical_hess(x) @ p


def helical_problem() -> Problem:
    return Problem(
        "Helical valley",
        helical,
        helical_grad,
        helical_hess,
        helical_hessp,
        np.array([-1.0, 0.0, 0.0]),
        0.0,
        np.array([1.0, 0.0, 0.0]),
    )


def all_problems() -> list[Problem]:
    """The benchmark set, in a fixed order."""
    return [
        rosenbrock(2),
        rosenbrock(10),
        rosenbrock(100),
        beale_problem(),
        powell_problem(),
        wood_problem(),
        helical_problem(),
    ]

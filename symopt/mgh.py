"""The second-order benchmark set: all 35 Moré-Garbow-Hillstrom problems and 3 scalable ones.

``mgh_problems()``: the 35 problems of J. J. Moré, B. S. Garbow, K. E. Hillstrom, "Testing
unconstrained optimization software", ACM TOMS 7(1), 1981, in the paper's order, at their
standard sizes and starting points (factor 1): symopt/mgh_fixed.py (problems 1-20: Jennrich-Sampson
m = 10, Bard m = 15, Gaussian m = 15, Meyer m = 16, Gulf m = 99, Box 3-D m = 10, Kowalik-Osborne
m = 11, Brown-Dennis m = 20, Osborne 1 m = 33, Biggs EXP6 m = 13, Osborne 2 m = 65, Watson n = 9
m = 31) and symopt/mgh_variable.py (problems 21-35: n = 10, extended Powell n = 12, the linear
functions m = 20, Chebyquad n = 8). f_min is the paper's minimum value (6 significant digits where
it has no closed form), f_local the other minima it notes (local ones, or values approached at
infinity: Bard 17.4286, Kowalik-Osborne 1.02734e-3).

``scalable_problems()``: larger problems for Hessian-vector-product methods, each with a cheap
hessp and a dense hess:

* "Extended Rosenbrock n=1000": MGH problem 21 at n = 1000, start (-1.2, 1, -1.2, 1, ...);
  its Hessian is block diagonal (2 x 2 blocks), so hessp costs O(n).
* "Quadratic n=100 cond=1e6": f(x) = (x - c)^T A (x - c) / 2 + f0, A = Q diag(l) Q^T with l
  log-spaced from 1 to 1e6, Q the orthogonal factor of a standard normal 100 x 100 matrix and
  c a standard normal vector (numpy.random.default_rng(18), in that order), f0 = -4.4e4, x0 = 0.
  f* = f0; the gradient must shrink by ~1e14 while f's rounding (~7e-12 at |f| = 4.4e4) swamps
  the decrease of the last steps, so a method must not trust tiny changes in f.
* "Double well chain n=20": f(x) = sum_i (x_i^2 - 1)^2 + 0.1 sum_i x_i x_{i+1}, a chain of
  double wells with 2^20 minima (every sign pattern) and saddles at every mix of wells and 0;
  start x0_i = 0.1 sin(i + 1) (i = 0..19), where the Hessian is negative definite. The global
  minimum has alternating signs (flipping signs to alternate never increases f), found by
  Newton's method from (1, -1, 1, ...): f* = -1.94623529164349.

``benchmark_problems()``: both lists, MGH first.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from symopt.mgh_fixed import fixed_problems
from symopt.mgh_variable import variable_problems
from symopt.problems import Array, Problem

# --- Extended Rosenbrock (MGH 21), vectorised ---------------------------------------------------
# f = sum_k 100 (b_k - a_k^2)^2 + (1 - a_k)^2 over the pairs (a_k, b_k) = (x_{2k}, x_{2k+1})


def ext_rosen(x: Array) -> float:
    a, b = x[0::2], x[1::2]
    return float(np.sum(100.0 * (b - a * a) ** 2 + (1.0 - a) ** 2))


def ext_rosen_grad(x: Array) -> Array:
    a, b = x[0::2], x[1::2]
    g = np.empty(x.size)
    g[0::2] = -400.0 * a * (b - a * a) - 2.0 * (1.0 - a)
    g[1::2] = 200.0 * (b - a * a)
    return g


def _ext_rosen_blocks(x: Array) -> tuple[Array, Array]:
    """The 2 x 2 diagonal blocks [[d, o], [o, 200]] of the Hessian."""
    a, b = x[0::2], x[1::2]
    return 1200.0 * a * a - 400.0 * b + 2.0, -400.0 * a


def ext_rosen_hess(x: Array) -> Array:
    d, o = _ext_rosen_blocks(x)
    even = np.arange(0, x.size, 2)
    h = np.zeros((x.size, x.size))
    h[even, even] = d
    h[even + 1, even + 1] = 200.0
    h[even, even + 1] = h[even + 1, even] = o
    return h


def ext_rosen_hessp(x: Array, p: Array) -> Array:
    d, o = _ext_rosen_blocks(x)
    hp = np.empty(x.size)
    hp[0::2] = d * p[0::2] + o * p[1::2]
    hp[1::2] = o * p[0::2] + 200.0 * p[1::2]
    return hp


def extended_rosenbrock(n: int) -> Problem:
    """MGH problem 21 for even n, with O(n) gradient and Hessian-vector product."""
    if n % 2:
        raise ValueError(f"extended Rosenbrock needs an even n, got {n}")
    x0 = np.tile([-1.2, 1.0], n // 2)
    return Problem(
        f"Extended Rosenbrock n={n}",
        ext_rosen,
        ext_rosen_grad,
        ext_rosen_hess,
        ext_rosen_hessp,
        x0,
        0.0,
        np.ones(n),
    )


# --- Ill-conditioned quadratic ----------------------------------------------------------------


QUADRATIC_F0 = -4.4e4


def quadratic(n: int = 100, cond: float = 1e6, seed: int = 18) -> Problem:
    """(x - c)^T A (x - c) / 2 + f0 with eigenvalues of A log-spaced from 1 to cond."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    a = (q * np.logspace(0.0, np.log10(cond), n)) @ q.T
    a = (a + a.T) / 2.0  # exactly symmetric
    c = rng.standard_normal(n)

    def f(x: Array) -> float:
        d = x - c
        return float(0.5 * d @ (a @ d) + QUADRATIC_F0)

    return Problem(
        f"Quadratic n={n} cond={cond:.0e}",
        f,
        lambda x: a @ (x - c),
        lambda x: a.copy(),
        lambda x, p: a @ p,
        np.zeros(n),
        QUADRATIC_F0,
        c,
    )


# --- Double well chain (saddle-rich) ------------------------------------------------------------
# f = sum_i (x_i^2 - 1)^2 + k sum_i x_i x_{i+1};  grad_i = 4 x_i (x_i^2 - 1) + k (x_{i-1} + x_{i+1})

WELL_COUPLING = 0.1
WELL_F_MIN = -1.94623529164349  # n = 20: Newton from (1, -1, 1, ...), ||grad|| ~ 3e-15


def wells(x: Array) -> float:
    return float(np.sum((x * x - 1.0) ** 2) + WELL_COUPLING * np.sum(x[:-1] * x[1:]))


def wells_grad(x: Array) -> Array:
    g = 4.0 * x * (x * x - 1.0)
    g[:-1] += WELL_COUPLING * x[1:]
    g[1:] += WELL_COUPLING * x[:-1]
    return g


def wells_hess(x: Array) -> Array:
    off = np.full(x.size - 1, WELL_COUPLING)
    return np.diag(12.0 * x * x - 4.0) + np.diag(off, 1) + np.diag(off, -1)


def wells_hessp(x: Array, p: Array) -> Array:
    hp = (12.0 * x * x - 4.0) * p
    hp[:-1] += WELL_COUPLING * p[1:]
    hp[1:] += WELL_COUPLING * p[:-1]
    return hp


def double_well_chain(n: int = 20) -> Problem:
    x0 = 0.1 * np.sin(np.arange(1, n + 1))
    f_min = WELL_F_MIN if n == 20 else None
    return Problem(
        f"Double well chain n={n}", wells, wells_grad, wells_hess, wells_hessp, x0, f_min
    )


# --- the lists ----------------------------------------------------------------------------------


def mgh_problems() -> list[Problem]:
    """The 35 MGH problems at their standard sizes and starts, in the paper's order."""
    return fixed_problems() + variable_problems()


@cache
def _scalable() -> tuple[Problem, ...]:
    return (extended_rosenbrock(1000), quadratic(), double_well_chain())


def scalable_problems() -> list[Problem]:
    """Extended Rosenbrock n = 1000, the ill-conditioned quadratic and the double well chain."""
    return list(_scalable())


def benchmark_problems() -> list[Problem]:
    """The whole second-order benchmark set: mgh_problems() then scalable_problems()."""
    return mgh_problems() + scalable_problems()

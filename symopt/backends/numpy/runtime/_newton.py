"""Newton's method of the generated NumPy minimisers: the driver, with its fallbacks when the
Hessian is not positive definite. Depends on NumPy only.

A generated module binds what its spec derives (the Newton system, the step's right-hand side)
and the spec's constants in a :class:`Newton`; this module runs it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ._dense import cholesky, is_positive_semidefinite, solve_cholesky, solve_pivoted

Array = np.ndarray

#: What a Hessian that is not positive definite may lead to (the generated module documents it).
ON_INDEFINITE = ("fail", "gradient", "solve")


@dataclass(frozen=True)
class Newton:
    """What a spec derives, and its constants (see the generated module for their meaning)."""

    system: Callable[[Array], Array]  # H -> the matrix of the Newton system
    rhs: Callable[[Array], Array]  # g -> its right-hand side
    psd_tol: float
    armijo: float
    backtrack: float
    max_backtracks: int


@dataclass
class Result:
    """Outcome of ``minimize``; the fields follow scipy.optimize.OptimizeResult."""

    x: Array
    fun: float
    grad_norm: float
    nit: int  # Newton (or fallback) steps taken
    nfev: int
    ngev: int
    nhev: int  # dense Hessian evaluations (the final second-order check included)
    nhessp: int  # always 0: Newton here needs the dense Hessian
    success: bool
    status: int  # 0 converged, 1 max_iter, 2 H not positive definite, 3 non-finite, 4 saddle
    message: str
    n_fallback: int = 0  # iterations that took the on_indefinite fallback step


def check_on_indefinite(on_indefinite: str) -> None:
    if on_indefinite not in ON_INDEFINITE:
        raise ValueError(f"on_indefinite must be one of {ON_INDEFINITE}, not {on_indefinite!r}")


def solve_newton(method: Newton, low: Array, g: Array) -> Array:
    """The Newton step, given the Cholesky factor L L^T of the system's matrix."""
    return solve_cholesky(low, method.rhs(g))


def minimize(
    method: Newton,
    fun: Callable[[Array], float],
    grad: Callable[[Array], Array],
    x0: Array,
    hess: Callable[[Array], Array] | None,
    *,
    gtol: float,
    max_iter: int | None,
    on_indefinite: str,
    check_second_order: bool,
    callback: Callable[[Array], None] | None,
) -> Result:
    """The Newton driver (the generated module's ``minimize`` documents it)."""
    if hess is None:
        raise ValueError("Newton's method needs the dense Hessian (hess)")
    check_on_indefinite(on_indefinite)
    x = np.array(x0, dtype=float)
    n = x.size
    max_iter = 200 * n if max_iter is None else max_iter
    f = float(fun(x))
    g = np.asarray(grad(x), dtype=float)
    nfev = ngev = 1
    nhev = 0
    n_fallback = 0
    h = None
    status, message = 1, f"maximum number of iterations ({max_iter}) reached"
    k = 0
    while True:
        g_norm = math.sqrt(g @ g)
        if not (math.isfinite(f) and math.isfinite(g_norm)):
            status, message = 3, f"non-finite f or gradient at iteration {k}"
            break
        if g_norm <= gtol:
            status, message = 0, f"gradient norm {g_norm:.2e} <= gtol after {k} iterations"
            break
        if k >= max_iter:
            break
        h = np.asarray(hess(x), dtype=float)
        nhev += 1
        low, fail_k, pivot = cholesky(method.system(h))
        f_new = None
        if fail_k < 0:
            d = solve_newton(method, low, g)
        elif on_indefinite == "fail":
            status = 2
            message = (
                f"the Hessian is not positive definite at iteration {k} (Cholesky pivot "
                f"{pivot:.3g} in column {fail_k}): the Newton step would not minimise the model"
            )
            break
        elif on_indefinite == "solve":
            n_fallback += 1
            d = solve_pivoted(h, -g)
            if d is None:
                status, message = 2, f"the Hessian is singular at iteration {k}"
                break
        else:  # "gradient": steepest descent with Armijo backtracking
            n_fallback += 1
            ghg = g @ (h @ g)
            t = (g @ g) / ghg if ghg > 0.0 else 1.0 / g_norm  # Cauchy length, else ||d|| = 1
            for attempt in range(method.max_backtracks):
                if attempt:
                    t *= method.backtrack
                f_new = float(fun(x - t * g))
                nfev += 1
                # Armijo: f(x - t g) <= f - c1 t g.g
                if f_new <= f - method.armijo * t * (g @ g):
                    break
            d = -t * g  # the last point tried (and evaluated), also when Armijo never held
        x = x + d
        if f_new is None:
            f_new = float(fun(x))
            nfev += 1
        f = f_new
        g = np.asarray(grad(x), dtype=float)
        ngev += 1
        h = None
        k += 1
        if callback is not None:
            callback(x.copy())
    if status == 0 and check_second_order:
        if h is None:
            h = np.asarray(hess(x), dtype=float)
            nhev += 1
        if not is_positive_semidefinite(h, method.psd_tol):
            status = 4
            psd = is_positive_semidefinite(-h, method.psd_tol)
            kind = "a maximum" if psd else "a saddle point"
            message = (
                f"stopped at {kind} x = {np.array2string(x, precision=4)} after {k} "
                "iterations: the gradient vanishes but the Hessian is not positive semidefinite"
            )
    return Result(
        x, f, math.sqrt(g @ g), k, nfev, ngev, nhev, 0, status == 0, status, message, n_fallback
    )

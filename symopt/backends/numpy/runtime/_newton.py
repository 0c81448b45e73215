"""Newton's method of the generated NumPy minimisers: the driver, with its fallbacks when the
Hessian is not positive definite, and the line-search variant (a shifted Hessian and Armijo
backtracking). Depends on NumPy only.

A generated module binds what its spec derives (the Newton system, the step's right-hand side,
the model's slope) and the spec's constants in a :class:`Newton` or :class:`LineSearch`; this
module runs it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ._dense import cholesky, is_positive_semidefinite, solve_cholesky, solve_pivoted

Array = np.ndarray
EPS = float(np.finfo(float).eps)

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


def stopped(f: float, g: Array, gtol: float, k: int, max_iter: int) -> tuple[int, str] | None:
    """The status and message of a run that stops before iteration k, or None to go on."""
    g_norm = math.sqrt(g @ g)
    if not (math.isfinite(f) and math.isfinite(g_norm)):
        return 3, f"non-finite f or gradient at iteration {k}"
    if g_norm <= gtol:
        return 0, f"gradient norm {g_norm:.2e} <= gtol after {k} iterations"
    if k >= max_iter:
        return 1, f"maximum number of iterations ({max_iter}) reached"
    return None


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
    k = 0
    while True:
        stop = stopped(f, g, gtol, k, max_iter)
        if stop is not None:
            status, message = stop
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
            t = (g @ g) / ghg if ghg > 0.0 else 1.0 / math.sqrt(g @ g)  # Cauchy, else ||d|| = 1
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
        status, message = _second_order_check(method.psd_tol, h, x, k, status, message)
    return Result(
        x, f, math.sqrt(g @ g), k, nfev, ngev, nhev, 0, status == 0, status, message, n_fallback
    )


@dataclass(frozen=True)
class LineSearch:
    """What a line-search spec derives, and its constants (see the generated module)."""

    system: Callable[[Array, float], Array]  # (H, tau) -> the matrix H + tau I of the system
    rhs: Callable[[Array], Array]  # g -> its right-hand side
    slope: Callable[[Array, Array], float]  # (g, d) -> the model's slope along d at t = 0
    psd_tol: float
    max_backtracks: int
    max_shifts: int
    rounding: float  # f cannot measure a change below rounding eps max(1, |f|)


@dataclass
class LineSearchResult(Result):
    """Outcome of the line-search ``minimize``: status 2 is "no step length passed the Armijo
    test", 3 includes a non-finite Hessian, and n_fallback counts the iterations whose Hessian
    was shifted (tau > 0)."""

    n_backtracks: int = 0  # trial step lengths the Armijo test rejected, in all


def shifted_cholesky(method: LineSearch, h: Array, beta: float) -> tuple[Array, float] | None:
    """Nocedal & Wright's Algorithm 3.3: the Cholesky factor of H + tau I for the first tau of
    0 (when min_i H_ii > 0) or beta s - min_i H_ii, then max(2 tau, beta s), ... that succeeds,
    with s = max_ij |H_ij| (1 when H = 0). None when max_shifts shifts all fail."""
    scale = float(np.max(np.abs(h))) if h.size else 0.0
    shift = beta * (scale if scale > 0.0 else 1.0)
    smallest = float(np.min(np.diag(h))) if h.size else 0.0
    tau = 0.0 if smallest > 0.0 else shift - smallest
    for _ in range(method.max_shifts):
        low, fail_k, _pivot = cholesky(method.system(h, tau))
        if fail_k < 0:
            return low, tau
        tau = max(2.0 * tau, shift)
    return None


def modified_newton_step(
    method: LineSearch, h: Array, g: Array, beta: float
) -> tuple[Array, float] | None:
    """(d, tau): d = -(H + tau I)^-1 g with Algorithm 3.3's tau; None as shifted_cholesky."""
    shifted = shifted_cholesky(method, h, beta)
    if shifted is None:
        return None
    low, tau = shifted
    return solve_cholesky(low, method.rhs(g)), tau


def minimize_line_search(
    method: LineSearch,
    fun: Callable[[Array], float],
    grad: Callable[[Array], Array],
    x0: Array,
    hess: Callable[[Array], Array] | None,
    *,
    hyper: dict[str, float],
    gtol: float,
    max_iter: int | None,
    check_second_order: bool,
    callback: Callable[[Array], None] | None,
) -> LineSearchResult:
    """The line-search driver (the generated module's ``minimize`` documents it); ``hyper``
    holds c1 (Armijo's constant), rho (the backtracking factor) and beta (the shift)."""
    if hess is None:
        raise ValueError("Newton's method needs the dense Hessian (hess)")
    x = np.array(x0, dtype=float)
    max_iter = 200 * x.size if max_iter is None else max_iter
    f = float(fun(x))
    g = np.asarray(grad(x), dtype=float)
    nfev = ngev = 1
    nhev = n_shifted = n_backtracks = 0
    k = 0
    while True:
        stop = stopped(f, g, gtol, k, max_iter)
        if stop is not None:
            status, message = stop
            break
        h = np.asarray(hess(x), dtype=float)
        nhev += 1
        if not np.all(np.isfinite(h)):
            status, message = 3, f"non-finite Hessian at iteration {k}"
            break
        step = modified_newton_step(method, h, g, hyper["beta"])
        if step is None:
            status = 2
            message = f"H + tau I is not positive definite for any shift tried at iteration {k}"
            break
        d, tau = step
        n_shifted += tau > 0.0
        slope = method.slope(g, d)  # g^T d < 0: d is a descent direction
        x_new, f_new, trials, rejected, why = backtrack(fun, x, f, d, slope, hyper, method)
        nfev += trials
        n_backtracks += rejected
        if x_new is None:
            status = 2
            message = f"no step length passed the Armijo test at iteration {k} ({why})"
            break
        x, f = x_new, f_new
        g = np.asarray(grad(x), dtype=float)
        ngev += 1
        k += 1
        if callback is not None:
            callback(x.copy())
    if status == 0 and check_second_order:  # H at the final x (never evaluated there yet)
        nhev += 1
        h = np.asarray(hess(x), dtype=float)
        status, message = _second_order_check(method.psd_tol, h, x, k, status, message)
    return LineSearchResult(
        x, f, math.sqrt(g @ g), k, nfev, ngev, nhev, 0, status == 0, status, message,
        n_shifted, n_backtracks,
    )  # fmt: skip


def backtrack(
    fun: Callable[[Array], float],
    x: Array,
    f: float,
    d: Array,
    slope: float,
    hyper: dict[str, float],
    method: LineSearch,
) -> tuple[Array | None, float, int, int, str]:
    """The backtracking line search: t = 1, rho, rho^2, ... until f(x + t d) is finite and
    f(x + t d) <= f + c1 t slope (Armijo), or just finite where |slope| <= rounding eps max(1, |f|)
    (f cannot measure the decrease the model predicts). Returns (x + t d, f there, evaluations of
    f, rejected trials, ""), or (None, nan, evaluations, rejected trials, why) when no t passed:
    none of max_backtracks trials, or t d fell below the rounding of x (no smaller t can do
    better)."""
    unmeasurable = -slope <= method.rounding * EPS * max(1.0, abs(f))
    t = 1.0
    for trial in range(method.max_backtracks):
        if trial:
            t *= hyper["rho"]
        x_new = x + t * d
        if np.array_equal(x_new, x):
            return None, math.nan, trial, trial, f"t d fell below the rounding of x at t = {t:.3g}"
        f_new = float(fun(x_new))
        # Armijo: f(x + t d) <= f + c1 t g^T d, where f(x + t d) is finite
        if math.isfinite(f_new) and (unmeasurable or f_new <= f + hyper["c1"] * t * slope):
            return x_new, f_new, trial + 1, trial, ""
    n = method.max_backtracks
    return None, math.nan, n, n, f"none of {n} trials passed, the last t = {t:.3g}"


def _second_order_check(
    psd_tol: float, h: Array, x: Array, k: int, status: int, message: str
) -> tuple[int, str]:
    """Status 4 with its message where H is not positive semidefinite at the final x."""
    if is_positive_semidefinite(h, psd_tol):
        return status, message
    kind = "a maximum" if is_positive_semidefinite(-h, psd_tol) else "a saddle point"
    return 4, (
        f"stopped at {kind} x = {np.array2string(x, precision=4)} after {k} "
        "iterations: the gradient vanishes but the Hessian is not positive semidefinite"
    )

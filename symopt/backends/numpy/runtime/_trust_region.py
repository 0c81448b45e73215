"""The trust-region driver of the generated NumPy minimisers (the subproblem solvers are in
``_subproblem.py``). Depends on NumPy only.

A generated module binds what its spec derives (the damped system H + lam I, the right-hand
side of the step, the predicted decrease, the solver's scalar formulas) and the spec's
constants in a :class:`TrustRegion`; this module runs it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ._dense import is_positive_semidefinite
from ._subproblem import Step, TrustRegion, exact_step, model_minimiser, steihaug_step

__all__ = ["Result", "Step", "TrustRegion", "choose_subproblem", "minimize", "update_radius"]

Array = np.ndarray

#: Status codes of Result.status (the same in every target).
STATUS = {
    0: "converged",
    1: "maximum number of iterations reached",
    2: "trust radius collapsed",
    3: "non-finite f, gradient or Hessian at the current point",
    4: "stopped at a saddle point",
}


@dataclass
class Result:
    """Outcome of ``minimize``; the fields follow scipy.optimize.OptimizeResult."""

    x: Array
    fun: float
    grad_norm: float
    nit: int  # trust-region iterations, rejected steps included (as scipy counts them)
    nfev: int
    ngev: int
    nhev: int  # dense Hessian evaluations (one more for the final second-order check)
    nhessp: int  # Hessian-vector products (scipy adds these into its nhev)
    success: bool
    status: int  # see STATUS
    message: str


def update_radius(
    radius: float,
    rho: float,
    step_norm: float,
    on_boundary: bool,
    x_scale: float,
    hyper: dict[str, float],
) -> float:
    """Next radius from rho = actual / predicted reduction and the step length.

    Shrinking to a fraction of ||d|| (not of r) lets a failed interior step cut the radius
    below its own length at once; expansion is to a multiple of ||d||, only on the boundary,
    and at most max_radius x_scale, x_scale = max(1, ||x||): the bound scales with the point
    (a badly scaled minimiser at 1e6 is reachable with the default bound).
    """
    if rho < hyper["shrink_below"]:
        return hyper["shrink"] * step_norm
    if rho > hyper["expand_above"] and on_boundary:
        return min(max(radius, hyper["expand"] * step_norm), hyper["max_radius"] * x_scale)
    return radius


def ratio(f: float, f_new: float, predicted: float, rounding: float) -> float:
    """rho = (f(x) - f(x + d) + delta) / (m(0) - m(d) + delta), delta = rounding eps |f(x)|.

    Conn, Gould & Toint (2000), section 17.4.2: near a minimiser both differences fall to the
    rounding error of f, and the plain ratio is noise that collapses the radius; delta makes it
    tend to 1 there. CGT take delta relative to max(1, |f|); relative to |f| it is invariant
    to the scale of f, and it does not accept increases of f on problems whose f tends to 0
    (sums of squares) long before the gradient is small. A step without a positive finite
    predicted decrease, or to a non-finite f(x + d), gets -inf (rejected, the radius shrinks).
    """
    if not (predicted > 0.0 and math.isfinite(predicted) and math.isfinite(f_new)):
        return -math.inf
    delta = rounding * np.finfo(float).eps * abs(f)
    return ((f - f_new) + delta) / (predicted + delta)


def cg_tolerance(g_norm: float, g0_norm: float, forcing: float) -> float:
    """CG residual target min(forcing, sqrt(||g|| / ||g0||)) ||g||.

    The forcing term tends to 0 with ||g|| (superlinear convergence, Dembo-Eisenstat-Steihaug)
    and, unlike scipy's min(0.5, sqrt(||g||)), is invariant to the scale of f.
    """
    return min(forcing, math.sqrt(g_norm / g0_norm)) * g_norm


def choose_subproblem(
    subproblem: str, n: int, has_hess: bool, has_hessp: bool, exact_max_n: int
) -> str:
    """ "exact" or "cg" for subproblem="auto", by cost: with only the dense Hessian, CG multiplies
    by it (2 n^2 flops a product, up to 2 n products) and costs at least as much as the few
    Cholesky factorisations (n^3 / 3 flops each) of the exact solver, which takes fewer
    iterations; with cheap Hessian-vector products too, exact while a factorisation stays
    small (n <= exact_max_n)."""
    if subproblem not in ("exact", "cg", "auto"):
        raise ValueError(f"unknown subproblem {subproblem!r}; use 'exact', 'cg' or 'auto'")
    if not (has_hess or has_hessp):
        raise ValueError("a trust-region Newton method needs hess or hessp")
    if subproblem == "exact" and not has_hess:
        raise ValueError('subproblem="exact" needs the dense Hessian (hess)')
    if subproblem != "auto":
        return subproblem
    return "exact" if has_hess and (not has_hessp or n <= exact_max_n) else "cg"


def _finite(a: Array) -> bool:
    return bool(np.isfinite(a).all())


def minimize(
    method: TrustRegion,
    fun: Callable[[Array], float],
    grad: Callable[[Array], Array],
    x0: Array,
    hess: Callable[[Array], Array] | None,
    hessp: Callable[[Array, Array], Array] | None,
    *,
    gtol: float,
    max_iter: int | None,
    subproblem: str,
    check_second_order: bool,
    callback: Callable[[Array], None] | None,
    hyper: dict[str, float],
) -> Result:
    """The trust-region driver (the generated module's ``minimize`` documents it); ``hyper``
    holds the radius rule's hyperparameters, already checked.

    Non-finite values: f or g not finite at the start, or a Hessian (or Hessian-vector
    product) at the current point that is not finite, stop with status 3; a trial point where
    f or g is not finite is rejected like a failed step, and the radius shrinks.
    """
    x = np.array(x0, dtype=float)
    n = x.size
    max_iter = 200 * n if max_iter is None else max_iter
    subproblem = choose_subproblem(
        subproblem, n, hess is not None, hessp is not None, method.exact_max_n
    )
    nhev = nhessp = 0
    f = float(fun(x))
    g = np.asarray(grad(x), dtype=float)
    nfev = ngev = 1
    g0_norm = math.sqrt(g @ g)
    # The radius is unlimited until the model is unbounded below (then radius0 max(1, ||x||))
    # or a step fails (then shrink ||d||): while Newton's steps work they are taken whole.
    radius = math.inf
    h = None  # dense Hessian at x, evaluated lazily and kept while x is unchanged
    lam_lb_hint = 0.0  # after a rejection r shrinks and lam* only grows: keep the lower bound
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
        x_scale = max(1.0, math.sqrt(x @ x))
        if radius < method.min_radius * x_scale:
            status = 2
            message = f"trust radius collapsed to {radius:.1e} at iteration {k} (f = {f:.6g})"
            break
        if h is None and hess is not None and (subproblem == "exact" or hessp is None):
            h = np.asarray(hess(x), dtype=float)
            nhev += 1
            if not _finite(h):
                status, message = 3, f"non-finite Hessian at iteration {k}"
                break
        if subproblem == "cg" and hessp is not None:

            def hv(v: Array, x: Array = x) -> Array:
                nonlocal nhessp
                nhessp += 1
                return np.asarray(hessp(x, v), dtype=float)

        else:
            hv = h.__matmul__
        tol = cg_tolerance(g_norm, g0_norm, method.cg_forcing)
        step = None
        if radius == math.inf:
            # no radius yet: the model's minimiser while the model is bounded below
            step = model_minimiser(method, g, h if subproblem == "exact" else None, hv, tol)
            if step is None:
                radius = hyper["radius0"] * x_scale
        if step is None and subproblem == "exact":
            step = exact_step(method, g, h, radius, lam_lb_hint=lam_lb_hint)
        elif step is None:
            step = steihaug_step(method, g, hv, radius, tol)
            if step is None:
                status, message = 3, f"non-finite Hessian-vector product at iteration {k}"
                break
        pred = method.predicted_reduction(g, step.d, step.hd)
        x_new = x + step.d
        f_new = float(fun(x_new))
        nfev += 1
        rho = ratio(f, f_new, pred, method.rounding)
        step_norm = math.sqrt(step.d @ step.d)
        g_new = None
        if rho > hyper["eta"]:
            g_new = np.asarray(grad(x_new), dtype=float)
            ngev += 1
            if not _finite(g_new):
                rho, g_new = -math.inf, None  # a trial point without a finite gradient
        new_radius = update_radius(radius, rho, step_norm, step.on_boundary, x_scale, hyper)
        if g_new is not None:
            x, f, g = x_new, f_new, g_new
            h = None
            lam_lb_hint = 0.0
            if callback is not None:
                callback(x.copy())
        elif new_radius < radius:
            lam_lb_hint = step.lam_lb
        radius = new_radius
        k += 1
    if status == 0 and check_second_order and hess is not None:
        if h is None:
            h = np.asarray(hess(x), dtype=float)
            nhev += 1
        if not is_positive_semidefinite(h, method.psd_tol):
            status = 4
            message = (
                f"stopped at a saddle point after {k} iterations: the gradient vanishes "
                "but the Hessian is not positive semidefinite"
            )
    return Result(x, f, math.sqrt(g @ g), k, nfev, ngev, nhev, nhessp, status == 0, status, message)

"""The trust-region method of the generated NumPy minimisers: the Moré-Sorensen exact
subproblem solver, Steihaug-CG and the driver. Depends on NumPy only.

A generated module binds what its spec derives (the damped system H + lam I, the right-hand
side of the step, the predicted decrease) and the spec's constants in a :class:`TrustRegion`;
this module runs it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ._dense import (
    boundary_taus,
    cholesky,
    is_positive_semidefinite,
    negative_curvature_bound,
    smallest_singular_pair,
    solve_cholesky,
    solve_lower,
)

Array = np.ndarray


@dataclass(frozen=True)
class TrustRegion:
    """What a spec derives, and its constants (see the generated module for their meaning)."""

    damped_system: Callable[[Array, float], Array]  # H, lam -> the damped matrix
    damped_rhs: Callable[[Array], Array]  # g -> the right-hand side of the step
    predicted_reduction: Callable[[Array, Array, Array], float]  # g, d, H d -> m(0) - m(d)
    min_radius: float
    exact_max_n: int
    k_easy: float
    k_hard: float
    max_factorisations: int
    cg_forcing: float
    psd_tol: float


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
    status: int  # 0 converged, 1 max_iter, 2 radius collapsed, 3 non-finite, 4 saddle point
    message: str


@dataclass
class Step:
    """A trial step with what the driver needs from the subproblem solver."""

    d: Array
    hd: Array  # H d, for the predicted reduction
    on_boundary: bool
    lam: float  # multiplier of (2); NaN for CG
    lam_lb: float  # a lower bound on the multiplier for any smaller radius (0 for CG)
    inner: int  # Cholesky factorisations (exact) or CG iterations


def solve_damped(method: TrustRegion, low: Array, g: Array) -> Array:
    """The step, given the Cholesky factor L L^T of the damped matrix."""
    return solve_cholesky(low, method.damped_rhs(g))


def update_radius(
    radius: float, rho: float, step_norm: float, on_boundary: bool, hyper: dict[str, float]
) -> float:
    """Next radius from rho = actual / predicted reduction and the step length.

    Shrinking to a fraction of ||d|| (not of r) lets a failed interior step cut the radius
    below its own length at once; expansion is to a multiple of ||d||, only on the boundary.
    """
    if rho < hyper["shrink_below"]:
        return hyper["shrink"] * step_norm
    if rho > hyper["expand_above"] and on_boundary:
        return min(max(radius, hyper["expand"] * step_norm), hyper["max_radius"])
    return radius


def cg_tolerance(g_norm: float, g0_norm: float, forcing: float) -> float:
    """CG residual target min(forcing, sqrt(||g|| / ||g0||)) ||g||.

    The forcing term tends to 0 with ||g|| (superlinear convergence, Dembo-Eisenstat-Steihaug)
    and, unlike scipy's min(0.5, sqrt(||g||)), is invariant to the scale of f.
    """
    return min(forcing, math.sqrt(g_norm / g0_norm)) * g_norm


def exact_step(
    method: TrustRegion,
    g: Array,
    h: Array,
    radius: float,
    *,
    lam_lb_hint: float = 0.0,
    k_easy: float | None = None,
    k_hard: float | None = None,
    max_iter: int | None = None,
) -> Step:
    """Nearly exact solution of (1): Moré & Sorensen (1983), Conn, Gould & Toint (2000) 7.3.

    Finds lam >= 0 solving (2) by Newton's method on phi(lam) = 1/||d(lam)|| - 1/r (nearly
    linear in lam), kept inside a bracket [lam_lb, lam_ub] started from Gershgorin discs and
    tightened by every factorisation; in the hard case (g nearly orthogonal to the lowest
    eigenvector) the step is finished along an approximate eigenvector z to the boundary.
    lam_lb_hint: a known lower bound (the previous solve's, valid when r has shrunk).
    k_easy, k_hard, max_iter default to the method's constants.
    """
    k_easy = method.k_easy if k_easy is None else k_easy
    k_hard = method.k_hard if k_hard is None else k_hard
    max_iter = method.max_factorisations if max_iter is None else max_iter
    damped_system = method.damped_system
    n = g.size
    g_norm = math.sqrt(g @ g)
    diag = np.diag(h)
    abs_rows = np.abs(h).sum(axis=1)
    off = abs_rows - np.abs(diag)
    gersh_lo, gersh_hi = float(np.min(diag - off)), float(np.max(diag + off))
    h_fro = math.sqrt(float(np.sum(h * h)))
    h_inf = float(np.max(abs_rows))
    # CGT 7.3.8: ||g|| / r - lam_max(H) <= lam* <= ||g|| / r - lam_min(H), and lam* >= -h_ii
    lam_ub = max(0.0, g_norm / radius + min(-gersh_lo, h_fro, h_inf))
    lam_lb = max(0.0, -float(np.min(diag)), g_norm / radius - min(gersh_hi, h_fro, h_inf))
    lam_lb = max(lam_lb, lam_lb_hint)

    pd_margin = math.sqrt(np.finfo(float).eps) * max(1.0, h_inf)

    def inside(lb: float, ub: float) -> float:
        # CGT (7.3.14): a safe guess in the bracket, max(sqrt(lb ub), lb + 0.01 (ub - lb));
        # a bracket collapsed onto -lam_min(H) (g ~ 0, or rounding) is reopened by pd_margin
        if ub <= lb:
            ub = lb + pd_margin
        return max(math.sqrt(abs(lb * ub)), lb + 0.01 * (ub - lb))

    lam = 0.0 if lam_lb == 0.0 else inside(lam_lb, lam_ub)
    tiny_g = n * np.finfo(float).eps * h_inf  # below this, L^-1 g is not reliable
    d = np.zeros(n)
    lam_d = 0.0  # the multiplier d was computed with
    factorisations = 0
    a = damped_system(h, lam)
    low, fail_k, pivot = cholesky(a)
    factorisations += 1
    while True:
        if fail_k >= 0:
            # H + lam I is indefinite, so lam < -lam_min(H) <= lam*: raise the lower bound
            lam_lb = max(lam_lb, lam - negative_curvature_bound(low, fail_k, pivot))
            lam = inside(lam_lb, lam_ub)
        elif g_norm <= tiny_g:
            # g ~ 0: a boundary step along the least-curvature direction solves (1)
            if lam == 0.0:
                d = np.zeros(n)
                break
            s_min, z = smallest_singular_pair(low)
            d, lam_d = radius * z, lam
            if s_min * s_min <= k_hard * lam:
                break
            lam_ub, lam_lb = lam, max(lam_lb, lam - s_min * s_min)
            lam = inside(lam_lb, lam_ub)
        else:
            d, lam_d = solve_damped(method, low, g), lam
            d_norm = math.sqrt(d @ d)
            if d_norm <= radius and lam == 0.0:
                break  # interior: the Newton step itself
            # Newton on phi: lam+ = lam + (||d|| / ||w||)^2 (||d|| - r) / r, L w = d  (N&W 4.44)
            w = solve_lower(low, d)
            lam_newton = lam + (d_norm * d_norm / (w @ w)) * (d_norm - radius) / radius
            if d_norm > radius:
                lam_lb = lam  # ||d(.)|| decreases in lam, so lam < lam*
                if d_norm - radius <= k_easy * radius:
                    break
                lam = lam_newton if lam_newton <= lam_ub else inside(lam_lb, lam_ub)
            else:
                # lam too large, or the hard case: try to reach the boundary along z
                s_min, z = smallest_singular_pair(low)
                ta, tb = boundary_taus(d, z, radius)
                tau = ta if abs(ta) < abs(tb) else tb
                # Moré-Sorensen: accept if tau^2 s^2 <= k_hard (d.(H + lam I) d + lam r^2)
                if tau * tau * s_min * s_min <= k_hard * (d @ (a @ d) + lam * radius * radius):
                    d = d + tau * z
                    break
                lam_ub = lam
                lam_lb = max(lam_lb, lam - s_min * s_min)
                lam = lam_newton if lam_newton > lam_lb else inside(lam_lb, lam_ub)
        if factorisations >= max_iter:
            d_norm = math.sqrt(d @ d)
            if d_norm > radius:
                # d = -(H + lam I)^-1 g with H + lam I > 0: m(t d) < m(0) for 0 < t <= 1
                d = d * (radius / d_norm)
            elif d_norm == 0.0 and g_norm > tiny_g:
                # no step yet: H + lam_ub I is positive definite (lam_ub >= -lam_min(H)
                # + ||g|| / r by Gershgorin) and its step lies inside the region
                lam_d = lam_ub
                low = cholesky(damped_system(h, lam_d))[0]
                factorisations += 1
                d = solve_damped(method, low, g)
            break
        a = damped_system(h, lam)
        low, fail_k, pivot = cholesky(a)
        factorisations += 1
    on_boundary = not (lam_d == 0.0 and math.sqrt(d @ d) < radius)
    return Step(d, h @ d, on_boundary, lam_d, lam_lb, factorisations)


def steihaug_step(
    g: Array,
    hessp: Callable[[Array], Array],
    radius: float,
    tol: float,
    *,
    max_iter: int | None = None,
) -> Step:
    """Truncated CG on (1) (Steihaug 1983, Toint 1981; Nocedal & Wright Algorithm 7.2).

    CG on H d = -g from d = 0 decreases the model monotonically; it stops on the boundary when
    an iterate would leave the region or meets curvature <= 0, or inside once the residual
    r = H d + g has ||r|| <= tol. H d is carried as r - g, so the predicted reduction costs no
    extra product.
    """
    n = g.size
    max_iter = 2 * n if max_iter is None else max_iter
    z = np.zeros(n)
    r = g.copy()  # residual H z + g
    p = -r
    rr = r @ r
    for i in range(max_iter):
        hp = hessp(p)
        php = p @ hp
        if php <= 0.0:
            # curvature <= 0 along p: go to the boundary, at the root with the lower model value
            best = None
            for t in boundary_taus(z, p, radius):
                dt = z + t * p
                hdt = (r - g) + t * hp  # H (z + t p) = H z + t H p
                m = g @ dt + 0.5 * (dt @ hdt)
                if best is None or m < best[0]:
                    best = (m, dt, hdt)
            return Step(best[1], best[2], True, math.nan, 0.0, i + 1)
        alpha = rr / php
        z_next = z + alpha * p
        if z_next @ z_next >= radius * radius:
            tb = boundary_taus(z, p, radius)[1]
            return Step(z + tb * p, (r - g) + tb * hp, True, math.nan, 0.0, i + 1)
        z = z_next
        r = r + alpha * hp
        rr_next = r @ r
        if math.sqrt(rr_next) <= tol:
            return Step(z, r - g, False, math.nan, 0.0, i + 1)
        p = -r + (rr_next / rr) * p  # beta = ||r+||^2 / ||r||^2
        rr = rr_next
    return Step(z, r - g, False, math.nan, 0.0, max_iter)


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
    holds the radius rule's hyperparameters, already checked."""
    x = np.array(x0, dtype=float)
    n = x.size
    max_iter = 200 * n if max_iter is None else max_iter
    if subproblem == "auto":
        subproblem = "exact" if hess is not None and n <= method.exact_max_n else "cg"
    if subproblem not in ("exact", "cg"):
        raise ValueError(f"unknown subproblem {subproblem!r}; use 'exact', 'cg' or 'auto'")
    if subproblem == "exact" and hess is None:
        raise ValueError('subproblem="exact" needs the dense Hessian (hess)')
    if hess is None and hessp is None:
        raise ValueError("a trust-region Newton method needs hess or hessp")

    nhev = nhessp = 0
    f = float(fun(x))
    g = np.asarray(grad(x), dtype=float)
    nfev = ngev = 1
    g0_norm = math.sqrt(g @ g)
    radius = float(hyper["radius0"])
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
        if radius < method.min_radius * max(1.0, math.sqrt(x @ x)):
            status = 2
            message = f"trust radius collapsed to {radius:.1e} at iteration {k} (f = {f:.6g})"
            break
        if h is None and hess is not None and (subproblem == "exact" or hessp is None):
            h = np.asarray(hess(x), dtype=float)
            nhev += 1
        if subproblem == "exact":
            step = exact_step(method, g, h, radius, lam_lb_hint=lam_lb_hint)
        else:
            if hessp is not None:

                def hv(v: Array, x: Array = x) -> Array:
                    nonlocal nhessp
                    nhessp += 1
                    return np.asarray(hessp(x, v), dtype=float)

            else:
                hv = h.__matmul__
            tol = cg_tolerance(g_norm, g0_norm, method.cg_forcing)
            step = steihaug_step(g, hv, radius, tol)
        pred = method.predicted_reduction(g, step.d, step.hd)
        x_new = x + step.d
        f_new = float(fun(x_new))
        nfev += 1
        # rho = (f(x) - f(x + d)) / (m(0) - m(d)); a non-finite f(x + d) counts as a failure
        rho = (f - f_new) / pred if pred > 0.0 and math.isfinite(f_new) else -math.inf
        step_norm = math.sqrt(step.d @ step.d)
        new_radius = update_radius(radius, rho, step_norm, step.on_boundary, hyper)
        if rho > hyper["eta"]:
            x, f = x_new, f_new
            g = np.asarray(grad(x), dtype=float)
            ngev += 1
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

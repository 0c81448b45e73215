"""The trust-region subproblem solvers of the generated NumPy minimisers: Moré-Sorensen (exact)
and Steihaug-CG (truncated conjugate gradients). Depends on NumPy only.

Both minimise the model m(d) = g.d + d.H d / 2 subject to ||d|| <= r. The formulas that come
from the spec's derivation (the damped system, the Newton step on the secular equation, the
roots of ||p + tau d|| = r, the Cauchy length, the predicted decrease) are the generated
module's, bound in a :class:`TrustRegion`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ._dense import (
    cholesky,
    negative_curvature_bound,
    smallest_singular_pair,
    solve_cholesky,
    solve_lower,
)

Array = np.ndarray
Scalar4 = Callable[[float, float, float, float], float]


@dataclass(frozen=True)
class TrustRegion:
    """What a spec derives, and its constants (see the generated module for their meaning)."""

    damped_system: Callable[[Array, float], Array]  # H, lam -> the damped matrix
    damped_rhs: Callable[[Array], Array]  # g -> the right-hand side of the step
    predicted_reduction: Callable[[Array, Array, Array], float]  # g, d, H d -> m(0) - m(d)
    secular_newton: Scalar4  # lam, ||d||, d.(H + lam I)^-1 d, r -> Newton's next lam
    boundary_tau_min: Scalar4  # p.p, p.d, d.d, r -> the smaller root of ||p + tau d|| = r
    boundary_tau_max: Scalar4  # p.p, p.d, d.d, r -> the larger root
    cauchy_length: Callable[[float, float, float], float]  # g.g, g.H g, r -> t, d = -t g
    min_radius: float
    exact_max_n: int
    k_easy: float
    k_hard: float
    max_factorisations: int
    cg_forcing: float
    psd_tol: float
    rounding: float


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


def boundary_taus(method: TrustRegion, z: Array, d: Array, radius: float) -> tuple[float, float]:
    """The roots tau_min <= tau_max of ||z + tau d|| = radius (the derived pieces)."""
    pp, pd, dd = float(z @ z), float(z @ d), float(d @ d)
    if dd == 0.0:
        return 0.0, 0.0
    return (
        method.boundary_tau_min(pp, pd, dd, radius),
        method.boundary_tau_max(pp, pd, dd, radius),
    )


def model_value(g: Array, d: Array, hd: Array) -> float:
    """m(d) - m(0) = g.d + d.H d / 2."""
    return float(g @ d + 0.5 * (d @ hd))


def cauchy_step(method: TrustRegion, g: Array, h: Array, radius: float) -> tuple[Array, Array]:
    """The Cauchy point -t g (the model's minimiser along -g in the ball) and H times it (0 and
    0 for g = 0, where the C target's NaN length loses every comparison)."""
    if not g.any():
        return np.zeros_like(g), np.zeros_like(g)
    hg = h @ g
    t = method.cauchy_length(float(g @ g), float(g @ hg), radius)
    return -t * g, -t * hg


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
    k_easy, k_hard, max_iter default to the method's constants. When the factorisations run
    out, the better (lower model value) of the last iterate, cut to the boundary, and the
    Cauchy point is returned, so the step always decreases the model at least as much as the
    Cauchy point does (the condition of the global convergence theory).
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
        elif g_norm == 0.0:
            # g = 0: a boundary step along the least-curvature direction solves (1)
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
            # Newton on the secular equation (the derived piece), with L w = d
            w = solve_lower(low, d)
            lam_newton = method.secular_newton(lam, d_norm, float(w @ w), radius)
            if d_norm > radius:
                lam_lb = lam  # ||d(.)|| decreases in lam, so lam < lam*
                if d_norm - radius <= k_easy * radius:
                    break
                lam = lam_newton if lam_newton <= lam_ub else inside(lam_lb, lam_ub)
            else:
                # lam too large, or the hard case: try to reach the boundary along z
                s_min, z = smallest_singular_pair(low)
                ta, tb = boundary_taus(method, d, z, radius)
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
            hd = h @ d
            dc, hdc = cauchy_step(method, g, h, radius)
            if model_value(g, dc, hdc) < model_value(g, d, hd):
                d, hd = dc, hdc
            on_boundary = math.sqrt(d @ d) >= (1.0 - k_easy) * radius
            return Step(d, hd, on_boundary, lam_d, lam_lb, factorisations)
        a = damped_system(h, lam)
        low, fail_k, pivot = cholesky(a)
        factorisations += 1
    on_boundary = not (lam_d == 0.0 and math.sqrt(d @ d) < radius)
    return Step(d, h @ d, on_boundary, lam_d, lam_lb, factorisations)


def model_minimiser(
    method: TrustRegion,
    g: Array,
    h: Array | None,
    hessp: Callable[[Array], Array],
    tol: float,
) -> Step | None:
    """A minimiser of the model without a radius, or None where the model is unbounded below.

    With the dense H: Newton's step when the damped matrix at lam = 0 has a Cholesky factor
    (H positive definite). Otherwise (no dense H, or H only semidefinite) conjugate gradients on
    H d = -g from 0 to the residual tol: they converge where g lies in the range of a positive
    semidefinite H (to its minimum-norm solution), and the model is taken as unbounded when they
    meet curvature <= 0. A non-finite product also gives None (the driver checks H itself).
    """
    if h is not None:
        low, fail_k, _ = cholesky(method.damped_system(h, 0.0))
        if fail_k < 0:
            d = solve_damped(method, low, g)
            return Step(d, h @ d, False, 0.0, 0.0, 1)
    n = g.size
    z, r = np.zeros(n), g.copy()
    p, rr = -r, float(g @ g)
    for i in range(2 * n):
        hp = hessp(p)
        php = float(p @ hp)
        if not (php > 0.0 and math.isfinite(php)):  # curvature <= 0, or not finite: no
            # bounded minimiser found
            return None
        alpha = rr / php
        z, r = z + alpha * p, r + alpha * hp
        rr_next = float(r @ r)
        if math.sqrt(rr_next) <= tol:
            return Step(z, r - g, False, 0.0, 0.0, i + 1)
        p, rr = -r + (rr_next / rr) * p, rr_next
    return None


def steihaug_step(
    method: TrustRegion,
    g: Array,
    hessp: Callable[[Array], Array],
    radius: float,
    tol: float,
    *,
    max_iter: int | None = None,
) -> Step | None:
    """Truncated CG on (1) (Steihaug 1983, Toint 1981; Nocedal & Wright Algorithm 7.2).

    CG on H d = -g from d = 0 decreases the model monotonically (its first iterate is the
    Cauchy point); it stops on the boundary when an iterate would leave the region or meets
    curvature <= 0, or inside once the residual r = H d + g has ||r|| <= tol, or after max_iter
    (default 2 n) iterations. H d is carried as r - g, so the predicted reduction costs no extra
    product. None when a Hessian-vector product is not finite.
    """
    n = g.size
    max_iter = 2 * n if max_iter is None else max_iter
    z = np.zeros(n)
    r = g.copy()  # residual H z + g
    p = -r
    rr = r @ r
    for i in range(max_iter):
        hp = hessp(p)
        php = float(p @ hp)
        if not math.isfinite(php):
            return None
        if php <= 0.0:
            # curvature <= 0 along p: go to the boundary, at the root with the lower model value
            ta, tb = boundary_taus(method, z, p, radius)
            best = None
            for t in (ta, tb):
                dt = z + t * p
                hdt = (r - g) + t * hp  # H (z + t p) = H z + t H p
                m = model_value(g, dt, hdt)
                if best is None or m < best[0]:
                    best = (m, dt, hdt)
            return Step(best[1], best[2], True, math.nan, 0.0, i + 1)
        alpha = rr / php
        z_next = z + alpha * p
        if z_next @ z_next >= radius * radius:
            tb = boundary_taus(method, z, p, radius)[1]
            return Step(z + tb * p, (r - g) + tb * hp, True, math.nan, 0.0, i + 1)
        z = z_next
        r = r + alpha * hp
        rr_next = r @ r
        if math.sqrt(rr_next) <= tol:
            return Step(z, r - g, False, math.nan, 0.0, i + 1)
        p = -r + (rr_next / rr) * p  # beta = ||r+||^2 / ||r||^2
        rr = rr_next
    return Step(z, r - g, False, math.nan, 0.0, max_iter)

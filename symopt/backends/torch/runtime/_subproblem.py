"""The trust-region subproblem solvers of the generated PyTorch optimizers: Moré-Sorensen (exact,
on the dense Hessian), Steihaug-CG (truncated conjugate gradients, on Hessian-vector products)
and the model's minimiser before there is a radius. A line-for-line port of the NumPy runtime's
``_subproblem.py``: the same decisions in the same order, so both targets take the same steps.
Depends on torch only.

Both minimise the model m(d) = g.d + d.H d / 2 subject to ||d|| <= r. The formulas that come
from the spec's derivation (the damped system, the Newton step on the secular equation, the
roots of ||p + tau d|| = r, the Cauchy length, the predicted decrease) are the generated
module's, bound in a :class:`TrustRegion`. The iteration runs on the host (Python floats); the
vectors stay on the device of g.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ._dense import (
    cholesky,
    negative_curvature_bound,
    smallest_singular_pair,
    solve_cholesky,
    solve_lower,
)
from ._second_order import host_scalars

Tensor = torch.Tensor
Scalar4 = Callable[[float, float, float, float], float]


@dataclass(frozen=True)
class TrustRegion:
    """What a spec derives, and its constants (see the generated module for their meaning)."""

    damped_system: Callable[[Tensor, float], Tensor]  # H, lam -> the damped matrix
    damped_rhs: Callable[[Tensor], Tensor]  # g -> the right-hand side of the step
    predicted_reduction: Callable[[Tensor, Tensor, Tensor], Tensor]  # g, d, H d -> m(0) - m(d)
    secular_newton: Scalar4  # lam, ||d||, d.(H + lam I)^-1 d, r -> Newton's next lam
    boundary_tau_min: Scalar4  # p.p, p.d, d.d, r -> the smaller root of ||p + tau d|| = r
    boundary_tau_max: Scalar4  # p.p, p.d, d.d, r -> the larger root
    cauchy_length: Callable[[float, float, float], float]  # g.g, g.H g, r -> t, d = -t g
    min_radius: float
    k_easy: float
    k_hard: float
    max_factorisations: int
    cg_forcing: float
    psd_tol: float
    rounding: float


@dataclass
class Step:
    """A trial step with what the driver needs from the subproblem solver."""

    d: Tensor
    hd: Tensor  # H d, for the predicted reduction
    on_boundary: bool
    lam: float  # multiplier of (H + lam I) d = -g; NaN for CG
    lam_lb: float  # a lower bound on the multiplier for any smaller radius (0 for CG)
    inner: int  # Cholesky factorisations (exact) or CG iterations


def cg_tolerance(g_norm: float, g0_norm: float, forcing: float) -> float:
    """CG residual target min(forcing, sqrt(||g|| / ||g0||)) ||g||: it tends to 0 with ||g||
    (superlinear convergence, Dembo, Eisenstat & Steihaug 1982) and, unlike min(0.5,
    sqrt(||g||)), does not depend on the scale of the loss."""
    return min(forcing, math.sqrt(g_norm / g0_norm)) * g_norm


def choose_subproblem(subproblem: str) -> str:
    """ "exact" or "cg"; "auto" by cost is "cg": autograd builds the dense Hessian from n
    Hessian-vector products (a batched backward pass per block of rows), and truncated CG needs
    at most 2 n of them, usually far fewer, without the factorisations. (The NumPy minimiser,
    given a dense Hessian, takes "exact" for n <= EXACT_MAX_N; pass subproblem="exact" for the
    same iterates.)"""
    if subproblem not in ("exact", "cg", "auto"):
        raise ValueError(f"unknown subproblem {subproblem!r}; use 'exact', 'cg' or 'auto'")
    return "cg" if subproblem == "auto" else subproblem


def _dot(a: Tensor, b: Tensor) -> float:
    return float(a.dot(b))


def solve_damped(method: TrustRegion, low: Tensor, g: Tensor) -> Tensor:
    """The step, given the Cholesky factor L L^T of the damped matrix."""
    return solve_cholesky(low, method.damped_rhs(g))


def boundary_taus(method: TrustRegion, z: Tensor, d: Tensor, radius: float) -> tuple[float, float]:
    """The roots tau_min <= tau_max of ||z + tau d|| = radius (the derived pieces)."""
    pp, pd, dd = host_scalars(z.dot(z), z.dot(d), d.dot(d))
    if dd == 0.0:
        return 0.0, 0.0
    return (
        method.boundary_tau_min(pp, pd, dd, radius),
        method.boundary_tau_max(pp, pd, dd, radius),
    )


def model_value(g: Tensor, d: Tensor, hd: Tensor) -> float:
    """m(d) - m(0) = g.d + d.H d / 2."""
    return float(g.dot(d) + 0.5 * d.dot(hd))


def cauchy_step(method: TrustRegion, g: Tensor, h: Tensor, radius: float) -> tuple[Tensor, Tensor]:
    """The Cauchy point -t g (the model's minimiser along -g in the ball) and H times it."""
    hg = h @ g
    gg, ghg = host_scalars(g.dot(g), g.dot(hg))
    t = method.cauchy_length(gg, ghg, radius)
    return -t * g, -t * hg


def exact_step(
    method: TrustRegion,
    g: Tensor,
    h: Tensor,
    radius: float,
    *,
    lam_lb_hint: float = 0.0,
    k_easy: float | None = None,
    k_hard: float | None = None,
    max_iter: int | None = None,
) -> Step:
    """Nearly exact solution of the subproblem: Moré & Sorensen (1983), Conn, Gould & Toint
    (2000) 7.3.

    Finds lam >= 0 with (H + lam I) d = -g, H + lam I positive semidefinite and
    lam (r - ||d||) = 0 by Newton's method on phi(lam) = 1/||d(lam)|| - 1/r (nearly linear in
    lam), kept inside a bracket [lam_lb, lam_ub] started from Gershgorin discs and tightened by
    every factorisation; in the hard case (g nearly orthogonal to the lowest eigenvector) the
    step is finished along an approximate eigenvector z to the boundary.
    lam_lb_hint: a known lower bound (the previous solve's, valid when r has shrunk).
    k_easy, k_hard, max_iter default to the method's constants. When the factorisations run
    out, the better (lower model value) of the last iterate, cut to the boundary, and the
    Cauchy point is returned. g and h in one floating dtype (the driver passes float64).
    """
    k_easy = method.k_easy if k_easy is None else k_easy
    k_hard = method.k_hard if k_hard is None else k_hard
    max_iter = method.max_factorisations if max_iter is None else max_iter
    damped_system = method.damped_system
    eps = torch.finfo(h.dtype).eps
    diag = h.diagonal()
    abs_rows = h.abs().sum(dim=1)
    off = abs_rows - diag.abs()
    gg, diag_min, gersh_lo, gersh_hi, hh, h_inf = host_scalars(
        g.dot(g), diag.min(), (diag - off).min(), (diag + off).max(), (h * h).sum(), abs_rows.max()
    )
    g_norm, h_fro = math.sqrt(gg), math.sqrt(hh)
    # CGT 7.3.8: ||g|| / r - lam_max(H) <= lam* <= ||g|| / r - lam_min(H), and lam* >= -h_ii
    lam_ub = max(0.0, g_norm / radius + min(-gersh_lo, h_fro, h_inf))
    lam_lb = max(0.0, -diag_min, g_norm / radius - min(gersh_hi, h_fro, h_inf))
    lam_lb = max(lam_lb, lam_lb_hint)

    pd_margin = math.sqrt(eps) * max(1.0, h_inf)

    def inside(lb: float, ub: float) -> float:
        # CGT (7.3.14): a safe guess in the bracket, max(sqrt(lb ub), lb + 0.01 (ub - lb));
        # a bracket collapsed onto -lam_min(H) (g ~ 0, or rounding) is reopened by pd_margin
        if ub <= lb:
            ub = lb + pd_margin
        return max(math.sqrt(abs(lb * ub)), lb + 0.01 * (ub - lb))

    lam = 0.0 if lam_lb == 0.0 else inside(lam_lb, lam_ub)
    d = torch.zeros_like(g)
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
            # g = 0: a boundary step along the least-curvature direction solves the subproblem
            if lam == 0.0:
                d = torch.zeros_like(g)
                break
            s_min, z = smallest_singular_pair(low)
            d, lam_d = radius * z, lam
            if s_min * s_min <= k_hard * lam:
                break
            lam_ub, lam_lb = lam, max(lam_lb, lam - s_min * s_min)
            lam = inside(lam_lb, lam_ub)
        else:
            d, lam_d = solve_damped(method, low, g), lam
            d_norm = math.sqrt(_dot(d, d))
            if d_norm <= radius and lam == 0.0:
                break  # interior: the Newton step itself
            # Newton on the secular equation (the derived piece), with L w = d
            w = solve_lower(low, d)
            lam_newton = method.secular_newton(lam, d_norm, _dot(w, w), radius)
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
                if tau * tau * s_min * s_min <= k_hard * (_dot(d, a @ d) + lam * radius * radius):
                    d = d + tau * z
                    break
                lam_ub = lam
                lam_lb = max(lam_lb, lam - s_min * s_min)
                lam = lam_newton if lam_newton > lam_lb else inside(lam_lb, lam_ub)
        if factorisations >= max_iter:
            d_norm = math.sqrt(_dot(d, d))
            if d_norm > radius:
                # d = -(H + lam I)^-1 g with H + lam I > 0: m(t d) < m(0) for 0 < t <= 1
                d = d * (radius / d_norm)
            hd = h @ d
            dc, hdc = cauchy_step(method, g, h, radius)
            if model_value(g, dc, hdc) < model_value(g, d, hd):
                d, hd = dc, hdc
            on_boundary = math.sqrt(_dot(d, d)) >= (1.0 - k_easy) * radius
            return Step(d, hd, on_boundary, lam_d, lam_lb, factorisations)
        a = damped_system(h, lam)
        low, fail_k, pivot = cholesky(a)
        factorisations += 1
    on_boundary = not (lam_d == 0.0 and math.sqrt(_dot(d, d)) < radius)
    return Step(d, h @ d, on_boundary, lam_d, lam_lb, factorisations)


def steihaug_step(
    method: TrustRegion,
    g: Tensor,
    hessp: Callable[[Tensor], Tensor],
    radius: float,
    tol: float,
    *,
    max_iter: int | None = None,
) -> Step | None:
    """Truncated CG on the subproblem (Steihaug 1983, Toint 1981; Nocedal & Wright Algorithm
    7.2).

    CG on H d = -g from d = 0 decreases the model monotonically (its first iterate is the
    Cauchy point); it stops on the boundary when an iterate would leave the region or meets
    curvature <= 0, or inside once the residual r = H d + g has ||r|| <= tol, or after max_iter
    (default 2 n) iterations. H d is carried as r - g, so the predicted reduction costs no extra
    product. None when a Hessian-vector product is not finite. One device-to-host copy per
    iteration: the next iterate is formed before the tests that may discard it.
    """
    max_iter = 2 * g.numel() if max_iter is None else max_iter
    z = torch.zeros_like(g)
    r = g.clone()  # residual H z + g
    p = -r
    rr = r.dot(r)
    for i in range(max_iter):
        hp = hessp(p)
        php = p.dot(hp)
        alpha = rr / php
        z_next = z + alpha * p
        r_next = r + alpha * hp
        rr_next = r_next.dot(r_next)
        curvature, zz_next, rr_host = host_scalars(php, z_next.dot(z_next), rr_next)
        if not math.isfinite(curvature):
            return None
        if curvature <= 0.0:
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
        if zz_next >= radius * radius:
            tb = boundary_taus(method, z, p, radius)[1]
            return Step(z + tb * p, (r - g) + tb * hp, True, math.nan, 0.0, i + 1)
        z, r = z_next, r_next
        if math.sqrt(rr_host) <= tol:
            return Step(z, r - g, False, math.nan, 0.0, i + 1)
        p = -r + (rr_next / rr) * p  # beta = ||r+||^2 / ||r||^2
        rr = rr_next
    return Step(z, r - g, False, math.nan, 0.0, max_iter)


def model_minimiser(
    method: TrustRegion,
    g: Tensor,
    h: Tensor | None,
    hessp: Callable[[Tensor], Tensor],
    tol: float,
    *,
    max_iter: int | None = None,
) -> Step | None:
    """A minimiser of the model without a radius, or None where the model is unbounded below.

    With the dense H: Newton's step when the damped matrix at lam = 0 has a Cholesky factor
    (H positive definite). Otherwise (no dense H, or H only semidefinite) conjugate gradients on
    H d = -g from 0 to the residual tol, at most max_iter (default 2 n) iterations: they converge
    where g lies in the range of a positive semidefinite H (to its minimum-norm solution), and
    the model is taken as unbounded when they meet curvature <= 0. A non-finite product also
    gives None (the driver checks H itself).
    """
    if h is not None:
        low, fail_k, _ = cholesky(method.damped_system(h, 0.0))
        if fail_k < 0:
            d = solve_damped(method, low, g)
            return Step(d, h @ d, False, 0.0, 0.0, 1)
    z, r = torch.zeros_like(g), g.clone()
    p, rr = -r, g.dot(g)
    for i in range(2 * g.numel() if max_iter is None else max_iter):
        hp = hessp(p)
        php = p.dot(hp)
        alpha = rr / php
        z_next, r_next = z + alpha * p, r + alpha * hp
        rr_next = r_next.dot(r_next)
        curvature, rr_host = host_scalars(php, rr_next)
        if not (curvature > 0.0 and math.isfinite(curvature)):  # curvature <= 0, or not
            # finite: no bounded minimiser found
            return None
        z, r = z_next, r_next
        if math.sqrt(rr_host) <= tol:
            return Step(z, r - g, False, 0.0, 0.0, i + 1)
        p, rr = -r + (rr_next / rr) * p, rr_next
    return None

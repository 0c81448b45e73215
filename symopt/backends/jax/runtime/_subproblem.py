"""The subproblem solvers of the generated JAX trust-region minimiser: Moré-Sorensen (each
factorisation one compiled kernel, the iteration on the host as in the NumPy runtime) and
Steihaug-CG (one compiled ``jax.lax.while_loop``). Depends on JAX only.

Both minimise the model m(d) = g.d + d.H d / 2 subject to ||d|| <= r, as the NumPy runtime's
``_subproblem.py`` does, decision for decision. The formulas that come from the spec's derivation
(the damped system, the Newton step on the secular equation, the roots of ||p + tau d|| = r, the
Cauchy length, the predicted decrease) are the generated module's, bound in a
:class:`TrustRegion`; they run inside the compiled kernels, which take the record (and f's
Hessian-vector product) as static arguments: jit's cache keeps one compilation per spec and f.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp

from ._dense import (
    cholesky,
    negative_curvature_bound,
    smallest_singular_pair,
    solve_cholesky,
    solve_lower,
)

Array = jax.Array
Scalar4 = Callable[[Array, Array, Array, Array], Array]
EPS = 2.0**-52  # float64's machine epsilon, as np.finfo(float).eps in the NumPy runtime


@dataclass(frozen=True)
class TrustRegion:
    """What a spec derives, and its constants (see the generated module for their meaning).
    Hashable: it is a static argument of the compiled kernels, so the derived pieces must be
    JAX-traceable (``jnp.where``, not Python conditionals, on traced values)."""

    damped_system: Callable[[Array, Array], Array]  # H, lam -> the damped matrix
    damped_rhs: Callable[[Array], Array]  # g -> the right-hand side of the step
    predicted_reduction: Callable[[Array, Array, Array], Array]  # g, d, H d -> m(0) - m(d)
    secular_newton: Scalar4  # lam, ||d||, d.(H + lam I)^-1 d, r -> Newton's next lam
    boundary_tau_min: Scalar4  # p.p, p.d, d.d, r -> the smaller root of ||p + tau d|| = r
    boundary_tau_max: Scalar4  # p.p, p.d, d.d, r -> the larger root
    cauchy_length: Callable[[Array, Array, Array], Array]  # g.g, g.H g, r -> t, d = -t g
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


@jax.jit
def norm(v: Array) -> Array:
    """||v||, compiled."""
    return jnp.sqrt(v @ v)


def solve_damped(method: TrustRegion, low: Array, g: Array) -> Array:
    """The step, given the Cholesky factor L L^T of the damped matrix."""
    return solve_cholesky(low, method.damped_rhs(g))


def boundary_taus(method: TrustRegion, z: Array, d: Array, radius: Array) -> tuple[Array, Array]:
    """The roots tau_min <= tau_max of ||z + tau d|| = radius (the derived pieces); (0, 0)
    when d = 0."""
    pp, pd, dd = z @ z, z @ d, d @ d
    zero = dd == 0.0
    return (
        jnp.where(zero, 0.0, method.boundary_tau_min(pp, pd, dd, radius)),
        jnp.where(zero, 0.0, method.boundary_tau_max(pp, pd, dd, radius)),
    )


def model_value(g: Array, d: Array, hd: Array) -> Array:
    """m(d) - m(0) = g.d + d.H d / 2."""
    return g @ d + 0.5 * (d @ hd)


class _Factorised(NamedTuple):
    """One factorisation of H + lam I and what the Moré-Sorensen iteration may need of it."""

    failed: bool  # not positive definite
    bound: float  # then: an upper bound on lam_min(H + lam I)
    d_norm: float  # else: ||d||, d = -(H + lam I)^-1 g
    lam_newton: float  # Newton's next lam on the secular equation (the derived piece)
    s_min: float  # sigma_min(L^T) estimate, and z its unit vector
    tau: float  # the root of ||d + tau z|| = r of least magnitude
    dad: float  # d.(H + lam I) d
    d: Array
    z: Array
    d_tau: Array  # d + tau z


@partial(jax.jit, static_argnums=0)
def _factorise_kernel(method: TrustRegion, h: Array, g: Array, lam: Array, radius: Array):
    """Factorise H + lam I; on success, all the iteration may take from it (else the bound)."""
    a = method.damped_system(h, lam)
    low, fail_k, pivot = cholesky(a)

    def failed():
        zero = jnp.zeros_like(g)
        bound = negative_curvature_bound(low, fail_k, pivot)
        return jnp.array([1.0, bound, 0.0, 0.0, 0.0, 0.0, 0.0]), zero, zero, zero

    def factorised():
        d = solve_damped(method, low, g)
        d_norm = jnp.sqrt(d @ d)
        w = solve_lower(low, d)
        lam_newton = method.secular_newton(lam, d_norm, w @ w, radius)
        s_min, z = smallest_singular_pair(low)
        ta, tb = boundary_taus(method, d, z, radius)
        tau = jnp.where(jnp.abs(ta) < jnp.abs(tb), ta, tb)
        scalars = jnp.array([0.0, 0.0, d_norm, lam_newton, s_min, tau, d @ (a @ d)])
        return scalars, d, z, d + tau * z

    return jax.lax.cond(fail_k >= 0, failed, factorised)


def _factorise(method: TrustRegion, h: Array, g: Array, lam: float, radius: float) -> _Factorised:
    scalars, d, z, d_tau = _factorise_kernel(method, h, g, lam, radius)
    failed, *rest = scalars.tolist()
    return _Factorised(failed != 0.0, *rest, d, z, d_tau)


@partial(jax.jit, static_argnums=0)
def _cut_or_cauchy(method: TrustRegion, g: Array, h: Array, d: Array, radius: Array):
    """The last iterate cut to the boundary, or the Cauchy point -t g if its model value is
    lower; with H times it and its length."""
    d_norm = jnp.sqrt(d @ d)
    # d = -(H + lam I)^-1 g with H + lam I > 0: m(t d) < m(0) for 0 < t <= 1
    d = jnp.where(d_norm > radius, d * (radius / d_norm), d)
    hd, hg = h @ d, h @ g
    t = method.cauchy_length(g @ g, g @ hg, radius)
    dc, hdc = -t * g, -t * hg
    cauchy = model_value(g, dc, hdc) < model_value(g, d, hd)
    d, hd = jnp.where(cauchy, dc, d), jnp.where(cauchy, hdc, hd)
    return d, hd, jnp.sqrt(d @ d)


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
    """Nearly exact solution of (1): Moré & Sorensen (1983), Conn, Gould & Toint (2000) 7.3;
    the NumPy runtime's iteration, each factorisation one compiled kernel.

    Finds lam >= 0 solving (2) by Newton's method on phi(lam) = 1/||d(lam)|| - 1/r inside a
    bracket [lam_lb, lam_ub] started from Gershgorin discs and tightened by every
    factorisation; in the hard case the step is finished along an approximate eigenvector z.
    lam_lb_hint: a known lower bound (the previous solve's, valid when r has shrunk).
    k_easy, k_hard, max_iter default to the method's constants. When the factorisations run
    out, the better of the last iterate (cut to the boundary) and the Cauchy point is taken.
    """
    k_easy = method.k_easy if k_easy is None else k_easy
    k_hard = method.k_hard if k_hard is None else k_hard
    max_iter = method.max_factorisations if max_iter is None else max_iter
    g_norm, diag_min, gersh_lo, gersh_hi, h_fro, h_inf = _bounds(g, h).tolist()
    # CGT 7.3.8: ||g|| / r - lam_max(H) <= lam* <= ||g|| / r - lam_min(H), and lam* >= -h_ii
    lam_ub = max(0.0, g_norm / radius + min(-gersh_lo, h_fro, h_inf))
    lam_lb = max(0.0, -diag_min, g_norm / radius - min(gersh_hi, h_fro, h_inf))
    lam_lb = max(lam_lb, lam_lb_hint)
    pd_margin = math.sqrt(EPS) * max(1.0, h_inf)

    def inside(lb: float, ub: float) -> float:
        # CGT (7.3.14): a safe guess in the bracket; a collapsed bracket is reopened
        if ub <= lb:
            ub = lb + pd_margin
        return max(math.sqrt(abs(lb * ub)), lb + 0.01 * (ub - lb))

    lam = 0.0 if lam_lb == 0.0 else inside(lam_lb, lam_ub)
    d, lam_d = jnp.zeros_like(g), 0.0
    fact = _factorise(method, h, g, lam, radius)
    factorisations = 1
    while True:
        if fact.failed:
            # H + lam I is indefinite, so lam < -lam_min(H) <= lam*: raise the lower bound
            lam_lb = max(lam_lb, lam - fact.bound)
            lam = inside(lam_lb, lam_ub)
        elif g_norm == 0.0:
            # g = 0: a boundary step along the least-curvature direction solves (1)
            if lam == 0.0:
                d = jnp.zeros_like(g)
                break
            d, lam_d = radius * fact.z, lam
            if fact.s_min * fact.s_min <= k_hard * lam:
                break
            lam_ub, lam_lb = lam, max(lam_lb, lam - fact.s_min * fact.s_min)
            lam = inside(lam_lb, lam_ub)
        else:
            d, lam_d, d_norm = fact.d, lam, fact.d_norm
            if d_norm <= radius and lam == 0.0:
                break  # interior: the Newton step itself
            if d_norm > radius:
                lam_lb = lam  # ||d(.)|| decreases in lam, so lam < lam*
                if d_norm - radius <= k_easy * radius:
                    break
                lam = fact.lam_newton if fact.lam_newton <= lam_ub else inside(lam_lb, lam_ub)
            else:
                # lam too large, or the hard case: accept d + tau z (Moré-Sorensen's test)
                tss = fact.tau * fact.tau * fact.s_min * fact.s_min
                if tss <= k_hard * (fact.dad + lam * radius * radius):
                    d = fact.d_tau
                    break
                lam_ub = lam
                lam_lb = max(lam_lb, lam - fact.s_min * fact.s_min)
                lam = fact.lam_newton if fact.lam_newton > lam_lb else inside(lam_lb, lam_ub)
        if factorisations >= max_iter:
            d, hd, d_norm = _cut_or_cauchy(method, g, h, d, radius)
            on_boundary = float(d_norm) >= (1.0 - k_easy) * radius
            return Step(d, hd, on_boundary, lam_d, lam_lb, factorisations)
        fact = _factorise(method, h, g, lam, radius)
        factorisations += 1
    on_boundary = not (lam_d == 0.0 and float(norm(d)) < radius)
    return Step(d, h @ d, on_boundary, lam_d, lam_lb, factorisations)


@jax.jit
def _bounds(g: Array, h: Array) -> Array:
    """||g||, min h_ii, the Gershgorin interval, ||H||_F and ||H||_inf."""
    diag = jnp.diag(h)
    abs_rows = jnp.abs(h).sum(axis=1)
    off = abs_rows - jnp.abs(diag)
    return jnp.array(
        [
            jnp.sqrt(g @ g),
            jnp.min(diag),
            jnp.min(diag - off),
            jnp.max(diag + off),
            jnp.sqrt(jnp.sum(h * h)),
            jnp.max(abs_rows),
        ]
    )


#: Why the CG loop stopped (NumPy's steihaug_step returns at the same tests, in this order).
RUNNING, NON_FINITE, NEGATIVE_CURVATURE, LEAVES_REGION, CONVERGED = 0, 1, 2, 3, 4


class _CG(NamedTuple):
    i: Array  # iterations (Hessian-vector products) so far
    z: Array  # the iterate (on a boundary stop: the one the boundary step starts from)
    r: Array  # its residual H z + g
    p: Array  # the search direction
    rr: Array  # r.r
    hp: Array  # H p
    stop: Array  # RUNNING or the reason to stop


@partial(jax.jit, static_argnums=(0, 1, 2))
def _cg_kernel(method: TrustRegion, hessp: Callable, bounded: bool, at, g, radius, tol, max_iter):
    """The NumPy runtime's CG iterations, in a while_loop that records why it stops: Steihaug's
    (bounded: also where an iterate leaves the region; then the boundary step, which needs the
    roots of ||z + t p|| = r, once, after the loop), or model_minimiser's (no region)."""

    def body(s: _CG) -> _CG:
        hp = hessp(at, s.p)
        php = s.p @ hp
        alpha = s.rr / php
        z_next = s.z + alpha * s.p
        r_next = s.r + alpha * hp
        rr_next = r_next @ r_next
        converged = jnp.sqrt(rr_next) <= tol
        if bounded:
            leaves = z_next @ z_next >= radius * radius
            reasons = [~jnp.isfinite(php), php <= 0.0, leaves, converged]
            codes = [NON_FINITE, NEGATIVE_CURVATURE, LEAVES_REGION, CONVERGED]
        else:  # model_minimiser: curvature not > 0 or not finite means no bounded minimiser
            reasons = [~((php > 0.0) & jnp.isfinite(php)), converged]
            codes = [NEGATIVE_CURVATURE, CONVERGED]
        stop = jnp.select(reasons, codes, RUNNING)
        inside = (stop == RUNNING) | (stop == CONVERGED)
        p_next = -r_next + (rr_next / s.rr) * s.p  # beta = ||r+||^2 / ||r||^2
        z, r, p = (
            jnp.where(inside, new, old)
            for new, old in ((z_next, s.z), (r_next, s.r), (p_next, s.p))
        )
        return _CG(s.i + 1, z, r, p, rr_next, hp, stop)

    zero = jnp.zeros_like(g)
    start = _CG(jnp.asarray(0), zero, g, -g, g @ g, zero, jnp.asarray(RUNNING))
    end = jax.lax.while_loop(lambda s: (s.stop == RUNNING) & (s.i < max_iter), body, start)
    hz = end.r - g  # H z = r - g: no extra product
    if not bounded:
        return end.z, hz, end.stop, end.i
    # to the boundary along p: the farther root, or (curvature <= 0) the lower model value
    ta, tb = boundary_taus(method, end.z, end.p, radius)
    da, db = end.z + ta * end.p, end.z + tb * end.p
    hda, hdb = hz + ta * end.hp, hz + tb * end.hp
    lower_b = model_value(g, db, hdb) < model_value(g, da, hda)
    take_a = (end.stop == NEGATIVE_CURVATURE) & ~lower_b
    on_boundary = (end.stop == NEGATIVE_CURVATURE) | (end.stop == LEAVES_REGION)
    d = jnp.where(take_a, da, jnp.where(on_boundary, db, end.z))
    hd = jnp.where(take_a, hda, jnp.where(on_boundary, hdb, hz))
    return d, hd, on_boundary, end.stop, end.i


def steihaug_run(
    method: TrustRegion,
    g: Array,
    hessp: Callable,
    at,
    radius: float,
    tol: float,
    *,
    max_iter: int | None = None,
) -> tuple[Step | None, int]:
    """:func:`steihaug_step`'s step (None when a product is not finite) and the number of
    Hessian-vector products it took (the driver counts them as the NumPy driver does)."""
    max_iter = 2 * g.size if max_iter is None else max_iter
    d, hd, on_boundary, stop, inner = _cg_kernel(method, hessp, True, at, g, radius, tol, max_iter)
    on_boundary, stop, inner = jax.device_get((on_boundary, stop, inner))
    if stop == NON_FINITE:
        return None, int(inner)
    return Step(d, hd, bool(on_boundary), math.nan, 0.0, int(inner)), int(inner)


def steihaug_step(
    method: TrustRegion,
    g: Array,
    hessp: Callable,
    at,
    radius: float,
    tol: float,
    *,
    max_iter: int | None = None,
) -> Step | None:
    """Truncated CG on (1) (Steihaug 1983, Toint 1981; Nocedal & Wright Algorithm 7.2), with
    H v = hessp(at, v) (JAX-traceable and hashable: a compiled loop is kept per hessp):
    ``hessian_vector_product(f)`` and x, or ``jnp.matmul`` and a matrix.

    CG on H d = -g from d = 0 decreases the model monotonically (its first iterate is the
    Cauchy point); it stops on the boundary when an iterate would leave the region or meets
    curvature <= 0, or inside once ||H d + g|| <= tol, or after max_iter (default 2 n)
    iterations. H d is carried as r - g. None when a Hessian-vector product is not finite.
    """
    return steihaug_run(method, g, hessp, at, radius, tol, max_iter=max_iter)[0]


@partial(jax.jit, static_argnums=0)
def _newton_kernel(method: TrustRegion, h: Array, g: Array) -> tuple[Array, Array, Array]:
    """Whether the damped matrix at lam = 0 has a Cholesky factor, Newton's step and H d."""
    low, fail_k, _ = cholesky(method.damped_system(h, 0.0))
    d = solve_damped(method, low, g)
    return fail_k < 0, d, h @ d


def model_minimiser(
    method: TrustRegion, g: Array, h: Array | None, hessp: Callable, at, tol: float
) -> tuple[Step | None, int]:
    """A minimiser of the model without a radius, or None where the model is unbounded below;
    and the number of products H v (hessp(at, v)) that conjugate gradients took.

    With the dense H: Newton's step when the damped matrix at lam = 0 has a Cholesky factor
    (H positive definite). Otherwise (no dense H, or H only semidefinite) conjugate gradients on
    H d = -g from 0 to the residual tol, at most 2 n iterations: they converge where g lies in
    the range of a positive semidefinite H, and the model is taken as unbounded when they meet
    curvature <= 0. A non-finite product also gives None (the driver checks H itself).
    """
    if h is not None:
        factorised, d, hd = _newton_kernel(method, h, g)
        if bool(factorised):
            return Step(d, hd, False, 0.0, 0.0, 1), 0
    z, hz, stop, inner = _cg_kernel(method, hessp, False, at, g, math.inf, tol, 2 * g.size)
    stop, inner = jax.device_get((stop, inner))
    if stop != CONVERGED:
        return None, int(inner)
    return Step(z, hz, False, 0.0, 0.0, int(inner)), int(inner)

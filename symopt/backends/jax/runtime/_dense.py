"""Dense linear algebra of the generated JAX trust-region minimiser: Cholesky with the failing
pivot, triangular solves, and the estimates the Moré-Sorensen subproblem solver needs. Every
function is traceable (``jax.jit``-able, shapes static, indices dynamic). Depends on JAX only.

The NumPy runtime (``symopt_numpy/_dense.py``) factorises by blocks (LAPACK on the diagonal
blocks, matmuls on the rest); here the factor and the solves are LAPACK's, through
``jnp.linalg.cholesky`` and ``jax.scipy.linalg.solve_triangular``. They agree to rounding, so the
iterates agree to rounding (not bit for bit). Two things LAPACK does not give are kept as loops
with the NumPy runtime's arithmetic: where a factorisation fails (``jnp.linalg.cholesky`` only
returns NaN), the failing column and its pivot, which bound the lowest eigenvalue; and the
LINPACK estimate of the smallest singular pair, whose sign choices decide the hard-case step.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.linalg import solve_triangular

Array = jax.Array


def cholesky(a: Array) -> tuple[Array, Array, Array]:
    """Lower Cholesky factor L of a = L L^T (its lower triangle is read, as the NumPy loop's).

    Returns (L, k, pivot): k = -1 on success; otherwise the first column whose pivot
    a_kk - sum_{j<k} L_kj^2 = pivot is not positive, and L holds the columns before k.
    """
    low = jnp.linalg.cholesky(a, symmetrize_input=False)
    ok = jnp.all(jnp.isfinite(low))  # LAPACK's failure comes back as NaN
    success = (low, jnp.asarray(-1, jnp.int32), jnp.zeros((), a.dtype))
    return jax.lax.cond(ok, lambda: success, lambda: _left_looking(a))


def _left_looking(a: Array) -> tuple[Array, Array, Array]:
    """The NumPy runtime's column loop, stopped at the first pivot that is not positive."""
    n = a.shape[0]
    idx = jnp.arange(n)

    def column(k, carry):
        low, fail, pivot = carry
        row = jnp.where(idx < k, low[k], 0.0)  # L[k, :k]
        piv = a[k, k] - row @ row
        failing = (fail < 0) & ~(piv > 0.0)  # also catches NaN
        lkk = jnp.sqrt(piv)
        # L_ik = (a_ik - sum_{j<k} L_ij L_kj) / L_kk,  i > k  (columns >= k of L are still 0)
        col = jnp.where(idx > k, (a[:, k] - low @ row) / lkk, jnp.where(idx == k, lkk, 0.0))
        low = jnp.where((fail < 0) & ~failing, low.at[:, k].set(col), low)
        fail = jnp.where(failing, k, fail).astype(jnp.int32)
        return low, fail, jnp.where(failing, piv, pivot)

    start = (jnp.zeros_like(a), jnp.asarray(-1, jnp.int32), jnp.zeros((), a.dtype))
    return jax.lax.fori_loop(0, n, column, start)


def solve_lower(low: Array, b: Array) -> Array:
    """y with L y = b."""
    return solve_triangular(low, b, lower=True)


def solve_upper_t(low: Array, y: Array) -> Array:
    """x with L^T x = y."""
    return solve_triangular(low, y, lower=True, trans="T")


def solve_cholesky(low: Array, rhs: Array) -> Array:
    """x with L L^T x = rhs."""
    return solve_upper_t(low, solve_lower(low, rhs))


def is_positive_semidefinite(h: Array, psd_tol: float) -> Array:
    """Whether H + psd_tol max(1, ||H||_inf) I has a Cholesky factor (H is PSD up to rounding)."""
    shift = psd_tol * jnp.maximum(1.0, jnp.max(jnp.abs(h).sum(axis=1)))
    low = jnp.linalg.cholesky(
        h + shift * jnp.eye(h.shape[0], dtype=h.dtype), symmetrize_input=False
    )
    return jnp.all(jnp.isfinite(low))


def negative_curvature_bound(low: Array, k: Array, pivot: Array) -> Array:
    """Upper bound on lam_min(a) after Cholesky of a failed at column k (Moré & Sorensen 1983).

    With l = L[k, :k] and v = (-L_k^-T l, 1, 0, ...): v.a v = pivot <= 0, so
    lam_min(a) <= pivot / ||v||^2. The leading k x k block is solved inside an identity of
    size n (k is traced): the padding rows give exact zeros.
    """
    n = low.shape[0]
    lead = jnp.arange(n) < k
    block = jnp.where(lead[:, None] & lead[None, :], low, jnp.eye(n, dtype=low.dtype))
    w = solve_upper_t(block, jnp.where(lead, -low[k], 0.0))
    return pivot / (1.0 + w @ w)


def smallest_singular_pair(low: Array) -> tuple[Array, Array]:
    """Estimate s ~ sigma_min(L^T) and a unit z with ||L^T z|| ~ s (LINPACK estimator).

    Cline, Moler, Stewart & Wilkinson (1979): pick e in {+-1}^n making the solution of L w = e
    large, then solve L^T v = w; s ~ ||w|| / ||v||, z = v / ||v||. In the hard case z is the
    direction of least curvature: z.(H + lam I) z = ||L^T z||^2 ~ s^2.
    """
    n = low.shape[0]
    idx = jnp.arange(n)

    def column(k, carry):
        p, w = carry
        below = idx > k
        wp = (1.0 - p[k]) / low[k, k]
        wm = (-1.0 - p[k]) / low[k, k]
        pp = jnp.where(below, p + low[:, k] * wp, p)
        pm = jnp.where(below, p + low[:, k] * wm, p)
        plus = jnp.abs(wp) + jnp.where(below, jnp.abs(pp), 0.0).sum()
        minus = jnp.abs(wm) + jnp.where(below, jnp.abs(pm), 0.0).sum()
        take_plus = plus >= minus
        return jnp.where(take_plus, pp, pm), w.at[k].set(jnp.where(take_plus, wp, wm))

    _, w = jax.lax.fori_loop(0, n, column, (jnp.zeros(n, low.dtype), jnp.zeros(n, low.dtype)))
    v = solve_upper_t(low, w)
    v_norm = jnp.sqrt(v @ v)
    return jnp.sqrt(w @ w) / v_norm, v / v_norm

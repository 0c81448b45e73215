"""Dense linear algebra of the generated NumPy minimisers (Newton, trust region): Cholesky,
triangular and pivoted solves, and the estimates the Moré-Sorensen subproblem solver needs.
Column loops that map one to one to the C target's. Depends on NumPy only.
"""

from __future__ import annotations

import math

import numpy as np

Array = np.ndarray


def cholesky(a: Array) -> tuple[Array, int, float]:
    """Lower Cholesky factor L of a = L L^T, column by column (left-looking).

    Returns (L, k, pivot): k = -1 on success; otherwise the first column whose pivot
    a_kk - sum_{j<k} L_kj^2 = pivot is not positive (a is not positive definite).
    """
    n = a.shape[0]
    low = np.zeros((n, n))
    for k in range(n):
        # L_kk^2 = a_kk - sum_{j<k} L_kj^2
        pivot = a[k, k] - low[k, :k] @ low[k, :k]
        if not pivot > 0.0:  # also catches NaN
            return low, k, float(pivot)
        low[k, k] = math.sqrt(pivot)
        # L_ik = (a_ik - sum_{j<k} L_ij L_kj) / L_kk,  i > k
        low[k + 1 :, k] = (a[k + 1 :, k] - low[k + 1 :, :k] @ low[k, :k]) / low[k, k]
    return low, -1, 0.0


def solve_lower(low: Array, b: Array) -> Array:
    """y with L y = b (forward substitution, column oriented)."""
    y = np.array(b, dtype=float)
    for k in range(low.shape[0]):
        y[k] /= low[k, k]
        y[k + 1 :] -= low[k + 1 :, k] * y[k]
    return y


def solve_upper_t(low: Array, y: Array) -> Array:
    """x with L^T x = y (back substitution)."""
    x = np.array(y, dtype=float)
    for k in range(low.shape[0] - 1, -1, -1):
        x[k] = (x[k] - low[k + 1 :, k] @ x[k + 1 :]) / low[k, k]
    return x


def solve_cholesky(low: Array, rhs: Array) -> Array:
    """x with L L^T x = rhs."""
    return solve_upper_t(low, solve_lower(low, rhs))


def solve_pivoted(a: Array, b: Array) -> Array | None:
    """x with a x = b by Gaussian elimination with partial pivoting; None if a is singular."""
    n = a.shape[0]
    m = np.array(a, dtype=float)
    x = np.array(b, dtype=float)
    scale = max(1.0, float(np.max(np.abs(m))))
    for k in range(n):
        p = k + int(np.argmax(np.abs(m[k:, k])))
        if abs(m[p, k]) <= n * np.finfo(float).eps * scale:
            return None
        if p != k:
            m[[k, p]] = m[[p, k]]
            x[[k, p]] = x[[p, k]]
        # eliminate below the pivot: row_i -= (m_ik / m_kk) row_k
        factors = m[k + 1 :, k] / m[k, k]
        m[k + 1 :, k:] -= np.outer(factors, m[k, k:])
        x[k + 1 :] -= factors * x[k]
    for k in range(n - 1, -1, -1):
        x[k] = (x[k] - m[k, k + 1 :] @ x[k + 1 :]) / m[k, k]
    return x


def is_positive_semidefinite(h: Array, psd_tol: float) -> bool:
    """Whether H + psd_tol max(1, ||H||_inf) I has a Cholesky factor (H is PSD up to rounding)."""
    shift = psd_tol * max(1.0, float(np.max(np.abs(h).sum(axis=1))))
    return cholesky(h + shift * np.eye(h.shape[0]))[1] < 0


def negative_curvature_bound(low: Array, k: int, pivot: float) -> float:
    """Upper bound on lam_min(a) after Cholesky of a failed at column k (Moré & Sorensen 1983).

    With l = L[k, :k] and v = (-L_k^-T l, 1, 0, ...): v.a v = pivot <= 0, so
    lam_min(a) <= pivot / ||v||^2.
    """
    w = solve_upper_t(low[:k, :k], -low[k, :k]) if k > 0 else np.zeros(0)
    return pivot / (1.0 + w @ w)


def smallest_singular_pair(low: Array) -> tuple[float, Array]:
    """Estimate s ~ sigma_min(L^T) and a unit z with ||L^T z|| ~ s (LINPACK estimator).

    Cline, Moler, Stewart & Wilkinson (1979): pick e in {+-1}^n making the solution of L w = e
    large, then solve L^T v = w; s ~ ||w|| / ||v||, z = v / ||v||. In the hard case z is the
    direction of least curvature: z.(H + lam I) z = ||L^T z||^2 ~ s^2.
    """
    n = low.shape[0]
    p = np.zeros(n)
    w = np.empty(n)
    for k in range(n):
        wp = (1.0 - p[k]) / low[k, k]
        wm = (-1.0 - p[k]) / low[k, k]
        pp = p[k + 1 :] + low[k + 1 :, k] * wp
        pm = p[k + 1 :] + low[k + 1 :, k] * wm
        if abs(wp) + np.abs(pp).sum() >= abs(wm) + np.abs(pm).sum():
            w[k], p[k + 1 :] = wp, pp
        else:
            w[k], p[k + 1 :] = wm, pm
    v = solve_upper_t(low, w)
    v_norm = math.sqrt(v @ v)
    return math.sqrt(w @ w) / v_norm, v / v_norm


def boundary_taus(z: Array, d: Array, radius: float) -> tuple[float, float]:
    """Roots ta <= tb of ||z + t d|| = radius, i.e. (d.d) t^2 + 2 (z.d) t + z.z - r^2 = 0."""
    a = d @ d
    b = 2.0 * (z @ d)
    c = z @ z - radius * radius
    sq = math.sqrt(max(b * b - 4.0 * a * c, 0.0))
    aux = b + math.copysign(sq, b)  # the two roots without cancellation
    if aux == 0.0:
        return 0.0, 0.0
    ta, tb = -aux / (2.0 * a), -2.0 * c / aux
    return (ta, tb) if ta <= tb else (tb, ta)

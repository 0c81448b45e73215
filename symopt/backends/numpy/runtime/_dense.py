"""Dense linear algebra of the generated NumPy minimisers (Newton, trust region): Cholesky,
triangular and pivoted solves, and the estimates the Moré-Sorensen subproblem solver needs.
Depends on NumPy only.

The results are those of the column loops that define the algorithms (the failing column, its
pivot) up to rounding, as the C target's are, but the work is done by blocks: LAPACK
(``numpy.linalg``) on the diagonal blocks and BLAS (matmul) on the rest, with a Python loop over
blocks rather than over columns. NumPy has no triangular solve, so the off-diagonal blocks of a
factorisation are multiplied by the inverse of a diagonal block (which keeps ||A - L L^T|| within
a small factor of LAPACK's own), and the solves use LU solves on blocks of SOLVE_BLOCK.
"""

from __future__ import annotations

import math

import numpy as np

Array = np.ndarray

#: Columns per diagonal block of the Cholesky factorisation: n <= BLOCK is one LAPACK call.
BLOCK = 128
#: Columns per diagonal block of the triangular solves and of the LU factorisation.
SOLVE_BLOCK = 64


def _column_loop(a: Array) -> tuple[Array, int, float]:
    """Cholesky of a by the column loop (left-looking): where the blocked one must find the
    failing column and its pivot exactly, within one diagonal block."""
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


def _factor_diagonal(a: Array) -> tuple[Array, int, float]:
    """(L, k, pivot) of one diagonal block: LAPACK, else (it failed, or let a NaN through) the
    column loop, which decides."""
    try:
        low = np.linalg.cholesky(a)
    except np.linalg.LinAlgError:
        return _column_loop(a)
    if np.all(low.diagonal() > 0.0):
        return low, -1, 0.0
    return _column_loop(a)


def _inverse_lower(low: Array) -> Array:
    """The inverse of the lower triangular (small) ``low``, itself lower triangular."""
    return np.tril(np.linalg.inv(low))


def cholesky(a: Array) -> tuple[Array, int, float]:
    """Lower Cholesky factor L of a = L L^T; reads the lower triangle of a.

    Returns (L, k, pivot): k = -1 on success; otherwise the first column whose pivot
    a_kk - sum_{j<k} L_kj^2 = pivot is not positive (a is not positive definite), with columns
    0..k-1 of L filled and the rest zero. By blocks of BLOCK columns, left-looking: block j is
    updated by all columns before it (one matmul), factored by LAPACK, and its rows below solved
    against the diagonal block.
    """
    low = np.tril(np.asarray(a, dtype=float))
    n = low.shape[0]
    for j0 in range(0, n, BLOCK):
        j1 = min(j0 + BLOCK, n)
        if j0:
            # A[j0:, j0:j1] -= L[j0:, :j0] L[j0:j1, :j0]^T
            low[j0:, j0:j1] -= low[j0:, :j0] @ low[j0:j1, :j0].T
        diag, k, pivot = _factor_diagonal(low[j0:j1, j0:j1])
        low[j0:j1, j0:j1] = diag
        done = j1 - j0 if k < 0 else k  # columns of this block that are factored
        if j1 < n and done:
            # L[j1:, block] L_jj^T = A[j1:, block]
            low[j1:, j0 : j0 + done] = (
                low[j1:, j0 : j0 + done] @ _inverse_lower(diag[:done, :done]).T
            )
        if k >= 0:
            low[:, j0 + k :] = 0.0
            return low, j0 + k, pivot
    return low, -1, 0.0


def solve_lower(low: Array, b: Array) -> Array:
    """y with L y = b (forward substitution by blocks); reads the lower triangle of L."""
    y = np.array(b, dtype=float)
    n = low.shape[0]
    for j0 in range(0, n, SOLVE_BLOCK):
        j1 = min(j0 + SOLVE_BLOCK, n)
        y[j0:j1] = np.linalg.solve(np.tril(low[j0:j1, j0:j1]), y[j0:j1])
        y[j1:] -= low[j1:, j0:j1] @ y[j0:j1]
    return y


def solve_upper_t(low: Array, y: Array) -> Array:
    """x with L^T x = y (back substitution by blocks); reads the lower triangle of L."""
    x = np.array(y, dtype=float)
    n = low.shape[0]
    for j1 in range(n, 0, -SOLVE_BLOCK):
        j0 = max(j1 - SOLVE_BLOCK, 0)
        rest = x[j0:j1] - low[j1:, j0:j1].T @ x[j1:]
        x[j0:j1] = np.linalg.solve(np.tril(low[j0:j1, j0:j1]).T, rest)
    return x


def solve_cholesky(low: Array, rhs: Array) -> Array:
    """x with L L^T x = rhs."""
    return solve_upper_t(low, solve_lower(low, rhs))


def solve_pivoted(a: Array, b: Array) -> Array | None:
    """x with a x = b by Gaussian elimination with partial pivoting; None if a is singular (a
    pivot |u_kk| <= n eps max(1, max |a_ij|)).

    Blocked LU (right-looking): the column loop on a panel of SOLVE_BLOCK columns (kept
    transposed, so that its columns are contiguous), its row swaps applied to the other columns
    at once, then one triangular solve and one matmul for the rest; P a = L U then gives x by
    two triangular solves.
    """
    n = a.shape[0]
    m = np.array(a, dtype=float)
    x = np.array(b, dtype=float)
    if n == 0:
        return x
    tol = n * np.finfo(float).eps * max(1.0, float(np.max(np.abs(m))))
    for j0 in range(0, n, SOLVE_BLOCK):
        j1 = min(j0 + SOLVE_BLOCK, n)
        panel = m[j0:, j0:j1].T.copy()  # panel[c, i] = m[j0 + i, j0 + c]
        order = np.arange(n - j0)
        for c in range(j1 - j0):
            p = c + int(np.argmax(np.abs(panel[c, c:])))
            if abs(panel[c, p]) <= tol:
                return None
            if p != c:
                panel[:, [c, p]] = panel[:, [p, c]]
                order[[c, p]] = order[[p, c]]
            # multipliers l_ic = m_ic / m_cc, then the panel's row_i -= l_ic row_c
            panel[c, c + 1 :] /= panel[c, c]
            panel[c + 1 :, c + 1 :] -= np.outer(panel[c + 1 :, c], panel[c, c + 1 :])
        m[j0:, j0:j1] = panel.T
        m[j0:, :j0] = m[j0:, :j0][order]
        m[j0:, j1:] = m[j0:, j1:][order]
        x[j0:] = x[j0:][order]
        if j1 < n:
            # U[block, j1:] = L_jj^-1 A[block, j1:], then A[j1:, j1:] -= L[j1:, block] U[block, j1:]
            unit = np.tril(m[j0:j1, j0:j1], -1) + np.eye(j1 - j0)
            m[j0:j1, j1:] = np.linalg.solve(unit, m[j0:j1, j1:])
            m[j1:, j1:] -= m[j1:, j0:j1] @ m[j0:j1, j1:]
    y = solve_lower(np.tril(m, -1) + np.eye(n), x)
    return solve_upper_t(np.triu(m).T, y)


def is_positive_semidefinite(h: Array, psd_tol: float) -> bool:
    """Whether H + psd_tol max(1, ||H||_inf) I has a Cholesky factor (H is PSD up to rounding)."""
    shift = psd_tol * max(1.0, float(np.max(np.abs(h).sum(axis=1), initial=0.0)))
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
    direction of least curvature: z.(H + lam I) z = ||L^T z||^2 ~ s^2. The sign choice is
    sequential: a loop over columns, on contiguous copies of them.
    """
    n = low.shape[0]
    columns = np.ascontiguousarray(low.T)  # row k: column k of L
    p = np.zeros(n)
    w = np.empty(n)
    for k in range(n):
        col, rest = columns[k, k + 1 :], p[k + 1 :]
        wp = (1.0 - p[k]) / columns[k, k]
        wm = (-1.0 - p[k]) / columns[k, k]
        pp = rest + col * wp
        pm = rest + col * wm
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

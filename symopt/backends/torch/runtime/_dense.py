"""Dense linear algebra for the generated PyTorch second-order minimisers: Cholesky with the
failing column and its pivot, triangular and pivoted solves, and the estimates the Moré-Sorensen
subproblem solver needs. The functions and contracts of symopt_numpy's _dense, on float64
tensors of any device, through torch.linalg (LAPACK on the CPU, cuSOLVER or MAGMA on a GPU).
Depends on torch only.

torch.linalg.cholesky_ex reports the failing column (info = k + 1) but leaves the factor
unspecified after a failure, and LAPACK lets NaN pivots through: :func:`cholesky` therefore
recomputes the columns before a failure from the leading block, checks the diagonal for NaN,
and computes the pivot itself.
"""

from __future__ import annotations

import math

import torch

Tensor = torch.Tensor


def _attempt(a: Tensor) -> tuple[Tensor, int]:
    """(L, k) from torch.linalg.cholesky_ex: k = -1, or the first column LAPACK found not
    positive (L is then unspecified), or else the first NaN on L's diagonal."""
    low, info = torch.linalg.cholesky_ex(a)
    info = int(info)
    if info > 0:
        return low, info - 1
    bad = torch.nonzero(~(low.diagonal() > 0.0))
    return low, int(bad[0, 0]) if bad.numel() else -1


def cholesky(a: Tensor) -> tuple[Tensor, int, float]:
    """Lower Cholesky factor L of a = L L^T; reads the lower triangle of a.

    Returns (L, k, pivot): k = -1 on success; otherwise the first column whose pivot
    a_kk - sum_{j<k} L_kj^2 = pivot is not positive (a is not positive definite), with columns
    0..k-1 of L filled and the rest zero. Where LAPACK's pivot rounds to <= 0 but the sum here
    does not, the column is taken and the factorisation goes on from the next one.
    """
    n = a.shape[0]
    low = torch.zeros_like(a)
    j = 0  # columns 0..j-1 of low are done
    while j < n:
        # the Schur complement of what is done: a[j:, j:] - L[j:, :j] L[j:, :j]^T
        s = a[j:, j:] - low[j:, :j] @ low[j:, :j].mT if j else a
        part, k = _attempt(s)
        if k < 0:
            low[j:, j:] = part
            return low, -1, 0.0
        lead = part[:0, :0]
        while k > 0:  # the leading k columns again (a failure there is taken instead)
            lead, first = _attempt(s[:k, :k])
            if first < 0:
                break
            k = first
        if k > 0:
            # L[j:j+k, j:j+k] = lead and L[j+k:, j:j+k] lead^T = s[k:, :k]
            low[j : j + k, j : j + k] = lead
            low[j + k :, j : j + k] = torch.linalg.solve_triangular(
                lead.mT, s[k:, :k], upper=True, left=False
            )
        row = low[j + k, j : j + k]
        pivot = float(s[k, k] - row @ row)
        if not pivot > 0.0:  # also catches NaN
            return low, j + k, pivot
        root = math.sqrt(pivot)
        low[j + k, j + k] = root
        low[j + k + 1 :, j + k] = (s[k + 1 :, k] - low[j + k + 1 :, j : j + k] @ row) / root
        j += k + 1
    return low, -1, 0.0


def _as_matrix(b: Tensor) -> Tensor:
    return b if b.dim() == 2 else b.unsqueeze(1)


def solve_lower(low: Tensor, b: Tensor) -> Tensor:
    """y with L y = b (b a vector or a matrix); reads the lower triangle of L."""
    y = torch.linalg.solve_triangular(low, _as_matrix(b), upper=False)
    return y.reshape(b.shape)


def solve_upper_t(low: Tensor, y: Tensor) -> Tensor:
    """x with L^T x = y; reads the lower triangle of L."""
    x = torch.linalg.solve_triangular(low.mT, _as_matrix(y), upper=True)
    return x.reshape(y.shape)


def solve_cholesky(low: Tensor, rhs: Tensor) -> Tensor:
    """x with L L^T x = rhs."""
    return torch.cholesky_solve(_as_matrix(rhs), low).reshape(rhs.shape)


def solve_pivoted(a: Tensor, b: Tensor) -> Tensor | None:
    """x with a x = b by LU with partial pivoting; None if a is singular (a pivot
    |u_kk| <= n eps max(1, max |a_ij|))."""
    n = a.shape[0]
    if n == 0:
        return b.clone()
    lu, pivots, _ = torch.linalg.lu_factor_ex(a)
    smallest, largest = torch.stack((lu.diagonal().abs().min(), a.abs().max())).tolist()
    if smallest <= n * torch.finfo(a.dtype).eps * max(1.0, largest):
        return None
    return torch.linalg.lu_solve(lu, pivots, _as_matrix(b)).reshape(b.shape)


def is_positive_semidefinite(h: Tensor, psd_tol: float) -> bool:
    """Whether H + psd_tol max(1, ||H||_inf) I has a Cholesky factor (H is PSD up to rounding)."""
    n = h.shape[0]
    h_inf = float(h.abs().sum(dim=1).max()) if n else 0.0
    shift = psd_tol * max(1.0, h_inf)
    return cholesky(h + shift * torch.eye(n, dtype=h.dtype, device=h.device))[1] < 0


def negative_curvature_bound(low: Tensor, k: int, pivot: float) -> float:
    """Upper bound on lam_min(a) after Cholesky of a failed at column k (Moré & Sorensen 1983).

    With l = L[k, :k] and v = (-L_k^-T l, 1, 0, ...): v.a v = pivot <= 0, so
    lam_min(a) <= pivot / ||v||^2.
    """
    if k == 0:
        return pivot
    w = solve_upper_t(low[:k, :k], -low[k, :k])
    return pivot / (1.0 + float(w @ w))


def smallest_singular_pair(low: Tensor) -> tuple[float, Tensor]:
    """Estimate s ~ sigma_min(L^T) and a unit z with ||L^T z|| ~ s (LINPACK estimator).

    Cline, Moler, Stewart & Wilkinson (1979): pick e in {+-1}^n making the solution of L w = e
    large, then solve L^T v = w; s ~ ||w|| / ||v||, z = v / ||v||. In the hard case z is the
    direction of least curvature: z.(H + lam I) z = ||L^T z||^2 ~ s^2. The sign choice is a
    sequential loop over columns: it runs on the CPU (one copy of L), where a step costs a few
    small operations, not a device synchronisation.
    """
    n = low.shape[0]
    columns = low.detach().mT.contiguous().cpu()  # row k: column k of L
    diag = columns.diagonal().tolist()
    p = torch.zeros(n, dtype=low.dtype)
    w = [0.0] * n
    for k in range(n):
        wp = (1.0 - float(p[k])) / diag[k]
        wm = (-1.0 - float(p[k])) / diag[k]
        col, rest = columns[k, k + 1 :], p[k + 1 :]
        pp = rest + col * wp
        pm = rest + col * wm
        if abs(wp) + float(pp.abs().sum()) >= abs(wm) + float(pm.abs().sum()):
            w[k], p[k + 1 :] = wp, pp
        else:
            w[k], p[k + 1 :] = wm, pm
    w = torch.tensor(w, dtype=low.dtype, device=low.device)
    v = solve_upper_t(low, w)
    w_sq, v_sq = torch.stack((w @ w, v @ v)).tolist()
    v_norm = math.sqrt(v_sq)
    return math.sqrt(w_sq) / v_norm, v / v_norm


def boundary_taus(z: Tensor, d: Tensor, radius: float) -> tuple[float, float]:
    """Roots ta <= tb of ||z + t d|| = radius, i.e. (d.d) t^2 + 2 (z.d) t + z.z - r^2 = 0."""
    a, zd, zz = torch.stack((d @ d, z @ d, z @ z)).tolist()
    b = 2.0 * zd
    c = zz - radius * radius
    sq = math.sqrt(max(b * b - 4.0 * a * c, 0.0))
    aux = b + math.copysign(sq, b)  # the two roots without cancellation
    if aux == 0.0:
        return 0.0, 0.0
    ta, tb = -aux / (2.0 * a), -2.0 * c / aux
    return (ta, tb) if ta <= tb else (tb, ta)

"""Linear-algebra conventions of the curvature definitions: column-major ``vec``, ``kron``,
symbol matrices, rotations and an exact solve."""

from __future__ import annotations

import sympy

Matrix = sympy.ImmutableMatrix


def vec(M: sympy.MatrixBase) -> Matrix:
    """Column-major vec: the columns of ``M`` stacked (so ``vec(g a^T) = a kron g``)."""
    return Matrix([M[i, j] for j in range(M.cols) for i in range(M.rows)])


def unvec(v: sympy.MatrixBase, rows: int, cols: int) -> Matrix:
    """The inverse of :func:`vec`."""
    return Matrix(rows, cols, lambda i, j: v[j * rows + i])


def kron(A: sympy.MatrixBase, B: sympy.MatrixBase) -> Matrix:
    """The Kronecker product ``A kron B``: block ``(i, j)`` is ``A[i, j] B``."""
    return Matrix(
        A.rows * B.rows,
        A.cols * B.cols,
        lambda i, j: A[i // B.rows, j // B.cols] * B[i % B.rows, j % B.cols],
    )


def outer(u: sympy.MatrixBase) -> Matrix:
    """``u u^T`` of a column vector."""
    return Matrix(u * u.T)


def symbols_vector(prefix: str, n: int, **assumptions: bool) -> Matrix:
    """``(prefix_1, ..., prefix_n)^T`` of real symbols."""
    return Matrix([sympy.Symbol(f"{prefix}_{i + 1}", real=True, **assumptions) for i in range(n)])


def symbols_matrix(prefix: str, rows: int, cols: int) -> Matrix:
    """A full ``rows x cols`` matrix of real symbols ``prefix_ij``."""
    return Matrix(rows, cols, lambda i, j: sympy.Symbol(f"{prefix}_{i + 1}{j + 1}", real=True))


def symmetric_matrix(prefix: str, n: int) -> Matrix:
    """A general symmetric ``n x n`` matrix of real symbols ``prefix_ij`` (``i <= j``)."""
    return Matrix(
        n, n, lambda i, j: sympy.Symbol(f"{prefix}_{min(i, j) + 1}{max(i, j) + 1}", real=True)
    )


def rotation(c: sympy.Expr, s: sympy.Expr) -> Matrix:
    """``[[c, -s], [s, c]]``: a rotation when ``c^2 + s^2 = 1``. Every symmetric 2 x 2 matrix is
    ``rotation(c, s) diag(e) rotation(c, s)^T`` (flip an eigenvector's sign to make ``det = 1``)."""
    return Matrix([[c, -s], [s, c]])


def solve(M: sympy.MatrixBase, b: sympy.MatrixBase) -> Matrix:
    """``M^-1 b`` by LU, each entry in the cancelled normal form of a rational function."""
    return Matrix(M.LUsolve(b)).applyfunc(sympy.cancel)

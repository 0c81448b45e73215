"""Structured approximations of a curvature matrix: diagonal and block-diagonal (with their
Newton steps), K-FAC's Kronecker factors of a dense layer, and the damped Kronecker inverses."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import sympy

from symopt.curvature.algebra import Matrix, kron, solve, unvec, vec
from symopt.curvature.matrices import at_model, empirical_fisher, gradient, loss_hessian, objective
from symopt.curvature.models import Loss, Model


def diagonal(M: sympy.MatrixBase) -> Matrix:
    """``diag(M)`` as a matrix: every off-diagonal curvature dropped."""
    return Matrix(M.rows, M.cols, lambda i, j: M[i, j] if i == j else 0)


def block_diagonal(M: sympy.MatrixBase, blocks: Mapping[str, Sequence[int]]) -> Matrix:
    """``M`` with the entries between different named blocks set to zero (the blocks must
    partition the indices)."""
    owner = {i: name for name, idx in blocks.items() for i in idx}
    if sorted(owner) != list(range(M.rows)) or sum(map(len, blocks.values())) != M.rows:
        raise ValueError("the blocks must partition the indices")
    return Matrix(M.rows, M.cols, lambda i, j: M[i, j] if owner[i] == owner[j] else 0)


def newton_step(H: sympy.MatrixBase, g: sympy.MatrixBase) -> Matrix:
    """``-H^-1 g``."""
    return solve(H, -g)


def block_newton_step(
    H: sympy.MatrixBase, g: sympy.MatrixBase, blocks: Mapping[str, Sequence[int]]
) -> Matrix:
    """The Newton step of the block-diagonal approximation, one small solve per block."""
    step = sympy.zeros(g.rows, 1)
    for idx in blocks.values():
        sub = solve(H.extract(list(idx), list(idx)), -g.extract(list(idx), [0]))
        for k, i in enumerate(idx):
            step[i] = sub[k]
    return Matrix(step)


def layer_output_gradient(model: Model, loss: Loss, name: str) -> Matrix:
    """``g = dc/ds`` of a layer: the gradient in its bias, since ``ds/db = I``."""
    c = objective(model, loss)
    return Matrix([c.diff(b) for b in model.layer(name).bias])


def layer_gradient(model: Model, loss: Loss, name: str) -> Matrix:
    """``dc/d vec([W | b])`` of one layer (its block of the full gradient)."""
    full = gradient(model, loss)
    return Matrix([full[i] for i in model.blocks[name]])


def layer_output_jacobian(model: Model, name: str) -> Matrix:
    """``B = df/ds`` of a layer (k x out): the Jacobian in its bias."""
    return Matrix(model.output.jacobian(list(model.layer(name).bias)))


def kfac_factors(
    inputs: Sequence[sympy.MatrixBase], grads: Sequence[sympy.MatrixBase]
) -> tuple[Matrix, Matrix]:
    """K-FAC's ``A = 1/N sum abar abar^T`` and ``G = 1/N sum g g^T`` (the ``1/N`` on each)."""
    return empirical_fisher(inputs), empirical_fisher(grads)


def kfac_block(inputs: Sequence[sympy.MatrixBase], grads: Sequence[sympy.MatrixBase]) -> Matrix:
    """K-FAC's approximation ``A kron G`` of a layer's block."""
    A, G = kfac_factors(inputs, grads)
    return kron(A, G)


def exact_layer_block(
    inputs: Sequence[sympy.MatrixBase], grads: Sequence[sympy.MatrixBase]
) -> Matrix:
    """The layer's empirical-Fisher block ``1/N sum vec(g abar^T) vec(g abar^T)^T``."""
    return empirical_fisher([vec(g * a.T) for a, g in zip(inputs, grads, strict=True)])


def layer_kfac_factors(
    model: Model, loss: Loss, name: str, data: Sequence[Mapping[sympy.Symbol, sympy.Basic]]
) -> tuple[Matrix, Matrix]:
    """K-FAC's factors of a layer from the data labels (the empirical-Fisher flavour):
    ``A = 1/N sum abar_n abar_n^T``, ``G = 1/N sum g_n g_n^T`` with ``g_n = dc/ds`` at datum n."""
    layer, g = model.layer(name), layer_output_gradient(model, loss, name)
    inputs = [Matrix(layer.augmented_inputs.xreplace(dict(d))) for d in data]
    return kfac_factors(inputs, [Matrix(g.xreplace(dict(d))) for d in data])


def layer_kfac_ggn_factors(
    model: Model, loss: Loss, name: str, data: Sequence[Mapping[sympy.Symbol, sympy.Basic]]
) -> tuple[Matrix, Matrix]:
    """K-FAC's factors of a layer's GGN block (KFLR): ``A`` as above and
    ``G = 1/N sum B_n^T (d2c/df2) B_n`` with ``B = df/ds``."""
    layer, B = model.layer(name), layer_output_jacobian(model, name)
    inner = Matrix(B.T * at_model(loss_hessian(loss), model, loss) * B)
    A = empirical_fisher([Matrix(layer.augmented_inputs.xreplace(dict(d))) for d in data])
    G = sum((inner.xreplace(dict(d)) for d in data), sympy.zeros(*inner.shape)) / len(data)
    return A, Matrix(G)


def exact_damped_solve(
    A: sympy.MatrixBase, G: sympy.MatrixBase, lam: sympy.Expr, V: sympy.MatrixBase
) -> Matrix:
    """``unvec((A kron G + lam I)^-1 vec(V))`` by a dense solve."""
    M = kron(A, G) + lam * sympy.eye(A.rows * G.rows)
    return unvec(solve(M, vec(V)), G.rows, A.rows)


def eigen_damped_solve(
    QA: sympy.MatrixBase,
    sA: Sequence[sympy.Expr],
    QG: sympy.MatrixBase,
    sG: Sequence[sympy.Expr],
    lam: sympy.Expr,
    V: sympy.MatrixBase,
) -> Matrix:
    """``(A kron G + lam I)^-1 vec(V)`` from ``A = QA diag(sA) QA^T``, ``G = QG diag(sG) QG^T``:
    rotate ``V`` into the eigenbases, divide by ``sG_i sA_j + lam``, rotate back (K-FAC's eigen
    method; only the small factors are decomposed). Entries are left uncancelled."""
    rotated = QG.T * V * QA
    scaled = Matrix(V.rows, V.cols, lambda i, j: rotated[i, j] / (sG[i] * sA[j] + lam))
    return Matrix(QG * scaled * QA.T)


def factored_damped_solve(
    A: sympy.MatrixBase,
    G: sympy.MatrixBase,
    lam_a: sympy.Expr,
    V: sympy.MatrixBase,
    lam_g: sympy.Expr | None = None,
) -> Matrix:
    """``(G + lam_g I)^-1 V (A + lam_a I)^-1`` (``lam_g = lam_a`` by default): the exact inverse of
    ``(A + lam_a I) kron (G + lam_g I)``, not of ``A kron G + lam I``."""
    lam_g = lam_a if lam_g is None else lam_g
    left = solve(G + lam_g * sympy.eye(G.rows), V)
    return Matrix(solve((A + lam_a * sympy.eye(A.rows)).T, left.T).T)

"""The curvature matrices of a loss: Hessian, GGN, Fisher (over the model's own predictions),
expected Hessian, empirical Fisher and the gradient covariance."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import sympy

from symopt.curvature.algebra import Matrix, outer
from symopt.curvature.models import Loss, Model


def at_model(expr: sympy.Basic, model: Model, loss: Loss) -> sympy.Basic:
    """Substitute ``f = f(x, w)``."""
    return expr.xreplace(dict(zip(loss.outputs, model.output, strict=True)))


def objective(model: Model, loss: Loss) -> sympy.Expr:
    """``c(f(x, w), y)``."""
    return at_model(loss.value, model, loss)


def jacobian(model: Model) -> Matrix:
    """``J = df/dw`` (k x P)."""
    return Matrix(model.output.jacobian(model.params))


def gradient(model: Model, loss: Loss) -> Matrix:
    """``dc/dw`` (P x 1)."""
    c = objective(model, loss)
    return Matrix([c.diff(p) for p in model.params])


def hessian(model: Model, loss: Loss) -> Matrix:
    """``d2c/dw2`` (P x P)."""
    return Matrix(sympy.hessian(objective(model, loss), model.params))


def loss_gradient(loss: Loss) -> Matrix:
    """``dc/df`` as a function of the symbols ``f``."""
    return Matrix([loss.value.diff(z) for z in loss.outputs])


def loss_hessian(loss: Loss) -> Matrix:
    """``d2c/df2`` as a function of the symbols ``f`` (and ``y`` for a non-canonical link)."""
    return Matrix(sympy.hessian(loss.value, loss.outputs))


def ggn(model: Model, loss: Loss) -> Matrix:
    """The generalized Gauss-Newton ``J^T (d2c/df2) J``: the Hessian without the model's
    curvature (positive semi-definite when ``c`` is convex in ``f``)."""
    J = jacobian(model)
    return Matrix(J.T * at_model(loss_hessian(loss), model, loss) * J)


def affine_in(v: sympy.MatrixBase, y: Sequence[sympy.Symbol]) -> tuple[Matrix, Matrix]:
    """``(u, V)`` with ``v = u + V y`` (``V`` of ``v``'s entries in order, for a matrix ``v``);
    raises when ``v`` is not affine in ``y``."""
    V = Matrix(Matrix(list(v)).jacobian(list(y)))
    if V.free_symbols & set(y):
        raise ValueError("not affine in the labels")
    return Matrix(v.xreplace(dict.fromkeys(y, 0))), V


def expected_outer(v: sympy.MatrixBase, loss: Loss, model: Model | None = None) -> Matrix:
    """``E_{y ~ p(y|f)}[v v^T]`` for a ``v`` affine in ``y``, exactly (no sampling); with a
    model, the distribution's parameters are taken at ``f = f(x, w)``."""
    u, V = affine_in(v, loss.labels)
    value = loss.distribution.expected_outer(u, V)
    return Matrix(value if model is None else at_model(value, model, loss))


def expectation(v: sympy.MatrixBase, loss: Loss, model: Model | None = None) -> Matrix:
    """``E_{y ~ p(y|f)}[v]`` for a ``v`` affine in ``y``: ``v`` at ``y = E[y]``."""
    affine_in(v, loss.labels)
    mean = loss.distribution.mean
    if model is not None:
        mean = at_model(mean, model, loss)
    return Matrix(v.xreplace(dict(zip(loss.labels, mean, strict=True))))


def loss_fisher(loss: Loss) -> Matrix:
    """``E_y[dc/df dc/df^T]`` in the output space."""
    return expected_outer(loss_gradient(loss), loss)


def fisher(model: Model, loss: Loss) -> Matrix:
    """The Fisher ``E_{y ~ p(y|f(x,w))}[dc/dw dc/dw^T]``, over the model's own predictions."""
    return expected_outer(gradient(model, loss), loss, model)


def expected_hessian(model: Model, loss: Loss) -> Matrix:
    """``E_{y ~ p(y|f(x,w))}[d2c/dw2]`` (every loss here is affine in ``y``)."""
    return expectation(hessian(model, loss), loss, model)


def datum(model: Model, loss: Loss, n: int) -> dict[sympy.Symbol, sympy.Symbol]:
    """Symbols for data point ``n``: ``x_i -> x{n}_i`` and ``y_j -> y{n}_j``."""
    names = {**{x: f"x{n}" for x in model.inputs}, **{y: f"y{n}" for y in loss.labels}}
    return {
        s: sympy.Symbol(f"{prefix}_{s.name.split('_')[1]}", real=True)
        for s, prefix in names.items()
    }


def per_example_gradients(
    model: Model, loss: Loss, data: Sequence[Mapping[sympy.Symbol, sympy.Basic]]
) -> list[Matrix]:
    """``dc/dw`` at each data point (a mapping of the inputs and labels to values)."""
    g = gradient(model, loss)
    return [Matrix(g.xreplace(dict(d))) for d in data]


def mean_gradient(grads: Sequence[sympy.MatrixBase]) -> Matrix:
    """``gbar = 1/N sum_n g_n``."""
    return Matrix(sum(grads, sympy.zeros(*grads[0].shape)) / len(grads))


def empirical_fisher(grads: Sequence[sympy.MatrixBase], reduction: str = "mean") -> Matrix:
    """``1/N sum_n g_n g_n^T`` over the data labels (``reduction="sum"``: Kunstner et al.'s sum)."""
    total = sum((outer(g) for g in grads), sympy.zeros(grads[0].rows, grads[0].rows))
    return Matrix(total / len(grads) if reduction == "mean" else total)


def gradient_covariance(grads: Sequence[sympy.MatrixBase], ddof: int = 0) -> Matrix:
    """``1/(N - ddof) sum_n (g_n - gbar)(g_n - gbar)^T`` (``ddof=0``: the biased ``1/N`` one)."""
    gbar = mean_gradient(grads)
    total = sum((outer(g - gbar) for g in grads), sympy.zeros(gbar.rows, gbar.rows))
    return Matrix(total / (len(grads) - ddof))

"""Curvature matrices of a loss and their structured approximations, as SymPy definitions.

Everything here is defined over an explicit small model ``f(x, w)`` (dense layers with symbolic
weights) and a loss ``c(f, y)`` that is the negative log-likelihood of a predictive distribution
``p(y | f)``, so that :mod:`symopt.checks.curvature` can prove the identities between them:

* Hessian ``H = d2c/dw2``; generalized Gauss-Newton ``G = J^T (d2c/df2) J`` with ``J = df/dw``
  (Schraudolph 2002); ``H = G + sum_k (dc/df_k) d2f_k/dw2``.
* Fisher ``F = E_{y ~ p(y|f)}[grad grad^T]`` (the expectation over the model's own predictive
  distribution; Martens 2020). ``F = G`` when ``d2c/df2`` does not depend on ``y`` (a canonical
  link: softmax cross-entropy, squared error, Poisson with log link); ``F = E_y[H]`` always.
* Empirical Fisher ``EF = 1/N sum_n g_n g_n^T`` over the data labels (Kunstner et al. 2019 write it
  without the ``1/N``), gradient covariance ``C = 1/N sum_n (g_n - gbar)(g_n - gbar)^T`` (the
  biased, ``1/N`` one), ``gbar = 1/N sum_n g_n``: ``EF = C + gbar gbar^T``.
* K-FAC (Martens & Grosse 2015): for a dense layer ``s = W a + b`` with weights ``Wb = [W | b]``
  and ``abar = [a; 1]``, ``dc/dWb = g abar^T`` with ``g = dc/ds`` (= ``dc/db``). With the
  column-major ``vec`` (stack the columns; ``vec(B X C) = (C^T kron B) vec(X)``) the layer's
  parameters are ``vec(Wb)`` and ``vec(g abar^T) = abar kron g``, so one datum's block is
  ``(abar abar^T) kron (g g^T)``: the input factor ``A`` is on the left, the gradient factor ``G``
  on the right. Over a batch K-FAC uses ``A = 1/N sum abar abar^T`` and ``G = 1/N sum g g^T``.
* Damped K-FAC inverses: the exact ``(A kron G + lam I)^-1 vec(V)`` via eigendecompositions, and
  the cheaper ``(G + lam I)^-1 V (A + lam I)^-1``, which inverts ``(A + lam I) kron (G + lam I)``.
* TONGA (Le Roux et al. 2008): ``(lam I + U U^T)^-1 U = U (lam I + U^T U)^-1``.

The definitions live in :mod:`.algebra` (conventions), :mod:`.models` (models and losses),
:mod:`.matrices` (the curvature matrices) and :mod:`.approximations` (structured
approximations); every public name is importable from here.
"""

from __future__ import annotations

from symopt.curvature.algebra import (
    Matrix,
    kron,
    outer,
    rotation,
    solve,
    symbols_matrix,
    symbols_vector,
    symmetric_matrix,
    unvec,
    vec,
)
from symopt.curvature.approximations import (
    block_diagonal,
    block_newton_step,
    diagonal,
    eigen_damped_solve,
    exact_damped_solve,
    exact_layer_block,
    factored_damped_solve,
    kfac_block,
    kfac_factors,
    layer_gradient,
    layer_kfac_factors,
    layer_kfac_ggn_factors,
    layer_output_gradient,
    layer_output_jacobian,
    newton_step,
)
from symopt.curvature.matrices import (
    affine_in,
    at_model,
    datum,
    empirical_fisher,
    expectation,
    expected_hessian,
    expected_outer,
    fisher,
    ggn,
    gradient,
    gradient_covariance,
    hessian,
    jacobian,
    loss_fisher,
    loss_gradient,
    loss_hessian,
    mean_gradient,
    objective,
    per_example_gradients,
)
from symopt.curvature.models import (
    ACTIVATIONS,
    Categorical,
    Distribution,
    Layer,
    Loss,
    Model,
    Moments,
    linear_model,
    poisson,
    sigmoid,
    sigmoid_squared_error,
    softmax,
    softmax_cross_entropy,
    squared_error,
    two_layer_model,
)

__all__ = [
    "ACTIVATIONS",
    "Categorical",
    "Distribution",
    "Layer",
    "Loss",
    "Matrix",
    "Model",
    "Moments",
    "affine_in",
    "at_model",
    "block_diagonal",
    "block_newton_step",
    "datum",
    "diagonal",
    "eigen_damped_solve",
    "empirical_fisher",
    "exact_damped_solve",
    "exact_layer_block",
    "expectation",
    "expected_hessian",
    "expected_outer",
    "factored_damped_solve",
    "fisher",
    "ggn",
    "gradient",
    "gradient_covariance",
    "hessian",
    "jacobian",
    "kfac_block",
    "kfac_factors",
    "kron",
    "layer_gradient",
    "layer_kfac_factors",
    "layer_kfac_ggn_factors",
    "layer_output_gradient",
    "layer_output_jacobian",
    "linear_model",
    "loss_fisher",
    "loss_gradient",
    "loss_hessian",
    "mean_gradient",
    "newton_step",
    "objective",
    "outer",
    "per_example_gradients",
    "poisson",
    "rotation",
    "sigmoid",
    "sigmoid_squared_error",
    "softmax",
    "softmax_cross_entropy",
    "solve",
    "squared_error",
    "symbols_matrix",
    "symbols_vector",
    "symmetric_matrix",
    "two_layer_model",
    "unvec",
    "vec",
]

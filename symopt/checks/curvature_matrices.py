"""Identities between the curvature matrices: the softmax Hessian, GGN = Fisher for matching
losses (and, negative, not for non-canonical links), Fisher = E_y[H], E_y[grad] = 0, Hessian =
GGN (+ the residual term), and the empirical Fisher as covariance plus mean outer product.

Each check takes no arguments and returns one CheckResult; the registry is
:mod:`symopt.checks.curvature`."""

from __future__ import annotations

import sympy

from symopt import curvature as cv
from symopt.checks.decide import Matrix, normal, proved, refuted, short
from symopt.checks.result import CheckResult

# --- GGN, Fisher and Hessian -----------------------------------------------------------------


def check_softmax_hessian() -> CheckResult:
    loss = cv.softmax_cross_entropy(3)
    p = loss.distribution.probs
    residual = cv.loss_hessian(loss) - (sympy.diag(*p) - p * p.T)
    label_free = not (cv.loss_hessian(loss).free_symbols & set(loss.labels))
    name = "the softmax cross-entropy Hessian in f is diag(p) - p p^T, free of the label"
    result = proved(name, [("k = 3", residual)], "exact identity at k = 3 classes")
    if result.passed and not label_free:
        return CheckResult(name, False, "symbolic", "the Hessian depends on the label")
    return result


def _ggn_minus_fisher(model: cv.Model, loss: cv.Loss) -> Matrix:
    return Matrix(cv.ggn(model, loss) - cv.fisher(model, loss))


def _chain_rule(model: cv.Model, loss: cv.Loss) -> Matrix:
    """``dc/dw - J^T dc/df``: zero, so ``dc/dw`` is linear in ``dc/df`` through a label-free J."""
    dc_df = cv.at_model(cv.loss_gradient(loss), model, loss)
    return Matrix(cv.gradient(model, loss) - cv.jacobian(model).T * dc_df)


def _ggn_is_fisher(name: str, loss: cv.Loss, linear: cv.Model, net: cv.Model) -> CheckResult:
    """In f; directly in w for a linear model; for a net through the chain rule, since then
    ``F = E_y[J^T dc/df dc/df^T J] = J^T E_y[dc/df dc/df^T] J = J^T (d2c/df2) J = G``."""
    k = len(loss.outputs)
    return proved(
        name,
        [
            (f"in f, k = {k}", cv.loss_hessian(loss) - cv.loss_fisher(loss)),
            (f"in w, {linear.name} model", _ggn_minus_fisher(linear, loss)),
            (f"chain rule, {net.name} net", _chain_rule(net, loss)),
        ],
        f"exact: d2c/df2 = E_y[dc/df dc/df^T] (k = {k}); J^T (d2c/df2) J = E_y[dc/dw dc/dw^T] "
        f"in w for the {linear.name} model; for the {net.name} net dc/dw = J^T dc/df with J "
        "free of y, so its Fisher is J^T E_y[dc/df dc/df^T] J = its GGN",
    )


def check_ggn_fisher_softmax() -> CheckResult:
    return _ggn_is_fisher(
        "for softmax cross-entropy the GGN equals the Fisher",
        cv.softmax_cross_entropy(3),
        cv.linear_model(2, 3),
        cv.two_layer_model(2, 2, 3),
    )


def check_ggn_fisher_squared_error() -> CheckResult:
    return _ggn_is_fisher(
        "for squared error (Gaussian, unit variance) the GGN equals the Fisher",
        cv.squared_error(2),
        cv.linear_model(2, 2),
        cv.two_layer_model(2, 2, 2),
    )


def check_ggn_fisher_poisson_log() -> CheckResult:
    return _ggn_is_fisher(
        "for a Poisson with log link (canonical) the GGN equals the Fisher",
        cv.poisson("log"),
        cv.linear_model(2, 1),
        cv.two_layer_model(2, 2, 1),
    )


def _scalar_witness(model: cv.Model, loss: cv.Loss, f: sympy.Expr) -> dict:
    """Inputs 1, first weight ``f``, other weights and the label 0: the model's output is ``f``."""
    zero, one = sympy.Integer(0), sympy.Integer(1)
    values = dict.fromkeys(model.params, zero) | {model.layers[0].weight[0, 0]: f}
    return values | dict.fromkeys(model.inputs, one) | dict.fromkeys(loss.labels, zero)


def _ggn_not_fisher(name: str, loss: cv.Loss, f: sympy.Expr) -> CheckResult:
    model = cv.linear_model(2, 1)
    output = sympy.factor(normal(cv.loss_hessian(loss)[0, 0] - cv.loss_fisher(loss)[0, 0]))
    return refuted(
        name,
        _ggn_minus_fisher(model, loss),
        _scalar_witness(model, loss, f),
        f"{model.name}, {loss.name}",
        f"in f: d2c/df2 - E_y[(dc/df)^2] = {short(output)} depends on the label y",
    )


def check_ggn_fisher_sigmoid_squared_error() -> CheckResult:
    return _ggn_not_fisher(
        "for squared error on a sigmoid (non-canonical link) the GGN equals the Fisher",
        cv.sigmoid_squared_error(),
        sympy.log(2),
    )


def check_ggn_fisher_poisson_identity() -> CheckResult:
    return _ggn_not_fisher(
        "for a Poisson with identity link (non-canonical) the GGN equals the Fisher",
        cv.poisson("identity"),
        sympy.Integer(1),
    )


def _every_loss() -> list[tuple[cv.Model, cv.Loss]]:
    return [
        (cv.linear_model(2, 3), cv.softmax_cross_entropy(3)),
        (cv.linear_model(2, 2), cv.squared_error(2)),
        (cv.linear_model(2, 1), cv.poisson("log")),
        (cv.linear_model(2, 1), cv.poisson("identity")),
        (cv.linear_model(2, 1), cv.sigmoid_squared_error()),
    ]


def check_fisher_expected_hessian() -> CheckResult:
    cases = _every_loss()
    residuals = [
        (f"{m.name}, {loss.name}", cv.fisher(m, loss) - cv.expected_hessian(m, loss))
        for m, loss in cases
    ]
    names = ", ".join(loss.name for _, loss in cases)
    return proved(
        "the Fisher is the expected Hessian E_y[H], canonical link or not",
        residuals,
        f"exact for {names}",
    )


def check_score_mean_zero() -> CheckResult:
    cases = _every_loss()
    residuals = [
        (f"{m.name}, {loss.name}", cv.expectation(cv.gradient(m, loss), loss, m))
        for m, loss in cases
    ]
    return proved(
        "the gradient has mean 0 under the model's predictions, so the Fisher is its covariance",
        residuals,
        f"E_y[dc/dw] = 0 exactly for {len(cases)} losses",
    )


def check_hessian_ggn_linear() -> CheckResult:
    model, loss = cv.linear_model(2, 3), cv.softmax_cross_entropy(3)
    return proved(
        "for a linear model the Hessian equals the GGN",
        [(f"{model.name}, {loss.name}", cv.hessian(model, loss) - cv.ggn(model, loss))],
        f"d2f/dw2 = 0, exact for the {model.name} model with {loss.name}",
    )


def _residual_term(model: cv.Model, loss: cv.Loss) -> Matrix:
    """``sum_k dc/df_k d2f_k/dw2``: what the GGN leaves out of the Hessian."""
    grad_f = cv.at_model(cv.loss_gradient(loss), model, loss)
    total = sympy.zeros(len(model.params), len(model.params))
    for k, fk in enumerate(model.output):
        total += grad_f[k] * sympy.hessian(fk, model.params)
    return Matrix(total)


def check_hessian_ggn_plus_residual() -> CheckResult:
    model, loss = cv.two_layer_model(2, 2, 2), cv.squared_error(2)
    residual = cv.hessian(model, loss) - cv.ggn(model, loss) - _residual_term(model, loss)
    return proved(
        "the Hessian is the GGN plus sum_k dc/df_k d2f_k/dw2",
        [(f"{model.name}, {loss.name}", residual)],
        f"exact for the {model.name} model with {loss.name}",
    )


def check_hessian_ggn_nonlinear() -> CheckResult:
    model, loss = cv.two_layer_model(1, 1, 1), cv.squared_error(1)
    w1, b1 = model.layers[0].weight[0, 0], model.layers[0].bias[0]
    w2, b2 = model.layers[1].weight[0, 0], model.layers[1].bias[0]
    x, y = model.inputs[0], loss.labels[0]
    witness = {x: 1, w1: 0, b1: sympy.atanh(sympy.Rational(1, 2)), w2: 1, b2: 0, y: 0}
    return refuted(
        "for a nonlinear model the Hessian equals the GGN",
        cv.hessian(model, loss) - cv.ggn(model, loss),
        witness,
        f"{model.name}, {loss.name}",
        "the difference is (f - y) d2f/dw2",
    )


# --- empirical Fisher ------------------------------------------------------------------------


def check_empirical_fisher() -> CheckResult:
    residuals = []
    for n in (2, 3):
        grads = [cv.symbols_vector(f"g{k + 1}", 3) for k in range(n)]
        ef, gbar = cv.empirical_fisher(grads), cv.mean_gradient(grads)
        biased = ef - cv.gradient_covariance(grads) - gbar * gbar.T
        unbiased = ef - sympy.Rational(n - 1, n) * cv.gradient_covariance(grads, 1) - gbar * gbar.T
        residuals += [(f"N = {n}", biased), (f"N = {n}, 1/(N-1) covariance", unbiased)]
    return proved(
        "the empirical Fisher is the gradient covariance plus gbar gbar^T",
        residuals,
        "1/N sum g g^T = C + gbar gbar^T with C = 1/N sum (g - gbar)(g - gbar)^T "
        "(= (N-1)/N times the 1/(N-1) covariance); exact for N = 2, 3 gradients in R^3",
    )

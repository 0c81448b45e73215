"""Curvature matrices: the symbolic identities, their negative cases, and a torch cross-check.

The symbolic definitions in :mod:`symopt.curvature` are evaluated at random float64 points and
compared with ``torch.func`` (autograd Hessians and Jacobians of the same network written in
torch), so the definitions are not only consistent with each other but with autodiff.
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy

from symopt import curvature as cv
from symopt.checks.curvature import (
    CHECKS,
    NEGATIVE,
    as_expected,
    run_curvature_checks,
    stated,
)

POSITIVE = sorted(set(CHECKS) - NEGATIVE)


@pytest.mark.parametrize("name", POSITIVE)
def test_positive_identity_is_proved_symbolically(name):
    (result,) = run_curvature_checks([name])
    assert result.passed and result.method == "symbolic", result.detail
    assert result.seconds < 20, f"{name} took {result.seconds:.1f} s"


@pytest.mark.parametrize("name", sorted(NEGATIVE))
def test_negative_case_fails_with_a_counterexample(name):
    (result,) = run_curvature_checks([name])
    assert not result.passed and result.method == "symbolic", result.detail
    assert "of the difference is" in result.detail and " at " in result.detail
    assert "no exact nonzero" not in result.detail  # the witness is a counterexample
    assert as_expected(name, result) and stated(name, result).passed
    assert stated(name, result).name.startswith("NOT: ")


def test_registry():
    assert NEGATIVE < set(CHECKS)
    assert len(CHECKS) >= 20
    with pytest.raises(KeyError):
        run_curvature_checks(["no_such_check"])


def test_factored_damping_example_reports_its_error():
    (result,) = run_curvature_checks(["factored_solve_exact"])
    assert "relative error 0.0857" in result.detail


# --- conventions -----------------------------------------------------------------------------


def test_vec_is_column_major_and_kron_matches_numpy():
    M = sympy.Matrix([[1, 2, 3], [4, 5, 6]])
    assert list(cv.vec(M)) == list(np.array(M.tolist()).flatten(order="F"))
    assert cv.unvec(cv.vec(M), 2, 3) == M
    A, B = sympy.Matrix([[1, 2], [3, 4]]), sympy.Matrix([[0, 5, 1], [6, 7, 2]])
    assert np.array_equal(np.array(cv.kron(A, B).tolist(), dtype=int), np.kron(A, B))
    a, g = sympy.Matrix([1, 2, 3]), sympy.Matrix([5, 7])
    assert cv.vec(g * a.T) == cv.kron(a, g)


def test_block_diagonal_needs_a_partition():
    H = cv.symmetric_matrix("h", 3)
    assert cv.block_diagonal(H, {"a": (0, 1), "b": (2,)})[0, 2] == 0
    with pytest.raises(ValueError):
        cv.block_diagonal(H, {"a": (0, 1)})


def test_empirical_fisher_conventions():
    grads = [sympy.Matrix([1, 2]), sympy.Matrix([3, -1])]
    assert cv.empirical_fisher(grads, "sum") == 2 * cv.empirical_fisher(grads)
    assert cv.gradient_covariance(grads, 1) == 2 * cv.gradient_covariance(grads)
    model, loss = cv.linear_model(2, 1), cv.squared_error(1)
    data = [
        dict(zip((*model.inputs, *loss.labels), v, strict=True)) for v in ((1, 2, 3), (0, 1, -1))
    ]
    per = cv.per_example_gradients(model, loss, data)
    f = model.output[0].xreplace(data[1])  # x = (0, 1): dc/dw = (f - y) (x_1, x_2, 1)
    assert per[1] == sympy.Matrix([0, f + 1, f + 1])


# --- torch cross-check -----------------------------------------------------------------------

torch = pytest.importorskip("torch")
func = pytest.importorskip("torch.func")


def _torch_net(model: cv.Model, activation):
    """The same network in torch, with the same parameter order (each layer's vec([W | b]))."""
    shapes = [(layer.weight.rows, layer.weight.cols) for layer in model.layers]

    def f(theta, x):
        h, start = x, 0
        for k, (rows, cols) in enumerate(shapes):
            size = rows * (cols + 1)
            Wb = theta[start : start + size].reshape(cols + 1, rows).T  # column-major unvec
            start += size
            h = Wb[:, :cols] @ h + Wb[:, cols]
            if k < len(shapes) - 1:
                h = activation(h)
        return h

    return f


def _ce(z, y):
    return -(y * z).sum() + torch.logsumexp(z, 0)


def _se(z, y):
    return ((z - y) ** 2).sum() / 2


def _numeric(model, loss, *matrices, seed=0):
    """Evaluate symbolic matrices at a random point; also return the point."""
    rng = np.random.default_rng(seed)
    theta = rng.normal(size=len(model.params))
    x = rng.normal(size=len(model.inputs))
    k = len(loss.labels)
    y = np.eye(k)[1] if loss.name == "softmax cross-entropy" else rng.normal(size=k)
    args = (model.params, model.inputs, loss.labels)
    values = [
        np.array(
            sympy.lambdify(args, M, "numpy", cse=True)(theta, x, y),
            dtype=float,
        )
        for M in matrices
    ]
    return (theta, x, y), values


@pytest.fixture(scope="module")
def softmax_case():
    model, loss = cv.two_layer_model(2, 2, 3), cv.softmax_cross_entropy(3)
    matrices = (cv.hessian(model, loss), cv.ggn(model, loss), cv.fisher(model, loss))
    point, values = _numeric(model, loss, *matrices)
    return model, loss, point, values


def test_symbolic_hessian_ggn_fisher_match_torch_for_softmax_ce(softmax_case):
    model, loss, (theta, x, y), (H, G, F) = softmax_case
    f = _torch_net(model, torch.tanh)
    t, xt, yt = (torch.tensor(v, dtype=torch.float64) for v in (theta, x, y))
    H_torch = func.hessian(lambda th: _ce(f(th, xt), yt))(t)
    J = func.jacrev(lambda th: f(th, xt))(t)
    z = f(t, xt)
    H_c = func.hessian(lambda zz: _ce(zz, yt))(z)
    p = torch.softmax(z, 0)
    assert torch.allclose(H_c, torch.diag(p) - torch.outer(p, p), atol=1e-12)
    grads = [
        func.grad(lambda th, i=i: _ce(f(th, xt), torch.eye(3)[i].double()))(t) for i in range(3)
    ]
    F_torch = sum(p[i] * torch.outer(grads[i], grads[i]) for i in range(3))
    np.testing.assert_allclose(H, H_torch.numpy(), atol=1e-10)
    np.testing.assert_allclose(G, (J.T @ H_c @ J).numpy(), atol=1e-10)
    np.testing.assert_allclose(F, F_torch.numpy(), atol=1e-10)
    np.testing.assert_allclose(G, F, atol=1e-10)
    assert np.abs(H - G).max() > 1e-3  # a nonlinear net: the Hessian is not its GGN


def test_symbolic_ggn_matches_torch_for_squared_error():
    model, loss = cv.two_layer_model(2, 3, 2), cv.squared_error(2)
    (theta, x, y), (H, G, F) = _numeric(
        model, loss, cv.hessian(model, loss), cv.ggn(model, loss), cv.fisher(model, loss), seed=1
    )
    f = _torch_net(model, torch.tanh)
    t, xt, yt = (torch.tensor(v, dtype=torch.float64) for v in (theta, x, y))
    J = func.jacrev(lambda th: f(th, xt))(t)
    np.testing.assert_allclose(
        H, func.hessian(lambda th: _se(f(th, xt), yt))(t).numpy(), atol=1e-10
    )
    np.testing.assert_allclose(G, (J.T @ J).numpy(), atol=1e-10)
    np.testing.assert_allclose(F, G, atol=1e-10)


def test_layer_gradient_layout_and_single_datum_kfac_match_torch(softmax_case):
    model, loss, (theta, x, y), _ = softmax_case
    f = _torch_net(model, torch.tanh)
    t, xt, yt = (torch.tensor(v, dtype=torch.float64) for v in (theta, x, y))
    # torch.nn.Linear's layout: weight (out x in) and bias; the symbolic order is vec([W | b])
    W1 = torch.nn.Linear(2, 2).double()
    W2 = torch.nn.Linear(2, 3).double()
    blocks = model.blocks
    with torch.no_grad():
        for lin, idx in zip((W1, W2), blocks.values(), strict=True):
            Wb = t[list(idx)].reshape(lin.in_features + 1, lin.out_features).T
            lin.weight.copy_(Wb[:, :-1])
            lin.bias.copy_(Wb[:, -1])
    _ce(W2(torch.tanh(W1(xt))), yt).backward()
    full = func.grad(lambda th: _ce(f(th, xt), yt))(t)
    hidden = torch.tanh(W1(xt)).detach()
    for lin, a, idx in ((W1, xt, blocks["layer1"]), (W2, hidden, blocks["layer2"])):
        grad_Wb = torch.cat([lin.weight.grad, lin.bias.grad[:, None]], 1)
        layer_grad = grad_Wb.T.reshape(-1)  # column-major vec
        assert torch.allclose(layer_grad, full[list(idx)], atol=1e-12)
        abar, g = torch.cat([a, torch.ones(1, dtype=torch.float64)]), lin.bias.grad
        assert torch.allclose(layer_grad, torch.kron(abar, g), atol=1e-12)
        kfac = torch.kron(torch.outer(abar, abar), torch.outer(g, g))
        assert torch.allclose(torch.outer(layer_grad, layer_grad), kfac, atol=1e-12)


def test_non_canonical_ggn_differs_from_fisher_numerically():
    """Squared error on a sigmoid: the GGN at a label differs from the Fisher, but its average
    over the model's labels (the expected Hessian's GGN part) is the Fisher."""
    model, loss = cv.linear_model(2, 1), cv.sigmoid_squared_error()
    G, F = cv.ggn(model, loss), cv.fisher(model, loss)
    (theta, x, y), (G_num, F_num) = _numeric(model, loss, G, F, seed=2)
    assert np.abs(G_num - F_num).max() > 1e-3
    G_mean = cv.expectation(G, loss, model)
    _, (G_mean_num,) = _numeric(model, loss, G_mean, seed=2)
    np.testing.assert_allclose(G_mean_num, F_num, atol=1e-12)

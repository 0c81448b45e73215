"""Curvature of a real network and the NumPy second-order optimizers that use it.

The two-moons MLP of :mod:`symopt.moons` (explicit NumPy forward and backward passes) gives the
exact generalized Gauss-Newton matrix from per-datum Jacobians, cross-checked with ``torch.func``;
its diagonal and diagonal blocks feed the generated ``DiagNewton`` and ``BlockNewton``, and its
layer inputs and backpropagated output-Hessian roots feed ``KFAC``. Checked here: K-FAC's factors
give the exact GGN block for one datum, and for a deep linear network with squared error over a
whole batch (the case curvlinops tests KFAC on); the eigen-based damped solve is
``numpy.linalg.solve`` of ``(A kron G + lam I) vec(V)``; and each optimizer trains the MLP on two
moons (full batch) to a training loss <= 0.1 with >= 95% accuracy.

``python tests/test_numpy_curvature.py`` prints the steps and wall time each method takes.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest

if __name__ == "__main__":  # run as a script: the same paths as tests/conftest.py
    ROOT = Path(__file__).resolve().parents[1]
    sys.path[:0] = [str(ROOT), str(ROOT / "generated" / "numpy")]

from symopt_numpy.block_newton import BlockNewton  # noqa: E402
from symopt_numpy.diag_newton import DiagNewton  # noqa: E402
from symopt_numpy.kfac import KFAC, eigen, input_factor, kronecker_step, output_factor  # noqa: E402

from symopt import moons  # noqa: E402

SIZES = (2, 16, 16, 1)
#: Training: full batch on the plot command's two-moons data, until the loss is <= TARGET.
TARGET = 0.1
#: Hyperparameters that train the MLP (each spec's defaults are for networks in general: the
#: diagonal and block methods diverge here with lam = 1e-3, see the report in the test below).
TRAIN = {
    "diag_newton": {"lr": 1.0, "lam": 0.1},
    "block_newton": {"lr": 0.3, "lam": 0.01},
    "kfac": {},  # the spec's defaults: lr 0.1, lam 1e-3, decay 0.95, inverse_every 10, kl_clip 1e-3
}
#: Steps each run took when these tests were written (deterministic: fixed seeds), with room.
STEP_BUDGET = {"diag_newton": 90, "block_newton": 20, "kfac": 50}


def small_mlp(seed=0, sizes=(2, 5, 4, 1)):
    X, y = moons.make_moons(24, 0.2, seed)
    return moons.init_mlp(sizes, seed), X, y


# --- the network's derivatives -----------------------------------------------------------------


def test_old_api_still_works_and_equals_the_layer_functions():
    params, X, y = small_mlp()
    logits, activations = moons.forward(params, X)
    z, inputs = moons.forward_layers(params, X)
    np.testing.assert_array_equal(logits, z[:, 0])
    assert len(inputs) == len(activations) == 3
    dlogits = np.linspace(-1.0, 1.0, len(X))
    grads = moons.backward(params, activations, dlogits)
    deltas = moons.output_gradients(params, inputs, dlogits)
    for got, want in zip(moons.layer_gradients(inputs, deltas), grads, strict=True):
        np.testing.assert_array_equal(got, want)
    assert [g.shape for g in grads] == [p.shape for p in params]
    for a, p in zip(inputs, params[::2], strict=True):
        assert a.shape == (len(X), p.shape[0])  # each layer's inputs


def test_jacobian_matches_central_differences():
    params, X, _ = small_mlp(1)
    for activation in ("tanh", "identity"):
        J = moons.jacobian(params, X, activation)
        theta = moons.flatten(params)
        assert J.shape == (len(X), 1, theta.size)
        h = 1e-6
        for k in range(0, theta.size, 5):
            step = np.zeros_like(theta)
            step[k] = h
            up = moons.forward_layers(moons.unflatten(theta + step, params), X, activation)[0]
            down = moons.forward_layers(moons.unflatten(theta - step, params), X, activation)[0]
            np.testing.assert_allclose((up - down)[:, 0] / (2 * h), J[:, 0, k], atol=1e-8)


def test_ggn_matches_torch_func():
    torch = pytest.importorskip("torch")
    params, X, _ = small_mlp(2)
    shapes = [p.shape for p in params]

    def logits(theta):
        h = torch.as_tensor(X)
        start, weights = 0, []
        for shape in shapes:
            size = int(np.prod(shape))
            weights.append(theta[start : start + size].reshape(shape))
            start += size
        for i in range(0, len(weights), 2):
            h = h @ weights[i] + weights[i + 1]
            if i + 2 < len(weights):
                h = torch.tanh(h)
        return h[:, 0]

    theta = torch.as_tensor(moons.flatten(params))
    J = torch.func.jacrev(logits)(theta)
    p = torch.sigmoid(logits(theta))
    ggn = (J.T * (p * (1 - p) / len(X))) @ J
    np.testing.assert_allclose(moons.ggn(params, X), ggn.numpy(), rtol=1e-10, atol=1e-14)
    # the GGN is the Hessian of the mean loss without the network's own curvature
    y = torch.as_tensor(moons.make_moons(24, 0.2, 2)[1])

    def loss(theta):
        z = logits(theta)
        return torch.mean(torch.nn.functional.softplus(z) - y * z)

    hessian = torch.func.hessian(loss)(theta).numpy()
    assert not np.allclose(hessian, ggn.numpy(), atol=1e-6)


def test_diagonal_and_blocks_are_read_off_the_ggn():
    params, X, _ = small_mlp(3)
    G = moons.ggn(params, X)
    np.testing.assert_allclose(moons.flatten(moons.ggn_diagonal(params, X)), np.diag(G))
    starts = np.cumsum([0] + [p.size for p in params])
    blocks = moons.ggn_blocks(params, X, moons.layers(params))
    for (w, b), block in zip(moons.layers(params), blocks, strict=True):
        index = np.arange(starts[w], starts[b + 1])
        np.testing.assert_allclose(block, G[np.ix_(index, index)], rtol=1e-12, atol=1e-15)
    assert [b.shape for b in moons.ggn_blocks(params, X)] == [(p.size,) * 2 for p in params]


# --- K-FAC's factors against the exact curvature -----------------------------------------------


def kfac_blocks(params, inputs, rows, n):
    return [
        np.kron(input_factor(a), output_factor(u, n)) for a, u in zip(inputs, rows, strict=True)
    ]


def test_kfac_factors_are_the_exact_ggn_block_for_one_datum():
    params, X, _ = small_mlp(4)
    for i in range(3):
        x = X[i : i + 1]
        inputs, rows = moons.kfac_statistics(params, x)
        exact = moons.ggn_blocks(params, x, moons.layers(params))
        for kfac, block in zip(kfac_blocks(params, inputs, rows, 1), exact, strict=True):
            np.testing.assert_allclose(kfac, block, rtol=1e-10, atol=1e-16)


def test_kfac_is_only_an_approximation_over_a_batch_of_a_nonlinear_network():
    params, X, _ = small_mlp(4)
    inputs, rows = moons.kfac_statistics(params, X)
    exact = moons.ggn_blocks(params, X, moons.layers(params))
    kfac = kfac_blocks(params, inputs, rows, len(X))
    errors = [np.linalg.norm(k - e) / np.linalg.norm(e) for k, e in zip(kfac, exact, strict=True)]
    # even the last layer's: its B = 1, but the output Hessian p (1 - p) varies with the datum
    assert min(errors) > 1e-3


def deep_linear(seed=5, sizes=(3, 4, 5, 2), n=10):
    """A deep linear network with squared error 1/(2n) sum ||f - y||^2: parameters, data, the
    gradient, the exact GGN (1/n sum J_n^T J_n) and K-FAC's inputs and GGN rows (e_j / n)."""
    rng = np.random.default_rng(seed)
    params = moons.init_mlp(sizes, seed)
    params = [p + 0.1 * rng.standard_normal(p.shape) for p in params]  # nonzero biases too
    X, Y = rng.standard_normal((n, sizes[0])), rng.standard_normal((n, sizes[-1]))
    f, inputs = moons.forward_layers(params, X, "identity")
    grads = moons.backward(params, inputs, (f - Y) / n, "identity")
    J = moons.jacobian(params, X, "identity")
    ggn = np.einsum("nkp,nkq->pq", J, J) / n
    k = sizes[-1]
    rows = [[] for _ in range(len(params) // 2)]
    for j in range(k):
        unit = np.zeros((n, k))
        unit[:, j] = 1.0 / n
        for layer, delta in enumerate(moons.output_gradients(params, inputs, unit, "identity")):
            rows[layer].append(delta)
    return params, grads, ggn, inputs, [np.concatenate(r) for r in rows]


def test_kfac_is_exact_for_a_deep_linear_network_with_squared_error():
    """B = d f / d s_l does not depend on the datum, so the layer's GGN block is A kron G over
    the whole batch, and one K-FAC step (lr = 1, no clipping) is the damped block Newton step."""
    params, grads, ggn, inputs, rows = deep_linear()
    n = len(inputs[0])
    starts = np.cumsum([0] + [p.size for p in params])
    layers = moons.layers(params)
    exact = []
    for (w, b), kfac in zip(layers, kfac_blocks(params, inputs, rows, n), strict=True):
        index = np.arange(starts[w], starts[b + 1])
        exact.append(ggn[np.ix_(index, index)])
        np.testing.assert_allclose(kfac, exact[-1], rtol=1e-10, atol=1e-14)
    by_kfac = [p.copy() for p in params]
    KFAC(by_kfac, lr=1.0, kl_clip=0.0, decay=0.0).step(grads, inputs, rows)
    by_blocks = [p.copy() for p in params]
    BlockNewton(by_blocks, lr=1.0, lam=1e-3, blocks=layers).step(grads, exact)
    for a, b in zip(by_kfac, by_blocks, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_eigen_solve_with_the_mlp_factors_is_numpy_linalg_solve():
    params, X, _ = small_mlp(6)
    inputs, rows = moons.kfac_statistics(params, X)
    _, grads = moons.loss_and_grads(params, X, moons.make_moons(24, 0.2, 6)[1])
    A, G = input_factor(inputs[1]), output_factor(rows[1], len(X))
    V = np.concatenate([grads[2], grads[3][None, :]])  # [dW; db]: C order is vec([dW^T | db])
    for lam in (1e-3, 1.0):
        D = kronecker_step(*eigen(A), *eigen(G), V, lam)
        M = np.kron(A, G) + lam * np.eye(A.shape[0] * G.shape[0])
        expected = -np.linalg.solve(M, V.T.ravel(order="F"))  # column-major vec of [dW^T | db]
        np.testing.assert_allclose(D.ravel(), expected, rtol=1e-8, atol=1e-12)


# --- the exact curvature feeds the optimizers --------------------------------------------------


def test_diag_newton_and_block_newton_take_the_exact_ggn_steps():
    params, X, y = small_mlp(7)
    _, grads = moons.loss_and_grads(params, X, y)
    G = moons.ggn(params, X)
    g = moons.flatten(grads)
    theta = moons.flatten(params)
    diag = [p.copy() for p in params]
    DiagNewton(diag, lr=1.0, lam=0.1).step(grads, moons.ggn_diagonal(params, X))
    np.testing.assert_allclose(moons.flatten(diag), theta - g / (np.diag(G) + 0.1), rtol=1e-12)
    blocks = [p.copy() for p in params]
    layers = moons.layers(params)
    BlockNewton(blocks, lr=1.0, lam=0.1, blocks=layers).step(
        grads, moons.ggn_blocks(params, X, layers)
    )
    starts = np.cumsum([0] + [p.size for p in params])
    expected = theta.copy()
    for w, b in layers:
        index = np.arange(starts[w], starts[b + 1])
        expected[index] -= np.linalg.solve(
            G[np.ix_(index, index)] + 0.1 * np.eye(index.size), g[index]
        )
    np.testing.assert_allclose(moons.flatten(blocks), expected, rtol=1e-10, atol=1e-13)


# --- training --------------------------------------------------------------------------------


def train(method: str, hyper: dict | None = None, max_steps: int = 500):
    """Full-batch training of the two-moons MLP until the loss is <= TARGET: (steps, seconds,
    final loss, accuracy, losses). The clock covers the curvature and the step."""
    X, y = moons.make_moons(200, 0.2, 0)
    params = moons.init_mlp(SIZES, 0)
    hyper = TRAIN[method] if hyper is None else hyper
    if method == "diag_newton":
        opt = DiagNewton(params, **hyper)
        step = lambda grads: opt.step(grads, moons.ggn_diagonal(params, X))  # noqa: E731
    elif method == "block_newton":
        opt = BlockNewton(params, blocks=moons.layers(params), **hyper)
        step = lambda grads: opt.step(grads, moons.ggn_blocks(params, X, opt.blocks))  # noqa: E731
    else:
        opt = KFAC(params, **hyper)
        step = lambda grads: opt.step(grads, *moons.kfac_statistics(params, X))  # noqa: E731
    losses = []
    began = time.perf_counter()
    for k in range(max_steps + 1):
        loss, grads = moons.loss_and_grads(params, X, y)
        losses.append(loss)
        if loss <= TARGET or not np.isfinite(loss) or k == max_steps:
            break
        step(grads)
    seconds = time.perf_counter() - began
    return k, seconds, loss, moons.accuracy(params, X, y), losses


@pytest.mark.parametrize("method", list(TRAIN))
def test_trains_two_moons_to_a_low_loss_and_high_accuracy(method):
    steps, _, loss, accuracy, losses = train(method, max_steps=STEP_BUDGET[method])
    assert loss <= TARGET, f"{method}: loss {loss:.3f} after {steps} steps"
    assert accuracy >= 0.95
    assert losses[-1] < losses[0]


if __name__ == "__main__":
    print(f"two moons (200 points, noise 0.2), MLP {SIZES}, full batch, to loss <= {TARGET}")
    for method, hyper in TRAIN.items():
        times = []
        for _ in range(5):
            steps, seconds, loss, accuracy, _ = train(method)
            times.append(seconds)
        shown = ", ".join(f"{k}={v}" for k, v in hyper.items()) or "spec defaults"
        print(
            f"{method:13s} {shown:24s} {steps:4d} steps  {min(times) * 1e3:7.1f} ms "
            f"(best of 5; {min(times) / max(steps, 1) * 1e3:.2f} ms/step)  loss {loss:.4f}  "
            f"accuracy {accuracy:.3f}"
        )

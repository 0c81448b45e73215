"""Two-moons data and a small NumPy MLP with an explicit forward and backward pass.

The training pictures need a problem that is small enough to train with every optimizer in seconds
and nonlinear enough that the decision boundary says something. Nothing here depends on an
optimizer: parameters are a plain list of float64 arrays ``[W1, b1, W2, b2, ...]`` and
:func:`loss_and_grads` returns the loss and one gradient array per parameter, so any stepper (or a
preconditioner built from :func:`forward`'s activations and :func:`backward`) can drive it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

Params = list[np.ndarray]


def make_moons(n: int = 200, noise: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points on two interleaving half circles plus Gaussian noise, shuffled.

    Returns ``X`` of shape (n, 2) and labels ``y`` of shape (n,) in {0.0, 1.0}; the same seed
    gives the same arrays.
    """
    rng = np.random.default_rng(seed)
    n_outer = n // 2
    n_inner = n - n_outer
    a = np.linspace(0.0, np.pi, n_outer)
    b = np.linspace(0.0, np.pi, n_inner)
    outer = np.column_stack([np.cos(a), np.sin(a)])
    inner = np.column_stack([1.0 - np.cos(b), 0.5 - np.sin(b)])
    X = np.vstack([outer, inner]) + rng.normal(0.0, noise, size=(n, 2))
    y = np.concatenate([np.zeros(n_outer), np.ones(n_inner)])
    order = rng.permutation(n)
    return X[order], y[order]


def init_mlp(sizes: Sequence[int] = (2, 16, 16, 1), seed: int = 0) -> Params:
    """Weights ~ N(0, 1/fan_in) (keeps tanh units out of saturation), biases zero."""
    rng = np.random.default_rng(seed)
    params: Params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
        params.append(rng.normal(0.0, 1.0 / np.sqrt(fan_in), size=(fan_in, fan_out)))
        params.append(np.zeros(fan_out))
    return params


def forward(params: Sequence[np.ndarray], X: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Logits of shape (n,) and the layer inputs [X, h1, h2, ...] the backward pass needs."""
    activations = [X]
    h = X
    layers = len(params) // 2
    for i in range(layers):
        z = h @ params[2 * i] + params[2 * i + 1]
        if i < layers - 1:
            h = np.tanh(z)
            activations.append(h)
    return z[:, 0], activations


def backward(
    params: Sequence[np.ndarray], activations: Sequence[np.ndarray], dlogits: np.ndarray
) -> Params:
    """Gradients of a loss with respect to every parameter, given d loss / d logits."""
    grads: Params = [np.empty(0)] * len(params)
    delta = dlogits[:, None]
    for i in reversed(range(len(params) // 2)):
        h = activations[i]
        grads[2 * i] = h.T @ delta
        grads[2 * i + 1] = delta.sum(axis=0)
        if i > 0:
            delta = (delta @ params[2 * i].T) * (1.0 - h**2)  # tanh' = 1 - tanh^2
    return grads


def bce(logits: np.ndarray, y: np.ndarray) -> float:
    """Mean binary cross-entropy from logits, stable for large |logits|."""
    return float(np.mean(np.logaddexp(0.0, logits) - y * logits))


def loss_and_grads(
    params: Sequence[np.ndarray], X: np.ndarray, y: np.ndarray
) -> tuple[float, Params]:
    """Mean binary cross-entropy on (X, y) and its gradient for every parameter array."""
    logits, activations = forward(params, X)
    probs = 0.5 * (1.0 + np.tanh(0.5 * logits))  # the logistic function without overflow
    return bce(logits, y), backward(params, activations, (probs - y) / len(y))


def predict_proba(params: Sequence[np.ndarray], X: np.ndarray) -> np.ndarray:
    """P(y = 1 | x) for every row of X."""
    logits, _ = forward(params, X)
    return 0.5 * (1.0 + np.tanh(0.5 * logits))


def accuracy(params: Sequence[np.ndarray], X: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean((predict_proba(params, X) > 0.5) == (y > 0.5)))


def minibatches(n: int, batch: int | None, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """One epoch of index arrays: all of them at once (batch None: batch gradient descent), or a
    fresh shuffle cut into batches of ``batch`` (1: stochastic, n > 1: mini-batch SGD)."""
    if batch is None or batch >= n:
        yield np.arange(n)
        return
    order = rng.permutation(n)
    for start in range(0, n, batch):
        yield order[start : start + batch]

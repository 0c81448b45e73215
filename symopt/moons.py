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


#: Activations of the hidden layers: the function and its derivative as a function of its value.
ACTIVATIONS = {
    "tanh": (np.tanh, lambda h: 1.0 - h**2),  # tanh' = 1 - tanh^2
    "identity": (lambda z: z, lambda h: np.ones_like(h)),
}


def forward_layers(
    params: Sequence[np.ndarray], X: np.ndarray, activation: str = "tanh"
) -> tuple[np.ndarray, list[np.ndarray]]:
    """The outputs of shape (n, k) and every layer's inputs [X, h1, h2, ...].

    Layer l computes ``s_l = a_l @ W_l + b_l`` from its input ``a_l`` (``W_l`` of shape
    (fan_in, fan_out)); hidden layers pass ``s_l`` through the activation. The layer inputs are
    what K-FAC's input factors are built from.
    """
    act = ACTIVATIONS[activation][0]
    inputs = [X]
    h = X
    layers = len(params) // 2
    for i in range(layers):
        z = h @ params[2 * i] + params[2 * i + 1]
        if i < layers - 1:
            h = act(z)
            inputs.append(h)
    return z, inputs


def forward(params: Sequence[np.ndarray], X: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Logits of shape (n,) and the layer inputs [X, h1, h2, ...] the backward pass needs."""
    z, activations = forward_layers(params, X)
    return z[:, 0], activations


def output_gradients(
    params: Sequence[np.ndarray],
    activations: Sequence[np.ndarray],
    doutputs: np.ndarray,
    activation: str = "tanh",
) -> Params:
    """Every layer's output gradient ``d loss / d s_l`` (one row per datum), given
    ``d loss / d outputs`` of shape (n,) or (n, k). Rows never mix: fed a row per datum of
    anything (a unit vector, the square root of the loss Hessian), this backpropagates each
    datum's vector separately."""
    derivative = ACTIVATIONS[activation][1]
    layers = len(params) // 2
    deltas: Params = [np.empty(0)] * layers
    delta = doutputs[:, None] if doutputs.ndim == 1 else doutputs
    for i in reversed(range(layers)):
        deltas[i] = delta
        if i > 0:
            delta = (delta @ params[2 * i].T) * derivative(activations[i])
    return deltas


def layer_gradients(activations: Sequence[np.ndarray], deltas: Sequence[np.ndarray]) -> Params:
    """``[dW_1, db_1, ...]`` from the layer inputs and output gradients: ``a^T delta``, and the
    column sums of ``delta``."""
    grads: Params = []
    for h, delta in zip(activations, deltas, strict=True):
        grads += [h.T @ delta, delta.sum(axis=0)]
    return grads


def backward(
    params: Sequence[np.ndarray],
    activations: Sequence[np.ndarray],
    dlogits: np.ndarray,
    activation: str = "tanh",
) -> Params:
    """Gradients of a loss with respect to every parameter, given d loss / d logits."""
    deltas = output_gradients(params, activations, dlogits, activation)
    return layer_gradients(activations, deltas)


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


# --- curvature of the loss (exact, for second-order methods and their tests) ------------------
#
# Parameters flatten in list order, each array in C order: [W1.ravel(), b1, W2.ravel(), ...].
# A layer's (W, b) then flattens to vec([W^T | b]) with the column-major vec of symopt.curvature,
# so the layer's K-FAC block in this order is A (x) G with the input factor A on the left.


def flatten(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """The arrays' entries in one vector: each array in C order, in list order."""
    return np.concatenate([np.ravel(a) for a in arrays])


def unflatten(vector: np.ndarray, like: Sequence[np.ndarray]) -> Params:
    """The inverse of :func:`flatten`: arrays shaped like ``like``."""
    out, start = [], 0
    for a in like:
        out.append(np.asarray(vector[start : start + a.size]).reshape(a.shape))
        start += a.size
    return out


def jacobian(params: Sequence[np.ndarray], X: np.ndarray, activation: str = "tanh") -> np.ndarray:
    """``d f(x_n) / d theta`` of shape (n, k, P): every output of every datum with respect to the
    flattened parameters (one backward pass per output; rows of a batch never mix)."""
    z, inputs = forward_layers(params, X, activation)
    n, k = z.shape
    out = np.empty((n, k, sum(p.size for p in params)))
    for j in range(k):
        unit = np.zeros((n, k))
        unit[:, j] = 1.0
        deltas = output_gradients(params, inputs, unit, activation)
        columns = []
        for a, delta in zip(inputs, deltas, strict=True):
            columns += [(a[:, :, None] * delta[:, None, :]).reshape(n, -1), delta]
        out[:, j, :] = np.concatenate(columns, axis=1)
    return out


def bce_output_hessian(logits: np.ndarray) -> np.ndarray:
    """``d2 bce / d logit2 = p (1 - p)`` per datum (the same for either label)."""
    p = 0.5 * (1.0 + np.tanh(0.5 * logits))
    return p * (1.0 - p)


def ggn(params: Sequence[np.ndarray], X: np.ndarray) -> np.ndarray:
    """The generalized Gauss-Newton matrix of the mean binary cross-entropy, (P, P):
    ``1/n sum_n J_n^T p_n (1 - p_n) J_n`` (it does not depend on the labels)."""
    J = jacobian(params, X)[:, 0, :]
    logits = forward(params, X)[0]
    weighted = J * (bce_output_hessian(logits) / len(X))[:, None]
    return weighted.T @ J


def ggn_diagonal(params: Sequence[np.ndarray], X: np.ndarray) -> Params:
    """The GGN's diagonal, one array shaped like each parameter array (what DiagNewton takes)."""
    J = jacobian(params, X)[:, 0, :]
    weight = bce_output_hessian(forward(params, X)[0]) / len(X)
    return unflatten(weight @ (J * J), params)


def ggn_blocks(
    params: Sequence[np.ndarray], X: np.ndarray, blocks: Sequence[Sequence[int]] | None = None
) -> list[np.ndarray]:
    """The GGN's diagonal blocks (what BlockNewton takes): ``blocks`` lists the parameter arrays
    of each block (default: one block per array); a block's order is its arrays', each in C
    order."""
    blocks = [[i] for i in range(len(params))] if blocks is None else blocks
    J = jacobian(params, X)[:, 0, :]
    weight = bce_output_hessian(forward(params, X)[0]) / len(X)
    starts = np.cumsum([0] + [p.size for p in params])
    out = []
    for block in blocks:
        index = np.concatenate([np.arange(starts[i], starts[i + 1]) for i in block])
        Jb = J[:, index]
        out.append((Jb * weight[:, None]).T @ Jb)
    return out


def layers(params: Sequence[np.ndarray]) -> list[list[int]]:
    """Each layer's parameter arrays, ``[[0, 1], [2, 3], ...]``: the blocks of per-layer
    block-diagonal approximations (K-FAC's)."""
    return [[2 * i, 2 * i + 1] for i in range(len(params) // 2)]


def kfac_statistics(
    params: Sequence[np.ndarray], X: np.ndarray
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """What K-FAC's GGN factors are built from: every layer's inputs, and the output-side rows
    ``sqrt(p_n (1 - p_n)) B_n^T / n`` (``B_n = d logit_n / d s``): the backward pass of the mean
    loss with the square root of the loss Hessian in place of its gradient. Then
    ``G = n sum_n u_n u_n^T = 1/n sum_n B_n^T p_n (1 - p_n) B_n``, and ``A (x) G`` is a layer's
    exact GGN block for a single datum."""
    logits, inputs = forward(params, X)
    root = np.sqrt(bce_output_hessian(logits)) / len(X)
    return inputs, output_gradients(params, inputs, root)

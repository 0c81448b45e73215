"""Small models ``f(x, w)`` (dense layers with symbolic weights) and losses ``c(f, y)`` that are
the negative log-likelihood of a predictive distribution ``p(y | f)``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import sympy

from symopt.curvature.algebra import Matrix, outer, symbols_matrix, symbols_vector, vec

#: Elementwise activations a two-layer model may use.
ACTIVATIONS: dict[str, Callable[[sympy.Expr], sympy.Expr]] = {
    "tanh": sympy.tanh,
    "identity": lambda z: z,
}


@dataclass(frozen=True)
class Layer:
    """A dense layer ``s = W a + b``: the unit K-FAC factors (its input and its output gradient)."""

    name: str
    weight: Matrix  # W: out x in, symbols
    bias: Matrix  # b: out x 1, symbols
    inputs: Matrix  # a: in x 1, an expression of the model's inputs and earlier weights

    @property
    def augmented_weight(self) -> Matrix:
        """``[W | b]``: the bias is the weight of a constant input 1."""
        return Matrix(self.weight.row_join(self.bias))

    @property
    def augmented_inputs(self) -> Matrix:
        """``abar = [a; 1]``, the input K-FAC's factor ``A`` is built from."""
        return Matrix(self.inputs.col_join(sympy.ones(1, 1)))

    @property
    def params(self) -> tuple[sympy.Symbol, ...]:
        """``vec([W | b])``, column-major: the weight columns, then the bias."""
        return tuple(vec(self.augmented_weight))

    @property
    def preactivation(self) -> Matrix:
        return Matrix(self.weight * self.inputs + self.bias)


@dataclass(frozen=True)
class Model:
    """``f(x, w)``: dense layers; the parameters are the layers' ``vec([W | b])`` in order."""

    name: str
    inputs: tuple[sympy.Symbol, ...]
    layers: tuple[Layer, ...]
    output: Matrix  # f: k x 1

    @property
    def params(self) -> tuple[sympy.Symbol, ...]:
        return tuple(p for layer in self.layers for p in layer.params)

    @property
    def blocks(self) -> dict[str, tuple[int, ...]]:
        """Each layer's parameter indices (the blocks of the block-diagonal approximations)."""
        out, start = {}, 0
        for layer in self.layers:
            out[layer.name] = tuple(range(start, start + len(layer.params)))
            start += len(layer.params)
        return out

    def layer(self, name: str) -> Layer:
        return next(layer for layer in self.layers if layer.name == name)


def _layer(name: str, index: int, inputs: Matrix, n_out: int) -> Layer:
    weight = symbols_matrix(f"w{index}", n_out, inputs.rows)
    return Layer(name, weight, symbols_vector(f"b{index}", n_out), inputs)


@cache
def linear_model(n_in: int = 2, n_out: int = 3) -> Model:
    """``f = W x + b``: its Hessian equals its GGN (``d2f/dw2 = 0``)."""
    x = symbols_vector("x", n_in)
    layer = _layer("layer1", 1, x, n_out)
    return Model(f"linear {n_in}-{n_out}", tuple(x), (layer,), layer.preactivation)


@cache
def two_layer_model(
    n_in: int = 2, n_hidden: int = 2, n_out: int = 3, activation: str = "tanh"
) -> Model:
    """``f = W2 phi(W1 x + b1) + b2``: a nonlinear model whose Hessian is not its GGN."""
    x = symbols_vector("x", n_in)
    first = _layer("layer1", 1, x, n_hidden)
    hidden = first.preactivation.applyfunc(ACTIVATIONS[activation])
    second = _layer("layer2", 2, Matrix(hidden), n_out)
    name = f"two-layer {activation} {n_in}-{n_hidden}-{n_out}"
    return Model(name, tuple(x), (first, second), second.preactivation)


@dataclass(frozen=True)
class Categorical:
    """``y`` one-hot with ``P(y = e_i) = probs_i``: expectations are sums over the classes."""

    probs: Matrix

    @property
    def mean(self) -> Matrix:
        return self.probs

    def expected_outer(self, u: sympy.MatrixBase, V: sympy.MatrixBase) -> Matrix:
        """``E[(u + V y)(u + V y)^T] = sum_i p_i (u + V e_i)(u + V e_i)^T``."""
        total = sympy.zeros(u.rows, u.rows)
        for i, p in enumerate(self.probs):
            total += p * outer(u + V[:, i])
        return Matrix(total)


@dataclass(frozen=True)
class Moments:
    """A distribution through its first two moments (all an affine-in-``y`` gradient needs)."""

    name: str
    mean: Matrix  # E[y]
    second_moment: Matrix  # E[y y^T]

    def expected_outer(self, u: sympy.MatrixBase, V: sympy.MatrixBase) -> Matrix:
        """``E[(u + V y)(u + V y)^T] = u u^T + u m^T V^T + V m u^T + V E[y y^T] V^T``."""
        m = self.mean
        return Matrix(u * u.T + u * m.T * V.T + V * m * u.T + V * self.second_moment * V.T)


Distribution = Categorical | Moments


@dataclass(frozen=True)
class Loss:
    """``c(f, y) = -log p(y | f)`` (up to terms free of ``f``) and the distribution ``p(y | f)``."""

    name: str
    outputs: tuple[sympy.Symbol, ...]  # f
    labels: tuple[sympy.Symbol, ...]  # y
    value: sympy.Expr  # c(f, y)
    distribution: Distribution  # p(y | f), its parameters expressions of f
    canonical: bool  # whether d2c/df2 is free of y (then GGN = Fisher)


def _outputs(k: int) -> Matrix:
    return symbols_vector("f", k)


def _labels(k: int) -> Matrix:
    return symbols_vector("y", k)


def softmax(f: sympy.MatrixBase) -> Matrix:
    total = sum(sympy.exp(z) for z in f)
    return Matrix([sympy.exp(z) / total for z in f])


def sigmoid(z: sympy.Expr) -> sympy.Expr:
    return 1 / (1 + sympy.exp(-z))


@cache
def softmax_cross_entropy(k: int = 3) -> Loss:
    """``c = -y.f + log sum exp f`` for one-hot ``y``; ``y ~ Categorical(softmax(f))``."""
    f, y = _outputs(k), _labels(k)
    value = -(y.T * f)[0, 0] + sympy.log(sum(sympy.exp(z) for z in f))
    return Loss("softmax cross-entropy", tuple(f), tuple(y), value, Categorical(softmax(f)), True)


@cache
def squared_error(k: int = 2) -> Loss:
    """``c = ||f - y||^2 / 2``; ``y ~ N(f, I)`` (unit variance)."""
    f, y = _outputs(k), _labels(k)
    value = sum((a - b) ** 2 for a, b in zip(f, y, strict=True)) / 2
    gaussian = Moments("N(f, I)", f, Matrix(sympy.eye(k) + f * f.T))
    return Loss("squared error", tuple(f), tuple(y), value, gaussian, True)


@cache
def sigmoid_squared_error() -> Loss:
    """``c = (sigmoid(f) - y)^2 / 2``; ``y ~ N(sigmoid(f), 1)``: a non-canonical link."""
    f, y = _outputs(1), _labels(1)
    s = sigmoid(f[0])
    gaussian = Moments("N(sigmoid(f), 1)", Matrix([s]), Matrix([1 + s**2]))
    return Loss(
        "squared error on a sigmoid", tuple(f), tuple(y), (s - y[0]) ** 2 / 2, gaussian, False
    )


@cache
def poisson(link: str = "log") -> Loss:
    """``c = rate - y log(rate)``; ``y ~ Poisson(rate)`` with ``rate = exp(f)`` or ``rate = f``."""
    f, y = _outputs(1), _labels(1)
    rate = {"log": sympy.exp(f[0]), "identity": f[0]}[link]
    moments = Moments(f"Poisson({rate})", Matrix([rate]), Matrix([rate + rate**2]))
    value = rate - y[0] * sympy.log(rate)
    return Loss(f"Poisson, {link} link", tuple(f), tuple(y), value, moments, link == "log")

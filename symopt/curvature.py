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
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache

import sympy

Matrix = sympy.ImmutableMatrix

#: Elementwise activations a two-layer model may use.
ACTIVATIONS: dict[str, Callable[[sympy.Expr], sympy.Expr]] = {
    "tanh": sympy.tanh,
    "identity": lambda z: z,
}


# --- linear algebra conventions -------------------------------------------------------------


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


# --- models and losses -----------------------------------------------------------------------


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


# --- curvature matrices ----------------------------------------------------------------------


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


# --- structured approximations ---------------------------------------------------------------


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

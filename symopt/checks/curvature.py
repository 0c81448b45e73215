"""Checks of the curvature matrices in :mod:`symopt.curvature` and of their approximations.

Each check takes no arguments and returns one :class:`~symopt.checks.CheckResult`; ``CHECKS`` maps
a stable name to it, so that a spec can name the checks it relies on. A positive identity is
``symbolic`` only when every entry of its residual cancels to 0 (``sympy.cancel`` is a normal form
for rational functions; ``exp``/``tanh`` terms are its generators). The cases in ``NEGATIVE`` are
claims that are false: they must FAIL, and report the nonzero difference (its normal form) and its
exact value at a witness point.

Identities proved (names in ``CHECKS``): the softmax cross-entropy Hessian in ``f`` is
``diag(p) - p p^T``; GGN = Fisher for softmax cross-entropy, squared error and the log-link Poisson
(and, negative, not for squared error on a sigmoid or the identity-link Poisson); Fisher =
``E_y[H]`` and ``E_y[grad] = 0`` for all five losses; Hessian = GGN for a linear model (negative:
not for a nonlinear one) and Hessian = GGN + ``sum_k dc/df_k d2f_k/dw2``; EF = ``C + gbar gbar^T``;
single-datum K-FAC is exact, the batch error is ``1/(2N^2) sum_{n,m} (A_n - A_m) kron (G_n - G_m)``
(exact for equal ``g_n``; negative: not in general), K-FAC with GGN factors is exact for a deep
linear net with squared error; the eigen-based damped inverse is exact, the factored damping is
``(A + lam I) kron (G + lam I)`` and (negative) not ``A kron G + lam I``; the diagonal and
block-diagonal Newton steps equal Newton's for such ``H`` (negative: not in general); TONGA's
push-through identity.

Conventions: ``vec`` stacks columns (column-major), so ``vec(g a^T) = a kron g`` and a layer's
block is ``A kron G`` (input factor left); a layer's parameters are ``vec([W | b])``; batch
averages carry ``1/N`` (empirical Fisher, biased covariance, both K-FAC factors).

Sources: Martens & Grosse 2015 (K-FAC, factored Tikhonov damping); Martens 2020 ("New insights and
perspectives on the natural gradient method": GGN = Fisher for matching losses); Schraudolph 2002
(GGN); Le Roux, Manzagol & Bengio 2008 (TONGA); Kunstner, Hennig & Balles 2019 (limitations of
the empirical Fisher).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence

import sympy

from symopt import curvature as cv
from symopt.checks.result import CheckResult

Matrix = sympy.ImmutableMatrix
LAM = sympy.Symbol("lam", positive=True)


# --- deciding identities ---------------------------------------------------------------------


def _normal(x: sympy.Expr) -> sympy.Expr:
    return sympy.cancel(sympy.together(x))


def _first_nonzero(residual: sympy.MatrixBase) -> tuple[tuple[int, int], sympy.Expr] | None:
    """The first entry whose normal form is not 0, or None when the residual vanishes."""
    for k, x in enumerate(residual):
        value = _normal(x)
        if value != 0:
            return divmod(k, residual.cols), value
    return None


def _short(x: sympy.Basic, limit: int = 120) -> str:
    text = sympy.sstr(x)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _proved(
    name: str, residuals: Iterable[tuple[str, sympy.MatrixBase]], detail: str
) -> CheckResult:
    """A claim that every residual is identically 0 (each is labelled by where it is taken)."""
    for where, residual in residuals:
        found = _first_nonzero(residual)
        if found is not None:
            (i, j), value = found
            return CheckResult(
                name, False, "symbolic", f"{where}: entry ({i}, {j}) is {_short(value)}"
            )
    return CheckResult(name, True, "symbolic", detail)


def _refuted(
    name: str,
    residual: sympy.MatrixBase,
    witness: Mapping[sympy.Symbol, sympy.Expr],
    where: str,
    note: str = "",
) -> CheckResult:
    """A claim ``residual == 0`` that is expected to be false: the nonzero difference, and an
    entry that is exactly nonzero at the witness point (a counterexample)."""
    found = _first_nonzero(residual)
    if found is None:
        return CheckResult(name, True, "symbolic", f"{where}: the difference vanishes identically")
    (i, j), value = found
    at = Matrix(residual.xreplace(dict(witness))).applyfunc(_normal)
    k = next((k for k, x in enumerate(at) if x.is_Number and x != 0), None)
    point = ", ".join(f"{s} = {v}" for s, v in witness.items())
    example = (
        f"; at {point} entry {divmod(k, at.cols)} is {_short(at[k])}"
        if k is not None
        else f"; (no exact nonzero entry at {point})"
    )
    detail = f"{where}: entry ({i}, {j}) of the difference is {_short(value)}{example}"
    return CheckResult(name, False, "symbolic", detail + (f"; {note}" if note else ""))


def _blocks(M: sympy.MatrixBase, idx: Sequence[int]) -> Matrix:
    return Matrix(M.extract(list(idx), list(idx)))


# --- GGN, Fisher and Hessian -----------------------------------------------------------------


def check_softmax_hessian() -> CheckResult:
    loss = cv.softmax_cross_entropy(3)
    p = loss.distribution.probs
    residual = cv.loss_hessian(loss) - (sympy.diag(*p) - p * p.T)
    label_free = not (cv.loss_hessian(loss).free_symbols & set(loss.labels))
    name = "the softmax cross-entropy Hessian in f is diag(p) - p p^T, free of the label"
    result = _proved(name, [("k = 3", residual)], "exact identity at k = 3 classes")
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
    return _proved(
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
    output = sympy.factor(_normal(cv.loss_hessian(loss)[0, 0] - cv.loss_fisher(loss)[0, 0]))
    return _refuted(
        name,
        _ggn_minus_fisher(model, loss),
        _scalar_witness(model, loss, f),
        f"{model.name}, {loss.name}",
        f"in f: d2c/df2 - E_y[(dc/df)^2] = {_short(output)} depends on the label y",
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
    return _proved(
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
    return _proved(
        "the gradient has mean 0 under the model's predictions, so the Fisher is its covariance",
        residuals,
        f"E_y[dc/dw] = 0 exactly for {len(cases)} losses",
    )


def check_hessian_ggn_linear() -> CheckResult:
    model, loss = cv.linear_model(2, 3), cv.softmax_cross_entropy(3)
    return _proved(
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
    return _proved(
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
    return _refuted(
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
    return _proved(
        "the empirical Fisher is the gradient covariance plus gbar gbar^T",
        residuals,
        "1/N sum g g^T = C + gbar gbar^T with C = 1/N sum (g - gbar)(g - gbar)^T "
        "(= (N-1)/N times the 1/(N-1) covariance); exact for N = 2, 3 gradients in R^3",
    )


# --- K-FAC -----------------------------------------------------------------------------------


def check_kfac_single_datum() -> CheckResult:
    a, g = cv.symbols_vector("a", 3), cv.symbols_vector("g", 2)
    v = cv.vec(g * a.T)
    residuals = [
        ("vec(g a^T) = a kron g", v - cv.kron(a, g)),
        (
            "vec(g a^T) vec(g a^T)^T = (a a^T) kron (g g^T)",
            cv.outer(v) - cv.kron(cv.outer(a), cv.outer(g)),
        ),
    ]
    model, loss = cv.two_layer_model(2, 2, 3), cv.softmax_cross_entropy(3)
    for layer in model.layers:
        g_layer = cv.layer_output_gradient(model, loss, layer.name)
        factored = cv.vec(g_layer * layer.augmented_inputs.T)
        residuals.append(
            (f"{model.name}, {layer.name}", cv.layer_gradient(model, loss, layer.name) - factored)
        )
    return _proved(
        "for one datum K-FAC is exact: vec(g a^T) vec(g a^T)^T = (a a^T) kron (g g^T)",
        residuals,
        "column-major vec; generic a in R^3, g in R^2; and a layer's gradient is vec(g abar^T) "
        f"with g = dc/db, abar = [a; 1] in both layers of the {model.name} net",
    )


def _batch(n: int, equal_grads: bool = False) -> tuple[list[Matrix], list[Matrix]]:
    inputs = [cv.symbols_vector(f"a{k + 1}", 2) for k in range(n)]
    grads = [cv.symbols_vector("g" if equal_grads else f"g{k + 1}", 2) for k in range(n)]
    return inputs, grads


def check_kfac_batch_error() -> CheckResult:
    residuals = []
    for n in (2, 3):
        inputs, grads = _batch(n)
        A = [cv.outer(a) for a in inputs]
        G = [cv.outer(g) for g in grads]
        spread = sum(
            (cv.kron(A[i] - A[j], G[i] - G[j]) for i in range(n) for j in range(n)),
            sympy.zeros(4, 4),
        )
        error = cv.exact_layer_block(inputs, grads) - cv.kfac_block(inputs, grads)
        residuals.append((f"N = {n}", error - spread / (2 * n**2)))
    return _proved(
        "K-FAC's batch error is 1/(2 N^2) sum_{n,m} (A_n - A_m) kron (G_n - G_m)",
        residuals,
        "exact for N = 2, 3 with A_n = a_n a_n^T, G_n = g_n g_n^T (a_n, g_n in R^2): zero when all "
        "g_n (or all a_n) are equal",
    )


def check_kfac_batch_equal_grads() -> CheckResult:
    inputs, grads = _batch(3, equal_grads=True)
    return _proved(
        "for a batch whose output gradients g_n are equal K-FAC is exact",
        [("N = 3", cv.exact_layer_block(inputs, grads) - cv.kfac_block(inputs, grads))],
        "exact for N = 3, a_n in R^2 and g_n = g in R^2",
    )


def check_kfac_batch_exact() -> CheckResult:
    inputs, grads = _batch(2)
    witness = {}
    for k, (a, g) in enumerate(zip(inputs, grads, strict=True)):
        witness |= {a[0]: 1 - k, a[1]: k, g[0]: 1 - k, g[1]: k}
    return _refuted(
        "for a batch K-FAC is exact",
        cv.exact_layer_block(inputs, grads) - cv.kfac_block(inputs, grads),
        witness,
        "N = 2, a_n, g_n in R^2",
        "the error is (A_1 - A_2) kron (G_1 - G_2)/4",
    )


def check_kfac_deep_linear() -> CheckResult:
    model, loss = cv.two_layer_model(2, 2, 2, "identity"), cv.squared_error(2)
    data = [cv.datum(model, loss, n + 1) for n in range(2)]
    full = cv.ggn(model, loss)
    exact = sum((full.xreplace(d) for d in data), sympy.zeros(*full.shape)) / len(data)
    residuals = []
    for layer in model.layers:
        A, G = cv.layer_kfac_ggn_factors(model, loss, layer.name, data)
        residuals.append((layer.name, _blocks(exact, model.blocks[layer.name]) - cv.kron(A, G)))
    return _proved(
        "for a deep linear net with squared error K-FAC (GGN factors) is exact over a batch",
        residuals,
        f"the GGN's layer blocks of the {model.name} net over N = 2 data equal A kron G, "
        "A = 1/N sum abar abar^T, G = 1/N sum B^T (d2c/df2) B with B = df/ds: B is datum-free",
    )


def check_kfac_single_datum_model() -> CheckResult:
    model, loss = cv.two_layer_model(2, 2, 3), cv.softmax_cross_entropy(3)
    data = [cv.datum(model, loss, 1)]
    g = cv.gradient(model, loss).xreplace(data[0])
    residuals = []
    for layer in model.layers:
        A, G = cv.layer_kfac_factors(model, loss, layer.name, data)
        block = cv.outer(Matrix([g[i] for i in model.blocks[layer.name]]))
        residuals.append((layer.name, block - cv.kron(A, G)))
    return _proved(
        "for one datum a layer's empirical-Fisher block is K-FAC's A kron G",
        residuals,
        f"exact in both layers of the {model.name} net with {loss.name}",
    )


def check_kfac_eigen_inverse() -> CheckResult:
    """A chain of exact lemmas with ``P = Q_A kron Q_G`` and ``D = diag(alpha) kron diag(gamma)``:
    ``A kron G = P D P^T``; ``(A kron G + lam I) P = P (D + lam I)`` and ``P P^T = I`` on the
    rotations; ``vec(X) = P (D + lam I)^-1 P^T vec(V)``. Together:
    ``(A kron G + lam I) vec(X) = P (D + lam I) (D + lam I)^-1 P^T vec(V) = vec(V)``."""
    c_a, s_a, c_g, s_g = sympy.symbols("c_A s_A c_G s_G", real=True)
    relations = [c_a**2 + s_a**2 - 1, c_g**2 + s_g**2 - 1]  # a Groebner basis (lex, c first)

    def on_rotations(M: sympy.MatrixBase) -> Matrix:
        reduce = lambda e: sympy.reduced(sympy.expand(e), relations, c_a, c_g, s_a, s_g)[1]
        return Matrix(M).applyfunc(reduce)

    QA, QG = cv.rotation(c_a, s_a), cv.rotation(c_g, s_g)
    sA = sympy.symbols("alpha_1 alpha_2", nonnegative=True)
    sG = sympy.symbols("gamma_1 gamma_2", nonnegative=True)
    A, G = Matrix(QA * sympy.diag(*sA) * QA.T), Matrix(QG * sympy.diag(*sG) * QG.T)
    P, D, eye = cv.kron(QA, QG), cv.kron(sympy.diag(*sA), sympy.diag(*sG)), sympy.eye(4)
    V = cv.symbols_matrix("v", 2, 2)
    X = cv.eigen_damped_solve(QA, sA, QG, sG, LAM, V)
    inverse = sympy.diag(*[1 / (D[k, k] + LAM) for k in range(4)])
    reciprocal = {1 / (D[k, k] + LAM): sympy.Symbol(f"r_{k}") for k in range(4)}
    solve = (cv.vec(X) - P * inverse * P.T * cv.vec(V)).xreplace(reciprocal)
    return _proved(
        "(A kron G + lam I)^-1 vec(V) via eigendecompositions of A and G is the exact inverse",
        [
            ("P P^T = I", on_rotations(P * P.T - eye)),
            ("A kron G = P D P^T", cv.kron(A, G) - P * D * P.T),
            (
                "(A kron G + lam I) P = P (D + lam I)",
                on_rotations((cv.kron(A, G) + LAM * eye) * P - P * (D + LAM * eye)),
            ),
            ("vec(X) = P (D + lam I)^-1 P^T vec(V)", solve),
        ],
        "exact for every symmetric 2 x 2 A = Q_A diag(alpha) Q_A^T and G = Q_G diag(gamma) Q_G^T "
        "(Q = [c, -s; s, c], reduced modulo c^2 + s^2 = 1), every V and lam: "
        "X = Q_G [(Q_G^T V Q_A) / (gamma_i alpha_j + lam)] Q_A^T, so with P = Q_A kron Q_G, "
        "(A kron G + lam I) vec(X) = P (D + lam I) (D + lam I)^-1 P^T vec(V) = vec(V)",
    )


def check_factored_damping_expansion() -> CheckResult:
    A, G = cv.symmetric_matrix("a", 2), cv.symmetric_matrix("c", 2)
    eye, pi = sympy.eye(2), sympy.Symbol("pi_", positive=True)
    exact = cv.kron(A, G) + LAM * sympy.eye(4)
    cross = cv.kron(A, eye) + cv.kron(eye, G)
    same = (
        cv.kron(A + LAM * eye, G + LAM * eye)
        - exact
        - (LAM * cross + (LAM**2 - LAM) * sympy.eye(4))
    )
    root = sympy.sqrt(LAM)
    split = cv.kron(A + pi * root * eye, G + root / pi * eye) - exact
    split -= root * (cv.kron(A, eye) / pi + pi * cv.kron(eye, G))
    return _proved(
        "(A + lam I) kron (G + lam I) = A kron G + lam (A kron I + I kron G) + lam^2 I",
        [("equal damping", same), ("factored Tikhonov, pi split", split)],
        "exact: so it differs from A kron G + lam I by lam (A kron I + I kron G) "
        "+ (lam^2 - lam) I; "
        "with factors damped by pi sqrt(lam) and sqrt(lam)/pi (Martens & Grosse 2015, 6.3) by "
        "sqrt(lam) (A kron I / pi + pi I kron G)",
    )


def check_factored_solve_inverts_factored() -> CheckResult:
    A, G, V = cv.symmetric_matrix("a", 2), cv.symmetric_matrix("c", 2), cv.symbols_matrix("v", 2, 2)
    lam_a, lam_g = sympy.symbols("lam_A lam_G", positive=True)
    X = cv.factored_damped_solve(A, G, lam_a, V, lam_g)
    damped = cv.kron(A + lam_a * sympy.eye(2), G + lam_g * sympy.eye(2))
    at_zero = cv.factored_damped_solve(A, G, 0, V)
    return _proved(
        "(G + lam_G I)^-1 V (A + lam_A I)^-1 inverts (A + lam_A I) kron (G + lam_G I)",
        [
            ("damped", damped * cv.vec(X) - cv.vec(V)),
            ("lam = 0: the exact (A kron G)^-1", cv.kron(A, G) * cv.vec(at_zero) - cv.vec(V)),
        ],
        "exact for symmetric 2 x 2 A, G and 2 x 2 V; at lam = 0 it is the exact inverse",
    )


#: The example the cheaper damped inverse is measured on.
EXAMPLE_A = Matrix([[2, 1], [1, 2]])
EXAMPLE_G = Matrix([[1, 0], [0, 4]])
EXAMPLE_V = Matrix([[1, 2], [3, 4]])
EXAMPLE_LAM = sympy.Rational(1, 10)


def check_factored_solve_exact() -> CheckResult:
    A, G, V = cv.symmetric_matrix("a", 2), cv.symmetric_matrix("c", 2), cv.symbols_matrix("v", 2, 2)
    X = cv.factored_damped_solve(A, G, LAM, V)
    residual = (cv.kron(A, G) + LAM * sympy.eye(4)) * cv.vec(X) - cv.vec(V)
    witness = {s: EXAMPLE_A[i, j] for i, j, s in _entries(A)} | {
        s: EXAMPLE_G[i, j] for i, j, s in _entries(G)
    }
    witness |= {s: EXAMPLE_V[i, j] for i, j, s in _entries(V)} | {LAM: EXAMPLE_LAM}
    exact = cv.exact_damped_solve(EXAMPLE_A, EXAMPLE_G, EXAMPLE_LAM, EXAMPLE_V)
    cheap = cv.factored_damped_solve(EXAMPLE_A, EXAMPLE_G, EXAMPLE_LAM, EXAMPLE_V)
    rel = (cheap - exact).norm() / exact.norm()
    note = (
        f"A = {EXAMPLE_A.tolist()}, G = {EXAMPLE_G.tolist()}, V = {EXAMPLE_V.tolist()}, "
        f"lam = {EXAMPLE_LAM}: exact {_rounded(exact)}, factored {_rounded(cheap)}, "
        f"relative error {float(rel):.3g}"
    )
    return _refuted(
        "(G + lam I)^-1 V (A + lam I)^-1 is the exact (A kron G + lam I)^-1 vec(V)",
        residual,
        witness,
        "the residual (A kron G + lam I) vec(X) - vec(V), symmetric 2 x 2 A, G",
        note,
    )


def _entries(M: sympy.MatrixBase) -> list[tuple[int, int, sympy.Basic]]:
    return [(i, j, M[i, j]) for i in range(M.rows) for j in range(M.cols)]


def _rounded(M: sympy.MatrixBase) -> str:
    return str([[round(float(x), 4) for x in row] for row in M.tolist()])


# --- diagonal and block-diagonal approximations ----------------------------------------------

STRUCTURED_BLOCKS = {"layer1": (0, 1), "layer2": (2, 3)}
GENERAL_BLOCKS = {"layer1": (0, 1), "layer2": (2,)}
EXAMPLE_H = Matrix([[2, 1, 1], [1, 2, 1], [1, 1, 2]])


def _structured_newton(name: str, H: Matrix, blocks: Mapping[str, Sequence[int]]) -> CheckResult:
    g = cv.symbols_vector("g", H.rows)
    approx = cv.block_newton_step(cv.block_diagonal(H, blocks), g, blocks)
    return _proved(
        name,
        [(f"n = {H.rows}", approx - cv.newton_step(H, g))],
        f"exact for a general such H with blocks {dict(blocks)} and a general g",
    )


def check_diagonal_structured() -> CheckResult:
    H = Matrix(sympy.diag(*cv.symbols_vector("h", 3)))
    blocks = {f"w{i + 1}": (i,) for i in range(3)}
    return _structured_newton(
        "for a diagonal H the diagonal approximation's step is Newton's", H, blocks
    )


def check_block_diagonal_structured() -> CheckResult:
    H = Matrix(sympy.diag(cv.symmetric_matrix("h", 2), cv.symmetric_matrix("k", 2)))
    return _structured_newton(
        "for a block-diagonal H the block-diagonal approximation's step is Newton's",
        H,
        STRUCTURED_BLOCKS,
    )


def _general_newton(name: str, blocks: Mapping[str, Sequence[int]]) -> CheckResult:
    H, g = cv.symmetric_matrix("h", 3), cv.symbols_vector("g", 3)
    approx = cv.block_newton_step(cv.block_diagonal(H, blocks), g, blocks)
    witness = {s: EXAMPLE_H[i, j] for i, j, s in _entries(H)} | {g[0]: 1, g[1]: 0, g[2]: 0}
    return _refuted(
        name,
        approx - cv.newton_step(H, g),
        witness,
        f"general symmetric 3 x 3 H, blocks {dict(blocks)}",
    )


def check_diagonal_general() -> CheckResult:
    blocks = {f"w{i + 1}": (i,) for i in range(3)}
    return _general_newton("for a general H the diagonal approximation's step is Newton's", blocks)


def check_block_diagonal_general() -> CheckResult:
    return _general_newton(
        "for a general H the block-diagonal approximation's step is Newton's", GENERAL_BLOCKS
    )


# --- TONGA -----------------------------------------------------------------------------------


def check_tonga_push_through() -> CheckResult:
    """Only 2 x 2 matrices are inverted: each side times the other side's (invertible, lam > 0)
    matrix must give back U, which proves the two inverses' products equal."""
    residuals = []
    for n, k in ((3, 2), (2, 3)):
        U = cv.symbols_matrix("u", n, k)
        big, small = LAM * sympy.eye(n) + U * U.T, LAM * sympy.eye(k) + U.T * U
        residuals.append(
            (f"U {n} x {k}: (lam I + U U^T) U = U (lam I + U^T U)", big * U - U * small)
        )
        if n > k:  # (lam I + U U^T) [U (lam I + U^T U)^-1] = U
            residuals.append((f"U {n} x {k}, inverse form", big * U * small.inv() - U))
        else:  # [(lam I + U U^T)^-1 U] (lam I + U^T U) = U
            residuals.append((f"U {n} x {k}, inverse form", big.inv() * U * small - U))
    return _proved(
        "the TONGA push-through identity (lam I + U U^T)^-1 U = U (lam I + U^T U)^-1",
        residuals,
        "exact for general U of sizes 3 x 2 and 2 x 3 and lam > 0",
    )


# --- the registry ----------------------------------------------------------------------------

CHECKS: dict[str, Callable[[], CheckResult]] = {
    "softmax_hessian": check_softmax_hessian,
    "ggn_fisher_softmax": check_ggn_fisher_softmax,
    "ggn_fisher_squared_error": check_ggn_fisher_squared_error,
    "ggn_fisher_poisson_log": check_ggn_fisher_poisson_log,
    "ggn_fisher_sigmoid_squared_error": check_ggn_fisher_sigmoid_squared_error,
    "ggn_fisher_poisson_identity": check_ggn_fisher_poisson_identity,
    "fisher_expected_hessian": check_fisher_expected_hessian,
    "score_mean_zero": check_score_mean_zero,
    "hessian_ggn_linear": check_hessian_ggn_linear,
    "hessian_ggn_plus_residual": check_hessian_ggn_plus_residual,
    "hessian_ggn_nonlinear": check_hessian_ggn_nonlinear,
    "empirical_fisher": check_empirical_fisher,
    "kfac_single_datum": check_kfac_single_datum,
    "kfac_single_datum_model": check_kfac_single_datum_model,
    "kfac_batch_error": check_kfac_batch_error,
    "kfac_batch_equal_grads": check_kfac_batch_equal_grads,
    "kfac_batch_exact": check_kfac_batch_exact,
    "kfac_deep_linear": check_kfac_deep_linear,
    "kfac_eigen_inverse": check_kfac_eigen_inverse,
    "factored_damping_expansion": check_factored_damping_expansion,
    "factored_solve_inverts_factored": check_factored_solve_inverts_factored,
    "factored_solve_exact": check_factored_solve_exact,
    "diagonal_structured": check_diagonal_structured,
    "block_diagonal_structured": check_block_diagonal_structured,
    "diagonal_general": check_diagonal_general,
    "block_diagonal_general": check_block_diagonal_general,
    "tonga_push_through": check_tonga_push_through,
}

#: Claims that are false: their checks must fail (each shows the nonzero difference).
NEGATIVE = frozenset(
    {
        "ggn_fisher_sigmoid_squared_error",
        "ggn_fisher_poisson_identity",
        "hessian_ggn_nonlinear",
        "kfac_batch_exact",
        "factored_solve_exact",
        "diagonal_general",
        "block_diagonal_general",
    }
)


def run_curvature_checks(names: Iterable[str] | None = None) -> list[CheckResult]:
    """Run the named checks (all by default), each timed; a crash is a failed ``-`` result."""
    names = list(CHECKS if names is None else names)
    unknown = [n for n in names if n not in CHECKS]
    if unknown:
        raise KeyError(f"unknown curvature checks {unknown}; known: {', '.join(CHECKS)}")
    return [_timed(name) for name in names]


def _timed(name: str) -> CheckResult:
    start = time.perf_counter()
    try:
        r = CHECKS[name]()
    except Exception as exc:  # noqa: BLE001 - one broken check must not hide the others
        r = CheckResult(name, False, "-", f"could not run: {type(exc).__name__}: {exc}")
    return CheckResult(r.name, r.passed, r.method, r.detail, time.perf_counter() - start)


def as_expected(name: str, result: CheckResult) -> bool:
    """Whether a check came out as it should: positives pass symbolically, negatives fail
    symbolically (a proved nonzero difference, not a crash)."""
    if name in NEGATIVE:
        return not result.passed and result.method == "symbolic"
    return result.passed and result.method == "symbolic"


def stated(name: str, result: CheckResult) -> CheckResult:
    """The result as a report lists it: a negative case becomes the true claim "NOT: ...", which
    passes exactly when the false claim was refuted."""
    if name not in NEGATIVE:
        return result
    ok = as_expected(name, result)
    return CheckResult(f"NOT: {result.name}", ok, result.method, result.detail, result.seconds)

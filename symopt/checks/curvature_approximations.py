"""Identities of the structured approximations: K-FAC (single datum, batch error, deep linear
nets, the eigen-based and factored damped inverses), diagonal and block-diagonal Newton steps,
and TONGA's push-through identity.

Each check takes no arguments and returns one CheckResult; the registry is
:mod:`symopt.checks.curvature`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import sympy

from symopt import curvature as cv
from symopt.checks.decide import Matrix, entries, proved, refuted, rounded, submatrix
from symopt.checks.result import CheckResult

LAM = sympy.Symbol("lam", positive=True)


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
    return proved(
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
    return proved(
        "K-FAC's batch error is 1/(2 N^2) sum_{n,m} (A_n - A_m) kron (G_n - G_m)",
        residuals,
        "exact for N = 2, 3 with A_n = a_n a_n^T, G_n = g_n g_n^T (a_n, g_n in R^2): zero when all "
        "g_n (or all a_n) are equal",
    )


def check_kfac_batch_equal_grads() -> CheckResult:
    inputs, grads = _batch(3, equal_grads=True)
    return proved(
        "for a batch whose output gradients g_n are equal K-FAC is exact",
        [("N = 3", cv.exact_layer_block(inputs, grads) - cv.kfac_block(inputs, grads))],
        "exact for N = 3, a_n in R^2 and g_n = g in R^2",
    )


def check_kfac_batch_exact() -> CheckResult:
    inputs, grads = _batch(2)
    witness = {}
    for k, (a, g) in enumerate(zip(inputs, grads, strict=True)):
        witness |= {a[0]: 1 - k, a[1]: k, g[0]: 1 - k, g[1]: k}
    return refuted(
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
        residuals.append((layer.name, submatrix(exact, model.blocks[layer.name]) - cv.kron(A, G)))
    return proved(
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
    return proved(
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
    return proved(
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
    return proved(
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
    return proved(
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
    witness = {s: EXAMPLE_A[i, j] for i, j, s in entries(A)} | {
        s: EXAMPLE_G[i, j] for i, j, s in entries(G)
    }
    witness |= {s: EXAMPLE_V[i, j] for i, j, s in entries(V)} | {LAM: EXAMPLE_LAM}
    exact = cv.exact_damped_solve(EXAMPLE_A, EXAMPLE_G, EXAMPLE_LAM, EXAMPLE_V)
    cheap = cv.factored_damped_solve(EXAMPLE_A, EXAMPLE_G, EXAMPLE_LAM, EXAMPLE_V)
    rel = (cheap - exact).norm() / exact.norm()
    note = (
        f"A = {EXAMPLE_A.tolist()}, G = {EXAMPLE_G.tolist()}, V = {EXAMPLE_V.tolist()}, "
        f"lam = {EXAMPLE_LAM}: exact {rounded(exact)}, factored {rounded(cheap)}, "
        f"relative error {float(rel):.3g}"
    )
    return refuted(
        "(G + lam I)^-1 V (A + lam I)^-1 is the exact (A kron G + lam I)^-1 vec(V)",
        residual,
        witness,
        "the residual (A kron G + lam I) vec(X) - vec(V), symmetric 2 x 2 A, G",
        note,
    )


# --- diagonal and block-diagonal approximations ----------------------------------------------

STRUCTURED_BLOCKS = {"layer1": (0, 1), "layer2": (2, 3)}
GENERAL_BLOCKS = {"layer1": (0, 1), "layer2": (2,)}
EXAMPLE_H = Matrix([[2, 1, 1], [1, 2, 1], [1, 1, 2]])


def _structured_newton(name: str, H: Matrix, blocks: Mapping[str, Sequence[int]]) -> CheckResult:
    g = cv.symbols_vector("g", H.rows)
    approx = cv.block_newton_step(cv.block_diagonal(H, blocks), g, blocks)
    return proved(
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
    witness = {s: EXAMPLE_H[i, j] for i, j, s in entries(H)} | {g[0]: 1, g[1]: 0, g[2]: 0}
    return refuted(
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
    return proved(
        "the TONGA push-through identity (lam I + U U^T)^-1 U = U (lam I + U^T U)^-1",
        residuals,
        "exact for general U of sizes 3 x 2 and 2 x 3 and lam > 0",
    )

"""Checks of a second-order spec: its step against the model it is derived from.

The step under test is the spec's own formula (``[model] step``) when it writes one, else the
derived step. Every claim is decided by SymPy at ``n = 2`` and ``n = 3`` with a fully symbolic
symmetric ``H`` (an exact rational-function identity, so ``symbolic``); the step formula is also
compared with the derivation for a general ``n`` over matrix symbols where SymPy can simplify it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator, Mapping

import sympy

from symopt.checks import solver_pieces as pieces
from symopt.checks.curvature import run_curvature_checks, stated
from symopt.checks.result import CheckResult
from symopt.lowering.derive import Derivation, damping_symbol, derive, is_zero_matrix, model_symbols
from symopt.spec.model import ModelSpec
from symopt.spec.parse_matrix import inverse

DIMENSIONS = (2, 3)
MU = sympy.Symbol("mu", positive=True)

Check = Callable[[ModelSpec, Mapping[str, object]], Iterable[CheckResult]]

#: Steps parsed (and their inverses worked out) once per formula, damping and dimension.
_STEPS: dict[tuple[str | None, str | None, int | None], sympy.Basic] = {}


def step_at(spec: ModelSpec, n: int | None) -> sympy.Basic:
    """The step under test at dimension ``n``: the spec's formula, or the derived one."""
    key = (spec.step_text, spec.damping, n)
    if key not in _STEPS:
        written = spec.step_expr(model_symbols(spec.damping, n))
        if written is None:
            written = derive(spec, n).step
        elif n is not None:
            written = written.doit()
        _STEPS[key] = written
    step = _STEPS[key]
    return step.copy() if isinstance(step, sympy.MutableDenseMatrix) else step


def _simplified(x: sympy.Basic) -> sympy.Basic:
    return sympy.cancel(sympy.together(x))


def _counterexample(residual: sympy.Matrix, n: int) -> str:
    """A short description of where a residual that should vanish does not."""
    nonzero = next((x for x in residual if _simplified(x) != 0), None)
    if nonzero is None:
        return ""
    text = sympy.sstr(_simplified(nonzero))
    return f"at n = {n} a component is {text if len(text) <= 80 else text[:77] + '...'}"


def _identity(
    name: str, spec: ModelSpec, residual: Callable[[Derivation, sympy.Matrix], sympy.Basic]
) -> CheckResult:
    """A claim ``residual == 0`` at n = 2 and 3 (a matrix, or a scalar as a 1 x 1 matrix)."""
    for n in DIMENSIONS:
        value = residual(derive(spec, n), step_at(spec, n))
        value = value if isinstance(value, sympy.MatrixBase) else sympy.Matrix([value])
        if not is_zero_matrix(value):
            return CheckResult(name, False, "symbolic", _counterexample(value, n))
    return CheckResult(name, True, "symbolic", "exact identity at n = 2 and n = 3")


def check_derivation(spec: ModelSpec, others: Mapping[str, object]) -> Iterator[CheckResult]:
    general = derive(spec, None)
    s = general.symbols
    expected = s["H"] + damping_symbol(spec.damping) * s["I"]
    ok = is_zero_matrix(general.matrix - expected) and is_zero_matrix(general.rhs + s["g"])
    explicit = all(
        is_zero_matrix(D.matrix - D.symbols["H"] - D.symbols["I"] * damping_symbol(spec.damping))
        and is_zero_matrix(D.rhs + D.symbols["g"])
        for D in (derive(spec, n) for n in DIMENSIONS)
    )
    system = "(H + lam I) d = -g" if spec.damping else "H d = -g"
    yield CheckResult(
        f"the model's stationarity condition is {system}",
        ok and explicit,
        "symbolic",
        f"derived with matrix calculus for general n: d* = {sympy.sstr(general.step)}",
    )
    if spec.step_text is None:
        return
    name = f"the written step {spec.step_text} equals the derived step"
    general_ok = is_zero_matrix(step_at(spec, None) - general.step)
    result = _identity(name, spec, lambda D, d: d - D.step)
    detail = result.detail + ("; and for general n" if general_ok and result.passed else "")
    yield CheckResult(name, result.passed, result.method, detail)


def check_stationary(spec: ModelSpec, others: Mapping[str, object]) -> Iterator[CheckResult]:
    yield _identity(
        "the step is a stationary point of the model (its gradient vanishes there)",
        spec,
        lambda D, d: D.gradient.xreplace(dict(zip(D.symbols["d"], d, strict=True))),
    )


def check_minimiser(spec: ModelSpec, others: Mapping[str, object]) -> Iterator[CheckResult]:
    """m(d* + e) - m(d*) = 1/2 e^T (H + lam I) e: positive for e != 0 when H + lam I is PD. The
    difference is expanded as a polynomial in the step variables first (exact, and much smaller
    than expanding it over the step's rational entries), then the step is put in."""

    def residual(D: Derivation, d: sympy.Matrix) -> sympy.Expr:
        n = D.n or 0
        e = sympy.Matrix(n, 1, lambda i, _: sympy.Symbol(f"e_{i + 1}", real=True))
        damped = D.symbols["H"] + damping_symbol(spec.damping) * D.symbols["I"]
        half = sympy.Rational(1, 2) * (e.T * damped * e)[0, 0]
        step = sympy.Matrix(D.symbols["d"])
        difference = sympy.expand(D.model_at(step + e) - D.model_at(step) - half)
        return difference.xreplace(dict(zip(step, d, strict=True)))

    result = _identity(
        "for positive definite H + lam I the step is the model's minimiser", spec, residual
    )
    detail = "m(d* + e) - m(d*) = e^T (H + lam I) e / 2 > 0 for e != 0; " + result.detail
    yield CheckResult(result.name, result.passed, result.method, detail)


def check_predicted_decrease(
    spec: ModelSpec, others: Mapping[str, object]
) -> Iterator[CheckResult]:
    def residual(D: Derivation, d: sympy.Matrix) -> sympy.Expr:
        g, damped = D.symbols["g"], D.symbols["H"] + damping_symbol(spec.damping) * D.symbols["I"]
        return -D.model_at(d) - sympy.Rational(1, 2) * (g.T * inverse(damped) * g)[0, 0]

    system = "H + lam I" if spec.damping else "H"
    yield _identity(
        f"the predicted decrease m(0) - m(d*) is g^T ({system})^-1 g / 2", spec, residual
    )


def check_newton_limit(spec: ModelSpec, others: Mapping[str, object]) -> Iterator[CheckResult]:
    lam = damping_symbol(spec.damping)
    name = (
        "with lam = 0 the step is Newton's step -H^-1 g"
        if spec.damping
        else ("the step is Newton's step -H^-1 g")
    )
    yield _identity(
        name,
        spec,
        lambda D, d: d.xreplace({lam: 0}) + inverse(D.symbols["H"]) * D.symbols["g"],
    )


def check_gradient_limit(spec: ModelSpec, others: Mapping[str, object]) -> Iterator[CheckResult]:
    """lam d -> -g as lam -> oo: with lam = 1/mu the limit is the value at mu = 0, where the
    cancelled rational function's denominator must not vanish."""
    if not spec.damping:
        return
    lam = damping_symbol(spec.damping)
    name = "as lam -> infinity, lam d -> -g (gradient descent with step 1/lam)"
    for n in DIMENSIONS:
        g = derive(spec, n).symbols["g"]
        for i, x in enumerate(step_at(spec, n)):
            num, den = sympy.fraction(sympy.cancel(sympy.together(lam * x).xreplace({lam: 1 / MU})))
            if sympy.expand(den.xreplace({MU: 0})) == 0:
                limit = sympy.limit(num / den, MU, 0, "+")
                if sympy.simplify(limit - (-g[i])) != 0:
                    yield CheckResult(name, False, "symbolic", f"at n = {n} the limit is {limit}")
                    return
                continue
            value = sympy.simplify(num.xreplace({MU: 0}) / den.xreplace({MU: 0}))
            if sympy.simplify(value + g[i]) != 0:
                detail = f"at n = {n}, component {i + 1} tends to {value}"
                yield CheckResult(name, False, "symbolic", detail)
                return
    yield CheckResult(name, True, "symbolic", "limit at mu = 1/lam = 0 of a rational function")


def check_norm_decreasing(spec: ModelSpec, others: Mapping[str, object]) -> Iterator[CheckResult]:
    """(||d||^2)' = -2 d^T (H + lam I)^-1 d, SymPy's derivative of ||d(lam)||^2 at n = 2 and 3
    (decided over polynomials, symopt.checks.solver_pieces.norm_derivative): negative for
    positive definite H + lam I and d != 0, so ||d|| decreases in lam there."""
    if not spec.damping:
        return
    name = "||d(lam)|| decreases in lam where H + lam I is positive definite"
    for n in DIMENSIONS:
        if not pieces.norm_derivative_identity(spec, n, step_at(spec, n)):
            detail = f"at n = {n}, (||d||^2)' is not -2 d^T (H + lam I)^-1 d"
            yield CheckResult(name, False, "symbolic", detail)
            return
    detail = (
        "(||d||^2)' = -2 d^T (H + lam I)^-1 d, an exact identity at n = 2 and n = 3 (SymPy's "
        "derivative of ||d||^2); < 0 for positive definite H + lam I and d != 0"
    )
    yield CheckResult(name, True, "symbolic", detail)


def check_quadratic_one_step(
    spec: ModelSpec, others: Mapping[str, object]
) -> Iterator[CheckResult]:
    """On f(w) = b^T w + w^T A w / 2 (A symmetric), the Newton step from any w lands where the
    gradient b + A w vanishes."""
    lam = damping_symbol(spec.damping)

    def residual(D: Derivation, d: sympy.Matrix) -> sympy.Matrix:
        n = D.n or 0
        A, g = D.symbols["H"], D.symbols["g"]
        w = sympy.Matrix(n, 1, lambda i, _: sympy.Symbol(f"w_{i + 1}", real=True))
        b = g - A * w  # the quadratic whose gradient at w is g and whose Hessian is H
        return b + A * (w + d.xreplace({lam: 0}))

    name = "Newton's step reaches a quadratic's stationary point in one step"
    yield _identity(name + (" (lam = 0)" if spec.damping else ""), spec, residual)


def check_first_order_model(spec: ModelSpec, others: Mapping[str, object]) -> Iterator[CheckResult]:
    """min g^T d subject to ||d|| <= r is d = -r g/||g||: the KKT point from SymPy's solve at n = 2,
    and for every e != 0, g^T e + ||e|| ||g|| = ||g||/(2 ||e||) ||e + ||e|| g/||g|| ||^2 >= 0."""
    name = "the first-order model's minimiser in a ball of radius r is -r g/||g||"
    r, mu = sympy.Symbol("r", positive=True), sympy.Symbol("mu", nonnegative=True)
    g = sympy.Matrix(sympy.symbols("g_1 g_2", real=True))
    d = sympy.Matrix(sympy.symbols("d_1 d_2", real=True))
    kkt = [*(g + 2 * mu * d), (d.T * d)[0, 0] - r**2]
    solutions = sympy.solve(kkt, [*d, mu], dict=True)
    norm_g = sympy.sqrt((g.T * g)[0, 0])
    want = -r * g / norm_g
    found = [s for s in solutions if is_zero_matrix(d.xreplace(s) - want)]
    if not found:
        yield CheckResult(name, False, "symbolic", f"KKT points: {solutions}")
        return
    for n in DIMENSIONS:
        g = sympy.Matrix(n, 1, lambda i, _: sympy.Symbol(f"g_{i + 1}", real=True))
        e = sympy.Matrix(n, 1, lambda i, _: sympy.Symbol(f"e_{i + 1}", real=True))
        norm_g, norm_e = sympy.sqrt((g.T * g)[0, 0]), sympy.sqrt((e.T * e)[0, 0])
        gap = (g.T * e)[0, 0] + norm_e * norm_g
        v = e + norm_e * g / norm_g
        if not is_zero_matrix(sympy.Matrix([gap - norm_g / (2 * norm_e) * (v.T * v)[0, 0]])):
            yield CheckResult(name, False, "symbolic", f"the bound fails at n = {n}")
            return
    yield CheckResult(
        name, True, "symbolic", "KKT point (mu >= 0) at n = 2; g^T e >= -||e|| ||g|| at n = 2, 3"
    )


#: Identities (symopt.checks.curvature) that justify a spec's curvature matrix, and its
#: structured approximation; a name in curvature.NEGATIVE is a claim that must be refuted (shown
#: as "NOT: ...", passing when SymPy finds the nonzero difference).
CURVATURE_IDENTITIES = {
    "hessian": [],
    "ggn": [
        "softmax_hessian",
        "ggn_fisher_softmax",
        "ggn_fisher_squared_error",
        "ggn_fisher_poisson_log",
        "ggn_fisher_sigmoid_squared_error",
        "ggn_fisher_poisson_identity",
        "hessian_ggn_linear",
        "hessian_ggn_plus_residual",
        "hessian_ggn_nonlinear",
    ],
    "fisher": [
        "fisher_expected_hessian",
        "score_mean_zero",
        "ggn_fisher_softmax",
        "ggn_fisher_squared_error",
        "ggn_fisher_sigmoid_squared_error",
    ],
    "empirical_fisher": ["empirical_fisher"],
}
STRUCTURE_IDENTITIES = {
    "dense": [],
    "diagonal": ["diagonal_structured", "diagonal_general"],
    "block_diagonal": ["block_diagonal_structured", "block_diagonal_general", "tonga_push_through"],
    "kronecker": [
        "kfac_single_datum",
        "kfac_single_datum_model",
        "kfac_batch_error",
        "kfac_batch_equal_grads",
        "kfac_batch_exact",
        "kfac_deep_linear",
        "kfac_eigen_inverse",
        "factored_damping_expansion",
        "factored_solve_inverts_factored",
        "factored_solve_exact",
    ],
}


def check_curvature(spec: ModelSpec, others: Mapping[str, object]) -> Iterator[CheckResult]:
    """The identities behind the spec's curvature and structure (symopt.checks.curvature)."""
    names = CURVATURE_IDENTITIES[spec.curvature] + STRUCTURE_IDENTITIES[spec.structure]
    for name, result in zip(names, run_curvature_checks(names), strict=True):
        yield stated(name, result)


def _model_key(spec: ModelSpec) -> tuple[str | None, ...]:
    return (spec.damping, spec.step_text)


def _pieces_key(spec: ModelSpec) -> tuple[str | None, ...]:
    return (spec.damping, spec.rule)


def _once_per_model(check: Check, key_of: Callable = _model_key) -> Check:
    """``check`` run once per process for each ``key_of(spec)``: by default (damping, step
    formula), as a check reads nothing else of the spec, and the damped specs (trust region,
    diagonal, block-diagonal Newton, K-FAC) share one model; the solvers' formulas need the
    rule too (:func:`_pieces_key`)."""
    results: dict[tuple[str | None, ...], list[CheckResult]] = {}

    @functools.wraps(check)
    def cached(spec: ModelSpec, others: Mapping[str, object]) -> list[CheckResult]:
        key = key_of(spec)
        if key not in results:
            results[key] = list(check(spec, others))
        return list(results[key])

    return cached


CHECKS = [
    *map(
        _once_per_model,
        [
            check_derivation,
            check_stationary,
            check_minimiser,
            check_predicted_decrease,
            check_newton_limit,
            check_gradient_limit,
            check_norm_decreasing,
            check_quadratic_one_step,
            check_first_order_model,
        ],
    ),
    *(
        _once_per_model(check, _pieces_key)
        for check in [
            pieces.check_predicted_decrease_any_step,
            pieces.check_secular_newton,
            pieces.check_boundary_taus,
            pieces.check_cauchy_length,
        ]
    ),
    check_curvature,
]

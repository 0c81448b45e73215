"""Checks of a line-search spec (``rule = "line_search"``): the slope its Armijo test uses, and
why the derived step suits a backtracking line search.

The slope ``s`` is the piece the targets print (:func:`symopt.backends.second_order.derived_pieces`,
general ``n``); it is put into explicit ``n = 2, 3`` and compared with the definition of the
directional derivative of the model, ``lim_{t -> 0} (m(t d) - m(0)) / t``, an exact polynomial
identity. The other claims are identities at the derived (or written) step ``d*``: it is a
descent direction, ``t = 1`` minimises the model along it, and on a quadratic loss with the
spec's ``c1 <= 1/2`` the full step passes the Armijo test. Other specs get none of these.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import sympy

from symopt.checks.result import CheckResult
from symopt.checks.second_order import DIMENSIONS, step_at
from symopt.lowering.derive import damping_symbol, derive, is_zero_matrix
from symopt.lowering.line_search import slope as model_slope
from symopt.spec.model import ModelSpec
from symopt.spec.parse_matrix import inverse

T = sympy.Symbol("t", real=True)


def explicit(expr: sympy.Basic, spec: ModelSpec, n: int) -> sympy.Expr:
    """A 1 x 1 matrix expression over the general symbols g, H, d as a scalar at dimension n."""
    general, D = derive(spec, None).symbols, derive(spec, n)
    names = {general[k]: sympy.Matrix(D.symbols[k]) for k in ("g", "H", "d")}
    value = sympy.Matrix(expr.xreplace(names).doit())
    return sympy.expand(value[0, 0])


def slope_result(spec: ModelSpec, slope: sympy.Basic) -> CheckResult:
    """Whether ``slope`` (general n) is d/dt m(t d) at t = 0, by its definition as a limit."""
    name = f"the Armijo test's slope {sympy.sstr(slope)} is the model's derivative along d at t = 0"
    for n in DIMENSIONS:
        D = derive(spec, n)
        d = D.symbols["d"]
        quotient = sympy.cancel((D.model_at([T * x for x in d]) - D.model_at(d * 0)) / T)
        residual = sympy.expand(explicit(slope, spec, n) - quotient.xreplace({T: 0}))
        if residual != 0:
            return CheckResult(name, False, "symbolic", f"at n = {n} they differ by {residual}")
    return CheckResult(name, True, "symbolic", "(m(t d) - m(0)) / t at t -> 0, n = 2 and n = 3")


def _identity(name: str, spec: ModelSpec, residual, detail: str) -> CheckResult:
    """A scalar claim ``residual(D, d*) == 0`` at n = 2 and 3."""
    for n in DIMENSIONS:
        value = residual(derive(spec, n), step_at(spec, n))
        if not is_zero_matrix(sympy.Matrix([value])):
            return CheckResult(name, False, "symbolic", f"fails at n = {n}")
    return CheckResult(name, True, "symbolic", detail)


def check_line_search(spec: ModelSpec, others: Mapping[str, object]) -> Iterator[CheckResult]:
    if spec.rule != "line_search":
        return
    slope = model_slope(spec)  # what derived_pieces prints into the targets
    yield slope_result(spec, slope)
    tau = damping_symbol(spec.damping)

    def at_step(D, d: sympy.Matrix) -> sympy.Expr:
        return explicit(slope, spec, D.n).xreplace(dict(zip(D.symbols["d"], d, strict=True)))

    def damped(D) -> sympy.Matrix:
        return D.symbols["H"] + tau * D.symbols["I"]

    yield _identity(
        "at the step the slope is -g^T (H + tau I)^-1 g: negative (descent) for positive "
        "definite H + tau I",
        spec,
        lambda D, d: at_step(D, d) + (D.symbols["g"].T * inverse(damped(D)) * D.symbols["g"])[0],
        "exact identity at n = 2 and n = 3",
    )
    yield _identity(
        "t = 1 minimises the model along the step: d/dt m(t d*) = 0 at t = 1",
        spec,
        lambda D, d: sympy.diff(D.model_at(T * d), T).xreplace({T: 1}),
        "exact identity at n = 2 and n = 3",
    )
    c1 = next(h.default for h in spec.hypers if h.name == "c1")
    name = (
        f"on a quadratic loss with positive definite H the full step passes the Armijo test with "
        f"the spec's c1 = {c1:g} <= 1/2: L(w + d*) - L(w) - c1 s = (1/2 - c1) s <= 0"
    )
    c = sympy.Symbol("c_1", positive=True)
    quadratic = _identity(
        name,
        spec,
        lambda D, d: (
            D.model_at(d) - c * at_step(D, d) - (sympy.Rational(1, 2) - c) * at_step(D, d)
        ).xreplace({tau: 0}),
        "exact identity at n = 2 and n = 3 (tau = 0), with s < 0",
    )
    if quadratic.passed and not c1 <= 0.5:
        quadratic = CheckResult(name, False, "symbolic", f"c1 = {c1:g} > 1/2")
    yield quadratic


CHECKS = [check_line_search]

"""Spec-declared properties: unbiased bias correction (symbolic in t), gradient-scale invariance."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import sympy

from symopt.checks import CheckResult
from symopt.checks.generic import hyper_domains
from symopt.checks.prove import SYMBOLIC, prove_zero
from symopt.checks.relations import Side, _apply_where, compare
from symopt.checks.unroll import spec_symbols
from symopt.spec import Property, Spec, T, W, make_symbol


def _inline_until(spec: Spec, target: str) -> sympy.Expr:
    """``target``'s right-hand side with earlier intermediates substituted (states stay symbols)."""
    symbols = spec_symbols(spec)
    inter: dict[sympy.Symbol, sympy.Expr] = {}
    states = set(spec.state_names) | {W}
    for a in spec.update:
        expr = a.expr.xreplace(inter)
        if a.target == target:
            return expr
        if a.target not in states:
            inter[symbols[a.target]] = expr
    raise KeyError(target)


def unbiased(spec: Spec, prop: Property) -> CheckResult:
    """For a constant gradient, ``corrected`` equals ``expect`` at every t, proven in closed form.

    The state's recurrence x_t = a x_{t-1} + b (a, b free of x) is solved by ``rsolve``; the closed
    form is re-checked against the recurrence (base case and induction step, symbolic in t), then
    substituted into the corrected expression, which must simplify to the expected value.
    """
    name = f"property: {prop.name}"
    symbols = spec_symbols(spec)
    state, corrected = str(prop.options["state"]), str(prop.options["corrected"])
    x, t = symbols[state], symbols[T]
    update = next(a.expr for a in spec.update if a.target == state)
    update = update.xreplace({symbols[W]: make_symbol(W)})
    rhs = sympy.expand(update)
    a_coef, b_coef = rhs.coeff(x, 1), rhs.coeff(x, 0)
    if sympy.expand(rhs - a_coef * x - b_coef) != 0 or a_coef.has(x) or b_coef.has(x):
        return CheckResult(name, False, "-", f"{state}'s update is not affine in {state}")
    if (a_coef.free_symbols | b_coef.free_symbols) & {symbols[s] for s in spec.state_names}:
        return CheckResult(name, False, "-", f"{state}'s update depends on other state")
    seq = sympy.Function("x")
    init = next(s.init for s in spec.states if s.name == state)
    n = sympy.Symbol("n", integer=True)
    closed = sympy.rsolve(
        seq(n) - a_coef * seq(n - 1) - b_coef, seq(n), {seq(spec.t_start - 1): init}
    )
    if closed is None:
        return CheckResult(name, False, "-", f"SymPy could not solve {state}'s recurrence")
    base = prove_zero(closed.subs(n, spec.t_start - 1) - init, allow_sampling=False)
    step = prove_zero(closed - a_coef * closed.subs(n, n - 1) - b_coef, allow_sampling=False)
    if not (base.holds and step.holds):
        return CheckResult(name, False, SYMBOLIC, "the closed form does not satisfy the recurrence")
    value = _inline_until(spec, corrected).xreplace({x: closed.subs(n, t)})
    expect = prop.options["expect"]
    verdict = prove_zero(value - expect, allow_sampling=False)
    detail = f"{state}_t = {sympy.sstr(sympy.factor(closed.subs(n, t)))} for constant g"
    if not verdict.holds:
        detail = f"{corrected} = {sympy.sstr(sympy.simplify(value))}, not {expect}; " + detail
    return CheckResult(name, verdict.holds, SYMBOLIC, detail)


def scale_invariant(spec: Spec, prop: Property) -> CheckResult:
    """Gradients scaled by c > 0 give the same parameters (uninterpreted gradient, unrolled)."""
    name = f"property: {prop.name}"
    ours = _apply_where(spec, prop.options["where"])  # type: ignore[arg-type]
    side = Side(spec, spec.update, ours)
    c = sympy.Symbol("c", positive=True)
    w = make_symbol(W)
    holds, method, detail = compare(
        side, side, {"w": (w, w)}, hyper_domains(spec), b_gradient_scale=c
    )
    return CheckResult(name, holds, method, detail)


PROPERTY_CHECKS = {"unbiased": unbiased, "scale_invariant": scale_invariant}


def declared_properties(spec: Spec, others: Mapping[str, Spec]) -> Iterator[CheckResult]:
    for prop in spec.properties:
        yield PROPERTY_CHECKS[prop.kind](spec, prop)


CHECKS = [declared_properties]

"""Spec-declared properties: unbiased bias correction (symbolic in t), gradient-scale invariance."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

import sympy

from symopt.checks.budget import attempt
from symopt.checks.generic import hyper_domains
from symopt.checks.prove import MESSAGE_SECONDS, NOT_SHOWN, SYMBOLIC, prove_zero
from symopt.checks.relations import Side, _apply_where, compare, shared_symbols
from symopt.checks.result import CheckResult, unfinished
from symopt.checks.tensors import TensorOracle
from symopt.checks.unroll import initial_env, run_step, spec_symbols
from symopt.spec import Property, Spec, W, make_symbol

T_SYMBOL = sympy.Symbol("t", positive=True, integer=True)


def unbiased(spec: Spec, prop: Property) -> CheckResult:
    """For a constant gradient, ``corrected`` equals ``expect`` at every t, proven in closed form.

    One step is executed symbolically (sequential semantics, as the spec runs) from the state
    value x at step t - 1; the new value must be affine, x_t = a x_{t-1} + b, and its recurrence is
    solved by ``rsolve``. The closed form is re-checked against the step (base case and induction
    step, symbolic in t), and ``corrected``, as computed in that same step, must simplify to the
    expected value for every t. A step through a reduction or matrix product is not shown: its
    opaque value changes with the state, so the recurrence would not really be affine.
    """
    name = f"property: {prop.name}"
    symbols = spec_symbols(spec)
    state, corrected = str(prop.options["state"]), str(prop.options["corrected"])
    g = sympy.Symbol("g", real=True)
    n = sympy.Symbol("n", integer=True, positive=True)
    previous = sympy.Symbol(f"{state}_prev", real=True)

    tensors = TensorOracle(hyper_domains(spec), shared_symbols(spec))

    def step(value: sympy.Expr, t: sympy.Expr) -> dict[str, sympy.Expr]:
        hyper = {h: symbols[h] for h in spec.hyper_names}
        env = initial_env(spec, hyper, make_symbol(W), lambda _point: g, tensors)
        env[state] = value
        return run_step(spec.update, env, t, lambda _point: g, symbols, tensors=tensors)

    after = step(previous, n)
    if tensors.involved(after[state]) or tensors.involved(after[corrected]):
        reason = f"{state}'s update goes through reductions or matrix products"
        return CheckResult(name, False, NOT_SHOWN, reason)
    rhs = sympy.expand(after[state])
    a_coef, b_coef = rhs.coeff(previous, 1), rhs.coeff(previous, 0)
    if (
        a_coef.has(previous)
        or b_coef.has(previous)
        or sympy.expand(rhs - a_coef * previous - b_coef) != 0
    ):
        return CheckResult(name, False, "-", f"{state}'s update is not affine in {state}")
    others = {make_symbol(s) for s in spec.state_names if s != state}
    if (a_coef.free_symbols | b_coef.free_symbols | after[corrected].free_symbols) & others:
        return CheckResult(name, False, "-", f"{state}'s update depends on other state")
    seq = sympy.Function("x")
    init = next(s.init for s in spec.states if s.name == state)
    t0 = spec.t_start
    closed = sympy.rsolve(
        seq(n) - a_coef * seq(n - 1) - b_coef.subs(n, n), seq(n), {seq(t0 - 1): init}
    )
    if closed is None:
        return CheckResult(name, False, "-", f"SymPy could not solve {state}'s recurrence")
    base = prove_zero(closed.subs(n, t0 - 1) - init, allow_sampling=False)
    induction = prove_zero(closed - a_coef * closed.subs(n, n - 1) - b_coef, allow_sampling=False)
    if not (base.holds and induction.holds):
        return CheckResult(name, False, SYMBOLIC, "the closed form does not satisfy the recurrence")
    value = step(closed.subs(n, n - 1), n)[corrected]
    expect = prop.options["expect"].xreplace({symbols["g"]: g})
    verdict = prove_zero(value - expect, allow_sampling=False)
    closed_t, value_t = closed.subs(n, T_SYMBOL), value.subs(n, T_SYMBOL)
    detail = f"{state}_t = {sympy.sstr(_tidy(sympy.factor, closed_t))} for constant g"
    if not verdict.holds:
        shown = sympy.sstr(_tidy(sympy.simplify, value_t))
        detail = f"{corrected} = {shown}, not {sympy.sstr(expect)}; " + detail
    return CheckResult(name, verdict.holds, SYMBOLIC, detail)


def _tidy(transform: Callable[[sympy.Expr], sympy.Expr], expr: sympy.Expr) -> sympy.Expr:
    """``expr`` in a simpler form for a message, if SymPy finds one soon."""
    return attempt(MESSAGE_SECONDS, lambda: transform(expr), expr)


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
        try:
            yield PROPERTY_CHECKS[prop.kind](spec, prop)
        except Exception as exc:  # noqa: BLE001 - one bad claim must not hide the others
            yield unfinished(f"property: {prop.name}", exc)


CHECKS = [declared_properties]

"""Checks every spec gets: at rest, well defined at the first step, descent on the first step."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import sympy

from symopt.checks.prove import SAMPLED, SYMBOLIC, decide_sign, prove_zero
from symopt.checks.result import CheckResult
from symopt.checks.unroll import GradientOracle, initial_env, run_step, spec_symbols
from symopt.spec import Assignment, Spec, W, make_symbol
from symopt.spec.domains import DOMAINS, Domain

REST_STEPS = 3


def hyper_domains(spec: Spec) -> dict[sympy.Symbol, Domain]:
    symbols = spec_symbols(spec)
    return {symbols[h.name]: DOMAINS[h.domain] for h in spec.hypers}


def _hyper_env(spec: Spec) -> dict[str, sympy.Expr]:
    symbols = spec_symbols(spec)
    return {h: symbols[h] for h in spec.hyper_names}


def _combine(methods: list[str]) -> str:
    return SAMPLED if SAMPLED in methods else SYMBOLIC


def _witness(verdict) -> str:
    if not verdict.witness:
        return ""
    return " (counterexample: " + ", ".join(f"{k} = {v}" for k, v in verdict.witness.items()) + ")"


def at_rest(spec: Spec, others: Mapping[str, Spec]) -> Iterator[CheckResult]:
    name = f"at rest: g = 0 leaves w unchanged ({REST_STEPS} steps from the initial state)"
    symbols, domains = spec_symbols(spec), hyper_domains(spec)
    w0 = make_symbol(W)
    env = initial_env(spec, _hyper_env(spec), w0)
    oracle = GradientOracle(domains, zero=True)
    methods = []
    for k in range(REST_STEPS):
        env = run_step(spec.update, env, spec.t_start + k, oracle, symbols)
        verdict = prove_zero(env[W] - w0, domains)
        methods.append(verdict.method)
        if not verdict.holds:
            yield CheckResult(
                name, False, verdict.method, f"step {k + 1}: w moves to {env[W]}{_witness(verdict)}"
            )
            return
    yield CheckResult(name, True, _combine(methods))


def _problems(expr: sympy.Expr) -> Iterator[tuple[str, sympy.Expr, str]]:
    """(kind, subexpression, requirement) for every division, even root and log in ``expr``."""
    for node in sympy.postorder_traversal(expr):  # innermost first: report the root cause
        if isinstance(node, sympy.Pow):
            base, exp = node.args
            if exp.is_negative:
                yield "division by zero", base, "nonzero"
            if exp.is_Rational and not exp.is_integer and exp.q % 2 == 0:
                yield "square root of a negative number", base, "nonnegative"
        elif isinstance(node, sympy.log):
            yield "logarithm of a nonpositive number", node.args[0], "positive"


FAILS = {"nonzero": "can be 0", "nonnegative": "can be negative", "positive": "can be <= 0"}


def well_defined(spec: Spec, others: Mapping[str, Spec]) -> Iterator[CheckResult]:
    t0 = spec.t_start
    name = f"well defined at the first step (t = {t0}): no division by 0, no root of a negative"
    symbols, domains = spec_symbols(spec), hyper_domains(spec)
    g = sympy.Symbol("g", real=True)
    env = initial_env(spec, _hyper_env(spec), make_symbol(W))
    found: list[tuple[Assignment, str, sympy.Expr, str, object]] = []

    def inspect(a: Assignment, mapping: dict) -> None:
        for kind, sub, want in _problems(a.expr):
            value = sub.xreplace(mapping)
            found.append((a, kind, sub, want, decide_sign(value, want, domains)))

    run_step(spec.update, env, t0, _gradient_at(env[W], g), symbols, on_assign=inspect)
    methods = []
    for a, kind, sub, want, verdict in found:
        methods.append(verdict.method)
        if not verdict.holds:
            yield CheckResult(
                name,
                False,
                verdict.method,
                f"{kind}: {sympy.sstr(sub)} {FAILS[want]} at t = {t0} in '{a.text}'"
                f"{_witness(verdict)}",
            )
            return
    yield CheckResult(
        name,
        True,
        _combine(methods) if methods else SYMBOLIC,
        f"{len(found)} division(s)/root(s) inspected",
    )


def _gradient_at(w0: sympy.Expr, g: sympy.Symbol):
    """g at the starting point; a fresh symbol at any point not provably equal to it."""
    extra: dict[sympy.Expr, sympy.Symbol] = {}

    def gradient(point: sympy.Expr) -> sympy.Expr:
        if prove_zero(point - w0, allow_sampling=False).holds:
            return g
        return extra.setdefault(point, sympy.Symbol(f"g_{len(extra) + 1}", real=True))

    return gradient


def descent(spec: Spec, others: Mapping[str, Spec]) -> Iterator[CheckResult]:
    name = "descent: the first step moves against the gradient, (w1 - w0) g < 0 for g != 0"
    symbols, domains = spec_symbols(spec), hyper_domains(spec)
    g = sympy.Symbol("g", real=True, nonzero=True)
    w0 = make_symbol(W)
    env = initial_env(spec, _hyper_env(spec), w0)
    env = run_step(spec.update, env, spec.t_start, _gradient_at(w0, g), symbols)
    verdict = decide_sign((env[W] - w0) * g, "negative", domains)
    detail = f"w1 - w0 = {sympy.sstr(sympy.simplify(env[W] - w0))}"
    yield CheckResult(name, verdict.holds, verdict.method, detail + _witness(verdict))


CHECKS = [at_rest, well_defined, descent]

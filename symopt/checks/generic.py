"""Checks every spec gets: at rest, well defined at the first step, descent on the first step.

Each runs once per update of the spec: the update, and for an ``applies_to = "matrix"`` spec with
``[otherwise]`` also that one, named "(other shapes)". A spec restricts a check with
``[checks.NAME] where = { hyper = "value" }``: the check then runs with those values substituted
and its name says so, e.g. ``at rest (weight_decay = 0): ...``. A check also says when its claim
does not really apply to an update (:data:`APPLIES`): descent is a per-coordinate claim, so for an
update whose step goes through matrix products or transposes it is tried, and unless it is proven
exactly it is "not shown" for that reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import sympy

from symopt.checks.budget import attempt
from symopt.checks.guards import guarded, guards
from symopt.checks.prove import (
    MESSAGE_SECONDS,
    NOT_SHOWN,
    SAMPLED,
    SYMBOLIC,
    decide_sign,
    prove_zero,
)
from symopt.checks.result import CheckResult, UndefinedValue
from symopt.checks.tensors import TensorOracle, spec_str
from symopt.checks.unroll import GradientOracle, initial_env, run_step, spec_symbols
from symopt.spec import Assignment, Spec, W, make_symbol
from symopt.spec.common import COLS, ROWS, G, T
from symopt.spec.domains import DOMAINS, Domain
from symopt.spec.tensor import MatProduct, Transposed

REST_STEPS = 3
DETAIL_CHARS = 300
SIMPLIFY_DETAIL_OPS = 200


def hyper_domains(spec: Spec) -> dict[sympy.Symbol, Domain]:
    symbols = spec_symbols(spec)
    return {symbols[h.name]: DOMAINS[h.domain] for h in spec.hypers}


def _combine(methods: list[str]) -> str:
    return SAMPLED if SAMPLED in methods else SYMBOLIC


def _witness(verdict) -> str:
    """`` (counterexample: a = 1, ...)``; where it lives (a one-element parameter) if it says."""
    extra = f" {verdict.reason}" if verdict.reason and verdict.method != NOT_SHOWN else ""
    if not verdict.witness:
        return f" (fails{extra})" if extra else ""
    point = ", ".join(f"{k} = {v}" for k, v in verdict.witness.items())
    return f" (counterexample{extra}: {point})"


def short(expr: sympy.Basic, limit: int = DETAIL_CHARS) -> str:
    text = sympy.sstr(expr)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class Variant:
    """One generic check on one update, with the check's scope applied."""

    spec: Spec
    update: tuple[Assignment, ...]
    hyper: dict[str, sympy.Expr]
    label: str  # "" or "other shapes; weight_decay = 0", for the check's name

    def name(self, head: str, claim: str) -> str:
        if not self.label:
            return f"{head}: {claim}"
        if head.endswith(")"):
            return f"{head[:-1]}; {self.label}): {claim}"
        return f"{head} ({self.label}): {claim}"

    @property
    def symbols(self) -> dict[str, sympy.Symbol]:
        return spec_symbols(self.spec, self.update)

    @property
    def domains(self) -> dict[sympy.Symbol, Domain]:
        return hyper_domains(self.spec)

    def tensors(self, local: set[sympy.Symbol] = frozenset()) -> TensorOracle:
        """An oracle whose shared symbols are the hyperparameters, t, rows and cols."""
        s = self.symbols
        shared = {s[h] for h in self.spec.hyper_names} | {s[T], s[ROWS], s[COLS]}
        return TensorOracle(self.domains, shared, set(local))

    def start(self, w0, gradient, tensors) -> dict[str, sympy.Expr]:
        states = self.spec.states_of(self.update)
        return initial_env(self.spec, self.hyper, w0, gradient, tensors, states)


def variants(spec: Spec, key: str) -> list[Variant]:
    """The updates a generic check runs on, with ``[checks.KEY]``'s scope substituted."""
    scope = spec.check_scopes.get(key, {})
    symbols = spec_symbols(spec)
    hyper = {h: scope.get(h, symbols[h]) for h in spec.hyper_names}
    where = ", ".join(f"{k} = {sympy.sstr(v)}" for k, v in scope.items())
    updates = [("", spec.update)]
    if spec.otherwise:
        updates.append(("other shapes", spec.otherwise))
    out = []
    for label, update in updates:
        full = "; ".join(x for x in (label, where) if x)
        out.append(Variant(spec, update, hyper, full))
    return out


def _mixes_coordinates(update: tuple[Assignment, ...]) -> bool:
    """Whether w's new value depends on a line with a matrix product or transpose."""
    needed = {W}
    for a in reversed(update):  # sequential semantics: a line's target is set there
        if a.target not in needed:
            continue
        if a.expr.has(MatProduct, Transposed):
            return True
        needed = (needed - {a.target}) | {s.name for s in a.expr.free_symbols}
    return False


def _descent_applies(spec: Spec, update: tuple[Assignment, ...]) -> str | None:
    if _mixes_coordinates(update):
        return (
            "the step goes through matrix products or transposes, which mix coordinates; "
            "(w1 - w0) g < 0 is a per-coordinate claim"
        )
    return None


#: Check key -> why its claim does not really apply to an update (None: it applies).
APPLIES: dict[str, Callable[[Spec, tuple[Assignment, ...]], str | None]] = {
    "at_rest": lambda spec, update: None,
    "well_defined": lambda spec, update: None,
    "descent": _descent_applies,
}


def _each(key: str, spec: Spec, head: str, claim: str, run) -> Iterator[CheckResult]:
    """``run`` on every variant. Where the check does not apply it is still tried (an exact
    proof stands, and so does a counterexample that needs no opaque value); "not shown" then
    gives the check's own reason."""
    for v in variants(spec, key):
        name = v.name(head, claim)
        result = run(v, name)
        reason = APPLIES[key](spec, v.update)
        if reason and result.not_shown:
            result = CheckResult(name, False, NOT_SHOWN, reason)
        yield result


def _verdict_result(name: str, verdict, detail: str) -> CheckResult:
    if verdict.method == NOT_SHOWN:
        return CheckResult(name, False, NOT_SHOWN, verdict.reason)
    return CheckResult(name, verdict.holds, verdict.method, detail)


def at_rest(spec: Spec, others: Mapping[str, Spec]) -> Iterator[CheckResult]:
    claim = f"g = 0 leaves w unchanged ({REST_STEPS} steps from the initial state)"
    yield from _each("at_rest", spec, "at rest", claim, _at_rest)


def _at_rest(v: Variant, name: str) -> CheckResult:
    w0 = make_symbol(W)
    oracle, tensors = GradientOracle(v.domains, zero=True), v.tensors()
    env = v.start(w0, oracle, tensors)
    methods = []
    for k in range(REST_STEPS):
        env = run_step(v.update, env, v.spec.t_start + k, oracle, v.symbols, tensors=tensors)
        diff = env[W] - w0
        verdict = tensors.settle(
            prove_zero(diff, v.domains), diff, lambda e: prove_zero(e, v.domains)
        )
        methods.append(verdict.method)
        if not verdict.holds:
            moved = f"step {k + 1}: w moves to {short(env[W])}{_witness(verdict)}"
            return _verdict_result(name, verdict, moved)
    return CheckResult(name, True, _combine(methods))


def _problems(expr: sympy.Expr) -> Iterator[tuple[str, sympy.Expr, sympy.Expr, str]]:
    """(kind, node, subexpression, requirement) for every division, even root and log."""
    for node in sympy.postorder_traversal(expr):  # innermost first: report the root cause
        if isinstance(node, sympy.Pow):
            base, exp = node.args
            if exp.is_negative:
                yield "division by zero", node, base, "nonzero"
            if exp.is_Rational and not exp.is_integer and exp.q % 2 == 0:
                yield "square root of a negative number", node, base, "nonnegative"
        elif isinstance(node, sympy.log):
            yield "logarithm of a nonpositive number", node, node.args[0], "positive"


FAILS = {"nonzero": "can be 0", "nonnegative": "can be negative", "positive": "can be <= 0"}


def well_defined(spec: Spec, others: Mapping[str, Spec]) -> Iterator[CheckResult]:
    head = f"well defined at the first step (t = {spec.t_start})"
    claim = "no division by 0, no root of a negative"
    yield from _each("well_defined", spec, head, claim, _well_defined)


def _well_defined(v: Variant, name: str) -> CheckResult:
    """Every division, root and log of the first step, where its value is used (see
    :mod:`symopt.checks.guards`), for every g."""
    t0, domains = v.spec.t_start, v.domains
    g = sympy.Symbol("g", real=True)
    tensors = v.tensors()
    w0 = make_symbol(W)
    gradient = _gradient_at(w0, g)
    env = v.start(w0, gradient, tensors)
    found: list[tuple[str, str, sympy.Expr, sympy.Expr, sympy.Expr, str]] = []

    def inspect(a: Assignment, mapping: dict) -> None:
        for kind, node, sub, want in _problems(a.expr):
            value, at = tensors(sub.xreplace(mapping)), tensors(node.xreplace(mapping))
            found.append((a.text, kind, sub, value, at, want))

    symbols = v.symbols
    first = {symbols[h]: x for h, x in v.hyper.items()} | {symbols[W]: w0, symbols[G]: g}
    for s in v.spec.states_of(v.update):  # a state set from the first g or w: its init too
        inspect(Assignment(s.name, s.init, f"init of {s.name}"), first)

    try:
        after = run_step(v.update, env, t0, gradient, v.symbols, inspect, tensors)
    except UndefinedValue as exc:  # exactly: every value of the symbols left gives it
        return CheckResult(name, False, SYMBOLIC, str(exc))
    used = guards(after[x] for x in (W, *(s.name for s in v.spec.states_of(v.update))))
    methods = []
    for text, kind, sub, value, at, want in found:
        claim = guarded(value, used.get(at, sympy.true))
        verdict = decide_sign(claim, want, domains)
        verdict = tensors.settle(verdict, claim, lambda e, w=want: decide_sign(e, w, domains))
        methods.append(verdict.method)
        if not verdict.holds:
            detail = (
                f"{kind}: {spec_str(sub)} {FAILS[want]} at t = {t0} in '{text}'{_witness(verdict)}"
            )
            return _verdict_result(name, verdict, detail)
    method = _combine(methods) if methods else SYMBOLIC
    return CheckResult(name, True, method, f"{len(found)} division(s)/root(s) inspected")


def _gradient_at(w0: sympy.Expr, g: sympy.Symbol):
    """g at the starting point; a fresh symbol at any point not provably equal to it."""
    extra: dict[sympy.Expr, sympy.Symbol] = {}

    def gradient(point: sympy.Expr) -> sympy.Expr:
        if prove_zero(point - w0, allow_sampling=False).holds:
            return g
        return extra.setdefault(point, sympy.Symbol(f"g_{len(extra) + 1}", real=True))

    return gradient


def descent(spec: Spec, others: Mapping[str, Spec]) -> Iterator[CheckResult]:
    claim = "the first step moves against the gradient, (w1 - w0) g < 0 for g != 0"
    yield from _each("descent", spec, "descent", claim, _descent)


def _descent(v: Variant, name: str) -> CheckResult:
    g = sympy.Symbol("g", real=True, nonzero=True)
    w0 = make_symbol(W)
    tensors = v.tensors(local={g})
    gradient = _gradient_at(w0, g)
    env = v.start(w0, gradient, tensors)
    env = run_step(v.update, env, v.spec.t_start, gradient, v.symbols, tensors=tensors)
    product = (env[W] - w0) * g
    verdict = decide_sign(product, "negative", v.domains)
    verdict = tensors.settle(verdict, product, lambda e: decide_sign(e, "negative", v.domains))
    step = env[W] - w0
    if sympy.count_ops(step) <= SIMPLIFY_DETAIL_OPS and not step.has(sympy.Piecewise):
        step = attempt(MESSAGE_SECONDS, lambda: sympy.simplify(step), step)
    return _verdict_result(name, verdict, f"w1 - w0 = {short(step)}{_witness(verdict)}")


CHECKS = [at_rest, well_defined, descent]

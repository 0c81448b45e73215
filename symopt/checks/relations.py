"""Relations between updates, proven by unrolling both with the same uninterpreted gradient.

Covers the spec-declared ``[[relations]]`` (special cases, "differs only in", inline variants) and
the equivalence of a ``[lookahead_free]`` form with the spec's own update. Both runs share one
:class:`~symopt.checks.tensors.TensorOracle`, so the same reduction or matrix product on both sides
is the same symbol; a difference that depends on one and is not proven is "not shown".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping

import sympy

from symopt.checks.generic import _combine, _witness, hyper_domains
from symopt.checks.prove import NOT_SHOWN, prove_zero
from symopt.checks.result import CheckResult, unfinished
from symopt.checks.tensors import TensorOracle
from symopt.checks.unroll import GradientOracle, initial_env, run_step, spec_symbols
from symopt.spec import Assignment, Relation, Spec, StateVar, W, make_symbol
from symopt.spec.common import COLS, ROWS, T

UNROLL_STEPS = 3


@dataclasses.dataclass
class Side:
    """One of the two runs being compared."""

    spec: Spec
    update: tuple[Assignment, ...]
    hyper: dict[str, sympy.Expr]

    def start(self, w0: sympy.Expr, gradient, tensors: TensorOracle) -> dict[str, sympy.Expr]:
        return initial_env(self.spec, self.hyper, w0, gradient, tensors)

    def step(self, env, k: int, oracle, tensors: TensorOracle) -> dict[str, sympy.Expr]:
        symbols = spec_symbols(self.spec, self.update)
        return run_step(self.update, env, self.spec.t_start + k, oracle, symbols, tensors=tensors)


def _evaluate(expr: sympy.Expr, spec: Spec, env: Mapping[str, sympy.Expr]) -> sympy.Expr:
    symbols = spec_symbols(spec)
    return expr.xreplace({symbols[k]: v for k, v in env.items() if k in symbols})


def shared_symbols(spec: Spec, extra: tuple[sympy.Symbol, ...] = ()) -> set[sympy.Symbol]:
    """The symbols with one value for every coordinate: hyperparameters, t, rows, cols."""
    s = spec_symbols(spec)
    return {s[h] for h in spec.hyper_names} | {s[T], s[ROWS], s[COLS], *extra}


def compare(
    a: Side,
    b: Side,
    pairs: Mapping[str, tuple[sympy.Expr, sympy.Expr]],
    domains,
    steps: int = UNROLL_STEPS,
    b_gradient_scale: sympy.Expr = sympy.S.One,
) -> tuple[bool, str, str]:
    """Unroll both sides from the same w0; before and after every step each pair must agree.

    ``pairs`` maps a label to (expression over a's variables, expression over b's variables).
    Returns (holds, method, detail).
    """
    w0 = make_symbol(W)
    oracle = GradientOracle(domains)
    shared = shared_symbols(a.spec, tuple(b_gradient_scale.free_symbols))
    tensors = TensorOracle(domains, shared | shared_symbols(b.spec))

    def grad_b(point):
        return b_gradient_scale * oracle(point)

    env_a, env_b = a.start(w0, oracle, tensors), b.start(w0, grad_b, tensors)
    methods: list[str] = []
    for k in range(steps + 1):
        if k:
            env_a = a.step(env_a, k - 1, oracle, tensors)
            env_b = b.step(env_b, k - 1, grad_b, tensors)
        for label, (expr_a, expr_b) in pairs.items():
            diff = _evaluate(expr_a, a.spec, env_a) - _evaluate(expr_b, b.spec, env_b)
            diff = tensors(diff)
            verdict = prove_zero(diff, domains)
            verdict = tensors.settle(verdict, diff, lambda e: prove_zero(e, domains))
            methods.append(verdict.method)
            if verdict.method == NOT_SHOWN:
                return False, NOT_SHOWN, f"after step {k}: {label}: {verdict.reason}"
            if not verdict.holds:
                return False, verdict.method, f"after step {k}: {label} differs{_witness(verdict)}"
    methods.append(oracle.method)
    return True, _combine(methods), f"{steps} steps unrolled with an uninterpreted gradient"


def _apply_where(spec: Spec, where: Mapping[str, sympy.Expr]) -> dict[str, sympy.Expr]:
    symbols = spec_symbols(spec)
    return {h: where.get(h, symbols[h]) for h in spec.hyper_names}


def _replaced(
    update: tuple[Assignment, ...], replace: tuple[Assignment, ...]
) -> tuple[Assignment, ...]:
    swap = {r.target: r for r in replace}
    return tuple(swap.get(a.target, a) for a in update)


def _other_side(spec: Spec, rel: Relation, others: Mapping[str, Spec], ours: dict) -> Side:
    if rel.other is None:
        inline = dataclasses.replace(
            spec,
            states=tuple(StateVar(k, v, k) for k, v in rel.init.items()),
            update=rel.update,
            lookahead_free=None,
        )
        return Side(inline, rel.update, dict(ours))
    if rel.other not in others:
        raise LookupError(f"unknown spec {rel.other!r} in relation {rel.name!r}")
    other = others[rel.other]
    hyper = {}
    for h in other.hyper_names:
        if h in rel.hyper:
            hyper[h] = _evaluate(rel.hyper[h], spec, ours)
        elif h in ours:
            hyper[h] = ours[h]
        else:
            raise LookupError(
                f"{rel.other}'s hyperparameter {h!r} has no value (add it to 'hyper')"
            )
    return Side(other, other.update, hyper)


def declared_relations(spec: Spec, others: Mapping[str, Spec]) -> Iterator[CheckResult]:
    for rel in spec.relations:
        try:
            yield check_relation(spec, rel, others)
        except LookupError as exc:
            yield CheckResult(f"relation: {rel.name}", False, "-", str(exc))
        except Exception as exc:  # noqa: BLE001 - one bad claim must not hide the others
            yield unfinished(f"relation: {rel.name}", exc)


def check_relation(spec: Spec, rel: Relation, others: Mapping[str, Spec]) -> CheckResult:
    domains = hyper_domains(spec)
    name = f"relation: {rel.name}"
    ours = _apply_where(spec, rel.where)
    b = _other_side(spec, rel, others, ours)
    a = Side(spec, _replaced(spec.update, rel.replace), ours)
    pairs = {"w": (make_symbol(W), make_symbol(W))}
    pairs.update({f"state {k}": (v, make_symbol(k)) for k, v in rel.state.items()})
    holds, method, detail = compare(a, b, pairs, domains)
    if holds and rel.replace:
        # "Differs only in X" also claims that X makes a difference.
        plain = Side(spec, spec.update, ours)
        same, how, why = compare(plain, b, {"w": pairs["w"]}, domains)
        if same:
            holds, detail = False, "the replaced assignments make no difference: nothing differs"
        elif how == NOT_SHOWN:
            method, detail = NOT_SHOWN, f"whether the replacement makes a difference: {why}"
        else:
            detail += "; without the replacement the updates differ"
    return CheckResult(name, holds, method, detail)


def lookahead_form(spec: Spec, others: Mapping[str, Spec]) -> Iterator[CheckResult]:
    form = spec.lookahead_free
    if form is None:
        return
    name = "look-ahead-free form equals the update (needs only the gradient at the stored point)"
    ours = _apply_where(spec, {})
    a, b = Side(spec, spec.update, ours), Side(spec, form.update, ours)
    pairs = {
        var: (make_symbol(var), form.variables.get(var, make_symbol(var)))
        for var in (W, *spec.state_names)
    }
    yield CheckResult(name, *compare(a, b, pairs, hyper_domains(spec)))


CHECKS = [lookahead_form, declared_relations]

"""Symbolic execution of an update for a few steps, with an uninterpreted gradient.

The gradient is a function G we know nothing about. Two runs share a :class:`GradientOracle`: when
one asks for G at a point that SymPy proves equal to a point already seen, it gets the same symbol
(congruence: x = y implies G(x) = G(y)); any other point gets a fresh symbol. So two updates that
agree for *every* gradient function are shown equal, and nothing more is assumed.

Reductions, matrix products and transposes become opaque symbols as they are computed (see
:mod:`symopt.checks.tensors`); a state whose ``init`` reads ``g`` or ``w`` starts from the first
step's gradient and parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import sympy

from symopt.checks.prove import SAMPLED, SYMBOLIC, prove_zero
from symopt.checks.result import NOT_ORDERED, UndefinedValue
from symopt.checks.tensors import TensorOracle
from symopt.spec import Assignment, G, Spec, StateVar, T, W, make_symbol
from symopt.spec.domains import Domain
from symopt.spec.parse import Grad


@dataclass
class GradientOracle:
    domains: Mapping[sympy.Symbol, Domain]
    zero: bool = False  # every gradient is 0 ("at rest")
    points: list[tuple[sympy.Expr, sympy.Symbol]] = field(default_factory=list)
    method: str = SYMBOLIC  # SAMPLED once an identification needed sampling
    assumptions: dict[str, bool] = field(default_factory=lambda: {"real": True})

    def __call__(self, point: sympy.Expr) -> sympy.Expr:
        if self.zero:
            return sympy.Integer(0)
        for known, value in self.points:
            verdict = prove_zero(point - known, self.domains)
            if verdict.holds:
                if verdict.method == SAMPLED:
                    self.method = SAMPLED
                return value
        value = sympy.Symbol(f"g_{len(self.points) + 1}", **self.assumptions)
        self.points.append((point, value))
        return value


def initial_env(
    spec: Spec,
    hyper: Mapping[str, sympy.Expr],
    w0: sympy.Expr,
    gradient: Callable[[sympy.Expr], sympy.Expr] | None = None,
    tensors: TensorOracle | None = None,
    states: tuple[StateVar, ...] | None = None,
) -> dict[str, sympy.Expr]:
    """Values by name at the start: hyperparameters (as given), w, and initial states.

    An ``init`` that reads ``g`` or ``w`` is the first step's: ``w0`` and the gradient there
    (asked of ``gradient``, which returns the same value when the step asks again).
    """
    env: dict[str, sympy.Expr] = dict(hyper)
    env[W] = w0
    symbols = _symbols(spec)
    first = {symbols[W]: w0}
    for s in spec.states if states is None else states:
        if symbols[G] in s.init.free_symbols:
            first[symbols[G]] = gradient(w0) if gradient is not None else symbols[G]
        values = {symbols[k]: v for k, v in env.items() if k in symbols and k != W}
        value = s.init.xreplace({**values, **first})
        env[s.name] = tensors(value) if tensors is not None else value
    return env


def _symbols(spec: Spec) -> dict[str, sympy.Symbol]:
    from symopt.spec import symbol_table

    return symbol_table(spec)


def run_step(
    update: tuple[Assignment, ...],
    env: Mapping[str, sympy.Expr],
    t: int | sympy.Expr,
    gradient: Callable[[sympy.Expr], sympy.Expr],
    symbols: Mapping[str, sympy.Symbol],
    on_assign: Callable[[Assignment, dict], None] | None = None,
    tensors: TensorOracle | None = None,
) -> dict[str, sympy.Expr]:
    """One step with sequential semantics; returns the new env (intermediates included).

    A name assigned twice (AdamW's decay, then its step) or in a repeat block (stored unrolled)
    simply takes each value in turn. Tensor-level nodes go through ``tensors`` (a fresh oracle
    when none is given: the same node in another call then gets another symbol, which is sound).
    """
    tensors = tensors if tensors is not None else TensorOracle()
    env = dict(env)
    env[T] = sympy.sympify(t)
    env[G] = gradient(env[W])
    for a in update:
        mapping = {symbols[k]: v for k, v in env.items() if k in symbols}
        if on_assign is not None:
            on_assign(a, mapping)
        try:
            value = a.expr.xreplace(mapping)
            if value.has(Grad):
                value = value.replace(Grad, gradient)
        except (TypeError, ValueError) as exc:
            if not any(m in str(exc) for m in NOT_ORDERED):
                raise
            raise UndefinedValue(
                f"'{a.text}' compares a value that is no finite real number (a division by 0, "
                f"NaN or complex) at t = {sympy.sstr(env[T])}, which exact arithmetic cannot order"
            ) from None
        env[a.target] = tensors(value)
    return env


def spec_symbols(spec: Spec, update: tuple[Assignment, ...] = ()) -> dict[str, sympy.Symbol]:
    table = _symbols(spec)
    for a in update:
        table.setdefault(a.target, make_symbol(a.target))
    return table

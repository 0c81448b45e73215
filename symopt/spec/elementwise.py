"""Element-wise specs: an update of w and per-coordinate state, loaded from TOML or built in Python.

An update is an ordered list of assignments with sequential semantics: on the right-hand side a
name means its current value, so ``m = beta1*m + (1 - beta1)*g`` reads the old ``m``, and every
later line sees the new one. Each name is assigned at most once per step.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

import sympy

from symopt.spec.common import G, Hyper, HyperparameterOwner, T, W, make_symbol
from symopt.spec.domains import DOMAINS


@dataclass(frozen=True)
class StateVar:
    name: str
    init: sympy.Expr
    latex: str
    doc: str = ""


@dataclass(frozen=True)
class Assignment:
    target: str
    expr: sympy.Expr
    text: str  # the line as written in the spec, for comments and messages


@dataclass(frozen=True)
class LookaheadFree:
    """An equivalent update that needs only the gradient at the stored parameters.

    ``variables`` expresses the spec's own variables in terms of this form's (e.g. Nesterov's
    ``w = w - rho*v``: the stored parameter is the look-ahead point ``w + rho*v``).
    """

    summary: str
    variables: Mapping[str, sympy.Expr]
    update: tuple[Assignment, ...]


@dataclass(frozen=True)
class Relation:
    """A claim that this spec (modified by ``where`` / ``replace``) equals another update."""

    name: str
    where: Mapping[str, sympy.Expr]
    replace: tuple[Assignment, ...]
    other: str | None  # a spec name, or None for the inline ``update``/``init``
    hyper: Mapping[str, sympy.Expr]  # other spec's hyperparameters in terms of ours
    state: Mapping[str, sympy.Expr]  # other's state in terms of ours, compared each step
    update: tuple[Assignment, ...] = ()
    init: Mapping[str, sympy.Expr] = field(default_factory=dict)


@dataclass(frozen=True)
class Property:
    """A spec-declared property with a dedicated check (see :mod:`symopt.checks.properties`)."""

    kind: str
    name: str
    options: Mapping[str, object]


@dataclass(frozen=True)
class Spec(HyperparameterOwner):
    name: str
    class_name: str
    title: str
    summary: str
    reference: str
    notes: str
    hypers: tuple[Hyper, ...]
    states: tuple[StateVar, ...]
    update: tuple[Assignment, ...]
    intermediate_latex: Mapping[str, str] = field(default_factory=dict)
    lookahead_free: LookaheadFree | None = None
    relations: tuple[Relation, ...] = ()
    properties: tuple[Property, ...] = ()
    t_start: int = 1
    source: str = "<python>"
    text: str = ""

    #: Element-wise specs have an update; second-order ones (:mod:`symopt.spec.model`) a model.
    kind: ClassVar[str] = "elementwise"

    # -- symbols -------------------------------------------------------------------------------
    @property
    def state_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.states)

    @property
    def executable_update(self) -> tuple[Assignment, ...]:
        """The update a gradient stream can drive: the look-ahead-free form when there is one."""
        return self.lookahead_free.update if self.lookahead_free else self.update

    @property
    def intermediates(self) -> tuple[str, ...]:
        names = {W, *self.state_names}
        return tuple(a.target for a in self.update if a.target not in names)

    def latex_name(self, name: str) -> str:
        for h in self.hypers:
            if h.name == name:
                return h.latex
        for s in self.states:
            if s.name == name:
                return s.latex
        return self.intermediate_latex.get(name, sympy.latex(sympy.Symbol(name)))


def symbol_table(spec: Spec) -> dict[str, sympy.Symbol]:
    """Every symbol a spec's expressions may contain, keyed by name (hypers carry their domain)."""
    table = {h.name: make_symbol(h.name, DOMAINS[h.domain].assumptions) for h in spec.hypers}
    table[T] = sympy.Symbol(T, positive=True, integer=True)
    for name in (W, G, *spec.state_names, *assigned_names(spec.update)):
        table.setdefault(name, make_symbol(name))
    return table


def assigned_names(update: tuple[Assignment, ...]) -> list[str]:
    return [a.target for a in update]

"""Element-wise specs: an update of w and per-coordinate state, loaded from TOML or built in Python.

An update is an ordered list of assignments with sequential semantics: on the right-hand side a
name means its current value, so ``m = beta1*m + (1 - beta1)*g`` reads the old ``m``, and every
later line sees the new one. A name may be assigned again (AdamW's decay, then its step), and a
``{ repeat = N, update = [...] }`` block runs its lines N times (stored unrolled, each line
remembering its block, so documents and code can show the loop).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

import sympy

from symopt.spec import tensor
from symopt.spec.common import COLS, ROWS, G, Hyper, HyperparameterOwner, T, W, make_symbol
from symopt.spec.domains import DOMAINS

if TYPE_CHECKING:
    from symopt.spec.api import Family

#: Which parameters (by their number of dimensions) take a spec's update, by ``applies_to``.
APPLIES_TO = {
    "any": lambda ndim: True,
    "matrix": lambda ndim: ndim == 2,
    "multidim": lambda ndim: ndim >= 2,
}
SHAPE_WORDS = {"any": "all", "matrix": "2-D", "multidim": "multi-dimensional"}

#: The shapes a state variable can have, relative to its parameter.
STATE_SHAPES = ("full", "scalar", "rows", "cols")


@dataclass(frozen=True)
class StateVar:
    name: str
    init: sympy.Expr  # over hyperparameters, and g and w for state set from the first step
    latex: str
    doc: str = ""
    shape: str = "full"  # one of STATE_SHAPES: rows = one value per row of a 2-D parameter
    #: The flag (or ``off_at_zero`` hyperparameter) without which this state does not exist.
    when: str | None = None
    #: Its key in a framework's state dict (``exp_avg``); the name when not given.
    key: str = ""

    @property
    def state_key(self) -> str:
        return self.key or self.name


@dataclass(frozen=True)
class Flag:
    """A true/false option (``[flag.NAME]``): each setting of a spec's flags is a variant with
    its own equations, checks and code (:mod:`symopt.spec.family`)."""

    name: str
    default: bool
    doc: str = ""


@dataclass(frozen=True)
class Repeat:
    """Where an unrolled line of a ``repeat`` block came from."""

    block: int  # the block's index among the update's repeat blocks
    count: int  # how many times the block runs
    iteration: int  # which run this line belongs to (0-based)


@dataclass(frozen=True)
class Assignment:
    target: str
    expr: sympy.Expr
    text: str  # the line as written in the spec, for comments and messages
    repeat: Repeat | None = None


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
    #: "any": the update applies to every parameter; "matrix": to 2-D parameters; "multidim": to
    #: parameters of two or more dimensions (LARS's weight matrices and convolution kernels).
    #: Every other parameter takes ``otherwise`` (or is refused when that is empty, like Muon).
    applies_to: str = "any"
    otherwise: tuple[Assignment, ...] = ()
    #: A generic check's name -> hyperparameter values it is restricted to (``[checks.NAME]``).
    check_scopes: Mapping[str, Mapping[str, sympy.Expr]] = field(default_factory=dict)
    #: The flags of a spec as written; a loaded spec is one variant, with none left.
    flags: tuple[Flag, ...] = ()
    #: The family this variant belongs to (set for specs with flags, ``off_at_zero``
    #: hyperparameters or a framework API), and the setting of its axes that made it.
    family: Family | None = None
    setting: Mapping[str, bool] = field(default_factory=dict)

    #: Element-wise specs have an update; second-order ones (:mod:`symopt.spec.model`) a model.
    kind: ClassVar[str] = "elementwise"

    @property
    def family_name(self) -> str:
        """The name of the spec as written: a variant's family, or the spec itself."""
        return self.family.raw.name if self.family is not None else self.name

    @property
    def is_default_variant(self) -> bool:
        """Whether this is the spec as loaded: its family's defaults, or a spec without flags.
        Generated tests run the other variants on fewer streams (the shared code is the same)."""
        return self.family is None or self.setting == self.family.default_setting()

    @property
    def cache_key(self) -> tuple:
        """What a derivation from this spec depends on: its text, and a variant's setting."""
        return (self.source, self.text, tuple(sorted(self.setting.items())))

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
        seen = dict.fromkeys(a.target for a in (*self.update, *self.otherwise))
        return tuple(n for n in seen if n not in names)

    @property
    def features(self) -> frozenset[str]:
        """The tensor-level constructs this spec uses (names from :mod:`symopt.spec.tensor`)."""
        lines = (*self.update, *self.otherwise)
        found = tensor.expression_features(a.expr for a in lines)
        if any(a.repeat for a in lines):
            found.add(tensor.REPEAT)
        if any({G, W} & {s.name for s in st.init.free_symbols} for st in self.states):
            found.add(tensor.FIRST_GRADIENT)
        if any(st.shape == "scalar" for st in self.states):
            found.add(tensor.SCALAR_STATE)
        if any(st.shape in ("rows", "cols") for st in self.states):
            found.add(tensor.AXIS_STATE)
        if self.applies_to != "any":
            found.add(tensor.MATRIX_ONLY)
        return frozenset(found)

    def takes_update(self, ndim: int) -> bool:
        """Whether a parameter of ``ndim`` dimensions takes ``update`` (else ``otherwise``)."""
        return APPLIES_TO[self.applies_to](ndim)

    @property
    def shapes_taken(self) -> str:
        """The parameters ``update`` is for, in words: "2-D", "multi-dimensional" or "all"."""
        return SHAPE_WORDS[self.applies_to]

    @property
    def elementwise(self) -> bool:
        """True when every line reads one coordinate of each array (conditionals allowed)."""
        return not self.features - {tensor.CONDITIONAL, tensor.FIRST_GRADIENT}

    def states_of(self, update: tuple[Assignment, ...]) -> tuple[StateVar, ...]:
        """The states an update assigns: a parameter has the states of the update it takes."""
        targets = {a.target for a in update}
        return tuple(s for s in self.states if s.name in targets)

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
    for name in (ROWS, COLS):
        table[name] = sympy.Symbol(name, positive=True, integer=True)
    for name in (W, G, *spec.state_names, *assigned_names((*spec.update, *spec.otherwise))):
        table.setdefault(name, make_symbol(name))
    return table


def assigned_names(update: tuple[Assignment, ...]) -> list[str]:
    return [a.target for a in update]

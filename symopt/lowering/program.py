"""Lowering a tensor-level spec: a prelude of scalars and whole-tensor statements in spec order.

A spec with reductions, matrix products or fixed-count loops cannot run as one fused
per-coordinate kernel: a norm needs the whole tensor before the element-wise work that uses it,
and a matrix product mixes coordinates. Frameworks with whole-array operations (NumPy, PyTorch)
run such a step as the spec's own lines, one statement each, over whole tensors:

* the **prelude** holds what depends only on hyperparameters and ``t``, computed once per step
  (the same hoisting, guards and readable names as :mod:`symopt.lowering.kernel`);
* each **statement** is one spec line, with the spec's own names (a name assigned twice is
  simply rebound), reductions and products left to the framework's library calls;
* a ``repeat`` block stays a loop (:class:`Loop`), its lines printed once.

Targets without whole-array operations (C) use :mod:`symopt.lowering.stages` instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import sympy

from symopt.lowering.kernel import Hoister, first_step_states, initial_values
from symopt.lowering.names import Namer, readable_prelude
from symopt.spec import Assignment, Spec, T, symbol_table
from symopt.spec.domains import DOMAINS


@dataclass(frozen=True)
class Line:
    target: str
    expr: sympy.Expr  # over arrays, earlier targets, prelude scalars, rows and cols
    text: str  # the spec line it implements, for the comment above it


@dataclass(frozen=True)
class Loop:
    count: int
    body: tuple[Line, ...]
    block: int = 0  # the spec's repeat block it comes from


@dataclass(frozen=True)
class Update:
    """One update's statements, and the state arrays it reads and writes."""

    lines: tuple[Line | Loop, ...]
    states: tuple[str, ...]

    def symbols(self) -> set[str]:
        """The names every statement reads."""
        flat = [x for item in self.lines for x in (item.body if isinstance(item, Loop) else [item])]
        return {s.name for line in flat for s in line.expr.free_symbols}

    def uses(self, name: str) -> bool:
        return name in self.symbols()


@dataclass(frozen=True)
class TensorProgram:
    spec: Spec
    prelude: tuple[tuple[sympy.Symbol, sympy.Expr], ...]
    #: The update of every parameter (of those ``applies_to`` names, when it names some).
    main: Update
    #: The update of every other parameter: ``main`` itself for a spec that applies to all,
    #: ``[otherwise]``, or None when the spec refuses them.
    other: Update | None
    init: Mapping[str, sympy.Expr]  # state name -> value before the first step

    @property
    def scalars(self) -> tuple[str, ...]:
        return tuple(s.name for s, _ in self.prelude)

    @property
    def updates(self) -> tuple[Update, ...]:
        if self.other is None or self.other is self.main:
            return (self.main,)
        return (self.main, self.other)


def lower_tensor(spec: Spec) -> TensorProgram:
    """The spec's update(s) as whole-tensor statements, with a shared, named prelude."""
    key = spec.cache_key
    if spec.text and key in _LOWERED:
        return _LOWERED[key]
    symbols = symbol_table(spec)
    hyper_syms = {symbols[h] for h in spec.hyper_names} | {symbols[T]}
    domains = {symbols[h.name]: DOMAINS[h.domain] for h in spec.hypers}
    hoist = Hoister(hyper_syms, domains)
    first = first_step_states(spec, symbols)
    main = _update(spec, (*first, *spec.update), hoist)
    other = None
    if spec.otherwise:
        states = {s.name for s in spec.states_of(spec.otherwise)}
        other = _update(spec, (*[a for a in first if a.target in states], *spec.otherwise), hoist)
    taken = {*symbols, *spec.intermediates}
    prelude, rename = readable_prelude(
        tuple((sym, e) for e, sym in hoist.prelude.items()), spec.hyper_names, Namer(taken)
    )
    main = _renamed(main, rename)
    if other is not None:
        other = _renamed(other, rename)
    elif spec.applies_to == "any":
        other = main  # one update for every parameter
    program = TensorProgram(spec, tuple(prelude), main, other, initial_values(spec))
    if spec.text:
        _LOWERED[key] = program
    return program


_LOWERED: dict[tuple, TensorProgram] = {}


def _update(spec: Spec, lines: tuple[Assignment, ...], hoist: Hoister) -> Update:
    out: list[Line | Loop] = []
    for a in lines:
        line = Line(a.target, hoist.hoist(a.expr), a.text)
        if a.repeat is None:
            out.append(line)
        elif a.repeat.iteration == 0:  # the later runs repeat these lines
            last = out[-1] if out else None
            if isinstance(last, Loop) and last.block == a.repeat.block:
                out[-1] = Loop(last.count, (*last.body, line), last.block)
            else:
                out.append(Loop(a.repeat.count, (line,), a.repeat.block))
    return Update(tuple(out), tuple(s.name for s in spec.states_of(lines)))


def _renamed(update: Update, rename: Mapping[sympy.Symbol, sympy.Symbol]) -> Update:
    def line(x: Line) -> Line:
        return Line(x.target, x.expr.xreplace(rename), x.text)

    items = tuple(
        Loop(x.count, tuple(map(line, x.body)), x.block) if isinstance(x, Loop) else line(x)
        for x in update.lines
    )
    return Update(items, update.states)


def spec_lines(update: tuple[Assignment, ...], indent: str = "    ") -> list[str]:
    """The lines as written in the spec: a repeat block once, under ``repeat N times:``."""
    out: list[str] = []
    for a in update:
        if a.repeat is None:
            out.append(a.text)
        elif a.repeat.iteration == 0:
            header = f"repeat {a.repeat.count} times:"
            if not out or out[-1] != header and not out[-1].startswith(indent):
                out.append(header)
            out.append(indent + a.text)
    return out


def describe_program(program: TensorProgram) -> str:
    """What NumPy and PyTorch code is generated from, for ``symopt show --kernel``."""
    lines = ["prelude (once per step, float64):"]
    lines += [f"  {s} = {sympy.sstr(e)}" for s, e in program.prelude]
    for title, update in (("every parameter", program.main), ("other parameters", program.other)):
        if update is None or (title == "other parameters" and update is program.main):
            continue
        if program.spec.applies_to != "any" and update is program.main:
            title = f"{program.spec.shapes_taken} parameters"
        lines.append(f"whole-tensor statements, {title} (in order, names rebound):")
        for item in update.lines:
            if isinstance(item, Loop):
                lines.append(f"  repeat {item.count} times:")
                lines += [f"    {x.target} = {sympy.sstr(x.expr)}" for x in item.body]
            else:
                lines.append(f"  {item.target} = {sympy.sstr(item.expr)}")
    return "\n".join(lines)

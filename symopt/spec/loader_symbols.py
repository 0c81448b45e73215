"""The symbol tables a spec's expressions are parsed over, for the loaders."""

from __future__ import annotations

import dataclasses

import sympy

from symopt.spec.common import COLS, ROWS, G, T, W, make_symbol
from symopt.spec.domains import DOMAINS
from symopt.spec.elementwise import Spec
from symopt.spec.parse import FlagSymbol


def initial_symbols(spec: Spec, matrix: bool = False) -> dict[str, sympy.Symbol]:
    """Hyperparameters, flags, t, w, g and the state; ``rows`` and ``cols`` in a matrix update."""
    table: dict[str, sympy.Symbol] = {
        h.name: make_symbol(h.name, DOMAINS[h.domain].assumptions) for h in spec.hypers
    }
    table.update({f.name: FlagSymbol(f.name) for f in spec.flags})
    table[T] = sympy.Symbol(T, positive=True, integer=True)
    if matrix:
        for name in (ROWS, COLS):
            table[name] = sympy.Symbol(name, positive=True, integer=True)
    for name in (W, G, *spec.state_names):
        table[name] = make_symbol(name)
    return table


def all_symbols(spec: Spec) -> dict[str, sympy.Symbol]:
    table = initial_symbols(spec)
    for a in spec.update:
        table.setdefault(a.target, make_symbol(a.target))
    return table


def replace_spec(spec: Spec, **changes) -> Spec:
    return dataclasses.replace(spec, **changes)

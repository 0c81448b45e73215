"""Readable names for what lowering introduces: prelude scalars, shared temporaries, new values.

A hand-written optimizer says ``bias_correction_beta1 = 1 - beta1**t`` and ``step_size = ...``,
not ``_c0``; generated code should read the same. Names are built from the expression and the
spec's own names, so they are deterministic, and they are made unique against every name the
spec uses (a hyperparameter called ``step_size`` pushes the derived one to ``step_size_2``).
The prelude is also common-subexpression eliminated here: a factor that several scalars share
(``sqrt(1 - beta2**t)`` in Adam's step size and eps-hat) is computed once.
"""

from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING

import sympy

if TYPE_CHECKING:
    from symopt.lowering.kernel import Kernel

#: The longest name derived from an expression's structure before a generic one is used.
MAX_NAME = 32
STEP_SIZE = "lr"


def describe(e: sympy.Expr, hypers: tuple[str, ...]) -> str:
    """A short identifier that says what ``e`` is, from its structure and the spec's names."""
    if e.is_Symbol:
        return e.name
    if e.is_Number:
        return "const"
    if isinstance(e, sympy.Piecewise):  # a scalar computed only where its branch is taken
        return describe(e.args[0].expr, hypers)
    if isinstance(e, (sympy.core.relational.Relational, sympy.logic.boolalg.Boolean)):
        return "condition"
    if isinstance(e, sympy.Pow) and e.exp == sympy.Rational(1, 2):
        return f"sqrt_{describe(e.base, hypers)}"
    if isinstance(e, sympy.Pow) and e.exp == -1:
        return f"inv_{describe(e.base, hypers)}"
    if isinstance(e, sympy.Add) and len(e.args) == 2 and sympy.S.One in e.args:
        rest = e - 1
        if rest.could_extract_minus_sign():
            inner = -rest
            if isinstance(inner, sympy.Pow) and inner.base.is_Symbol and inner.exp.is_Symbol:
                return f"bias_correction_{inner.base.name}"
            return f"one_minus_{describe(inner, hypers)}"
    if e.could_extract_minus_sign():
        return f"neg_{describe(-e, hypers)}"
    names = sorted({s.name for s in e.free_symbols}, key=_order(hypers))
    if isinstance(e, sympy.Mul) and names:
        if any(n == STEP_SIZE or n.startswith("step_size") for n in names):
            return "step_size"
        return f"{names[0]}_hat"
    return "scalar"


def _order(hypers: tuple[str, ...]):
    return lambda name: (hypers.index(name) if name in hypers else len(hypers), name)


class Namer:
    def __init__(self, taken: set[str]) -> None:
        self.taken = set(taken)

    def fresh(self, base: str) -> str:
        base = re.sub(r"[^a-z0-9_]", "_", base.lower())[:MAX_NAME].rstrip("_") or "scalar"
        name, k = base, 2
        while name in self.taken:
            name, k = f"{base}_{k}", k + 1
        self.taken.add(name)
        return name


def readable_prelude(
    prelude: tuple[tuple[sympy.Symbol, sympy.Expr], ...], hypers: tuple[str, ...], namer: Namer
) -> tuple[list[tuple[sympy.Symbol, sympy.Expr]], dict[sympy.Symbol, sympy.Symbol]]:
    """A CSE'd prelude with readable names, and the renaming of the old scalar symbols."""
    # common subexpressions of the prelude (only non-trivial ones: a power or a function)
    temps, reduced = _shared_calls([e for _, e in prelude])
    rename: dict[sympy.Symbol, sympy.Symbol] = {}
    out: list[tuple[sympy.Symbol, sympy.Expr]] = []
    for sym, expr in temps:
        expr = expr.xreplace(rename)
        rename[sym] = sympy.Symbol(namer.fresh(describe(expr, hypers)), real=True)
        out.append((rename[sym], expr))
    for (old, _), expr in zip(prelude, reduced, strict=True):
        expr = expr.xreplace(rename)
        if expr.is_Symbol:  # the whole scalar is a shared one: no second name for it
            rename[old] = expr
            continue
        # a spec's own intermediate keeps its name; a derived scalar gets a descriptive one
        own = not old.name.startswith("_")
        rename[old] = old if own else sympy.Symbol(namer.fresh(describe(expr, hypers)), real=True)
        out.append((rename[old], expr))
    return out, rename


def readable(kernel: Kernel, taken: set) -> Kernel:
    """The kernel with a CSE'd prelude and readable names for scalars, temporaries, new values."""
    namer = Namer({str(s) for s in taken})
    prelude, rename = readable_prelude(kernel.prelude, kernel.hypers, namer)
    # 2. body: shared temporaries tmp0, tmp1, ...; the new value of NAME is NAME_new
    body = []
    count = 0
    for st in kernel.body:
        if st.array is None:
            rename[st.target] = sympy.Symbol(namer.fresh(f"tmp{count}"), real=True)
            count += 1
        else:
            rename[st.target] = sympy.Symbol(namer.fresh(f"{st.array}_new"), real=True)
        body.append(
            dataclasses.replace(st, target=rename[st.target], expr=st.expr.xreplace(rename))
        )
    return dataclasses.replace(kernel, prelude=tuple(prelude), body=tuple(body))


def _shared_calls(exprs: list[sympy.Expr]) -> tuple[list, list[sympy.Expr]]:
    """``sympy.cse`` of the prelude, keeping only shared roots and powers (``sqrt(1 - beta2**t)``):
    shared sums and products are put back, so every product is still evaluated in the order it
    was (the same float64 bits as without the shared scalar)."""
    temps, reduced = sympy.cse(exprs, symbols=sympy.numbered_symbols("_p", real=True))
    inline: dict = {}
    kept = []
    for sym, expr in temps:
        expr = expr.xreplace(inline)
        if (
            isinstance(expr, sympy.Pow)
            and not expr.exp.is_Integer
            or isinstance(expr, sympy.Function)
        ):
            kept.append((sym, expr))
        else:
            inline[sym] = expr
    return kept, [e.xreplace(inline) for e in reduced]

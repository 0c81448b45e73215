"""Tensor-level values in the one-coordinate model the checks reason in.

A check follows one coordinate: ``w``, ``g`` and the state are numbers, and everything element-wise
is exact. A reduction (``norm(u)``, ``mean(w**2)``, ``row_sum(g)``) is a per-tensor (per-row,
per-column) value, and one coordinate of a matrix product or a transpose depends on *other*
coordinates; neither is a function of this coordinate alone. :class:`TensorOracle` replaces each
by an opaque real symbol, the same one for the same node (its arguments compared after this
replacement), carrying only facts that are true for every tensor: a norm is nonnegative, and
positive when this coordinate's argument is nonzero; a sum or mean of a nonnegative expression is
nonnegative; a max is at least this coordinate's value, and so on. Factors that are the same in
every coordinate (hyperparameters, ``t``, ``rows``, per-tensor values) are taken out of linear
reductions (``norm(c*g) = c*norm(g)`` for ``c > 0``), so scale invariance can be shown.

So a proof that holds for every value of these symbols holds for every tensor. A failure that
depends on one is no counterexample, and :meth:`TensorOracle.settle` says so ("not shown"), unless
the claim also fails for a one-element parameter, where every reduction is the element itself
(``norm(x) = |x|``) and a real counterexample exists. Matrix products and transposes mix
coordinates: a claim that depends on them and is not proven is not shown, never refuted.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import sympy

from symopt.checks.prove import NOT_SHOWN, Verdict
from symopt.checks.reparam import reparametrize
from symopt.spec.common import COLS, ROWS
from symopt.spec.domains import Domain
from symopt.spec.tensor import MatProduct, ReductionBase, Transposed

TENSOR_NODES = (ReductionBase, MatProduct, Transposed)
#: Spec-language names, for symbols and messages.
LABELS = {
    "TensorSum": "sum",
    "TensorMean": "mean",
    "TensorNorm": "norm",
    "TensorMax": "max",
    "RowSum": "row_sum",
    "RowMean": "row_mean",
    "ColSum": "col_sum",
    "ColMean": "col_mean",
    "MatProduct": "matmul",
    "Transposed": "transpose",
}


class TensorValue(sympy.Symbol):
    """An opaque value standing for a tensor-level node in the one-coordinate model."""


class ReductionValue(TensorValue):
    """A reduction's value: the same at every coordinate (of a row or column, for those)."""


class MixedValue(TensorValue):
    """One coordinate of a matrix product or transpose: it depends on other coordinates."""


def _sign_facts(here: sympy.Expr, everywhere: sympy.Expr, op: str) -> dict[str, bool]:
    """Assumptions true for ``op`` of an argument whose value at this coordinate is ``here`` and at
    any coordinate is ``everywhere`` (the same without this coordinate's extra facts)."""
    if op == "norm":
        return {"positive": True} if here.is_zero is False else {"nonnegative": True}
    if op == "max":  # at least this coordinate's value; at most the largest possible one
        pairs = [("positive", here.is_positive), ("nonnegative", here.is_nonnegative)]
        pairs += [("negative", everywhere.is_negative), ("nonpositive", everywhere.is_nonpositive)]
    elif op in ("sum", "mean"):
        pairs = [
            ("positive", here.is_positive and everywhere.is_nonnegative),
            ("negative", here.is_negative and everywhere.is_nonpositive),
            ("nonnegative", everywhere.is_nonnegative),
            ("nonpositive", everywhere.is_nonpositive),
        ]
    else:  # another coordinate of the same expression
        pairs = [(k, getattr(everywhere, f"is_{k}")) for k in ("positive", "negative")]
        pairs += [(k, getattr(everywhere, f"is_{k}")) for k in ("nonnegative", "nonpositive")]
    for name, known in pairs:
        if known:
            return {name: True}
    return {"real": True}


@dataclass
class TensorOracle:
    """Opaque symbols for the tensor-level nodes of one run (or of two runs compared)."""

    domains: Mapping[sympy.Symbol, Domain] = field(default_factory=dict)
    #: Symbols with the same value at every coordinate (hyperparameters, t, rows, cols, ...).
    shared: set[sympy.Symbol] = field(default_factory=set)
    #: Symbols whose assumptions hold at this coordinate only (descent's g != 0).
    local: set[sympy.Symbol] = field(default_factory=set)
    nodes: dict[sympy.Symbol, sympy.Basic] = field(default_factory=dict)
    index: dict[sympy.Basic, sympy.Expr] = field(default_factory=dict)

    def __call__(self, expr: sympy.Expr) -> sympy.Expr:
        """``expr`` with every tensor-level node replaced (innermost first)."""
        if not isinstance(expr, sympy.Basic) or not expr.has(*TENSOR_NODES):
            return expr
        return expr.replace(lambda e: isinstance(e, TENSOR_NODES), self._value)

    def _value(self, node: sympy.Basic) -> sympy.Expr:
        factor, node = self._pull_shared(node)
        if not isinstance(node, TENSOR_NODES):
            return factor * node
        if any(_is_zero(a) for a in node.args):
            return sympy.Integer(0)
        if node not in self.index:
            self.index[node] = self._new_symbol(node)
        return factor * self.index[node]

    def _new_symbol(self, node: sympy.Basic) -> sympy.Symbol:
        name = f"{LABELS[type(node).__name__]}[{len(self.nodes) + 1}]"
        if isinstance(node, ReductionBase):
            here, everywhere = self._here_everywhere(node.args[0])
            sym = ReductionValue(name, **_sign_facts(here, everywhere, node.op))
            if node.axis is None:
                self.shared.add(sym)
        elif isinstance(node, Transposed):
            here, everywhere = self._here_everywhere(node.args[0])
            sym = MixedValue(name, **_sign_facts(here, everywhere, "other"))
        else:
            a, b = (self._here_everywhere(x)[1] for x in node.args)
            both = a.is_nonnegative and b.is_nonnegative
            sym = MixedValue(name, **({"nonnegative": True} if both else {"real": True}))
        self.nodes[sym] = node
        return sym

    def _here_everywhere(self, arg: sympy.Expr) -> tuple[sympy.Expr, sympy.Expr]:
        here = reparametrize(arg, self.domains)
        plain = {s: sympy.Symbol(s.name, real=True) for s in self.local}
        return here, here.xreplace(plain)

    def _pull_shared(self, node: sympy.Basic) -> tuple[sympy.Expr, sympy.Basic]:
        """(k, node') with node = k*node', k made of shared symbols only."""
        if isinstance(node, MatProduct):
            (ka, a), (kb, b) = (self._split(x) for x in node.args)
            return ka * kb, MatProduct(a, b)
        k, arg = self._split(node.args[0])
        if isinstance(node, Transposed):  # the transpose of a per-tensor scalar is itself
            return k, (arg if arg == 1 else Transposed(arg))
        if k == 1:
            return k, node
        op = node.op
        if op in ("sum", "mean"):
            return k, type(node)(arg)
        if op == "norm":
            return sympy.Abs(k), type(node)(arg)
        if op == "max" and reparametrize(k, self.domains).is_nonnegative:
            return k, type(node)(arg)
        return sympy.Integer(1), node

    def _split(self, arg: sympy.Expr) -> tuple[sympy.Expr, sympy.Expr]:
        shared, rest = [], []
        for f in sympy.Mul.make_args(arg):
            (shared if f.free_symbols <= self.shared else rest).append(f)
        return sympy.Mul(*shared), sympy.Mul(*rest)

    def involved(self, expr: sympy.Basic) -> set[TensorValue]:
        """The opaque symbols ``expr`` depends on, through other opaque symbols too."""
        found: set[TensorValue] = set()
        todo = [s for s in expr.free_symbols if isinstance(s, TensorValue)]
        while todo:
            s = todo.pop()
            if s in found:
                continue
            found.add(s)
            node = self.nodes.get(s)
            if node is not None:
                todo += [x for x in node.free_symbols if isinstance(x, TensorValue)]
        return found

    def one_element(self, expr: sympy.Expr) -> sympy.Expr:
        """``expr`` for a one-element parameter (a 1x1 matrix where 2-D): every reduction is the
        element itself (a norm its absolute value), rows = cols = 1."""
        values: dict[sympy.Symbol, sympy.Expr] = {}
        for sym, node in self.nodes.items():  # in creation order: arguments come first
            args = [a.xreplace(values) for a in node.args]
            if isinstance(node, MatProduct):
                values[sym] = args[0] * args[1]
            elif isinstance(node, ReductionBase) and node.op == "norm":
                values[sym] = sympy.Abs(args[0])
            else:
                values[sym] = args[0]
        sizes = {s: sympy.Integer(1) for s in expr.free_symbols if s.name in (ROWS, COLS)}
        return expr.xreplace(values).xreplace(sizes)

    def settle(self, verdict: Verdict, expr: sympy.Expr, decide: Callable) -> Verdict:
        """A failed ``verdict`` on ``expr`` stands only where it does not depend on an opaque
        value, or where it also fails for a one-element parameter; otherwise it is not shown."""
        if verdict.holds:
            return verdict
        opaque = self.involved(expr)
        if not opaque:
            return verdict
        names = _names(opaque)
        if any(isinstance(s, MixedValue) for s in opaque):
            reason = f"matrix products or transposes mix coordinates ({names}); no proof found"
            return Verdict(False, NOT_SHOWN, reason=reason)
        again = decide(self.one_element(expr))
        if not again.holds and again.witness is not None:
            return Verdict(False, again.method, again.witness, "for a one-element parameter")
        reason = (
            f"depends on per-tensor values ({names}) the one-coordinate model leaves free; "
            "no counterexample with a one-element parameter"
        )
        return Verdict(False, NOT_SHOWN, reason=reason)

    def describe(self, sym: sympy.Symbol) -> str:
        node = self.nodes[sym]
        return f"{sym} = {LABELS[type(node).__name__]}({', '.join(map(sympy.sstr, node.args))})"


def spec_str(expr: sympy.Basic) -> str:
    """``expr`` printed with the spec language's names (``norm(w)``, not ``TensorNorm(w)``)."""
    text = sympy.sstr(expr)
    for cls, label in LABELS.items():
        text = re.sub(rf"\b{cls}\(", f"{label}(", text)
    return text


def _is_zero(arg: sympy.Expr) -> bool:
    if arg.is_zero:
        return True
    try:
        return sympy.count_ops(arg) <= 200 and sympy.expand(arg) == 0
    except (TypeError, ValueError):
        return False


def _names(symbols: Iterable[sympy.Symbol], limit: int = 3) -> str:
    names = sorted({s.name.split("[")[0] for s in symbols})
    return ", ".join(names[:limit]) + (", ..." if len(names) > limit else "")

"""Tensor-level constructs of the spec language, as SymPy objects every stage understands.

An element-wise update reads one coordinate of each array. These functions reach past it:

* **reductions** over the whole parameter tensor (``sum``, ``mean``, ``norm``, ``max`` with one
  argument) give a per-tensor scalar; over the rows or columns of a 2-D parameter
  (``row_sum``, ``row_mean``, ``col_sum``, ``col_mean``) they give one value per row (a column
  vector of shape (R, 1)) or per column (shape (1, C)). Every result broadcasts back in the
  element-wise part, as in NumPy;
* **matrix operations** on 2-D values: ``a @ b`` (:class:`MatProduct`) and ``transpose(a)``;
* **conditionals** are SymPy's own: comparisons build relationals and ``where(c, a, b)`` builds
  ``Piecewise((a, c), (b, True))``.

They are SymPy ``Function`` subclasses, so substitution, CSE and printing work on them unchanged,
and a check that meets one can see what it is (:func:`tensor_nodes`) and say "not shown" rather
than treat it as a number.
"""

from __future__ import annotations

from collections.abc import Iterable

import sympy


class ReductionBase(sympy.Function):
    """A reduction of an element-wise expression; ``op`` and ``axis`` say which. (SymPy's
    printers look for ``_print_<class>`` along the class hierarchy of a ``Function`` only for
    names ending in "Base": so one ``_print_ReductionBase`` prints them all.)"""

    op = ""
    axis: str | None = None  # None: the whole tensor; "rows": one value per row; "cols": per column
    is_real = True
    nargs = 1

    @classmethod
    def eval(cls, arg):
        # The reduction of zero is zero (every op here: sum, mean, 2-norm, max): what makes
        # "at rest" provable for an update whose reductions see only g = 0. The mean or max of
        # a constant is that constant; a sum or norm of one depends on the size, so it stays.
        if arg.is_zero:
            return sympy.Integer(0)
        if arg.is_number and cls.op in ("mean", "max"):
            return arg
        return None

    def _latex(self, printer) -> str:
        inner = printer._print(self.args[0])
        return LATEX[type(self).__name__].format(inner)


class TensorSum(ReductionBase):
    op = "sum"


class TensorMean(ReductionBase):
    op = "mean"


class TensorNorm(ReductionBase):
    op = "norm"
    is_nonnegative = True


class TensorMax(ReductionBase):
    op = "max"


class RowSum(ReductionBase):
    op, axis = "sum", "rows"


class RowMean(ReductionBase):
    op, axis = "mean", "rows"


class ColSum(ReductionBase):
    op, axis = "sum", "cols"


class ColMean(ReductionBase):
    op, axis = "mean", "cols"


class MatProduct(sympy.Function):
    """The matrix product of two 2-D values (kept as a function: its operands do not commute)."""

    nargs = 2
    is_real = True

    @classmethod
    def eval(cls, a, b):
        if a.is_zero or b.is_zero:
            return sympy.Integer(0)
        return None

    def _latex(self, printer) -> str:
        a, b = (printer.parenthesize(x, 60) for x in self.args)
        return f"{a} {b}"


class Transposed(sympy.Function):
    """The transpose of a 2-D value."""

    nargs = 1
    is_real = True

    @classmethod
    def eval(cls, a):
        if a.is_zero:
            return sympy.Integer(0)
        if isinstance(a, Transposed):
            return a.args[0]
        return None

    def _latex(self, printer) -> str:
        arg = self.args[0]
        inner = printer._print(arg) if arg.is_Symbol else rf"\left({printer._print(arg)}\right)"
        return f"{inner}^{{\\top}}"


LATEX = {
    "TensorSum": r"{{\textstyle\sum}}\left({}\right)",
    "TensorMean": r"\operatorname{{mean}}\left({}\right)",
    "TensorNorm": r"\left\lVert {} \right\rVert_2",
    "TensorMax": r"\max \left({}\right)",
    "RowSum": r"\operatorname{{rowsum}}\left({}\right)",
    "RowMean": r"\operatorname{{rowmean}}\left({}\right)",
    "ColSum": r"\operatorname{{colsum}}\left({}\right)",
    "ColMean": r"\operatorname{{colmean}}\left({}\right)",
}

#: Spec function name -> reduction class (``max`` with one argument is :class:`TensorMax`).
REDUCTIONS: dict[str, type[ReductionBase]] = {
    "sum": TensorSum,
    "mean": TensorMean,
    "norm": TensorNorm,
    "row_sum": RowSum,
    "row_mean": RowMean,
    "col_sum": ColSum,
    "col_mean": ColMean,
}

#: ReductionBase class -> the spec function that builds it.
SPEC_NAMES = {cls: name for name, cls in REDUCTIONS.items()} | {TensorMax: "max"}

#: Feature names, as refusals and the docs print them.
WHOLE_REDUCTION = "per-tensor reductions"
AXIS_REDUCTION = "row/column reductions"
MATRIX = "matrix products"
TRANSPOSE = "transposes"
REPEAT = "fixed-count iterations"
CONDITIONAL = "conditionals"
FIRST_GRADIENT = "state initialised from the first gradient"
SCALAR_STATE = "per-tensor scalar state"
AXIS_STATE = "row/column state"
MATRIX_ONLY = "updates for some parameter shapes only"
ALL_FEATURES = frozenset(
    {
        WHOLE_REDUCTION,
        AXIS_REDUCTION,
        MATRIX,
        TRANSPOSE,
        REPEAT,
        CONDITIONAL,
        FIRST_GRADIENT,
        SCALAR_STATE,
        AXIS_STATE,
        MATRIX_ONLY,
    }
)


def tensor_nodes(expr: sympy.Basic) -> set[sympy.Basic]:
    """The reductions and matrix operations in ``expr``."""
    return set(expr.atoms(ReductionBase, MatProduct, Transposed))


def expression_features(exprs: Iterable[sympy.Basic]) -> set[str]:
    """Which tensor-level features these expressions use (see the constants above)."""
    found: set[str] = set()
    for e in exprs:
        for node in e.atoms(ReductionBase):
            found.add(WHOLE_REDUCTION if node.axis is None else AXIS_REDUCTION)
        if e.atoms(MatProduct):
            found.add(MATRIX)
        if e.atoms(Transposed):
            found.add(TRANSPOSE)
        if e.atoms(sympy.Piecewise) or e.atoms(sympy.core.relational.Relational):
            found.add(CONDITIONAL)
    return found


#: Reductions whose value is one number per tensor (the axis reductions give a row or column).
TO_NUMBER = (TensorSum, TensorMean, TensorNorm, TensorMax)


def varies(expr: sympy.Basic, tensors: set[str]) -> bool:
    """Whether ``expr`` has a value per element: a name in ``tensors`` outside every reduction
    to a number."""
    if isinstance(expr, sympy.Symbol):
        return expr.name in tensors
    if isinstance(expr, TO_NUMBER):
        return False
    return any(varies(a, tensors) for a in expr.args)


def operation_on_a_number(expr: sympy.Basic, tensors: set[str]) -> sympy.Basic | None:
    """The first reduction, matrix product or transpose in ``expr`` whose operand has one value
    per tensor (``sum(beta**t)``): targets disagree on what it means (the sum of n copies, or
    the number), so it is refused."""
    for node in sympy.preorder_traversal(expr):
        if isinstance(node, (ReductionBase, MatProduct, Transposed)):
            if not any(varies(a, tensors) for a in node.args):
                return node
    return None

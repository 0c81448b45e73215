"""The trust-region solvers' scalar formulas (:mod:`symopt.lowering.solver_pieces`) as C99.

Each piece becomes ``static double PREFIX_NAME(double ...)`` in double precision with libm's
``sqrt`` only: a comment of its formula, common subexpressions (and every compound argument of a
max or min) as ``const double`` locals, and the value, where a conditional is a ternary. ``max``
and ``min`` are ternaries with Python's semantics, ``max(a, b) = (b > a ? b : a)``, and the
formula's value first, so the C, NumPy and PyTorch targets give the same numbers, NaN included
(``fmax`` would drop a NaN).
"""

from __future__ import annotations

import sympy

from symopt.backends.c.elementwise import _comment, wrap_call
from symopt.backends.c.printer import CPrinter
from symopt.backends.scalar_pieces import body, formula_lines, value_first
from symopt.lowering.solver_pieces import ScalarPiece, solver_pieces
from symopt.spec.model import ModelSpec


class ScalarCPrinter(CPrinter):
    """Double-precision C for a piece: max and min as ternaries over locals or numbers."""

    def __init__(self) -> None:
        super().__init__("f64", {}, set())

    def _ternary(self, expr: sympy.Expr, op: str) -> str:
        args = value_first(expr.args)
        if len(args) != 2 or not all(a.is_Atom for a in args):
            raise ValueError(f"{expr}: a max or min of two locals or numbers is printed in C")
        a, b = (self._print(x) for x in args)
        return f"({b} {op} {a} ? {b} : {a})"

    def _print_Max(self, expr: sympy.Max) -> str:
        return self._ternary(expr, ">")

    def _print_Min(self, expr: sympy.Min) -> str:
        return self._ternary(expr, "<")


def c_scalar_function(piece: ScalarPiece, prefix: str) -> str:
    """``static double PREFIX_NAME(double ARG, ...)`` with its doc and formula as comments."""
    printer = ScalarCPrinter()
    found, value = body(piece, atomic_min_max=True)
    lines = [f"// {_comment(piece.doc)}"]
    for line in formula_lines(piece, 97):
        lines.append(f"// {' ' * (len(line) - len(line.lstrip()))}{_comment(line)}")
    params = [f"double {a}" for a in piece.args]
    lines.append(wrap_call(f"static double {prefix}_{piece.name}", params, 0, ""))
    lines.append("{")
    lines += [f"    const double {name} = {printer.doprint(e)};" for name, e in found]
    lines += [f"    return {printer.doprint(value)};", "}"]
    return "\n".join(lines) + "\n"


def c_scalar_functions(spec: ModelSpec, prefix: str) -> str:
    """Every piece of a trust-region spec as C functions, one blank line apart."""
    return "\n".join(c_scalar_function(p, prefix) for p in solver_pieces(spec))

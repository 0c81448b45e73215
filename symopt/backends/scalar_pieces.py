"""The trust-region solvers' scalar formulas (:mod:`symopt.lowering.solver_pieces`) as Python
and JAX functions, and what the C printer shares with them.

Each piece becomes a complete function: its docstring, a comment of the formula, common
subexpressions as locals (``sympy.cse``), and the value. Python's works on floats with ``math``
only: squares are products (``x**2`` raises OverflowError on a large float where ``x*x`` is
inf), a conditional is ``a if c else b`` (only the branch taken runs, so a division by zero in
the other never does), and ``max``/``min`` take the formula's value first, so a NaN propagates
(``max(nan, 0)`` is NaN, ``max(0, nan)`` is 0). JAX's runs inside compiled kernels:
``jnp.where``, ``jnp.maximum``, ``jnp.minimum``, ``jnp.sqrt`` (both sides of a ``where`` are
evaluated; a division by zero on the side not taken is harmless).
"""

from __future__ import annotations

import textwrap

import sympy
from sympy.printing.precedence import PRECEDENCE
from sympy.printing.pycode import PythonCodePrinter
from sympy.printing.str import StrPrinter

from symopt.lowering.solver_pieces import ScalarPiece, solver_pieces
from symopt.spec.model import ModelSpec

#: Names of the locals common subexpressions get (no piece argument starts with "x").
LOCALS = "x"


def value_first(args: tuple[sympy.Expr, ...]) -> list[sympy.Expr]:
    """``max``/``min`` arguments with the numbers last: Python's max(a, b) is a unless b > a, so
    a NaN in the first argument propagates (C's ternaries print the same order)."""
    return sorted(args, key=lambda a: bool(a.is_Number))


class PythonScalarPrinter(PythonCodePrinter):
    """Python expressions over floats (see the module's docstring for the choices)."""

    sqrt = "math.sqrt"

    def __init__(self) -> None:
        super().__init__({"standard": "python3"})

    def _print_Pow(self, expr: sympy.Pow, rational: bool = False) -> str:
        base, exp = expr.args
        if exp.is_Integer and 2 <= abs(exp) <= 4:
            product = "*".join([self.parenthesize(base, PRECEDENCE["Mul"])] * abs(int(exp)))
            return product if exp > 0 else f"1/({product})"
        return self._hprint_Pow(expr, rational=rational, sqrt=self.sqrt)

    def _print_Relational(self, expr: sympy.core.relational.Relational) -> str:
        lhs, rhs = (self.parenthesize(a, PRECEDENCE["Relational"] + 1) for a in expr.args)
        return f"{lhs} {expr.rel_op} {rhs}"

    def _print_Max(self, expr: sympy.Max) -> str:
        return f"max({', '.join(self._print(a) for a in value_first(expr.args))})"

    def _print_Min(self, expr: sympy.Min) -> str:
        return f"min({', '.join(self._print(a) for a in value_first(expr.args))})"

    def _print_Piecewise(self, expr: sympy.Piecewise) -> str:
        *branches, (out, last) = expr.args
        if last is not sympy.true:
            raise ValueError(f"a conditional without a default branch: {expr}")
        text = self._print(out)
        for value, condition in reversed(branches):
            text = f"{self._print(value)} if {self._print(condition)} else {text}"
        return f"({text})"

    def value(self, expr: sympy.Expr) -> str:
        """``expr`` as a return statement's value: a conditional needs no parentheses there."""
        text = self.doprint(expr)
        return text[1:-1] if isinstance(expr, sympy.Piecewise) else text


class JaxScalarPrinter(PythonScalarPrinter):
    """Traceable ``jnp`` expressions: no Python conditional, max or min on a traced value."""

    sqrt = "jnp.sqrt"

    def _pairwise(self, name: str, args: tuple[sympy.Expr, ...]) -> str:
        *rest, text = (self._print(a) for a in value_first(args))
        for arg in reversed(rest):
            text = f"{name}({arg}, {text})"
        return text

    def _print_Max(self, expr: sympy.Max) -> str:
        return self._pairwise("jnp.maximum", expr.args)

    def _print_Min(self, expr: sympy.Min) -> str:
        return self._pairwise("jnp.minimum", expr.args)

    def _print_Piecewise(self, expr: sympy.Piecewise) -> str:
        *branches, (out, last) = expr.args
        if last is not sympy.true:
            raise ValueError(f"a conditional without a default branch: {expr}")
        text = self._print(out)
        for value, condition in reversed(branches):
            text = f"jnp.where({self._print(condition)}, {self._print(value)}, {text})"
        return text

    def value(self, expr: sympy.Expr) -> str:
        return self.doprint(expr)


class FormulaPrinter(StrPrinter):
    """The formula as comments write it: SymPy's string form, a conditional as Python's."""

    def _print_Piecewise(self, expr: sympy.Piecewise) -> str:
        return f"({' '.join(self.branches(expr))})"

    def branches(self, expr: sympy.Piecewise) -> list[str]:
        """``VALUE if CONDITION`` for each branch, ``else VALUE`` for the last."""
        *branches, (last, _) = expr.args
        out = [f"{self._print(v)} if {self._print(c)}" for v, c in branches]
        return [out[0], *(f"else {b}" for b in out[1:]), f"else {self._print(last)}"]


def formula_lines(piece: ScalarPiece, width: int) -> list[str]:
    """``name = formula`` in lines of at most ``width`` characters: one where it fits, else the
    formula (a conditional's branches each) on lines of their own, wrapped at spaces."""
    printer = FormulaPrinter()
    if isinstance(piece.expr, sympy.Piecewise):
        parts = printer.branches(piece.expr)
    else:
        parts = [printer.doprint(piece.expr)]
    one = f"{piece.name} = {' '.join(parts)}"
    if len(one) <= width:
        return [one]
    wrap = textwrap.TextWrapper(width, initial_indent="  ", subsequent_indent="    ")
    return [f"{piece.name} =", *(line for part in parts for line in wrap.wrap(part))]


def body(
    piece: ScalarPiece, atomic_min_max: bool = False
) -> tuple[list[tuple[sympy.Symbol, sympy.Expr]], sympy.Expr]:
    """Common subexpressions as locals ``x0, x1, ...`` and the value in terms of them; with
    ``atomic_min_max`` every compound argument of a max or min is a local too (so a C ternary
    evaluates it once)."""
    extra = [a for m in piece.expr.atoms(sympy.Max, sympy.Min) for a in m.args if not a.is_Atom]
    names = sympy.numbered_symbols(LOCALS)
    found, reduced = sympy.cse([piece.expr, *(extra if atomic_min_max else [])], names)
    return found, reduced[0]


def _function(piece: ScalarPiece, printer: PythonScalarPrinter, scalar: str) -> str:
    found, value = body(piece)
    params = ", ".join(f"{a}: {scalar}" for a in piece.args)
    lines = [f"def {piece.name}({params}) -> {scalar}:", f'    """{piece.doc}"""']
    lines += [f"    # {line}" for line in formula_lines(piece, 94)]
    lines += [f"    {name} = {printer.doprint(e)}" for name, e in found]
    lines.append(f"    return {printer.value(value)}")
    return "\n".join(lines) + "\n"


def python_scalar_function(piece: ScalarPiece) -> str:
    """``def NAME(ARGS: float) -> float:`` with ``math`` only (the generated module imports it)."""
    return _function(piece, PythonScalarPrinter(), "float")


def jax_scalar_function(piece: ScalarPiece) -> str:
    """``def NAME(ARGS: Array) -> Array:`` in traceable ``jnp`` (``jnp`` and ``Array`` are the
    generated module's imports)."""
    return _function(piece, JaxScalarPrinter(), "Array")


def python_scalar_functions(spec: ModelSpec) -> str:
    """Every piece of a trust-region spec as Python functions, two blank lines apart."""
    return "\n\n".join(python_scalar_function(p) for p in solver_pieces(spec))


def jax_scalar_functions(spec: ModelSpec) -> str:
    """Every piece of a trust-region spec as JAX functions, two blank lines apart."""
    return "\n\n".join(jax_scalar_function(p) for p in solver_pieces(spec))

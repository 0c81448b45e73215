"""LaTeX for spec equations, as a paper would print them, and escaping of spec prose.

:class:`SpecLatexPrinter` is SymPy's :class:`~sympy.printing.latex.LatexPrinter` with the spec's
own symbols (``\\beta_1`` for ``beta1``, ``\\eta`` for ``lr``), ``grad(x)`` as ``\\nabla L(x)``,
plain parentheses, ``\\lvert g\\rvert`` and ``\\max(a, b)``, and a paper-like order of terms and
factors that SymPy's canonical order does not keep: the assigned variable's old value first
(``w - \\eta g``, not ``- \\eta g + w``), positive terms before negative ones, constants last in a
sum (``\\sqrt{\\hat{v}} + \\epsilon``), and in a product numbers, then hyperparameters, then
parenthesised sums, then variables (``(1 - \\beta_1) g``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import sympy
from sympy.core.sorting import default_sort_key
from sympy.printing.latex import LatexPrinter
from sympy.printing.precedence import PRECEDENCE
from sympy.simplify.radsimp import fraction

from symopt.backends.docs.tensor_latex import TensorLatexMixin, array_names, is_tall
from symopt.spec import Assignment, Spec
from symopt.spec.common import COLS, ROWS
from symopt.spec.parse import Grad
from symopt.spec.symbol_latex import latex_problem
from symopt.spec.tensor import MATRIX, TensorNorm

__all__ = [
    "SpecLatexPrinter",
    "escape_latex",
    "escape_markdown",
    "format_number",
    "safe_symbol",
]


class SpecLatexPrinter(TensorLatexMixin, LatexPrinter):
    """Prints a spec's expressions with its LaTeX names and in the order a paper would use."""

    def __init__(
        self,
        names: Mapping[str, str],
        hypers: Sequence[str] = (),
        variables: Sequence[str] = (),
        arrays: Sequence[str] | None = None,
        hadamard: bool = False,
    ) -> None:
        super().__init__({"order": "none"})
        self.names = dict(names)
        self.hypers = list(hypers)
        self.variables = set(variables)  # w, state and intermediates: "the quantities"
        self.arrays = set(self.variables if arrays is None else arrays)  # not per-tensor scalars
        self.hadamard = hadamard  # matrix products juxtapose, so element-wise ones need \odot
        self.target: str | None = None  # the assigned name while printing its right-hand side
        self._depth = 0

    @classmethod
    def for_spec(cls, spec: Spec) -> SpecLatexPrinter:
        names = {s.name: safe_symbol(spec.latex_name(s.name)) for s in _spec_symbols(spec)}
        names.update({ROWS: r"\mathrm{rows}", COLS: r"\mathrm{cols}"})
        names.update({f.name: r"\mathtt{" + f.name.replace("_", r"\_") + "}" for f in spec.flags})
        variables = {"w", "g", *spec.state_names, *spec.intermediates}
        return cls(names, spec.hyper_names, variables, array_names(spec), MATRIX in spec.features)

    # -- entry points --------------------------------------------------------------------------
    def expr(self, expr: sympy.Expr) -> str:
        self.target, self._depth = None, 0
        return self.doprint(expr)

    def assignment(self, a: Assignment) -> str:
        """``m &\\leftarrow \\beta_1 m + (1 - \\beta_1) g`` (aligned on the arrow)."""
        return f"{self.name(a.target)} &\\leftarrow {self.rhs(a)}"

    def rhs(self, a: Assignment) -> str:
        self.target, self._depth = a.target, 0
        try:
            return self.doprint(a.expr)
        finally:
            self.target = None

    def name(self, name: str) -> str:
        return self.names.get(name, sympy.latex(sympy.Symbol(name)))

    # -- atoms ---------------------------------------------------------------------------------
    def _print_Symbol(self, expr: sympy.Symbol, style: str = "plain") -> str:
        return self.name(expr.name)

    def _print_Function(self, expr: sympy.Expr, exp=None) -> str:
        if expr.func == Grad:
            tex = rf"\nabla L({self._inner(expr.args[0])})"
            return f"{tex}^{{{exp}}}" if exp is not None else tex
        return super()._print_Function(expr, exp)

    def _print_Abs(self, expr: sympy.Expr, exp=None) -> str:
        tex = rf"\lvert {self._inner(expr.args[0])} \rvert"
        return f"{tex}^{{{exp}}}" if exp is not None else tex

    def _variadic(self, op: str, expr: sympy.Expr, exp=None) -> str:
        args = sorted(expr.args, key=lambda a: (not self._has_variable(a), default_sort_key(a)))
        inner = ", ".join(self._inner(a) for a in args)
        tex = rf"\{op}\left({inner}\right)" if is_tall(inner) else rf"\{op}({inner})"
        return f"{tex}^{{{exp}}}" if exp is not None else tex

    def _print_Max(self, expr: sympy.Expr, exp=None) -> str:
        return self._variadic("max", expr, exp)

    def _print_Min(self, expr: sympy.Expr, exp=None) -> str:
        return self._variadic("min", expr, exp)

    def _print_log(self, expr: sympy.Expr, exp=None) -> str:
        tex = rf"\log({self._inner(expr.args[0])})"
        return rf"\log^{{{exp}}}({self._inner(expr.args[0])})" if exp is not None else tex

    def _print_sign(self, expr: sympy.Expr, exp=None) -> str:
        tex = rf"\operatorname{{sign}}({self._inner(expr.args[0])})"
        return f"{tex}^{{{exp}}}" if exp is not None else tex

    def _print_exp(self, expr: sympy.Expr, exp=None) -> str:
        tex = rf"\exp({self._inner(expr.args[0])})"
        return f"{tex}^{{{exp}}}" if exp is not None else tex

    def _add_parens(self, s: str) -> str:
        # Grow the parentheses only around something tall.
        return rf"\left({s}\right)" if is_tall(s) else f"({s})"

    def _inner(self, expr: sympy.Expr) -> str:
        """A function's argument: a nested expression, where the assigned name has no priority."""
        self._depth += 1
        try:
            return self._print(expr)
        finally:
            self._depth -= 1

    # -- order of terms ------------------------------------------------------------------------
    def _has_variable(self, expr: sympy.Expr) -> bool:
        names = {s.name for s in expr.free_symbols}
        return bool(names & (self.variables | {"t"}))

    def _print_Add(self, expr: sympy.Expr, order=None) -> str:
        top = self._depth == 0 and self.target is not None
        canonical = list(expr.as_ordered_terms())

        def key(term: sympy.Expr) -> tuple:
            own = top and any(s.name == self.target for s in term.free_symbols)
            return (
                not own,
                bool(term.could_extract_minus_sign()),
                not self._has_variable(term),  # constants and hyperparameters go last
                not term.is_Symbol,  # w + rho v
                canonical.index(term),
            )

        self._depth += 1
        try:
            tex = ""
            for i, term in enumerate(sorted(canonical, key=key)):
                if term.could_extract_minus_sign():
                    tex += "- " if i == 0 else " - "
                    term = -term
                elif i:
                    tex += " + "
                term_tex = self._print(term)
                if term.is_Add:
                    term_tex = self._add_parens(term_tex)
                tex += term_tex
            return tex
        finally:
            self._depth -= 1

    # -- products and fractions ----------------------------------------------------------------
    def _factor_key(self, factor: sympy.Expr) -> tuple:
        if factor.is_Number:
            rank = 0
        elif factor.is_Symbol and factor.name in self.hypers:
            return (1, self.hypers.index(factor.name), "")
        elif factor.is_Add:
            rank = 3
        elif factor.is_Pow and factor.base.is_Add:
            rank = 4
        elif factor.is_Symbol or (factor.is_Pow and factor.base.is_Symbol):
            base = factor if factor.is_Symbol else factor.base
            rank = 2 if base.name in self.hypers else 5
        elif not self.is_array(factor):
            rank = 2  # a per-tensor scalar such as a norm before the arrays it scales
        else:
            rank = 6
        return (rank, 0, str(default_sort_key(factor)))

    def _product(self, expr: sympy.Expr) -> str:
        factors = sorted(sympy.Mul.make_args(expr), key=self._factor_key)
        if len(factors) == 1:
            return self._print(factors[0])
        out = []
        for f in factors:
            tex = self._print(f)
            if f.is_Add or f.is_Piecewise or (f.is_Number and f.is_negative and out):
                tex = self._add_parens(tex)
            out.append(tex)
        out = self.join_factors(factors, out)
        # A number next to a number needs a visible product.
        joined = out[0]
        for prev, cur in zip(out, out[1:], strict=False):
            sep = r" \cdot " if re.search(r"[0-9]$", prev) and re.match(r"[0-9]", cur) else " "
            joined += sep + cur
        return joined

    def _print_Mul(self, expr: sympy.Expr) -> str:
        if expr.could_extract_minus_sign():
            inner = self._print(-expr)
            return f"- {self._add_parens(inner) if (-expr).is_Add else inner}"
        numer, denom = fraction(expr, exact=True)
        if denom == 1:
            return self._product(expr)
        return rf"\frac{{{self._product(numer)}}}{{{self._product(denom)}}}"

    def _print_Pow(self, expr: sympy.Expr) -> str:
        if expr.exp.is_Rational and expr.exp.is_negative:
            return self._print_Mul(sympy.Mul(sympy.S.One, expr, evaluate=False))
        if expr.exp == sympy.S.Half:
            return rf"\sqrt{{{self._inner(expr.base)}}}"
        base = self.parenthesize(expr.base, PRECEDENCE["Pow"], strict=True)
        if isinstance(expr.base, TensorNorm):
            base = self._print(expr.base)  # \lVert x \rVert_2^{2}
        elif expr.base.is_Piecewise or (expr.base.is_Function and not isinstance(expr.base, Grad)):
            base = self._add_parens(self._print(expr.base))
        exponent = self._inner(expr.exp)
        if self.hadamard_power(expr):
            exponent = rf"\odot {exponent}"
        return f"{base}^{{{exponent}}}"


def _spec_symbols(spec: Spec) -> list[sympy.Symbol]:
    from symopt.spec import symbol_table

    return list(symbol_table(spec).values())


# ---------------------------------------------------------------------------------------------
# Numbers and prose
# ---------------------------------------------------------------------------------------------


def format_number(x: float) -> str:
    """A default for a table, in math mode: ``0.001``, ``10^{-8}``, ``3 \\cdot 10^{-5}``."""
    text = f"{x:g}"
    if "e" not in text:
        return text
    mantissa, exponent = text.split("e")
    power = f"10^{{{int(exponent)}}}"
    return power if mantissa == "1" else rf"{mantissa} \cdot {power}"


_LATEX_ESCAPES = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
}
_LATEX_SPECIAL = re.compile("|".join(re.escape(c) for c in _LATEX_ESCAPES))


def escape_latex(text: str) -> str:
    """Plain text that prints as itself in LaTeX's text mode (OT1 encoding included)."""
    text = _LATEX_SPECIAL.sub(lambda m: _LATEX_ESCAPES[m.group()], " ".join(text.split()))
    # Straight double quotes: opening and closing ones in pairs, as TeX's `` and ''.
    text = re.sub(r'"([^"]*)"', r"``\1''", text)
    return text.replace('"', "''")


def safe_symbol(latex: str) -> str:
    """A spec's ``latex`` for a symbol if it is a plain piece of math; else its text, escaped.

    The loader refuses a spec whose symbol is not (:mod:`symopt.spec.symbol_latex`, a
    whitelist); this also covers specs built in Python and SymPy's default for a name."""
    return latex if latex_problem(latex) is None else rf"\text{{{escape_latex(latex)}}}"


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]<>#|$~^])")


def escape_markdown(text: str) -> str:
    """Plain text that GitHub's Markdown shows as written (no emphasis, links, HTML or math)."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(text.split()))

"""LaTeX for the tensor-level constructs of a spec, as a paper writes them.

Reductions print as ``\\lVert x \\rVert_2``, ``\\operatorname{mean}(x)``, ``\\max(x)`` (one
argument), ``\\operatorname{rowsum}(x)``; a matrix product as juxtaposition and a transpose as
``^{\\top}``; ``where`` as ``cases`` (nested ``where`` in the last branch flattened into one
``cases``), with ``and``/``or``/``not`` in words. The printer intercepts these nodes itself rather
than calling their ``_latex`` methods, so every argument goes through the spec printer (its names
and its order of terms).

In a spec with matrix products, juxtaposing two arrays would read as a matrix product, so there
an element-wise product of two arrays prints as ``A \\odot B`` and an element-wise power as
``A^{\\odot 2}`` (the "Hadamard" mode; element-wise specs keep ``m v`` and ``g^{2}``).
"""

from __future__ import annotations

import sympy

from symopt.spec import Spec
from symopt.spec.tensor import MatProduct, ReductionBase, TensorNorm, Transposed

#: How each reduction prints around its argument (``{}``), by class name.
REDUCTION_LATEX = {
    "TensorSum": r"{{\textstyle\sum}}{}",
    "TensorMean": r"\operatorname{{mean}}{}",
    "TensorMax": r"\max{}",
    "RowSum": r"\operatorname{{rowsum}}{}",
    "RowMean": r"\operatorname{{rowmean}}{}",
    "ColSum": r"\operatorname{{colsum}}{}",
    "ColMean": r"\operatorname{{colmean}}{}",
}

TALL = (r"\frac", r"\begin{cases}")


def is_tall(tex: str) -> bool:
    """Whether delimiters around ``tex`` should grow (``\\left( ... \\right)``)."""
    return any(mark in tex for mark in TALL)


class TensorLatexMixin:
    """Printing of reductions, matrix operations and conditionals for :class:`SpecLatexPrinter`.

    Expects the printer to provide ``_inner``, ``_add_parens`` and, for the Hadamard mode,
    ``arrays`` (the names whose values are arrays, not per-tensor scalars) and ``hadamard``."""

    arrays: set[str]
    hadamard: bool

    def _print(self, expr, **kwargs) -> str:
        if isinstance(expr, ReductionBase):
            return self._print_reduction(expr)
        if isinstance(expr, MatProduct):
            return " ".join(self._matrix_operand(a) for a in _flatten_product(expr))
        if isinstance(expr, Transposed):
            arg = expr.args[0]
            inner = self._inner(arg)
            if not arg.is_Symbol:
                inner = self._add_parens(inner)
            return f"{inner}^{{\\top}}"
        return super()._print(expr, **kwargs)  # type: ignore[misc]

    def _print_reduction(self, expr: ReductionBase) -> str:
        inner = self._inner(expr.args[0])
        if isinstance(expr, TensorNorm):
            if is_tall(inner):
                return rf"\left\lVert {inner} \right\rVert_2"
            return rf"\lVert {inner} \rVert_2"
        return REDUCTION_LATEX[type(expr).__name__].format(self._add_parens(inner))

    def _matrix_operand(self, arg: sympy.Expr) -> str:
        tex = self._inner(arg)
        bare = arg.is_Symbol or isinstance(arg, (Transposed, ReductionBase))
        return tex if bare else self._add_parens(tex)

    # -- arrays and scalars (the Hadamard mode) ---------------------------------------------
    def is_array(self, expr: sympy.Basic) -> bool:
        return is_array(expr, self.arrays)

    def hadamard_power(self, expr: sympy.Pow) -> bool:
        """An element-wise power of an array in a spec with matrix products: ``A^{\\odot k}``."""
        return self.hadamard and expr.exp != sympy.S.Half and self.is_array(expr.base)

    def join_factors(self, factors: list[sympy.Expr], texs: list[str]) -> list[str]:
        """In the Hadamard mode, the array factors of a product joined by ``\\odot``."""
        arrays = [i for i, f in enumerate(factors) if self.is_array(f)]
        if not self.hadamard or len(arrays) < 2:
            return texs
        parts = [t for i, t in enumerate(texs) if i not in arrays]
        joined = []
        for i in arrays:
            bare = factors[i].is_Symbol or isinstance(factors[i], (Transposed, ReductionBase))
            joined.append(texs[i] if bare or texs[i].startswith("(") else f"({texs[i]})")
        return [*parts, r" \odot ".join(joined)]

    # -- conditionals ----------------------------------------------------------------------
    def _print_Piecewise(self, expr: sympy.Piecewise) -> str:
        rows = []
        for i, (value, cond) in enumerate(_flatten_cases(expr)):
            # The first true condition wins, so a later row reads "else if", not "if".
            word = "if" if i == 0 else "else if"
            when = (
                r"\text{otherwise}"
                if cond is sympy.true
                else rf"\text{{{word} }} {self._inner(cond)}"
            )
            rows.append(f"{self._inner(value)} & {when}")
        return r"\begin{cases} " + r" \\ ".join(rows) + r" \end{cases}"

    def _boolean(self, expr: sympy.Basic, word: str) -> str:
        parts = []
        for arg in expr.args:
            tex = self._inner(arg)
            parts.append(f"({tex})" if isinstance(arg, (sympy.And, sympy.Or)) else tex)
        return rf" \text{{ {word} }} ".join(parts)

    def _print_And(self, expr: sympy.And) -> str:
        return self._boolean(expr, "and")

    def _print_Or(self, expr: sympy.Or) -> str:
        return self._boolean(expr, "or")

    def _print_Not(self, expr: sympy.Not) -> str:
        return rf"\text{{not }} ({self._inner(expr.args[0])})"


def is_array(expr: sympy.Basic, arrays: set[str]) -> bool:
    """Whether ``expr`` is an array (not a per-tensor scalar such as a norm or ``lr``)."""
    if isinstance(expr, ReductionBase):
        return expr.axis is not None
    if isinstance(expr, (MatProduct, Transposed)):
        return True
    if expr.is_Symbol:
        return expr.name in arrays
    return any(is_array(a, arrays) for a in expr.args)


def array_names(spec: Spec) -> set[str]:
    """``w``, ``g``, the state that is not a per-tensor scalar, and every intermediate computed
    from an array (in the order of the lines: a per-tensor norm stays a scalar)."""
    arrays = {"w", "g", *(s.name for s in spec.states if s.shape != "scalar")}
    lookahead = spec.lookahead_free.update if spec.lookahead_free else ()
    for a in (*spec.update, *spec.otherwise, *lookahead):
        if is_array(a.expr, arrays):
            arrays.add(a.target)
    return arrays


def _flatten_product(expr: sympy.Expr) -> list[sympy.Expr]:
    """The operands of a chain of matrix products (the product is associative)."""
    if isinstance(expr, MatProduct):
        return [*_flatten_product(expr.args[0]), *_flatten_product(expr.args[1])]
    return [expr]


def _flatten_cases(expr: sympy.Piecewise) -> list[tuple[sympy.Expr, sympy.Basic]]:
    """``where(a, x, where(b, y, z))`` as the three cases x, y, z."""
    out = []
    for value, cond in expr.args:
        if cond is sympy.true and isinstance(value, sympy.Piecewise):
            out += _flatten_cases(value)
        else:
            out.append((value, cond))
    return out

"""Triton expressions from SymPy, for the staged fused kernels (:mod:`fused_triton_stages`).

The element-wise Triton kernels print the foreach path's instructions; a staged kernel prints the
passes of :mod:`symopt.lowering.stages`, whose bodies and per-tensor scalars are SymPy
expressions. They are printed here with the arithmetic of the C target's passes
(:mod:`symopt.backends.c.printer`): products and quotients as SymPy's C printer orders them,
``x**2`` as ``x*x``, division and square root correctly rounded (the runtime's ``div`` and
``sqrt``), ``max``/``min`` propagating NaN, conditionals as ``tl.where``.

Triton types a Python float literal as float32, so a kernel holds no literal but small integers:
:class:`Hoist` first moves every part of an expression that depends on the step alone (the
hyperparameters, t, the prelude, constants) to Python, where it is computed in double and
passed to the kernel as a step scalar.
"""

from __future__ import annotations

import keyword

import sympy
from sympy.logic.boolalg import Boolean, BooleanFalse, BooleanTrue

#: Names a generated kernel module uses itself: a spec name equal to one gets a "_" appended.
RESERVED = frozenset({"tl", "rt", "triton", "torch", "math", "float", "int", "max", "min", "abs"})
#: Integers printed as literals (exact in float32); larger ones are step scalars.
SMALL = 2**24
#: Exponents printed without pow().
SPECIAL = {sympy.S.Half, -sympy.S.Half, sympy.Integer(2), sympy.Integer(3), -sympy.S.One}
SPECIAL |= {sympy.Integer(-2)}
RELATIONS = {"==": "==", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


def identifier(name: str) -> str:
    """A spec-derived name as a Python identifier that clashes with nothing the module uses."""
    while keyword.iskeyword(name) or keyword.issoftkeyword(name) or name in RESERVED:
        name += "_"
    return name


def is_condition(expr: sympy.Basic) -> bool:
    """A truth value rather than a number (a SymPy symbol is both: a number here)."""
    return isinstance(expr, Boolean) and not isinstance(expr, sympy.Expr)


class Hoist:
    """Moves the parts of expressions that depend on the step alone to step scalars
    ``_k0, _k1, ...`` (``hoisted``: expression -> symbol, in order of first use)."""

    def __init__(self, step: set[str]):
        self.step = step
        self.hoisted: dict[sympy.Basic, sympy.Symbol] = {}

    def is_step(self, e: sympy.Basic) -> bool:
        return all(s.name in self.step for s in e.free_symbols)

    def top(self, e: sympy.Basic) -> sympy.Basic:
        """A whole per-tensor value: hoisted entirely where it depends on the step alone (a
        kernel then holds it as a tensor, never as a Python literal)."""
        if self.is_step(e) and not e.is_Symbol:
            return self.name(e)
        return self(e)

    def __call__(self, e: sympy.Basic) -> sympy.Basic:
        if self.is_step(e):
            small = e.is_Integer and abs(e) <= SMALL
            return (
                e
                if e.is_Symbol or small or isinstance(e, BooleanTrue | BooleanFalse)
                else (self.name(e))
            )
        if isinstance(e, sympy.Add | sympy.Mul | sympy.Max | sympy.Min):
            fixed = [a for a in e.args if self.is_step(a)]
            rest = [self(a) for a in e.args if not self.is_step(a)]
            if fixed:
                rest.insert(0, self(e.func(*fixed)))
            return e.func(*rest, evaluate=False)
        if isinstance(e, sympy.Pow) and e.exp in SPECIAL:
            return sympy.Pow(self(e.base), e.exp, evaluate=False)
        if isinstance(e, sympy.Piecewise):
            return sympy.Piecewise(*((self(v), self(c)) for v, c in e.args), evaluate=False)
        if not e.args:
            return e
        return e.func(*(self(a) for a in e.args), evaluate=False)

    def name(self, e: sympy.Basic) -> sympy.Symbol:
        if e not in self.hoisted:
            self.hoisted[e] = sympy.Symbol(f"_k{len(self.hoisted)}")
        return self.hoisted[e]


class TritonPrinter:
    """One expression as Triton code; ``names`` maps SymPy names to identifiers and ``vectors``
    holds those of block values (loaded arrays and pass temporaries), the rest being 0-d."""

    def __init__(self, names: dict[str, str], vectors: set[str]):
        self.names = names
        self.vectors = vectors

    def doprint(self, e: sympy.Basic) -> str:
        return self.print(e, 0)

    def vector(self, e: sympy.Basic) -> bool:
        return any(s.name in self.vectors for s in e.free_symbols)

    def print(self, e: sympy.Basic, outer: int) -> str:
        """``e``, parenthesised where its operator binds less than ``outer`` (Python's levels:
        comparisons 1, | 2, & 3, + 5, * 6, unary - and ~ 7, atoms and calls 9)."""
        text, level = self._print(e)
        return f"({text})" if level < outer else text

    def _print(self, e: sympy.Basic) -> tuple[str, int]:
        if e.is_Symbol:
            return self.names.get(e.name, e.name), 9
        if isinstance(e, BooleanTrue | BooleanFalse):
            return str(bool(e)), 9
        if e.is_Integer:
            if e < 0:
                return f"-{-e}", 7
            return str(e), 9
        if e.is_Number or isinstance(e, sympy.NumberSymbol):
            raise ValueError(f"the constant {e} should have been made a step scalar")
        if isinstance(e, sympy.Add):
            return self._add(e), 5
        if isinstance(e, sympy.Mul):
            return self._mul(e)
        if isinstance(e, sympy.Pow):
            return self._pow(e.base, e.exp), 9
        if isinstance(e, sympy.Piecewise):
            return self._piecewise(e), 9
        if isinstance(e, sympy.core.relational.Relational):
            a, b = (self.print(x, 5) for x in e.args)
            return f"{a} {RELATIONS[e.rel_op]} {b}", 1
        if isinstance(e, sympy.And | sympy.Or):
            return self._logic(e)
        if isinstance(e, sympy.Not):
            return f"~{self.print(e.args[0], 8)}", 7
        if isinstance(e, sympy.Max | sympy.Min):
            name = "rt.maximum" if isinstance(e, sympy.Max) else "rt.minimum"
            args = [self.print(a, 0) for a in e.args]
            out = args[-1]
            for a in reversed(args[:-1]):
                out = f"{name}({a}, {out})"
            return out, 9
        calls = {sympy.Abs: "tl.abs", sympy.exp: "rt.exp", sympy.log: "rt.log"}
        calls[sympy.sign] = "rt.sign"
        if type(e) in calls and len(e.args) == 1:
            return f"{calls[type(e)]}({self.print(e.args[0], 0)})", 9
        raise NotImplementedError(f"no Triton form of {type(e).__name__}: {e}")

    def _add(self, e: sympy.Add) -> str:
        out = ""
        for term in e.as_ordered_terms():
            coeff, rest = term.as_coeff_Mul()
            if out and coeff.is_Number and coeff < 0:
                out += f" - {self.print(-term, 6)}"
            else:
                out += f"{' + ' if out else ''}{self.print(term, 6)}"
        return out

    def _mul(self, e: sympy.Mul) -> tuple[str, int]:
        """As SymPy's C printer: the sign, the numerator's factors, then one division by the
        product of the denominator's."""
        coeff, rest = e.as_coeff_Mul()
        sign = "-" if coeff.is_Number and coeff < 0 else ""
        coeff = -coeff if sign else coeff
        numerator, denominator = [coeff] if coeff != 1 else [], []
        for f in rest.as_ordered_factors():
            if isinstance(f, sympy.Pow) and f.exp.is_Rational and f.exp < 0:
                exp = -f.exp
                denominator.append(f.base if exp == 1 else sympy.Pow(f.base, exp, evaluate=False))
            else:
                numerator.append(f)
        top = self._product(numerator) or "1.0"
        if denominator:
            bottom = self._product(denominator)
            return f"{sign}rt.div({top}, {bottom})", 6 if sign else 9
        return f"{sign}{top}", 6 if sign or len(numerator) > 1 else 9

    def _product(self, factors: list) -> str:
        """Factors joined by ``*`` (one alone as it is: a call's argument)."""
        if len(factors) == 1:
            return self.print(factors[0], 0)
        return "*".join(self.print(f, 7) for f in factors)

    def _pow(self, base: sympy.Basic, exp: sympy.Basic) -> str:
        b = self.print(base, 7)
        if exp == sympy.S.Half:
            return f"rt.sqrt({self.print(base, 0)})"
        if exp == 2:
            return f"({b} * {b})"
        if exp == 3:
            return f"({b} * {b} * {b})"
        if exp.is_Rational and exp < 0:
            return f"rt.div(1.0, {self._pow(base, -exp) if exp != -1 else b})"
        return f"rt.power({self.print(base, 0)}, {self.print(exp, 0)})"

    def _piecewise(self, e: sympy.Piecewise) -> str:
        *branches, (out_value, last) = e.args
        if last is not sympy.true:
            raise ValueError(f"a conditional without a default branch cannot be printed: {e}")
        out = self.print(out_value, 0)
        for value, cond in reversed(branches):
            out = f"tl.where({self.print(cond, 0)}, {self.print(value, 0)}, {out})"
        return out

    def _logic(self, e: sympy.Basic) -> tuple[str, int]:
        """``&``/``|`` between operands of one kind; a 0-d truth beside block ones decides
        through ``tl.where`` (a block | a 0-d truth fails in Triton's interpreter)."""
        conj = isinstance(e, sympy.And)
        level = 3 if conj else 2
        blocks = [a for a in e.args if self.vector(a)]
        single = [a for a in e.args if not self.vector(a)]
        op = " & " if conj else " | "
        if not blocks or not single:
            return op.join(self.print(a, level + 1) for a in e.args), level
        inner = op.join(self.print(a, level + 1) for a in blocks)
        flag = op.join(self.print(a, level + 1) for a in single)
        if conj:
            return f"tl.where({flag}, {inner}, False)", 9
        return f"tl.where({flag}, True, {inner})", 9

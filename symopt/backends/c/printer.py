"""C expressions from SymPy: ``C99CodePrinter`` for one precision, and C-safe identifiers.

Expressions are printed by SymPy's ``C99CodePrinter`` (``float32`` type alias for the float
kernel: ``sqrtf``, ``1.0e-8F``) with these changes: ``x**2`` is ``(x*x)`` (a ``powf`` call would
stop vectorization), ``max``/``min``/``sign`` go through small inline helpers that propagate NaN
like NumPy and the reference stepper (``fmaxf`` drops it, and GCC does not vectorize it),
``abs`` is always ``fabs``, constants such as ``sqrt(2)`` or e are no POSIX macros (``M_SQRT2``
is undeclared under ``-std=c99``), conditionals are one-line ternaries (``(s > 0 ? a : b)``;
SymPy's spread over lines) with ``&&`` inside ``||`` parenthesised (``-Wparentheses``), and
names that would clash with C or C++ identifiers get a trailing underscore.
"""

from __future__ import annotations

from collections.abc import Sequence

import sympy
from sympy.codegen.ast import float32, float64, real
from sympy.logic.boolalg import Boolean
from sympy.printing.c import C99CodePrinter
from sympy.printing.precedence import PRECEDENCE

#: Identifiers that C code may not use as variable names: <math.h>, <stddef.h>, <omp.h> names and
#: C++ keywords (the header is meant to be included from C++ too). Spec names are checked against
#: the C keywords already (symopt.spec.reserved).
_MATH = """
acos acosf acosh acoshf acoshl acosl asin asinf asinh asinhf asinhl asinl atan atan2 atan2f atan2l
atanf atanh atanhf atanhl atanl cbrt cbrtf cbrtl ceil ceilf ceill copysign copysignf copysignl cos
cosf cosh coshf coshl cosl erf erfc erfcf erfcl erff erfl exp exp2 exp2f exp2l expf expl expm1
expm1f expm1l fabs fabsf fabsl fdim fdimf fdiml floor floorf floorl fma fmaf fmal fmax fmaxf fmaxl
fmin fminf fminl fmod fmodf fmodl frexp frexpf frexpl hypot hypotf hypotl ilogb ilogbf ilogbl ldexp
ldexpf ldexpl lgamma lgammaf lgammal llrint llrintf llrintl llround llroundf llroundl log log10
log10f log10l log1p log1pf log1pl log2 log2f log2l logb logbf logbl logf logl lrint lrintf lrintl
lround lroundf lroundl modf modff modfl nan nanf nanl nearbyint nearbyintf nearbyintl nextafter
nextafterf nextafterl nexttoward nexttowardf nexttowardl pow powf powl remainder remainderf
remainderl remquo remquof remquol rint rintf rintl round roundf roundl scalbln scalblnf scalblnl
scalbn scalbnf scalbnl sin sinf sinh sinhf sinhl sinl sqrt sqrtf sqrtl tan tanf tanh tanhf tanhl
tanl tgamma tgammaf tgammal trunc truncf truncl fpclassify isfinite isgreater isgreaterequal isinf
isless islessequal islessgreater isnan isnormal isunordered signbit float_t double_t
math_errhandling gamma j0 j1 jn y0 y1 yn size_t ptrdiff_t wchar_t offsetof max_align_t
"""
_CPP = """
alignas alignof and and_eq asm bitand bitor bool catch char16_t char32_t char8_t class compl
concept consteval constexpr constinit const_cast co_await co_return co_yield decltype delete
dynamic_cast explicit export false friend mutable namespace new noexcept not not_eq nullptr
operator or or_eq private protected public reinterpret_cast requires static_assert static_cast
template this thread_local throw true try typeid typename using virtual wchar_t xor xor_eq
"""
#: C's own keywords: spec names are checked against them, but names lowering derives (a scalar
#: that is a constant 0 or 1 where a condition holds is called ``const``) are not.
_C = """
auto break case char const continue default do double else enum extern float for goto if inline
int long register restrict return short signed sizeof static struct switch typedef union unsigned
void volatile while _Bool _Complex _Imaginary
"""
C_RESERVED = frozenset(_MATH.split()) | frozenset(_CPP.split()) | frozenset(_C.split())


def c_identifiers(names: Sequence[str]) -> dict[str, str]:
    """Each name's C identifier: itself, or with underscores appended when it would clash."""
    taken = set(names)
    out = {}
    for name in names:
        ident = name
        while (
            ident in C_RESERVED
            # OpenMP's and symopt's own functions: none of them ends with "_"
            or (ident.startswith(("omp_", "symopt_")) and not ident.endswith("_"))
            or (ident != name and ident in taken)
        ):
            ident += "_"
        taken.add(ident)
        out[name] = ident
    return out


class CPrinter(C99CodePrinter):
    """``C99CodePrinter`` for one precision, with the renames and the helpers described above."""

    def __init__(self, precision: str, names: dict[str, str], helpers: set[str]):
        alias = {"f32": float32, "f64": float64}[precision]
        super().__init__({"type_aliases": {real: alias}})
        # M_SQRT2, M_LN2, M_E, ... are POSIX, not C99: undeclared under -std=c99
        self.math_macros: dict = {}
        self.precision = precision
        self.names = names
        self.helpers = helpers  # filled with the helpers used: "max", "min", "sign"

    def _print_Symbol(self, expr: sympy.Symbol) -> str:
        return self.names.get(expr.name, expr.name)

    def _print_NumberSymbol(self, expr: sympy.NumberSymbol) -> str:
        """e (from ``exp(1)``), pi, ... as literals: SymPy would declare a variable for them."""
        return self._print_Float(sympy.Float(expr.evalf(30), 30))

    _print_Exp1 = _print_Pi = _print_NumberSymbol

    def _print_Abs(self, expr: sympy.Abs) -> str:
        # SymPy prints the integer abs() where the argument is integer-valued, as sign(x) is
        name = "fabsf" if self.precision == "f32" else "fabs"
        return f"{name}({self._print(expr.args[0])})"

    def _print_Integer(self, expr: sympy.Integer) -> str:
        # past 2**53 (1e308 is an exact integer to SymPy) as the nearest double: C has no integer
        # type for it, and a double holds no integer beyond exactly anyway
        return super()._print_Integer(expr) if abs(expr.p) <= 2**53 else repr(float(expr.p))

    def _print_Rational(self, expr: sympy.Rational) -> str:
        # past 2**53 the quotient of two doubles is not the rational's nearest double (1/10**309
        # would divide by an infinity): print that double (a double literal in either precision:
        # 1e-309 is no float)
        if max(abs(expr.p), expr.q) <= 2**53:
            return super()._print_Rational(expr)
        return repr(float(expr))

    def _print_Pow(self, expr: sympy.Pow) -> str:
        base, ex = expr.args
        if ex == 2 or ex == -2:
            b = self.parenthesize(base, PRECEDENCE["Mul"])
            square = f"({b}*{b})"
            return square if ex == 2 else f"{self._print_Float(sympy.Float(1.0))}/{square}"
        return super()._print_Pow(expr)

    def _helper(self, name: str, args) -> str:
        helper = f"{name}_{self.precision}"
        self.helpers.add(helper)
        return f"symopt_{helper}({', '.join(args)})"

    def _pairwise(self, name: str, expr: sympy.Expr) -> str:
        args = [self._print(a) for a in expr.args]
        out = args[-1]
        for a in reversed(args[:-1]):
            out = self._helper(name, [a, out])
        return out

    def _print_Max(self, expr: sympy.Max) -> str:
        return self._pairwise("max", expr)

    def _print_Min(self, expr: sympy.Min) -> str:
        return self._pairwise("min", expr)

    def _print_sign(self, expr: sympy.sign) -> str:
        return self._helper("sign", [self._print(expr.args[0])])

    def _print_Piecewise(self, expr: sympy.Piecewise) -> str:
        """``(c1 ? a : c2 ? b : d)`` on one line; only the branch taken is evaluated (the
        reference stepper evaluates both and picks one: the same value)."""
        *branches, (default, last) = expr.args
        if last is not sympy.true:
            raise ValueError(f"a conditional without a default branch cannot be printed: {expr}")
        parts = [f"{self._condition(c)} ? {self._print(e)} : " for e, c in branches]
        return f"({''.join(parts)}{self._print(default)})"

    def _condition(self, cond: Boolean) -> str:
        text = self._print(cond)
        return f"({text})" if isinstance(cond, (sympy.And, sympy.Or)) else text

    def _print_And(self, expr: sympy.And) -> str:
        return " && ".join(self._operand(a, sympy.Or) for a in expr.args)

    def _print_Or(self, expr: sympy.Or) -> str:
        return " || ".join(self._operand(a, sympy.And) for a in expr.args)

    def _operand(self, arg: Boolean, grouped: type) -> str:
        """An operand of ``&&`` / ``||``, in parentheses where it is the other one."""
        text = self._print(arg)
        return f"({text})" if isinstance(arg, grouped) else text

    def _print_Not(self, expr: sympy.Not) -> str:
        arg = expr.args[0]
        text = self._print(arg)
        return f"!{text}" if arg.is_Symbol else f"!({text})"

    def _print_BooleanTrue(self, expr) -> str:
        return "1"

    def _print_BooleanFalse(self, expr) -> str:
        return "0"


def is_condition(expr: sympy.Basic) -> bool:
    """Whether a value is a truth value (C type ``int``) rather than a number (a SymPy symbol
    is both a Boolean and an Expr: it is a number here)."""
    return isinstance(expr, Boolean) and not isinstance(expr, sympy.Expr)

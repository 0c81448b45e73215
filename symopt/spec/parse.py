"""Safe parsing of spec expressions: untrusted text in, SymPy objects out.

Nothing is evaluated as Python. The text is parsed with :mod:`ast` and every node is checked
against a whitelist before a SymPy object is built from it by hand. ``sympify`` is never called on
user text.
"""

from __future__ import annotations

import ast
import difflib
import re
import warnings
from collections.abc import Callable, Mapping

import sympy

from symopt.errors import SpecError
from symopt.spec.numbers import MAX_DIGITS, as_double, bounded, digits, literal
from symopt.spec.tensor import REDUCTIONS, MatProduct, TensorMax, Transposed

MAX_LENGTH = 2000
MAX_DEPTH = 100
MAX_EXPONENT = 64
#: exp(exp(exp(exp(x)))) overflows a double for every x > 0.6, and SymPy, asked about its value
#: at a point, computes for hours: exponentials (exp, and powers with a symbolic exponent) nest
#: at most this deep.
MAX_EXP_NESTING = 3

#: The gradient operator: ``grad(x)`` is the loss gradient evaluated at the point ``x``.
Grad = sympy.Function("grad")


class FlagSymbol(sympy.Symbol):
    """A spec's flag (``[flag.NAME]``): true or false, usable only as a condition. Variants
    substitute it (:mod:`symopt.spec.family`), so no generated code ever sees one."""


def _max(*args: sympy.Expr) -> sympy.Expr:
    """``max(x)``: the largest element of the tensor; ``max(a, b, ...)``: element-wise."""
    return TensorMax(args[0]) if len(args) == 1 else sympy.Max(*args)


def _min(*args: sympy.Expr) -> sympy.Expr:
    return sympy.Min(*args)


FUNCTIONS: dict[str, tuple[Callable[..., sympy.Expr], tuple[int, int | None]]] = {
    "sqrt": (sympy.sqrt, (1, 1)),
    "abs": (sympy.Abs, (1, 1)),
    "exp": (sympy.exp, (1, 1)),
    "log": (sympy.log, (1, 1)),
    "sign": (sympy.sign, (1, 1)),
    "max": (_max, (1, None)),
    "min": (_min, (2, None)),
    "grad": (Grad, (1, 1)),
    **{name: (cls, (1, 1)) for name, cls in REDUCTIONS.items()},
    "transpose": (Transposed, (1, 1)),
    "where": (None, (3, 3)),  # built by _Builder._where: its first argument is a condition
}

#: The functions an expression may hold once SymPy has built it.
LANGUAGE = {"exp", "log", "Abs", "sign", "Max", "Min", "Piecewise", "grad", "TensorMax"} | {
    cls.__name__ for cls in (*REDUCTIONS.values(), MatProduct, Transposed)
}

COMPARISONS = {
    ast.Lt: sympy.Lt,
    ast.LtE: sympy.Le,
    ast.Gt: sympy.Gt,
    ast.GtE: sympy.Ge,
    ast.Eq: sympy.Eq,
    ast.NotEq: sympy.Ne,
}


class _Builder:
    #: Keep ``not`` as written (argument checks, where NaN must go the library's way).
    keep_not = False

    """Builds a SymPy expression from a whitelisted ``ast`` tree."""

    def __init__(
        self,
        symbols: Mapping[str, sympy.Symbol],
        allow_grad: bool,
        later: frozenset[str],
        source: str = "",
    ):
        self.source = source
        self.symbols = symbols
        self.allow_grad = allow_grad
        self.later = later

    def build(self, node: ast.AST, depth: int = 0) -> sympy.Expr:
        if depth > MAX_DEPTH:
            raise SpecError(f"expression nested deeper than {MAX_DEPTH} levels")
        d = depth + 1
        if isinstance(node, ast.Constant):
            return literal(node.value, ast.get_source_segment(self.source, node))
        if isinstance(node, ast.Name):
            return self._name(node.id)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            inner = self.build(node.operand, d)
            return -inner if isinstance(node.op, ast.USub) else inner
        if isinstance(node, ast.BinOp):
            return self._binop(node, d)
        if isinstance(node, ast.Call):
            return self._call(node, d)
        if isinstance(node, (ast.Compare, ast.BoolOp)) or (
            isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not)
        ):
            raise SpecError(
                f"{_condition_word(node)} is only allowed in the condition of where(cond, a, b)"
            )
        raise SpecError(f"{_describe(node)} is not allowed in an expression")

    def condition(self, node: ast.AST, depth: int) -> sympy.Basic:
        """A condition: comparisons joined by ``and``/``or``/``not``."""
        if depth > MAX_DEPTH:
            raise SpecError(f"expression nested deeper than {MAX_DEPTH} levels")
        d = depth + 1
        if isinstance(node, ast.Name) and isinstance(self.symbols.get(node.id), FlagSymbol):
            return self.symbols[node.id]
        if isinstance(node, ast.Compare):
            parts, left = [], self.build(node.left, d)
            for op, right_node in zip(node.ops, node.comparators, strict=True):
                if type(op) not in COMPARISONS:
                    word = {ast.Is: "is", ast.IsNot: "is not", ast.In: "in"}.get(type(op), "not in")
                    raise SpecError(f"'{word}' is not a comparison; use <, <=, >, >=, == or !=")
                right = self.build(right_node, d)
                parts.append(COMPARISONS[type(op)](left, right))
                left = right
            return sympy.And(*parts)
        if isinstance(node, ast.BoolOp):
            join = sympy.And if isinstance(node.op, ast.And) else sympy.Or
            return join(*(self.condition(v, d) for v in node.values))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            # an argument check keeps it as written: ``not lr < 0`` lets NaN through, where
            # ``lr >= 0`` would not
            return sympy.Not(self.condition(node.operand, d), evaluate=not self.keep_not)
        raise SpecError(
            f"the condition of where() must be a comparison such as 'g*p > 0' or a flag "
            f"(joined with and, or, not), got {ast.unparse(node)!r}"
        )

    def _where(self, node: ast.Call, d: int) -> sympy.Expr:
        cond = self.condition(node.args[0], d)
        a, b = self.build(node.args[1], d), self.build(node.args[2], d)
        return sympy.Piecewise((a, cond), (b, True))

    def _name(self, name: str) -> sympy.Expr:
        if name.startswith("_"):
            raise SpecError(f"names starting with '_' are not allowed: {name!r}")
        if name in self.symbols:
            if isinstance(self.symbols[name], FlagSymbol):
                raise SpecError(
                    f"the flag {name!r} is true or false: use it as a condition, "
                    f"where({name}, a, b)"
                )
            return self.symbols[name]
        if name in self.later:
            raise SpecError(f"{name!r} is used before it is assigned")
        if name in ("rows", "cols"):
            raise SpecError(
                f"{name!r} is only defined in the main update of a spec with "
                "applies_to = 'matrix' or 'multidim'"
            )
        hint = difflib.get_close_matches(name, list(self.symbols), n=1)
        suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise SpecError(f"unknown symbol {name!r}{suggestion}")

    def _binop(self, node: ast.BinOp, d: int) -> sympy.Expr:
        left, right = self.build(node.left, d), self.build(node.right, d)
        op = node.op
        if isinstance(op, ast.Add):
            return left + right
        if isinstance(op, ast.Sub):
            return left - right
        if isinstance(op, ast.Mult):
            return left * right
        if isinstance(op, ast.Div):
            if right == 0:
                raise SpecError("division by the constant 0")
            return left / right
        if isinstance(op, ast.MatMult):
            return MatProduct(left, right)
        if isinstance(op, ast.Pow):
            if right.is_number and (not right.is_real or abs(right) > MAX_EXPONENT):
                shown = _shown_exponent(right)
                raise SpecError(f"exponent {shown} is out of range (|exponent| <= {MAX_EXPONENT})")
            if left.is_Rational and right.is_Rational and left != 0:
                size = abs(right) * (digits(left.p) + digits(left.q))
                if size > MAX_DIGITS:
                    raise SpecError(f"a constant power would have more than {MAX_DIGITS} digits")
            return bounded(sympy.Pow(left, right))
        raise SpecError(f"operator {type(op).__name__} is not allowed (use + - * / ** @)")

    def _call(self, node: ast.Call, d: int) -> sympy.Expr:
        if not isinstance(node.func, ast.Name):
            raise SpecError(f"only plain function calls are allowed, not {_describe(node.func)}")
        name = node.func.id
        if name not in FUNCTIONS:
            hint = difflib.get_close_matches(name, list(FUNCTIONS), n=1)
            suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise SpecError(
                f"unknown function {name!r}{suggestion}; allowed: {', '.join(FUNCTIONS)}"
            )
        if name == "grad" and not self.allow_grad:
            raise SpecError("grad(...) is only allowed in update equations")
        if node.keywords:
            raise SpecError(f"{name}() takes no keyword arguments")
        fn, (lo, hi) = FUNCTIONS[name]
        if len(node.args) < lo or (hi is not None and len(node.args) > hi):
            want = f"{lo}" if lo == hi else f"at least {lo}"
            raise SpecError(f"{name}() takes {want} argument(s), got {len(node.args)}")
        if any(isinstance(a, ast.Starred) for a in node.args):
            raise SpecError(f"{name}() does not accept *arguments")
        if name == "where":
            return self._where(node, d)
        return fn(*(self.build(a, d) for a in node.args))


def _shown_exponent(value: sympy.Expr) -> str:
    """An exponent as a message shows it: short ones as written, others as "constant"."""
    text = sympy.sstr(value) if sympy.count_ops(value) < 10 else ""
    return text if 0 < len(text) <= 30 else "constant"


def _condition_word(node: ast.AST) -> str:
    """How a message names a piece of a condition found outside ``where``."""
    if isinstance(node, ast.BoolOp):
        return "'and'" if isinstance(node.op, ast.And) else "'or'"
    return "a comparison" if isinstance(node, ast.Compare) else "'not'"


def _describe(node: ast.AST) -> str:
    names = {
        ast.Attribute: "attribute access",
        ast.Subscript: "subscripting",
        ast.Lambda: "a lambda",
        ast.ListComp: "a comprehension",
        ast.GeneratorExp: "a comprehension",
        ast.Compare: "a comparison",
        ast.BoolOp: "a boolean operator",
        ast.UnaryOp: "the operator '~' (only unary minus and plus)",
        ast.IfExp: "'a if c else b' (write where(c, a, b))",
        ast.Name: f"the plain value {getattr(node, 'id', '')!r}",
    }
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return "a string"
    return names.get(type(node), type(node).__name__)


def _parse_tree(text: object, mode: str) -> ast.AST:
    if not isinstance(text, str):
        raise SpecError(f"expected a string, got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise SpecError(f"expression longer than {MAX_LENGTH} characters")
    if not text.isprintable() or "#" in text:  # a tab too, even at either end
        raise SpecError("an expression is one line of printable text, without comments")
    if not text.isascii():
        raise SpecError(_not_ascii(text))
    stripped = text.strip()
    try:
        with warnings.catch_warnings():  # "1if x" warns; the text is checked, never compiled
            warnings.simplefilter("ignore", SyntaxWarning)
            return ast.parse(stripped, mode=mode)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        msg = getattr(exc, "msg", None) or "cannot be parsed"
        raise SpecError(f"invalid expression {text.strip()!r}: {msg}") from None


def _not_ascii(text: str) -> str:
    """Why a non-ASCII expression is refused, naming the word it is in: Python reads names in
    NFKC form, so the look-alike ``ｌｒ`` would silently be ``lr``."""
    at = next(i for i, c in enumerate(text) if not c.isascii())
    before, after = re.search(r"\w*$", text[:at]), re.match(r"\w*", text[at + 1 :])
    word = text[before.start() : at + 1 + after.end()]  # type: ignore[union-attr]
    return (
        f"{word!r} is not ASCII (character {text[at]!r}, U+{ord(text[at]):04X}): "
        "an expression uses ASCII names, numbers and operators"
    )


def _finite(expr: sympy.Expr, text: object) -> sympy.Expr:
    """Reject constants that are not finite real numbers, such as (-1)**0.5 or 1/(1 - 1), and
    numbers, as written or as SymPy folds them, that no double holds."""
    odd_roots = [
        p
        for p in expr.atoms(sympy.Pow)
        if p.args[0].is_number and p.args[0].is_negative and not p.args[1].is_integer
    ]
    if odd_roots or expr.has(sympy.I, sympy.zoo, sympy.nan, sympy.oo, -sympy.oo):
        raise SpecError(f"{str(text).strip()!r} contains a complex or infinite constant")
    for p in expr.atoms(sympy.Pow):  # ((1+g)**64)**64 is (1+g)**4096: a polynomial of that degree
        if p.exp.is_Rational and abs(p.exp) > MAX_EXPONENT:
            raise SpecError(
                f"exponent {_shown_exponent(p.exp)} (as SymPy combines the powers) is out of range "
                f"(|exponent| <= {MAX_EXPONENT})"
            )
    foreign = sorted({type(f).__name__ for f in expr.atoms(sympy.Function)} - LANGUAGE)
    if foreign:  # abs(exp(sqrt(sqrt(x)))) is exp(cos(atan2(0, x)/4)*|x|**(1/4)) to SymPy
        raise SpecError(
            f"{str(text).strip()!r} is no real expression: SymPy writes it with "
            f"{', '.join(foreign)} (a fractional power of a value that can be negative?)"
        )
    if _exp_nesting(expr, {}) > MAX_EXP_NESTING:
        raise SpecError(
            f"exponentials nested deeper than {MAX_EXP_NESTING} levels "
            "(exp, or ** with a symbolic exponent)"
        )
    for node in sympy.preorder_traversal(expr):
        if node.is_number:  # a folded constant (1e308*10) too
            as_double(node, None if node.is_Rational else sympy.sstr(node))
    return expr


def _exp_nesting(expr: sympy.Basic, memo: dict[sympy.Basic, int]) -> int:
    """How deep exponentials nest in ``expr`` (shared subexpressions counted once)."""
    if expr not in memo:
        inner = max((_exp_nesting(a, memo) for a in expr.args), default=0)
        grows = isinstance(expr, sympy.exp) or (
            isinstance(expr, sympy.Pow) and not expr.exp.is_number
        )
        memo[expr] = inner + grows
    return memo[expr]


def parse_expr(
    text: object,
    symbols: Mapping[str, sympy.Symbol],
    *,
    allow_grad: bool = False,
    later: frozenset[str] = frozenset(),
) -> sympy.Expr:
    """Parse one expression over the given symbols; raise :class:`SpecError` on anything else."""
    tree = _parse_tree(text, "eval")
    return _build(tree.body, str(text), symbols, allow_grad, later)  # type: ignore[attr-defined]


def parse_condition(text: object, symbols: Mapping[str, sympy.Symbol]) -> sympy.Basic:
    """Parse a condition (comparisons and flags joined by and/or/not), as in ``where``'s first
    argument: for checks of argument values, which are conditions of their own."""
    tree = _parse_tree(text, "eval")
    builder = _Builder(symbols, False, frozenset(), str(text).strip())
    builder.keep_not = True
    try:
        return builder.condition(tree.body, 0)  # type: ignore[attr-defined]
    except RecursionError:
        raise SpecError(f"expression nested deeper than {MAX_DEPTH} levels") from None
    except (TypeError, ValueError) as exc:
        if isinstance(exc, SpecError):
            raise
        raise SpecError(f"invalid condition {str(text).strip()!r}: {exc}") from None


def _build(node: ast.AST, text: str, symbols, allow_grad: bool, later) -> sympy.Expr:
    """Build the SymPy expression of a checked tree; every failure becomes a SpecError."""
    try:
        return _finite(_Builder(symbols, allow_grad, later, text.strip()).build(node), text)
    except RecursionError:
        raise SpecError(f"expression nested deeper than {MAX_DEPTH} levels") from None
    except (TypeError, ValueError, ZeroDivisionError, OverflowError) as exc:
        if isinstance(exc, SpecError):
            raise
        raise SpecError(f"invalid expression {text.strip()!r}: {exc}") from None


def parse_assignment(
    text: object,
    symbols: Mapping[str, sympy.Symbol],
    *,
    allow_grad: bool = True,
    later: frozenset[str] = frozenset(),
) -> tuple[str, sympy.Expr]:
    """Parse ``NAME = EXPRESSION``; the caller validates the returned target name."""
    if isinstance(text, str) and "=" not in text:
        raise SpecError(f"expected 'NAME = EXPRESSION', got {text.strip()!r}")
    tree = _parse_tree(text, "exec")
    body = tree.body  # type: ignore[attr-defined]
    if len(body) != 1 or not isinstance(body[0], ast.Assign) or len(body[0].targets) != 1:
        raise SpecError(f"expected one assignment 'NAME = EXPRESSION', got {str(text).strip()!r}")
    target = body[0].targets[0]
    if not isinstance(target, ast.Name):
        raise SpecError(f"the left-hand side must be a plain name, not {_describe(target)}")
    if target.id.startswith("_"):
        raise SpecError(f"names starting with '_' are not allowed: {target.id!r}")
    return target.id, _build(body[0].value, str(text), symbols, allow_grad, later)

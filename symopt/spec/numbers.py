"""Every number of a spec must be a double: generated code computes in doubles, so a constant
that overflows one (``1e308*10``) raises or gives NaN there, and one that rounds to 0
(``g/1e399``) stops the step, while the exact checks would still prove things about it.

:func:`double_problem` judges one exact number; :func:`checked_toml` applies it to every number
of a spec's TOML (defaults, constants), with the key it was found under; :func:`literal` reads a
number written in an expression, exactly.
"""

from __future__ import annotations

import math
import sys
import tomllib
from collections.abc import Mapping

import sympy

from symopt.errors import SpecError

#: From this magnitude on a number rounds to infinity as a double (the largest double plus half
#: its spacing), and up to this one it rounds to 0 (half the smallest subnormal): IEEE rounding
#: to nearest, ties to even, as Python's ``float`` does.
OVERFLOWS = 2**1024 - 2**970
#: The smallest normal double: below it a double is subnormal or 0, and XLA (the JAX target)
#: flushes subnormals to 0, so a smaller constant would mean 0 in one target only.
SMALLEST_NORMAL = sympy.Rational(1, 2**1022)
TOO_LARGE = "is out of range for a double (largest 1.8e308)"
TOO_SMALL = (
    "is out of range for a double: it is subnormal or 0, which JAX flushes to 0 "
    "(smallest normal 2.2e-308)"
)
#: Digits of a constant of an expression (numerator and denominator).
MAX_DIGITS = 400


def shown(text: str) -> str:
    """A number as a message shows it: long digit strings are shortened."""
    text = text.strip()
    if len(text) <= 30:
        return text
    return f"{text[:8]}...{text[-4:]} ({len(text.lstrip('-'))} characters)"


def double_problem(value: sympy.Expr, text: str | None = None) -> str | None:
    """Why the exact real number ``value`` is no double (None when it is one, or rounds to one).
    ``text`` is how the spec wrote it; without it the value is shown in scientific notation."""
    if value.is_Rational:
        magnitude = abs(value)
        big = magnitude >= OVERFLOWS
        # rounded as the targets round it (Python's int division is correctly rounded)
        tiny = not big and value != 0 and abs(value.p / value.q) < sys.float_info.min
    else:
        approx = sympy.N(value, 20)
        if not approx.is_finite:
            return f"the constant {shown(text or sympy.sstr(value))} is not a finite number"
        big = abs(approx) >= OVERFLOWS
        # an unevaluated form that is exactly 0 (Min(0, 1)) is the 0 it stands for
        tiny = approx != 0 and abs(approx) < SMALLEST_NORMAL
    if not (big or tiny):
        return None
    name = shown(text) if text else sympy.sstr(sympy.N(value, 3))
    if big:
        return f"the constant {name} {TOO_LARGE}"
    return f"the constant {name} {TOO_SMALL}"


def digits(x: int) -> int:
    """How many digits ``x`` has; ``MAX_DIGITS + 1`` for any more (never printed)."""
    return len(str(abs(x))) if abs(x) < 10**MAX_DIGITS else MAX_DIGITS + 1


def bounded(value: sympy.Expr) -> sympy.Expr:
    """Constants stay of reasonable size, so no spec can make SymPy compute for hours."""
    if value.is_Rational and max(digits(value.p), digits(value.q)) > MAX_DIGITS:
        raise SpecError(f"a constant has more than {MAX_DIGITS} digits")
    return value


def literal(value: object, text: str | None) -> sympy.Expr:
    """The exact value of a number literal of an expression, as ``text`` writes it."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpecError(f"only numbers are allowed as constants, got {value!r}")
    text = (text or repr(value)).replace("_", "")
    if isinstance(value, int):
        return bounded(as_double(sympy.Integer(value), text))
    # A decimal literal is the exact rational it spells: 0.9 means 9/10, not the binary double
    # 0.90000000000000002, and no digit is lost on the way through a float.
    mantissa = text.lower().split("e")[0]
    if not math.isfinite(value):  # its exact value may have a billion digits: never built
        raise SpecError(f"the constant {shown(text)} {TOO_LARGE}")
    if abs(value) < sys.float_info.min and any(c in "123456789" for c in mantissa):
        raise SpecError(f"the constant {shown(text)} {TOO_SMALL}")
    try:
        exact = sympy.Rational(text)
    except (TypeError, ValueError):
        exact = sympy.Rational(repr(value))
    return bounded(exact)


def as_double(value: sympy.Expr, text: str | None = None) -> sympy.Expr:
    """``value``, which must be a double: generated code computes in doubles."""
    problem = double_problem(value, text)
    if problem:
        raise SpecError(problem)
    return value


class _Float(tuple):
    """A TOML float as written, until :func:`_check` has judged it (never leaves this module)."""


def _check(node: object, key: str, file: str) -> object:
    """``node`` with every TOML float made a Python float; a number that is no double fails."""
    if isinstance(node, Mapping):
        return {k: _check(v, f"{key}.{k}" if key else k, file) for k, v in node.items()}
    if isinstance(node, list):
        return [_check(v, f"{key}[{i}]", file) for i, v in enumerate(node)]
    if isinstance(node, _Float):
        (text,) = node
        value = float(text)
        digits = text.lower().lstrip("+-").split("e")[0].replace("_", "")
        special = digits in ("inf", "nan")  # written as such: the key's own check judges it
        if not math.isfinite(value) and not special:
            raise SpecError(f"the constant {shown(text)} {TOO_LARGE}", file=file, key=key)
        if abs(value) < sys.float_info.min and digits.strip("0.") != "":
            raise SpecError(f"the constant {shown(text)} {TOO_SMALL}", file=file, key=key)
        return value
    if isinstance(node, int) and not isinstance(node, bool) and abs(node) >= OVERFLOWS:
        text = shown(str(node)) if node.bit_length() < 10000 else "of over 3000 digits"
        problem = f"the integer {text} {TOO_LARGE}"
        raise SpecError(problem, file=file, key=key)
    return node


def checked_toml(text: str, file: str) -> dict:
    """The TOML table of ``text``; every float is finite and nonzero unless written as 0, and
    every integer fits a double."""
    try:
        data = tomllib.loads(text, parse_float=lambda s: _Float((s,)))
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"not valid TOML: {exc}", file=file) from None
    except ValueError as exc:  # an integer of over 4300 digits: Python will not read it
        raise SpecError(f"not valid TOML: {str(exc).split(':')[0]}", file=file) from None
    return _check(data, "", file)  # type: ignore[return-value]

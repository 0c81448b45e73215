"""Hyperparameter domains: membership tests, SymPy assumptions and a positive reparametrisation.

The reparametrisation lets SymPy's assumption system reason about bounded domains: a value in (0, 1)
is written ``x / (1 + x)`` with ``x > 0``, so "1 - beta1 is nonzero" becomes a question about a
positive symbol that SymPy can answer.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import sympy


@dataclass(frozen=True)
class Domain:
    name: str
    interval: str  # for people: "(0, inf)"
    latex: str
    contains: Callable[[float], bool]
    assumptions: dict[str, bool]
    reparam: Callable[[sympy.Symbol], sympy.Expr]  # from a symbol carrying `base` assumptions
    base: dict[str, bool]
    sample: Callable[[int, int], sympy.Rational]  # (numerator seed, denominator) -> a member
    condition: str  # a Python/C comparison with {x} for the value, e.g. "0 <= {x} < 1"


def _finite(x: float) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


DOMAINS: dict[str, Domain] = {
    d.name: d
    for d in (
        Domain(
            "positive",
            "(0, inf)",
            r"(0, \infty)",
            lambda x: _finite(x) and x > 0,
            {"positive": True},
            lambda s: s,
            {"positive": True},
            lambda k, n: sympy.Rational(k % 97 + 1, n),
            "{x} > 0",
        ),
        Domain(
            "nonnegative",
            "[0, inf)",
            r"[0, \infty)",
            lambda x: _finite(x) and x >= 0,
            {"nonnegative": True},
            lambda s: s,
            {"nonnegative": True},
            lambda k, n: sympy.Rational(k % 97, n),
            "{x} >= 0",
        ),
        Domain(
            "unit_open",
            "(0, 1)",
            "(0, 1)",
            lambda x: _finite(x) and 0 < x < 1,
            {"positive": True},
            lambda s: s / (1 + s),
            {"positive": True},
            lambda k, n: sympy.Rational(k % (n - 1) + 1, n),
            "0 < {x} < 1",
        ),
        Domain(
            "unit_closed_open",
            "[0, 1)",
            "[0, 1)",
            lambda x: _finite(x) and 0 <= x < 1,
            {"nonnegative": True},
            lambda s: s / (1 + s),
            {"nonnegative": True},
            lambda k, n: sympy.Rational(k % n, n),
            "0 <= {x} < 1",
        ),
        Domain(
            "real",
            "(-inf, inf)",
            r"\mathbb{R}",
            _finite,
            {"real": True},
            lambda s: s,
            {"real": True},
            lambda k, n: sympy.Rational(k % 199 - 99, n),
            "{x} == {x}",
        ),
    )
}

"""Deciding identities and signs, and saying honestly how.

``symbolic`` means SymPy reduced the question to a certainty (a difference simplified to 0, or the
assumption system decided a sign). ``sampled`` means no proof was found but the claim held at every
one of N random points, evaluated with 50-digit arithmetic; a sampled failure is a counterexample.
``not shown`` means neither: the claim depends on values the one-coordinate model leaves free (a
reduction, a matrix product; see :mod:`symopt.checks.tensors`), so a failure is no counterexample.

``Max``, ``Min`` and ``Piecewise`` are decided by case splitting (:mod:`symopt.checks.cases`):
the points are sampled first, on the original expression (SymPy evaluates the branches exactly at a
point), so a false claim is refuted without any algebra; then a proof must hold in every branch.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import sympy

from symopt.checks import cases
from symopt.checks.budget import attempt
from symopt.checks.reparam import reparametrize
from symopt.spec.domains import DOMAINS, Domain

SAMPLES = 24
QUICK_SAMPLES = 4  # tried before a case split: a false claim is usually refuted at once
DIGITS = 50
SIMPLIFY_MAX_OPS = 400
#: Seconds one transform (``simplify``, ``factor``, ...) may take before the proof goes on
#: without it: SymPy can spend hours on a small expression (an algebraic number of huge degree).
TRANSFORM_SECONDS = 10.0
#: The same for a simpler form of an expression a message shows.
MESSAGE_SECONDS = 2.0
#: A sample point where an ``exp`` or a power would exceed e**HUGE (or fall below e**-HUGE) is
#: left out, as one where the value is undefined: no double holds it, and computing it exactly
#: can take hours (an ``exp`` tower).
HUGE = 10**4

SYMBOLIC, SAMPLED, NOT_SHOWN = "symbolic", "sampled", "not shown"


@dataclass(frozen=True)
class Verdict:
    holds: bool
    method: str  # SYMBOLIC, SAMPLED or NOT_SHOWN
    witness: dict[str, sympy.Expr] | None = None  # a counterexample, when sampled and false
    reason: str = ""  # why not shown, or where a counterexample lives


def _domain_of(sym: sympy.Symbol, domains: Mapping[sympy.Symbol, Domain]) -> Domain:
    """A symbol's domain; a negative symbol is drawn from the positive one and negated."""
    if sym in domains:
        return domains[sym]
    if sym.is_positive or sym.is_negative:
        return DOMAINS["positive"]
    if sym.is_nonnegative or sym.is_nonpositive:
        return DOMAINS["nonnegative"]
    return DOMAINS["real"]


def sample_points(
    expr: sympy.Expr, domains: Mapping[sympy.Symbol, Domain], seed: int = 0, count: int = SAMPLES
):
    """Exact rational points for the free symbols of ``expr``: zero first, then random ones.

    Symbols are sorted by name and the generator is seeded, so results are reproducible.
    """
    rng = random.Random(seed)
    symbols = sorted(expr.free_symbols, key=lambda s: s.name)
    for i in range(count):
        point = {}
        for s in symbols:
            dom = _domain_of(s, domains)
            value = dom.sample(rng.randrange(1, 10**6), rng.choice([7, 10, 13, 29, 100]))
            if i == 0 and dom.contains(0.0):
                value = sympy.Integer(0)  # the first point probes zero wherever it is allowed
            if s.is_nonzero and value == 0:
                value = sympy.Rational(1, 3)
            if s.is_nonpositive and s not in domains:
                value = -value
            if s.is_integer:
                value = sympy.Integer(rng.randrange(1, 6))
            point[s] = value
        yield point


def _numeric(expr: sympy.Expr, point) -> sympy.Expr:
    """The value at a point; ``nan`` where SymPy cannot evaluate it (an undecidable branch, or
    an opaque function such as a reduction of a constant, left as it is) or where an ``exp`` or
    a power would be huge (:data:`HUGE`)."""
    try:
        value = sympy.N(_at(expr, point), DIGITS)
    except (TypeError, ValueError, _Huge):
        return sympy.nan
    return value if value.is_number and not value.atoms(sympy.Function) else sympy.nan


class _Huge(Exception):  # noqa: N818 - a verdict, not an error
    """An ``exp`` or power at a sample point is beyond e**HUGE (or below e**-HUGE)."""


def _at(expr: sympy.Expr, point: Mapping[sympy.Symbol, sympy.Expr]) -> sympy.Expr:
    """``expr`` at ``point``, built from the leaves up (``xreplace`` would build an ``exp``
    tower first and let SymPy evaluate it: hours); raises :class:`_Huge` before building an
    ``exp`` or power no double holds."""
    memo: dict[sympy.Basic, sympy.Basic] = {}

    def build(e: sympy.Basic) -> sympy.Basic:
        if e in point:
            return point[e]
        if not e.args or e in memo:
            return memo.get(e, e)
        args = [build(a) for a in e.args]
        if isinstance(e, (sympy.exp, sympy.Pow)) and _huge(e.func, args):
            raise _Huge
        memo[e] = e.func(*args) if args != list(e.args) else e
        return memo[e]

    return build(expr)


def _huge(func: type, args: list[sympy.Basic]) -> bool:
    if func is sympy.exp:
        size = args[0]
    elif args[0].is_number and args[1].is_number and not args[1].is_Integer:
        size = args[1] * sympy.log(abs(args[0]))
    else:
        return False
    if not size.is_number:
        return False
    value = sympy.N(size, 15)
    return bool(value.is_comparable and abs(value) > HUGE)


def _scale(terms: tuple[sympy.Expr, ...], point) -> sympy.Expr:
    """The sum of the terms' absolute values at a point: what "zero" is relative to."""
    return sum((abs(_numeric(a, point)) for a in terms), sympy.Integer(0))


def _is_zero_number(value: sympy.Expr, scale: sympy.Expr) -> bool:
    if value.has(sympy.zoo, sympy.nan, sympy.oo, -sympy.oo):
        return False
    return abs(value) <= sympy.Float(10) ** (-(DIGITS - 10)) * max(1, abs(scale))


def prove_zero(
    expr: sympy.Expr, domains: Mapping[sympy.Symbol, Domain] = {}, *, allow_sampling: bool = True
) -> Verdict:
    """Is ``expr`` identically zero? Try SymPy first; fall back to sampling when allowed.

    When sampling is allowed, the first few sample points where ``expr`` is defined are tried
    right after ``expand``: a clearly nonzero value there is the counterexample the sampling would
    end with, and it spares the slower transforms (and ``simplify``) their search for a proof that
    cannot exist. An expression with branches is decided case by case (:func:`_by_cases`).
    """
    if expr == 0:
        return Verdict(True, SYMBOLIC)
    if cases.conditional(expr):  # each leaf is expanded: expanding the whole is wasted work
        return _by_cases(expr, domains, allow_sampling, _zero_leaf(domains), _sample_zero)
    if _becomes_zero(expr, sympy.expand):
        return Verdict(True, SYMBOLIC)
    witness = _first_point_witness(expr, domains) if allow_sampling else None
    if witness is not None:
        return Verdict(False, SAMPLED, witness)
    if _becomes_zero(expr, sympy.cancel) or _becomes_zero(expr, sympy.factor_terms):
        return Verdict(True, SYMBOLIC)
    if sympy.count_ops(expr) <= SIMPLIFY_MAX_OPS and _becomes_zero(expr, sympy.simplify):
        return Verdict(True, SYMBOLIC)
    if not allow_sampling:
        return Verdict(False, SYMBOLIC)
    return _sample_zero(expr, domains)


def _zero_leaf(domains: Mapping[sympy.Symbol, Domain]) -> Callable[[sympy.Expr], Verdict]:
    """A leaf's proof of zero; a leaf that is undefined (``zoo``, ``nan``: a case such as
    ``g = 0`` where both sides divide by 0) claims nothing, as with sampling."""

    def leaf(e: sympy.Expr) -> Verdict:
        if e.has(sympy.zoo, sympy.nan):
            return Verdict(True, SYMBOLIC)
        return prove_zero(e, domains, allow_sampling=False)

    return leaf


def _sample_zero(
    expr: sympy.Expr, domains: Mapping[sympy.Symbol, Domain], count: int = SAMPLES
) -> Verdict:
    """Zero at every sample point where ``expr`` is defined (and defined at half of them)?"""
    terms = sympy.Add.make_args(expr)
    defined = 0
    for point in sample_points(expr, domains, count=count):
        value = _numeric(expr, point)
        if value.has(sympy.zoo, sympy.nan):
            continue  # an identity is claimed where both sides are defined
        defined += 1
        if not _is_zero_number(value, _scale(terms, point)):
            return Verdict(False, SAMPLED, {s.name: v for s, v in point.items()})
    return Verdict(defined >= count // 2, SAMPLED)


def _becomes_zero(expr: sympy.Expr, transform: Callable[[sympy.Expr], sympy.Expr]) -> bool:
    """Whether ``transform`` makes ``expr`` 0 within :data:`TRANSFORM_SECONDS`."""
    try:
        return attempt(TRANSFORM_SECONDS, lambda: transform(expr) == 0, False)
    except (sympy.PolynomialError, TypeError, ValueError):
        return False


def _first_point_witness(
    expr: sympy.Expr, domains: Mapping[sympy.Symbol, Domain]
) -> dict[str, sympy.Expr] | None:
    """The first of the first :data:`QUICK_SAMPLES` defined sample points where ``expr`` is
    clearly nonzero (the counterexample the sampling would end with); None when it is 0 at all
    of them. The first point is all zeros where allowed, which many false claims survive."""
    terms = sympy.Add.make_args(expr)
    tried = 0
    for point in sample_points(expr, domains):
        value = _numeric(expr, point)
        if value.has(sympy.zoo, sympy.nan):
            continue
        if not _is_zero_number(value, _scale(terms, point)):
            return {s.name: v for s, v in point.items()}
        tried += 1
        if tried >= QUICK_SAMPLES:
            return None
    return None


SIGN_TESTS = {
    "nonzero": (lambda e: e.is_zero is False, lambda e: e.is_zero is True, lambda v: v != 0),
    "positive": (lambda e: e.is_positive, lambda e: e.is_nonpositive, lambda v: v > 0),
    "negative": (lambda e: e.is_negative, lambda e: e.is_nonnegative, lambda v: v < 0),
    "nonnegative": (lambda e: e.is_nonnegative, lambda e: e.is_negative, lambda v: v >= 0),
}


def decide_sign(
    expr: sympy.Expr,
    want: str,
    domains: Mapping[sympy.Symbol, Domain] = {},
    *,
    allow_sampling: bool = True,
) -> Verdict:
    """Does ``expr`` satisfy ``want`` (nonzero, positive, ...) on the whole domain?"""
    holds, refuted, numeric_ok = SIGN_TESTS[want]
    if cases.conditional(expr) and not holds(reparametrize(expr, domains)):

        def leaf(e: sympy.Expr) -> Verdict:
            return decide_sign(e, want, domains, allow_sampling=False)

        def sample(e: sympy.Expr, doms: Mapping[sympy.Symbol, Domain], count: int) -> Verdict:
            return _sample_sign(e, numeric_ok, doms, count)

        return _by_cases(expr, domains, allow_sampling, leaf, sample)
    candidate = reparametrize(expr, domains)
    forms = (
        candidate,
        lambda: sympy.factor_terms(candidate),
        lambda: sympy.factor(sympy.together(candidate)),
        lambda: sympy.simplify(candidate),
    )
    for form in forms:
        e = attempt(TRANSFORM_SECONDS, form, None) if callable(form) else form
        if e is None:  # the transform took too long: the next one may not
            continue
        if holds(e):
            return Verdict(True, SYMBOLIC)
        if refuted(e) and not e.free_symbols:
            return Verdict(False, SYMBOLIC, {})
        if isinstance(e, sympy.Basic) and sympy.count_ops(e) > SIMPLIFY_MAX_OPS:
            break
    if not allow_sampling:
        return Verdict(False, SYMBOLIC)
    return _sample_sign(expr, numeric_ok, domains)


def _sample_sign(
    expr: sympy.Expr, numeric_ok, domains: Mapping[sympy.Symbol, Domain], count: int = SAMPLES
) -> Verdict:
    for point in sample_points(expr, domains, count=count):
        value = _numeric(expr, point)
        if value.has(sympy.zoo, sympy.nan) or not value.is_real or not numeric_ok(value):
            return Verdict(False, SAMPLED, {s.name: v for s, v in point.items()})
    return Verdict(True, SAMPLED)


def _by_cases(
    expr: sympy.Expr,
    domains: Mapping[sympy.Symbol, Domain],
    allow_sampling: bool,
    leaf: Callable[[sympy.Expr], Verdict],
    sample: Callable[[sympy.Expr, Mapping[sympy.Symbol, Domain], int], Verdict],
) -> Verdict:
    """A claim about an expression with branches: refuted by sampling a few points of the
    expression itself (cheap, and exact at each point), else proven in every leaf of
    :func:`cases.split` (each leaf in any of its forms), else sampled at every point."""
    if allow_sampling:
        quick = sample(expr, domains, QUICK_SAMPLES)
        if not quick.holds and quick.witness is not None:
            return quick
    leaves = cases.split(expr, domains)
    if leaves is not None and all(any(leaf(f).holds for f in forms) for forms in leaves):
        return Verdict(True, SYMBOLIC)
    return sample(expr, domains, SAMPLES) if allow_sampling else Verdict(False, SYMBOLIC)

"""Deciding identities and signs, and saying honestly how.

``symbolic`` means SymPy reduced the question to a certainty (a difference simplified to 0, or the
assumption system decided a sign). ``sampled`` means no proof was found but the claim held at every
one of N random points, evaluated with 50-digit arithmetic; a sampled failure is a counterexample.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import sympy

from symopt.spec.domains import DOMAINS, Domain

SAMPLES = 24
DIGITS = 50
SIMPLIFY_MAX_OPS = 400

SYMBOLIC, SAMPLED = "symbolic", "sampled"


@dataclass(frozen=True)
class Verdict:
    holds: bool
    method: str  # SYMBOLIC or SAMPLED
    witness: dict[str, sympy.Expr] | None = None  # a counterexample, when sampled and false


def _domain_of(sym: sympy.Symbol, domains: Mapping[sympy.Symbol, Domain]) -> Domain:
    if sym in domains:
        return domains[sym]
    if sym.is_positive:
        return DOMAINS["positive"]
    if sym.is_nonnegative:
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
            if s.is_integer:
                value = sympy.Integer(rng.randrange(1, 6))
            point[s] = value
        yield point


def _numeric(expr: sympy.Expr, point) -> sympy.Expr:
    return sympy.N(expr.xreplace(point), DIGITS)


def _is_zero_number(value: sympy.Expr, scale: sympy.Expr) -> bool:
    if value.has(sympy.zoo, sympy.nan, sympy.oo, -sympy.oo):
        return False
    return abs(value) <= sympy.Float(10) ** (-(DIGITS - 10)) * max(1, abs(scale))


def prove_zero(
    expr: sympy.Expr, domains: Mapping[sympy.Symbol, Domain] = {}, *, allow_sampling: bool = True
) -> Verdict:
    """Is ``expr`` identically zero? Try SymPy first; fall back to sampling when allowed.

    When sampling is allowed, the first sample point where ``expr`` is defined is tried right after
    ``expand``: a clearly nonzero value there is the counterexample the sampling would end with, and
    it spares the slower transforms (and ``simplify``) their search for a proof that cannot exist.
    """
    if expr == 0:
        return Verdict(True, SYMBOLIC)
    if _becomes_zero(expr, sympy.expand):
        return Verdict(True, SYMBOLIC)
    witness = _first_point_witness(expr, domains) if allow_sampling else None
    if witness is not None:
        return Verdict(False, SAMPLED, witness)
    if _becomes_zero(expr, sympy.cancel) or _becomes_zero(expr, sympy.factor_terms):
        return Verdict(True, SYMBOLIC)
    if sympy.count_ops(expr) <= SIMPLIFY_MAX_OPS and sympy.simplify(expr) == 0:
        return Verdict(True, SYMBOLIC)
    if not allow_sampling:
        return Verdict(False, SYMBOLIC)
    scale_expr = sum((abs(a) for a in sympy.Add.make_args(expr)), sympy.Integer(0))
    defined = 0
    for point in sample_points(expr, domains):
        value = _numeric(expr, point)
        if value.has(sympy.zoo, sympy.nan):
            continue  # an identity is claimed where both sides are defined
        defined += 1
        if not _is_zero_number(value, _numeric(scale_expr, point)):
            return Verdict(False, SAMPLED, {s.name: v for s, v in point.items()})
    return Verdict(defined >= SAMPLES // 2, SAMPLED)


def _becomes_zero(expr: sympy.Expr, transform: Callable[[sympy.Expr], sympy.Expr]) -> bool:
    try:
        return transform(expr) == 0
    except (sympy.PolynomialError, TypeError, ValueError):
        return False


def _first_point_witness(
    expr: sympy.Expr, domains: Mapping[sympy.Symbol, Domain]
) -> dict[str, sympy.Expr] | None:
    """The first sample point where ``expr`` is defined, when its value there is clearly nonzero
    (the counterexample the sampling would end with); None when it is 0 there."""
    scale_expr = sum((abs(a) for a in sympy.Add.make_args(expr)), sympy.Integer(0))
    for point in sample_points(expr, domains):
        value = _numeric(expr, point)
        if value.has(sympy.zoo, sympy.nan):
            continue
        if _is_zero_number(value, _numeric(scale_expr, point)):
            return None
        return {s.name: v for s, v in point.items()}
    return None


SIGN_TESTS = {
    "nonzero": (lambda e: e.is_zero is False, lambda e: e.is_zero is True, lambda v: v != 0),
    "positive": (lambda e: e.is_positive, lambda e: e.is_nonpositive, lambda v: v > 0),
    "negative": (lambda e: e.is_negative, lambda e: e.is_nonnegative, lambda v: v < 0),
    "nonnegative": (lambda e: e.is_nonnegative, lambda e: e.is_negative, lambda v: v >= 0),
}


def reparametrize(expr: sympy.Expr, domains: Mapping[sympy.Symbol, Domain]) -> sympy.Expr:
    """Rewrite bounded hyperparameters through positive symbols so SymPy can reason about signs."""
    # b^e with b in a unit interval and e > 0 stays in that interval: name it, so that facts like
    # "1 - beta2**t > 0" reduce to the domain of a fresh symbol.
    powers = {}
    for node in expr.atoms(sympy.Pow):
        base, e = node.args
        dom = domains.get(base)
        if dom is not None and dom.name.startswith("unit_") and e.is_positive:
            powers[node] = sympy.Symbol(f"{base.name}__pow{len(powers)}", **dom.assumptions)
            domains = {**domains, powers[node]: dom}
    expr = expr.xreplace(powers)
    mapping = {}
    for sym, dom in domains.items():
        if sym in expr.free_symbols:
            base = sympy.Symbol(f"{sym.name}__x", **dom.base)
            mapping[sym] = dom.reparam(base)
    return expr.xreplace(mapping)


def decide_sign(
    expr: sympy.Expr,
    want: str,
    domains: Mapping[sympy.Symbol, Domain] = {},
    *,
    allow_sampling: bool = True,
) -> Verdict:
    """Does ``expr`` satisfy ``want`` (nonzero, positive, ...) on the whole domain?"""
    holds, refuted, numeric_ok = SIGN_TESTS[want]
    candidate = reparametrize(expr, domains)
    forms = (
        candidate,
        lambda: sympy.factor_terms(candidate),
        lambda: sympy.factor(sympy.together(candidate)),
        lambda: sympy.simplify(candidate),
    )
    for form in forms:
        e = form() if callable(form) else form
        if holds(e):
            return Verdict(True, SYMBOLIC)
        if refuted(e) and not e.free_symbols:
            return Verdict(False, SYMBOLIC, {})
        if isinstance(e, sympy.Basic) and sympy.count_ops(e) > SIMPLIFY_MAX_OPS:
            break
    if not allow_sampling:
        return Verdict(False, SYMBOLIC)
    for point in sample_points(expr, domains):
        value = _numeric(expr, point)
        if value.has(sympy.zoo, sympy.nan) or not value.is_real or not numeric_ok(value):
            return Verdict(False, SAMPLED, {s.name: v for s, v in point.items()})
    return Verdict(True, SAMPLED)

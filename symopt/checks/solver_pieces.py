"""Checks of the trust-region solvers' scalar formulas, each against what it claims to compute.

Every check reads the formula the targets print (``solver_pieces`` of
:mod:`symopt.lowering.solver_pieces`, the predicted decrease of
:func:`symopt.backends.second_order.derived_pieces`), so a wrong derivation or a formula edited
by hand fails, and decides its claim with SymPy (``symbolic``):
identities at ``n = 2`` and ``n = 3`` with a fully symbolic symmetric ``H``, and signs from
SymPy's assumptions. The rational identities in ``lam`` are decided over polynomials (numerators
over a common denominator, :func:`norm_derivative`): cancelling the rational functions of a 3 x 3
``H`` takes SymPy minutes, the polynomials a fraction of a second.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import sympy
from sympy.polys.matrices import DomainMatrix
from sympy.polys.rings import PolyElement, PolyRing

from symopt.checks.result import CheckResult
from symopt.lowering.derive import derive
from symopt.lowering.solver_pieces import ScalarPiece, solver_pieces
from symopt.spec.model import ModelSpec, damping_symbol

DIMENSIONS = (2, 3)
R = sympy.Symbol("r", positive=True)
NU = sympy.Symbol("nu", positive=True)  # ||d||
W, SP = sympy.symbols("W SP")  # d^T (H + lam I)^-1 d and (||d||^2)', stand-ins
U = sympy.Symbol("u", nonnegative=True)  # a free parameter of a case
#: The pieces' arguments with what the solvers guarantee (d != 0, g != 0), as the checks assume.
PP = sympy.Symbol("pp", nonnegative=True)
PD = sympy.Symbol("pd", real=True)
DD = sympy.Symbol("dd", positive=True)
GG = sympy.Symbol("gg", positive=True)
GHG = sympy.Symbol("ghg", real=True)
S_ROOT = sympy.Symbol("s", nonnegative=True)  # the square root of the discriminant


def _piece(spec: ModelSpec, name: str) -> ScalarPiece:
    return next(p for p in solver_pieces(spec) if p.name == name)


def _by_name(expr: sympy.Expr, values: Mapping[str, sympy.Expr]) -> sympy.Expr:
    """``expr`` with each symbol replaced by ``values[its name]`` (a stray symbol is an error)."""
    stray = sorted(s.name for s in expr.free_symbols if s.name not in values)
    if stray:
        raise ValueError(f"the formula uses {', '.join(stray)}, which is none of its arguments")
    return expr.xreplace({s: values[s.name] for s in expr.free_symbols})


def norm_derivative(
    spec: ModelSpec, n: int, d: sympy.Matrix
) -> tuple[PolyRing, PolyElement, PolyElement, PolyElement]:
    """``(||d||^2)'`` in ``lam`` and ``d^T (H + lam I)^-1 d`` for a step ``d(lam)`` at dimension
    ``n``: a polynomial ring (with ``nu`` and ``r`` among its generators), the two numerators and
    their common denominator. ``d = u/q`` over the lcm q of its entries' denominators, so
    ``(||d||^2)' = (u.u' q - 2 u.u q')/q^3`` (SymPy's derivative of the polynomials) and, with the
    adjugate, ``d^T A^-1 d = u^T adj(A) u/(q^2 det A)``; both over ``q^3 det A``."""
    lam = damping_symbol(spec.damping)
    D = derive(spec, n)
    damped = D.symbols["H"] + lam * D.symbols["I"]
    gens = set(damped.free_symbols | {NU, R, lam}).union(*(x.free_symbols for x in d))
    ring, *_ = sympy.ring(sorted(gens, key=str), sympy.QQ)
    parts = [sympy.fraction(sympy.together(x)) for x in d]
    q = ring.one
    for _, b in parts:
        q = q.lcm(ring(b))
    u = [ring(a) * q.exquo(ring(b)) for a, b in parts]
    x = ring(lam)
    norm_sq = sum(v * v for v in u)
    adj, det = DomainMatrix.from_Matrix(damped).convert_to(ring.to_domain()).adj_det()
    y = adj * DomainMatrix([[v] for v in u], (n, 1), ring.to_domain())
    quadratic = sum(u[i] * y[i, 0].element for i in range(n))
    prime = (norm_sq.diff(x) * q - 2 * norm_sq * q.diff(x)) * det
    return ring, prime, quadratic * q, q**3 * det


def check_secular_newton(spec: ModelSpec, others: Mapping[str, object]) -> Iterator[CheckResult]:
    """The printed ``secular_newton(lam, ||d||, w_sq, r)`` equals ``lam - phi/phi'`` for
    ``phi(lam) = 1/||d(lam)|| - 1/r``, ``phi'`` SymPy's derivative of phi (chain rule through
    ``||d||^2``, whose derivative is SymPy's of the explicit step), at n = 2 and 3."""
    if spec.rule != "radius":
        return
    name = "secular_newton is Newton's step for lam on the secular equation 1/||d(lam)|| = 1/r"
    lam = damping_symbol(spec.damping)
    norm_sq = sympy.Function("S")(lam)
    phi = 1 / sympy.sqrt(norm_sq) - 1 / R
    newton = (lam - phi / sympy.diff(phi, lam)).subs(sympy.Derivative(norm_sq, lam), SP)
    values = {"lam": lam, "d_norm": NU, "w_sq": W, "radius": R}
    piece = _by_name(_piece(spec, "secular_newton").expr, values)
    residual = sympy.fraction(sympy.cancel(sympy.together(piece - newton.subs(norm_sq, NU**2))))
    for n in DIMENSIONS:
        ring, prime, w_sq, den = norm_derivative(spec, n, derive(spec, n).step)
        if not _substituted_is_zero(residual[0], ring, {SP: prime, W: w_sq}, den):
            formula = sympy.sstr(_piece(spec, "secular_newton").expr)
            detail = f"at n = {n} it is not lam - phi/phi': secular_newton = {formula}"
            yield CheckResult(name, False, "symbolic", detail)
            return
    detail = (
        "equals lam - phi/phi' for phi = 1/||d(lam)|| - 1/r, exact at n = 2 and n = 3 with "
        "d(lam) = -(H + lam I)^-1 g, ||d||^2 differentiated by SymPy, w_sq = d^T (H + lam I)^-1 d"
    )
    yield CheckResult(name, True, "symbolic", detail)


def _substituted_is_zero(
    numerator: sympy.Expr,
    ring: PolyRing,
    values: Mapping[sympy.Symbol, PolyElement],
    den: PolyElement,
) -> bool:
    """Whether a polynomial in the stand-ins (``values``' keys; others in ``ring``) vanishes with
    each stand-in ``values[s]/den``: its terms over the common denominator ``den**degree``."""
    stand_ins = list(values)
    poly = sympy.Poly(numerator, *stand_ins)
    top = poly.total_degree()
    total = ring.zero
    for powers, coeff in poly.terms():
        term = ring(coeff) * den ** (top - sum(powers))
        for s, k in zip(stand_ins, powers, strict=True):
            term *= values[s] ** k
        total += term
    return total == 0


def norm_derivative_identity(spec: ModelSpec, n: int, d: sympy.Matrix) -> bool:
    """``(||d||^2)' + 2 d^T (H + lam I)^-1 d == 0`` at dimension ``n`` (an exact identity)."""
    _, prime, w_sq, _ = norm_derivative(spec, n, d)
    return prime + 2 * w_sq == 0


def _cases(expr: sympy.Expr) -> list[tuple[sympy.Expr, dict[str, sympy.Expr]]]:
    """Each branch of a conditional with its condition as a substitution: the argument it
    compares with 0 (by name) replaced by a symbol of that sign, so SymPy's assumptions know the
    case. Only such comparisons are split (the default branch: the negation of one)."""
    expr = sympy.piecewise_fold(expr)
    if not isinstance(expr, sympy.Piecewise):
        return [(expr, {})]
    signs = {">": (1, "positive"), "<": (-1, "positive"), ">=": (1, "nonnegative")}
    signs["<="] = (-1, "nonnegative")
    negated = {">": "<=", "<": ">=", ">=": "<", "<=": ">"}
    out, previous = [], []
    for value, condition in expr.args:
        if condition is sympy.true and len(previous) == 1:
            symbol, op = previous[0][0], negated[previous[0][1]]
        elif isinstance(condition, sympy.core.relational.Relational) and condition.rhs == 0:
            symbol, op = condition.lhs, condition.rel_op
            previous.append((symbol, op))
        else:
            raise ValueError(f"cannot split the cases of {expr}")
        if not isinstance(symbol, sympy.Symbol):
            raise ValueError(f"cannot split the cases of {expr}")
        sign, kind = signs[op]
        out.append((value, {symbol.name: sign * sympy.Symbol(f"{symbol.name}_", **{kind: True})}))
    return out


def _clamped_root(expr: sympy.Expr) -> tuple[sympy.Expr, sympy.Expr]:
    """``expr`` with its square root ``sqrt(Max(0, X))`` (the only one) as ``s >= 0``, and X:
    where ``X >= 0``, ``s**2 = X``."""
    roots = {p for p in expr.atoms(sympy.Pow) if p.exp == sympy.Rational(1, 2)}
    if len(roots) != 1:
        raise ValueError(f"expected one square root in {expr}")
    (root,) = roots
    radicand = root.base
    if isinstance(radicand, sympy.Max) and 0 in radicand.args:
        (radicand,) = [a for a in radicand.args if a != 0]
    return expr.xreplace({root: S_ROOT}), radicand


def check_boundary_taus(spec: ModelSpec, others: Mapping[str, object]) -> Iterator[CheckResult]:
    """tau_max and tau_min, each branch: the numerator of ``||p + tau d||^2 - r^2`` is a multiple
    of ``s^2 - X`` (``s`` the square root of the discriminant X) at n = 2, 3; the denominator is
    nonzero under the branch's condition; and with ``pp = r^2 - c``, ``c >= 0`` (p inside the
    ball), tau_min <= 0 <= tau_max by SymPy's assumptions."""
    if spec.rule != "radius":
        return
    name = "boundary_tau_min/max solve ||p + tau d|| = r; tau_min <= 0 <= tau_max for ||p|| <= r"
    for piece, sign in (("boundary_tau_max", 1), ("boundary_tau_min", -1)):
        for value, case in _cases(_piece(spec, piece).expr):
            failure = _boundary_failure(value, case, sign)
            if failure:
                yield CheckResult(name, False, "symbolic", f"{piece}: {failure}")
                return
    detail = (
        "each branch is a root at n = 2 and n = 3 where the discriminant is >= 0 (always when "
        "||p|| <= r: the clamp at 0 only absorbs rounding), with a nonzero denominator under its "
        "condition (dd > 0); the signs for ||p|| <= r by SymPy's assumptions"
    )
    yield CheckResult(name, True, "symbolic", detail)


def _boundary_failure(value: sympy.Expr, case: dict[str, sympy.Expr], sign: int) -> str:
    """Why one branch of a boundary root fails its claims ("" when none does)."""
    tau, radicand = _clamped_root(value)
    for n in DIMENSIONS:
        p = sympy.Matrix(n, 1, lambda i, _: sympy.Symbol(f"p_{i + 1}", real=True))
        d = sympy.Matrix(n, 1, lambda i, _: sympy.Symbol(f"d_{i + 1}", real=True))
        dots = {"pp": (p.T * p)[0, 0], "pd": (p.T * d)[0, 0], "dd": (d.T * d)[0, 0], "radius": R}
        v = p + _by_name(tau, {**dots, "s": S_ROOT}) * d
        numerator = sympy.fraction(sympy.together((v.T * v)[0, 0] - R**2))[0]
        square = S_ROOT**2 - _by_name(radicand, dots)
        if sympy.expand(sympy.rem(sympy.expand(numerator), square, S_ROOT)) != 0:
            return f"{sympy.sstr(value)} is not a root at n = {n}"
    scalars = {"pp": PP, "pd": PD, "dd": DD, "radius": R, "s": S_ROOT, **case}
    branch = _by_name(tau, scalars)
    den = sympy.fraction(sympy.together(branch))[1]
    if not den.is_nonzero:
        return f"the denominator {sympy.sstr(den)} of {sympy.sstr(value)} may vanish"
    c = sympy.Symbol("c", nonnegative=True)
    inside = sympy.factor(branch.xreplace({PP: R**2 - c}))
    if not (inside.is_nonnegative if sign > 0 else inside.is_nonpositive):
        return f"{sympy.sstr(value)} is not {'>=' if sign > 0 else '<='} 0 for ||p|| <= r"
    return ""


def _decided(expr: sympy.Expr) -> sympy.Expr:
    """``expr`` with each max or min of two replaced by the argument the sign of their factored
    difference picks (an error where SymPy's assumptions cannot tell)."""

    def pick(m: sympy.Expr) -> sympy.Expr:
        a, b = m.args
        difference = sympy.factor(a - b)
        if difference.is_nonnegative is None and difference.is_nonpositive is None:
            raise ValueError(f"cannot decide {m}")
        larger, smaller = (a, b) if difference.is_nonnegative else (b, a)
        return larger if isinstance(m, sympy.Max) else smaller

    return expr.replace(lambda e: isinstance(e, (sympy.Max, sympy.Min)), pick)


def check_cauchy_length(spec: ModelSpec, others: Mapping[str, object]) -> Iterator[CheckResult]:
    """q(t) = m(-t g) = -t gg + t^2 ghg / 2 at n = 2, 3 (undamped model); then, by the piece's
    cases: for ghg > 0 with the stationary point t* = gg/ghg (SymPy's root of q') inside the ball
    (r = ||g|| t* (1 + u), u >= 0) the value is a zero of q' (the convex q's minimiser), with it
    outside (r = ||g|| t*/(1 + u)) the value is on the boundary with q' <= 0 there; for ghg <= 0
    the value is on the boundary and q' <= 0 for every t >= 0."""
    if spec.rule != "radius":
        return
    name = "cauchy_length is the t >= 0 minimising m(-t g) subject to ||t g|| <= r"
    gg, ghg, t = GG, GHG, sympy.Symbol("t", nonnegative=True)
    q = -t * gg + t**2 * ghg / 2
    lam = damping_symbol(spec.damping)
    for n in DIMENSIONS:
        D = derive(spec, n)
        g, H = D.symbols["g"], D.symbols["H"]
        model = D.model_at(-t * g).xreplace({lam: 0})
        dots = {gg: (g.T * g)[0, 0], ghg: (g.T * H * g)[0, 0]}
        if sympy.expand(model - q.xreplace(dots)) != 0:
            yield CheckResult(name, False, "symbolic", f"m(-t g) is not {q} at n = {n}")
            return
    (stationary,) = sympy.solve(sympy.diff(q, t), t)
    for value, case in _cases(_piece(spec, "cauchy_length").expr):
        failure = _cauchy_failure(value, case, q, t, stationary)
        if failure:
            yield CheckResult(name, False, "symbolic", failure)
            return
    detail = (
        "q(t) = m(-t g) = -t gg + t^2 ghg/2 exact at n = 2 and n = 3; the stationary point where "
        "ghg > 0 and it lies inside, else the boundary with q' <= 0 up to it, by SymPy's "
        "assumptions (gg > 0)"
    )
    yield CheckResult(name, True, "symbolic", detail)


def _cauchy_failure(
    value: sympy.Expr,
    case: dict[str, sympy.Expr],
    q: sympy.Expr,
    t: sympy.Symbol,
    stationary: sympy.Expr,
) -> str:
    """Why one branch of the Cauchy length fails its claims ("" when none does)."""
    curvature = case.get("ghg")
    if curvature is None:
        return f"{sympy.sstr(value)}: no case on the sign of ghg"
    swap = {GHG: curvature}
    value = _by_name(value, {"gg": GG, "ghg": curvature, "radius": R})
    slope = sympy.diff(q, t).xreplace(swap)

    def on_boundary(at: sympy.Expr, r: sympy.Expr) -> bool:
        return sympy.cancel(at**2 * GG - r**2) == 0 and bool(at.is_nonnegative)

    def descending(at: sympy.Expr) -> bool:
        return bool(sympy.factor(slope.xreplace({t: at})).is_nonpositive)

    if curvature.is_positive:
        centre = stationary.xreplace(swap)
        inside, outside = sympy.sqrt(GG) * centre * (1 + U), sympy.sqrt(GG) * centre / (1 + U)
        at = _decided(value.xreplace({R: inside}))
        if sympy.simplify(slope.xreplace({t: at})) != 0:
            return f"{sympy.sstr(at)} is not the stationary point where it lies inside (ghg > 0)"
        at = _decided(value.xreplace({R: outside}))
        if not (on_boundary(at, outside) and descending(at)):
            return f"{sympy.sstr(at)} is not the boundary where the stationary point is outside"
        return ""
    if not (on_boundary(value, R) and descending(t)):
        return f"{sympy.sstr(value)} is not the boundary (ghg <= 0)"
    return ""


def check_predicted_decrease_any_step(
    spec: ModelSpec, others: Mapping[str, object]
) -> Iterator[CheckResult]:
    """The predicted decrease the targets print (``Hd`` a vector) with ``Hd = H d`` equals
    ``m(0) - m(d) = -(g^T d + d^T H d / 2)`` for a symbolic d at n = 2, 3."""
    # here, not at the top: symopt.backends imports the docs backend, which imports the checks
    from symopt.backends.second_order import HD, derived_pieces

    name = "the printed predicted decrease is m(0) - m(d) of the undamped model for every d"
    printed = derived_pieces(spec)["predicted"]
    matrices = {s.name: s for s in printed.free_symbols}
    stray = sorted(set(matrices) - {"g", "d", HD})
    if stray:
        yield CheckResult(name, False, "symbolic", f"it uses {', '.join(stray)}")
        return
    for n in DIMENSIONS:
        s = derive(spec, n).symbols
        g, H, d = s["g"], s["H"], s["d"]
        values = {"g": g, "d": d, HD: H * d}
        value = printed.xreplace({m: values[k] for k, m in matrices.items()}).doit()
        model = (g.T * d)[0, 0] + (d.T * H * d)[0, 0] / 2
        if sympy.expand(value[0, 0] + model) != 0:
            yield CheckResult(name, False, "symbolic", f"it is {sympy.sstr(value)} at n = {n}")
            return
    yield CheckResult(name, True, "symbolic", "exact for symbolic g, H, d at n = 2 and n = 3")

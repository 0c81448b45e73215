"""The trust-region solvers' scalar formulas, derived with SymPy from the spec's model.

Besides the damped system, the subproblem solvers need four scalar formulas: Newton's step on the
secular equation for the multiplier lam (More-Sorensen), the two roots tau of ``||p + tau d|| = r``
(Steihaug-CG's exit on the boundary, its negative-curvature case, the exact solver's hard case),
and the Cauchy length. Each is derived here from :func:`symopt.lowering.derive.derive` (the model
``m(d) = g^T d + d^T (H + lam I) d / 2``), proved in :mod:`symopt.checks.solver_pieces`, and
printed into every target (:mod:`symopt.backends.second_order`), so no target types one in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import sympy

from symopt.lowering.derive import derive
from symopt.spec.model import ModelSpec, N, damping_symbol

#: The pieces' arguments (C and Python names alike), with the signs the solvers guarantee.
LAM = sympy.Symbol("lam", nonnegative=True)
D_NORM = sympy.Symbol("d_norm", positive=True)
W_SQ = sympy.Symbol("w_sq", positive=True)
RADIUS = sympy.Symbol("radius", positive=True)
PP = sympy.Symbol("pp", nonnegative=True)
PD = sympy.Symbol("pd", real=True)
DD = sympy.Symbol("dd", positive=True)
GG = sympy.Symbol("gg", positive=True)
GHG = sympy.Symbol("ghg", real=True)
#: The variables the derivations solve for.
TAU = sympy.Symbol("tau", real=True)
T = sympy.Symbol("t", real=True)


@dataclass(frozen=True)
class ScalarPiece:
    """A scalar formula of the solvers: ``name(*args) = expr``, ``expr`` in Symbols named
    ``args``; ``doc`` says in one line what it computes."""

    name: str
    args: tuple[str, ...]
    expr: sympy.Expr
    doc: str

    def at(self, values: Mapping[str, sympy.Expr]) -> sympy.Expr:
        """The formula with its arguments (by name) replaced by ``values``."""
        return self.expr.xreplace({s: values[s.name] for s in self.expr.free_symbols})


def solver_pieces(spec: ModelSpec) -> list[ScalarPiece]:
    """The scalar formulas of a trust-region spec's solvers (rule "radius"); none otherwise."""
    if spec.rule != "radius":
        return []
    return list(_pieces(spec))


#: The pieces of each damping name (the derivations read nothing else of a spec).
_PIECES: dict[str, tuple[ScalarPiece, ...]] = {}


def _pieces(spec: ModelSpec) -> tuple[ScalarPiece, ...]:
    if spec.damping in _PIECES:
        return _PIECES[spec.damping]
    tau_max, tau_min = boundary_taus()
    _PIECES[spec.damping] = (
        ScalarPiece(
            "secular_newton",
            ("lam", "d_norm", "w_sq", "radius"),
            secular_newton(spec),
            "Newton's step on phi(lam) = 1/||d(lam)|| - 1/r, w_sq = d^T (H + lam I)^-1 d.",
        ),
        ScalarPiece(
            "boundary_tau_max",
            ("pp", "pd", "dd", "radius"),
            tau_max,
            "The larger root tau of ||p + tau d|| = r (pp = p.p, pd = p.d, dd = d.d > 0).",
        ),
        ScalarPiece(
            "boundary_tau_min",
            ("pp", "pd", "dd", "radius"),
            tau_min,
            "The smaller root tau of ||p + tau d|| = r (pp = p.p, pd = p.d, dd = d.d > 0).",
        ),
        ScalarPiece(
            "cauchy_length",
            ("gg", "ghg", "radius"),
            cauchy_length(spec),
            "t >= 0 minimising m(-t g) for ||t g|| <= r (gg = g.g > 0, ghg = g.H g).",
        ),
    )
    return _PIECES[spec.damping]


def as_scalars(expr: sympy.Basic, names: Mapping[sympy.Basic, sympy.Expr]) -> sympy.Expr:
    """A sum of 1 x 1 matrix products (``coeff * u^T M v``) as a scalar, each product replaced by
    its name in ``names``; a product without one is an error (the derivation left its form)."""
    out = sympy.Integer(0)
    for term in expr.args if isinstance(expr, sympy.MatAdd) else (expr,):
        coeff, product = term.as_coeff_mmul()
        if product not in names:
            raise ValueError(f"no scalar for {product} in {expr}")
        out += coeff * names[product]
    return out


def secular_newton(spec: ModelSpec) -> sympy.Expr:
    """``lam - phi/phi'`` for ``phi = 1/||d|| - 1/r``: ``(||d||^2)'`` from implicit differentiation
    of the stationarity condition ``A(lam) d = b`` (``A d' = b' - A' d``) with matrix calculus,
    ``phi'`` from it by SymPy's chain rule."""
    D = derive(spec, None)
    swap = {damping_symbol(spec.damping): LAM}
    A, b, d = D.matrix.xreplace(swap), D.rhs.xreplace(swap), D.symbols["d"]
    d_prime = (A.I * (b.diff(LAM) - A.diff(LAM) * d)).doit()
    norm_sq_prime = as_scalars((2 * d.T * d_prime).doit(), {(d.T * A.I * d).doit(): W_SQ})
    norm_sq = sympy.Function("S")(LAM)  # ||d(lam)||^2
    phi = 1 / sympy.sqrt(norm_sq) - 1 / RADIUS
    step = LAM - phi / sympy.diff(phi, LAM)
    step = step.subs(sympy.Derivative(norm_sq, LAM), norm_sq_prime).subs(norm_sq, D_NORM**2)
    return LAM + sympy.factor(step - LAM)


def boundary_taus() -> tuple[sympy.Expr, sympy.Expr]:
    """The roots of ``||p + tau d||^2 = r^2`` from ``sympy.solve`` of the expanded quadratic, each
    rewritten without cancellation: where ``-pd`` and the root's square-root term have opposite
    signs, the root is the product of the roots, ``(pp - r^2)/dd``, over the other one. The
    discriminant is clamped at 0: rounding makes it slightly negative with p on the boundary."""
    p, d = (sympy.MatrixSymbol(x, N, 1) for x in "pd")
    names = {(p.T * p): PP, (p.T * d): PD, (d.T * p): PD, (d.T * d): DD}
    norm_sq = as_scalars(sympy.expand((p + TAU * d).T * (p + TAU * d)), names)
    roots = sympy.solve(norm_sq - RADIUS**2, TAU)
    (root,) = {s for r in roots for s in r.atoms(sympy.Pow) if s.exp == sympy.Rational(1, 2)}
    high, low = sorted(roots, key=lambda r: not sympy.expand(r).coeff(root).is_positive)
    product = sympy.cancel(high * low)

    def stable(naive: sympy.Expr, other: sympy.Expr, sign: sympy.Symbol) -> sympy.Expr:
        """The root as written where ``-pd/dd`` and its root term agree in sign, else the
        product over the other root."""
        rest = sympy.expand(naive).coeff(root)
        agree = (rest * (sympy.expand(naive) - rest * root)).xreplace({PD: sign}).is_nonnegative
        if agree is None:
            raise ValueError(f"cannot tell whether {naive} cancels")
        return naive if agree else sympy.cancel(product / other)

    plus, minus = sympy.Symbol("q", positive=True), -sympy.Symbol("q", positive=True)
    tau_max = sympy.Piecewise((stable(high, low, plus), PD > 0), (stable(high, low, minus), True))
    tau_min = sympy.Piecewise((stable(low, high, minus), PD < 0), (stable(low, high, plus), True))
    clamp = {root: sympy.sqrt(sympy.Max(0, sympy.collect(root.base, DD)))}
    return tau_max.xreplace(clamp), tau_min.xreplace(clamp)


def cauchy_length(spec: ModelSpec) -> sympy.Expr:
    """The minimiser of ``q(t) = m(-t g)`` (the undamped model) over ``0 <= t <= r/||g||``: the
    stationary point of q where q is convex and it lies inside, else the boundary."""
    D = derive(spec, None)
    g, H, d = D.symbols["g"], D.symbols["H"], D.symbols["d"]
    undamped = D.model.xreplace({damping_symbol(spec.damping): 0, d: -T * g}).doit()
    q = as_scalars(sympy.expand(undamped), {(g.T * g): GG, (g.T * H * g): GHG})
    (stationary,) = sympy.solve(sympy.diff(q, T), T)
    length_sq = as_scalars(sympy.expand((T * g).T * (T * g)), {(g.T * g): GG})
    (boundary,) = [t for t in sympy.solve(length_sq - RADIUS**2, T) if t.is_positive]
    convex = sympy.diff(q, T, 2) > 0
    return sympy.Piecewise((sympy.Min(stationary, boundary), convex), (boundary, True))

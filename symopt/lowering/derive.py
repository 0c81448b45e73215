"""Derivations: the second-order step is solved from the model, never typed in.

The model of the loss near ``w`` is ``m(d) = L + g^T d + 1/2 d^T (H + lam I) d`` with symmetric
``H``. Its gradient in ``d`` comes from SymPy's matrix calculus, the stationarity condition
``A d = b`` is read off that gradient (it is affine in ``d``: ``A`` is the coefficient of ``d``),
and the step is its solution. This is done for a general ``n`` with matrix symbols and for
explicit ``n = 2, 3`` with a fully symbolic symmetric ``H`` (where every claim in
:mod:`symopt.checks.second_order` can be decided).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import sympy

from symopt.spec.model import ModelSpec, damping_symbol, model_symbols


@dataclass(frozen=True)
class Derivation:
    """The model, its gradient, the linear system it vanishes on, and the solved step."""

    n: int | None  # None: the general form over matrix symbols
    symbols: dict[str, sympy.Basic]  # g, H, I, the damping name; d (the step variable)
    model: sympy.Basic  # m(d) - L, as a function of symbols["d"]
    gradient: sympy.Basic  # grad_d m(d)
    matrix: sympy.Basic  # A in the stationarity condition A d = b
    rhs: sympy.Basic  # b
    step: sympy.Basic  # the stationary point A^-1 b

    def model_at(self, d: sympy.Basic) -> sympy.Basic:
        """m(d) - L at a given step (explicit n only: a scalar)."""
        return self.model.xreplace(dict(zip(self.symbols["d"], d, strict=True)))


def derive(spec: ModelSpec, n: int | None) -> Derivation:
    """Solve the model's stationarity condition for the step (general form when ``n`` is None)."""
    return _derive(spec.damping, n)


@cache
def _derive(damping: str | None, n: int | None) -> Derivation:
    s = model_symbols(damping, n)
    g, H, eye, d = s["g"], s["H"], s["I"], s["d"]
    damped = H + damping_symbol(damping) * eye
    if n is None:
        return _derive_general(s, damped)
    model = (g.T * d)[0, 0] + sympy.Rational(1, 2) * (d.T * damped * d)[0, 0]
    gradient = sympy.Matrix([model.diff(x) for x in d])
    matrix = gradient.jacobian(d)
    if matrix.free_symbols & set(d):
        raise ValueError("the model's gradient is not affine in the step")
    rhs = -gradient.xreplace({x: 0 for x in d})
    step = matrix.LUsolve(rhs).applyfunc(sympy.factor)
    return Derivation(n, s, model, gradient, matrix, rhs, step)


def _derive_general(s: dict[str, sympy.Basic], damped: sympy.MatrixExpr) -> Derivation:
    g, H, d = s["g"], s["H"], s["d"]
    model = g.T * d + sympy.Rational(1, 2) * d.T * damped * d
    raw = model.diff(d).subs(H.T, H)  # H is symmetric
    coefficient, constant = [], []
    for term in raw.args if isinstance(raw, sympy.MatAdd) else (raw,):
        is_linear = isinstance(term, sympy.MatMul) and term.args[-1] == d
        (coefficient if is_linear else constant).append(
            sympy.MatMul(*term.args[:-1]) if is_linear else term
        )
    if any(t.has(d) for t in constant):
        raise ValueError("the model's gradient is not affine in the step")
    matrix = sympy.MatAdd(*coefficient).doit()
    rhs = (-sympy.MatAdd(*constant)).doit()
    # Like terms collected: H*d + g, where the derivative reads (1/2)*H*d + (1/2)*H*d + g.
    gradient = sympy.expand(raw).doit()
    return Derivation(None, s, model, gradient, matrix, rhs, matrix.I * rhs)


def is_zero_matrix(expr: sympy.Basic) -> bool:
    """Whether an explicit or general matrix expression simplifies to zero (a proof)."""
    if isinstance(expr, sympy.MatrixBase):
        return all(_is_zero(x) for x in expr)
    value = sympy.simplify(expr.doit())
    return value == sympy.ZeroMatrix(*value.shape) or getattr(value, "is_ZeroMatrix", False)


def _is_zero(x: sympy.Expr) -> bool:
    """Zero test: ``cancel`` is a normal form for rational functions, so it decides them;
    expressions with roots fall back to ``simplify`` (a zero result is still a proof)."""
    x = sympy.cancel(sympy.together(x))
    if x == 0:
        return True
    if all(p.exp.is_Integer for p in x.atoms(sympy.Pow)):
        return False
    return sympy.simplify(x) == 0

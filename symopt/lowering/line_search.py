"""The slope a line search along the derived step needs, derived from the model, never typed in.

A backtracking (Armijo) line search accepts a step length t when
``L(w + t d) <= L(w) + c1 t s`` with ``s`` the slope of the model along ``d`` at ``t = 0``,
``s = d/dt m(t d) |_{t=0}``. It is derived here by differentiating the model of
:func:`symopt.lowering.derive.derive` along the ray ``t d``, for a general ``n`` (matrix symbols,
what the targets print) and for explicit ``n`` (what the checks decide claims on).
"""

from __future__ import annotations

import sympy

from symopt.lowering.derive import derive
from symopt.spec.model import ModelSpec

#: The step length along the ray t d.
T = sympy.Symbol("t", real=True)


def slope(spec: ModelSpec, n: int | None = None) -> sympy.Basic:
    """``d/dt m(t d)`` at ``t = 0``: ``g^T d`` for a quadratic model, a 1 x 1 matrix expression
    for general ``n`` and a scalar for explicit ``n``."""
    D = derive(spec, n)
    d = D.symbols["d"]
    if n is None:
        along = D.model.xreplace({d: T * d})
        out = sympy.diff(along, T).xreplace({T: 0}).doit()
        if out.has(T) or not out.has(d):
            raise ValueError(f"the model's slope along d is not linear in d: {out}")
        return out
    along = D.model_at([T * x for x in d])
    return sympy.expand(sympy.diff(along, T).xreplace({T: 0}))

"""Where a computed value is used: under the conditions of the branches around it.

A division inside ``where(denom > 0, x/denom, 1)`` only has to be defined where the branch is
taken: the reference stepper (``np.where``) and the generated code evaluate both branches and drop
the other one's ``inf`` or ``nan``. So the well-defined check asks, for each division, root and
logarithm, whether it is safe *where its value reaches w or the state*, following the branches of
the step's results. A problem whose node is not found in the results (SymPy merged it away, or
the line is never used) is checked everywhere, as before: never less strict than that.
"""

from __future__ import annotations

from collections.abc import Iterable

import sympy

MAX_NODES = 20000


def guards(outputs: Iterable[sympy.Expr]) -> dict[sympy.Basic, sympy.Basic]:
    """Every node of ``outputs`` -> the condition under which its value is used (``True`` where
    some use is unguarded). Empty when the results are too large to follow."""
    found: dict[sympy.Basic, sympy.Basic] = {}
    for out in outputs:
        if not _walk(out, sympy.true, found):
            return {}
    return found


def _walk(e: sympy.Basic, guard: sympy.Basic, found: dict) -> bool:
    before = found.get(e)
    if before is sympy.true or (before is not None and before == guard):
        return True
    found[e] = guard if before is None else sympy.Or(before, guard)
    if len(found) > MAX_NODES:
        return False
    if isinstance(e, sympy.Piecewise):
        taken = sympy.true
        for branch, cond in e.args:
            if not _walk(cond, sympy.And(guard, taken), found):
                return False
            if not _walk(branch, sympy.And(guard, taken, cond), found):
                return False
            taken = sympy.And(taken, sympy.Not(cond))
        return True
    return all(_walk(a, guard, found) for a in e.args)


def guarded(value: sympy.Expr, guard: sympy.Basic) -> sympy.Expr:
    """A claim about ``value`` that only has to hold under ``guard`` (1 elsewhere: 1 is
    nonzero, positive and nonnegative, so the claim holds there)."""
    if guard is sympy.true:
        return value
    return sympy.Piecewise((value, guard), (sympy.Integer(1), True))

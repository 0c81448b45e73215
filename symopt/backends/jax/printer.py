"""JAX expressions: the NumPy target's whole-array printer with ``jnp`` and no Python branches.

Under ``jax.jit`` the hyperparameters and the step counter may be traced values, so a condition
on them cannot decide a Python ``if``: every condition, scalar or element-wise, becomes
``jnp.where`` (both branches are computed; the lowering guards a branch that could be invalid
where it is not taken, so the one not taken is finite or harmlessly NaN).
"""

from __future__ import annotations

import re

import sympy

from symopt.backends.numpy.tensor import TensorPrinter

_NP = re.compile(r"\bnp\.")


class JaxPrinter(TensorPrinter):
    """``jnp.`` expressions over arrays and scalars (reductions, ``@``, ``.T`` as NumPy's)."""

    def __init__(self) -> None:
        super().__init__(scalars=set())

    def doprint(self, expr, assign_to=None) -> str:  # type: ignore[override]
        return _NP.sub("jnp.", super().doprint(expr, assign_to))

    def _print_Piecewise(self, expr: sympy.Piecewise) -> str:
        *branches, (otherwise, _) = expr.args
        out = self._print(otherwise)
        for value, cond in reversed(branches):
            out = f"np.where({self._print(cond)}, {self._print(value)}, {out})"
        return out

    def _print_BooleanTrue(self, expr) -> str:
        return "True"

    def _print_BooleanFalse(self, expr) -> str:
        return "False"

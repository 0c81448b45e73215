"""Least-squares test problems f(x) = sum_i r_i(x)^2 from residuals written once in SymPy.

The Moré-Garbow-Hillstrom problems (symopt/mgh_fixed.py, symopt/mgh_variable.py) are sums of
squares. Each gives its residuals as SymPy expressions in x: single residuals, or a ``Family``
(one expression in x and data symbols such as t_i and y_i, one residual per data row, evaluated
vectorised over the rows). SymPy differentiates every expression once into its gradient and
Hessian entries, and ``sympy.lambdify`` (with common subexpressions eliminated) turns them into
NumPy functions; NumPy assembles r, the Jacobian J and S = sum_i r_i hess(r_i), so every
derivative is exact:

    f = r.r,   grad = 2 J^T r,   hess = 2 (J^T J + S),   hessp(p) = 2 (J^T (J p) + S p).

Compiling is the slow part (SymPy), so it happens on a problem's first evaluation and is kept.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import sympy

from symopt.problems import Array, Problem


@dataclass(frozen=True)
class Family:
    """Residuals expr(x, row) for each row of the data: one expression, len(rows) residuals."""

    expr: sympy.Expr
    data: dict[sympy.Symbol, Sequence[float]]

    @property
    def size(self) -> int:
        sizes = {len(v) for v in self.data.values()}
        if len(sizes) != 1:
            raise ValueError(f"family data columns differ in length: {sorted(sizes)}")
        return sizes.pop()


Symbols = Sequence[sympy.Symbol]  # x_0 .. x_(n-1)
Terms = list  # of residuals: SymPy expressions (or numbers) and Family objects
Residuals = Callable[[Symbols], Terms]


def q(value: float | str) -> sympy.Rational:
    """An exact SymPy number from a decimal constant of the paper (1.0001 stays 1.0001)."""
    return sympy.Rational(str(value))


@dataclass(frozen=True)
class _Term:
    """One residual expression: its rows, the variables it uses and its derivative entries."""

    rows: slice
    used: list[int]
    pairs: list[tuple[int, int]]  # (j, k), j <= k: its upper Hessian entries, in order


class _Compiled:
    """The residuals of one problem as NumPy functions, compiled on first use."""

    def __init__(self, n: int, residuals: Residuals) -> None:
        self.n = n
        self.residuals = residuals

    @cached_property
    def _compiled(self) -> tuple[list[_Term], list[Array], tuple[Callable, Callable, Callable]]:
        x = sympy.symbols(f"x_0:{self.n}")  # not x0, x1, ...: those name the cse temporaries
        terms, values, grads, hessians, symbols, columns = [], [], [], [], [], []
        start = 0
        for item in self.residuals(x):
            family = item if isinstance(item, Family) else Family(sympy.sympify(item), {})
            size = family.size if family.data else 1
            expr = family.expr
            for s, column in family.data.items():
                if s in symbols:
                    raise ValueError(f"data symbol {s} used by two families")
                symbols.append(s)
                columns.append(np.asarray(column, dtype=float))
            used = [j for j, xj in enumerate(x) if xj in expr.free_symbols]
            grad = [sympy.diff(expr, x[j]) for j in used]
            pairs = [(j, k) for a, j in enumerate(used) for k in used[a:]]
            hess = [sympy.diff(grad[used.index(j)], x[k]) for j, k in pairs]
            terms.append(_Term(slice(start, start + size), used, pairs))
            values.append(expr)
            grads.append(grad)
            hessians.append(hess)
            start += size
        args = [x, *symbols]
        functions = (
            sympy.lambdify(args, values, modules="numpy", cse=True),
            sympy.lambdify(args, [values, grads], modules="numpy", cse=True),
            sympy.lambdify(args, [values, grads, hessians], modules="numpy", cse=True),
        )
        return terms, columns, functions

    def _call(self, level: int, x: Array) -> list:
        _, columns, functions = self._compiled
        return functions[level](np.asarray(x, dtype=float).tolist(), *columns)

    def _residuals(self, values: list) -> Array:
        terms = self._compiled[0]
        m = terms[-1].rows.stop
        r = np.empty(m)
        for term, v in zip(terms, values, strict=True):
            r[term.rows] = v
        return r

    def _jacobian(self, r: Array, grads: list) -> Array:
        jac = np.zeros((r.size, self.n))
        for term, g in zip(self._compiled[0], grads, strict=True):
            for j, gj in zip(term.used, g, strict=True):
                jac[term.rows, j] = gj
        return jac

    def _second(self, r: Array, hessians: list) -> Array:
        """S = sum_i r_i hess(r_i), from the upper entries of each residual's Hessian."""
        s = np.zeros((self.n, self.n))
        for term, h in zip(self._compiled[0], hessians, strict=True):
            weights = r[term.rows]
            for (j, k), hjk in zip(term.pairs, h, strict=True):
                s[j, k] += np.sum(weights * hjk)
        return s + np.triu(s, 1).T

    def r(self, x: Array) -> Array:
        return self._residuals(self._call(0, x))

    def jacobian(self, x: Array) -> Array:
        values, grads = self._call(1, x)
        return self._jacobian(self._residuals(values), grads)

    def f(self, x: Array) -> float:
        r = self.r(x)
        return float(r @ r)

    def grad(self, x: Array) -> Array:
        values, grads = self._call(1, x)
        r = self._residuals(values)
        return 2.0 * (self._jacobian(r, grads).T @ r)

    def _jac_second(self, x: Array) -> tuple[Array, Array]:
        values, grads, hessians = self._call(2, x)
        r = self._residuals(values)
        return self._jacobian(r, grads), self._second(r, hessians)

    def hess(self, x: Array) -> Array:
        jac, second = self._jac_second(x)
        h = jac.T @ jac + second
        return h + h.T  # 2 (J^T J + S), exactly symmetric

    def hessp(self, x: Array, p: Array) -> Array:
        jac, second = self._jac_second(x)
        return 2.0 * (jac.T @ (jac @ p) + second @ p)


def least_squares(
    name: str,
    residuals: Residuals,
    x0: Sequence[float],
    f_min: float | None,
    x_min: Sequence[float] | None = None,
    f_local: tuple[float, ...] = (),
) -> Problem:
    """The problem f = sum_i r_i(x)^2 with exact derivatives (compiled lazily)."""
    start = np.array(x0, dtype=float)
    c = _Compiled(start.size, residuals)
    best = None if x_min is None else np.array(x_min, dtype=float)
    return Problem(name, c.f, c.grad, c.hess, c.hessp, start, f_min, best, f_local, c.r, c.jacobian)

"""Moré-Garbow-Hillstrom problems 21-35: the variable-size ones, at the sizes used with the paper.

Reference: J. J. Moré, B. S. Garbow, K. E. Hillstrom, "Testing unconstrained optimization
software", ACM TOMS 7(1), 1981 (problem numbers below are the paper's). Sizes: n = 10 for all
(m = n, or as the problem fixes it: penalty I m = n + 1, penalty II m = 2n, variably dimensioned
m = n + 2), except extended Powell n = 12 (n must be a multiple of 4), the three linear functions
m = 20, and Chebyquad n = m = 8 (the paper's f* are for n = 8 and 10; n = 8 is the common one).
The minimum values f* are the paper's: closed forms where it gives them, else 6 significant
digits (penalty I, penalty II, Chebyquad at these sizes).
"""

from __future__ import annotations

from functools import cache, partial

import sympy
from sympy import cos, exp, sin

from symopt.mgh_build import Symbols, Terms, least_squares, q
from symopt.problems import Problem


def extended_rosenbrock(x: Symbols) -> Terms:
    out = []
    for a, b in zip(x[0::2], x[1::2], strict=True):
        out += [10 * (b - a**2), 1 - a]
    return out


def extended_powell(x: Symbols) -> Terms:
    out = []
    for i in range(0, len(x), 4):
        x1, x2, x3, x4 = x[i : i + 4]
        out += [x1 + 10 * x2, sympy.sqrt(5) * (x3 - x4), (x2 - 2 * x3) ** 2]
        out += [sympy.sqrt(10) * (x1 - x4) ** 2]
    return out


def penalty_1(x: Symbols) -> Terms:
    a = sympy.sqrt(q("1e-5"))
    return [a * (xi - 1) for xi in x] + [sum(xi**2 for xi in x) - sympy.Rational(1, 4)]


def penalty_2(x: Symbols) -> Terms:
    n, a = len(x), sympy.sqrt(q("1e-5"))
    out = [x[0] - q("0.2")]
    for i in range(2, n + 1):  # i = 2..n, y_i = e^(i/10) + e^((i-1)/10)
        y = exp(sympy.Rational(i, 10)) + exp(sympy.Rational(i - 1, 10))
        out.append(a * (exp(x[i - 1] / 10) + exp(x[i - 2] / 10) - y))
    for i in range(n + 1, 2 * n):  # i = n+1..2n-1: x_(i-n+1)
        out.append(a * (exp(x[i - n] / 10) - exp(-sympy.Rational(1, 10))))
    out.append(sum((n - j) * x[j] ** 2 for j in range(n)) - 1)  # sum_j (n - j + 1) x_j^2 - 1
    return out


def variably_dim(x: Symbols) -> Terms:
    s = sum((j + 1) * (xj - 1) for j, xj in enumerate(x))
    return [xj - 1 for xj in x] + [s, s**2]


def trigonometric(x: Symbols) -> Terms:
    n = len(x)
    c = sum(cos(xj) for xj in x)
    return [n - c + (i + 1) * (1 - cos(xi)) - sin(xi) for i, xi in enumerate(x)]


def brown_almost_linear(x: Symbols) -> Terms:
    n, s = len(x), sum(x)
    return [xi + s - (n + 1) for xi in x[:-1]] + [sympy.Mul(*x) - 1]


def _grid(n: int) -> list[sympy.Rational]:
    """t_i = i h, h = 1 / (n + 1), i = 1..n."""
    return [sympy.Rational(i, n + 1) for i in range(1, n + 1)]


def discrete_boundary_value(x: Symbols) -> Terms:
    n = len(x)
    h, t = sympy.Rational(1, n + 1), _grid(n)
    padded = [0, *x, 0]  # x_0 = x_(n+1) = 0
    return [
        2 * padded[i] - padded[i - 1] - padded[i + 1] + h**2 * (padded[i] + t[i - 1] + 1) ** 3 / 2
        for i in range(1, n + 1)
    ]


def discrete_integral_equation(x: Symbols) -> Terms:
    n = len(x)
    h, t = sympy.Rational(1, n + 1), _grid(n)
    cube = [(xj + tj + 1) ** 3 for xj, tj in zip(x, t, strict=True)]
    out = []
    for i in range(n):
        left = sum(t[j] * cube[j] for j in range(i + 1))
        right = sum((1 - t[j]) * cube[j] for j in range(i + 1, n))
        out.append(x[i] + h * ((1 - t[i]) * left + t[i] * right) / 2)
    return out


def broyden_tridiagonal(x: Symbols) -> Terms:
    padded = [0, *x, 0]
    return [
        (3 - 2 * padded[i]) * padded[i] - padded[i - 1] - 2 * padded[i + 1] + 1
        for i in range(1, len(x) + 1)
    ]


def broyden_banded(x: Symbols, lower: int = 5, upper: int = 1) -> Terms:
    n = len(x)
    out = []
    for i in range(n):
        band = [j for j in range(max(0, i - lower), min(n, i + upper + 1)) if j != i]
        out.append(x[i] * (2 + 5 * x[i] ** 2) + 1 - sum(x[j] * (1 + x[j]) for j in band))
    return out


def linear_full_rank(x: Symbols, m: int = 20) -> Terms:
    s = sympy.Rational(2, m) * sum(x)
    return [xi - s - 1 for xi in x] + [-s - 1] * (m - len(x))


def linear_rank_1(x: Symbols, m: int = 20) -> Terms:
    s = sum((j + 1) * xj for j, xj in enumerate(x))
    return [i * s - 1 for i in range(1, m + 1)]


def linear_rank_1_zero(x: Symbols, m: int = 20) -> Terms:
    s = sum((j + 1) * x[j] for j in range(1, len(x) - 1))  # sum_{j=2}^{n-1} j x_j
    return [sympy.Integer(-1)] + [(i - 1) * s - 1 for i in range(2, m)] + [sympy.Integer(-1)]


def chebyquad(x: Symbols) -> Terms:
    n = len(x)
    out = []
    for i in range(1, n + 1):
        # (1/n) sum_j T_i(2 x_j - 1) minus the integral of T_i(2x - 1) over [0, 1]; T_i as a
        # polynomial in y = 2x - 1 (SymPy's chebyshevt), whose coefficients stay small
        integral = -sympy.Rational(1, i * i - 1) if i % 2 == 0 else 0
        out.append(sum(sympy.chebyshevt(i, 2 * xj - 1) for xj in x) / n - integral)
    return out


N, M = 10, 20  # the sizes of the variable problems (see above for the exceptions)


@cache
def _variable() -> tuple[Problem, ...]:
    ls, n, m = least_squares, N, M
    t = [float(v) for v in _grid(n)]
    grid = [tj * (tj - 1) for tj in t]
    ones, sizes = [1.0] * n, f"n={n} m={m}"
    f_rank_1 = float(sympy.Rational(m * (m - 1), 2 * (2 * m + 1)))
    f_rank_1_zero = float(sympy.Rational(m * m + 3 * m - 6, 2 * (2 * m - 3)))
    # minimisers of the rank-1 problems: any x with sum_j j x_j = 3 / (2m + 1), resp.
    # sum_{j=2}^{n-1} j x_j = 3 / (2m - 3); these put it all on x_1, resp. x_2
    x_rank_1 = [3 / (2 * m + 1)] + [0.0] * (n - 1)
    x_rank_1_zero = [0.0, 3 / (2 * (2 * m - 3))] + [0.0] * (n - 2)
    return (
        ls(f"Extended Rosenbrock n={n}", extended_rosenbrock, [-1.2, 1] * (n // 2), 0.0, ones),
        ls("Extended Powell n=12", extended_powell, [3, -1, 0, 1] * 3, 0.0, [0.0] * 12),
        ls(f"Penalty I n={n}", penalty_1, range(1, n + 1), 7.08765e-5),
        ls(f"Penalty II n={n}", penalty_2, [0.5] * n, 2.93660e-4),
        ls(
            f"Variably dimensioned n={n}",
            variably_dim,
            [1 - j / n for j in range(1, n + 1)],
            0.0,
            ones,
        ),
        ls(f"Trigonometric n={n}", trigonometric, [1 / n] * n, 0.0, [0.0] * n),
        ls(f"Brown almost-linear n={n}", brown_almost_linear, [0.5] * n, 0.0, ones, (1.0,)),
        ls(f"Discrete boundary value n={n}", discrete_boundary_value, grid, 0.0),
        ls(f"Discrete integral equation n={n}", discrete_integral_equation, grid, 0.0),
        ls(f"Broyden tridiagonal n={n}", broyden_tridiagonal, [-1.0] * n, 0.0),
        ls(f"Broyden banded n={n}", broyden_banded, [-1.0] * n, 0.0),
        ls(
            f"Linear full rank {sizes}",
            partial(linear_full_rank, m=m),
            ones,
            float(m - n),
            [-1.0] * n,
        ),
        ls(f"Linear rank 1 {sizes}", partial(linear_rank_1, m=m), ones, f_rank_1, x_rank_1),
        ls(
            f"Linear rank 1 zero {sizes}",
            partial(linear_rank_1_zero, m=m),
            ones,
            f_rank_1_zero,
            x_rank_1_zero,
        ),
        ls("Chebyquad n=8", chebyquad, [j / 9 for j in range(1, 9)], 3.51687e-3),
    )


def variable_problems() -> list[Problem]:
    """MGH problems 21-35 at the sizes above and their standard starts, in the paper's order."""
    return list(_variable())

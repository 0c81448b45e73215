"""Moré-Garbow-Hillstrom problems 1-20: the fixed-size ones, with the paper's data and starts.

Reference: J. J. Moré, B. S. Garbow, K. E. Hillstrom, "Testing unconstrained optimization
software", ACM TOMS 7(1), 1981 (problem numbers below are the paper's). Each residual list is
transcribed from the paper. The minimum values f* are the paper's: closed forms, else 6
significant digits truncated as printed ("87.9458..."); f_local holds the other minima it notes.
Sizes where the paper leaves m free: Jennrich-Sampson m = 10, Gulf m = 99 (as in the authors'
TOMS Algorithm 566 code; the paper allows 3 <= m <= 100), Box 3-D m = 10, Brown-Dennis m = 20,
Biggs EXP6 m = 13, Watson n = 9 (the paper's f* are for n = 6, 9, 12).
Problems 1, 5, 7, 13 and 14 are the hand-written ones of symopt/problems.py.
Gulf's published residual reads "|y_i m i x_2|"; "m i" is a misprint for a minus sign.
"""

from __future__ import annotations

import dataclasses
from functools import cache

import numpy as np
import sympy
from sympy import exp

from symopt import problems
from symopt.mgh_build import Family, Symbols, Terms, least_squares, q
from symopt.problems import Problem

BARD_Y = (0.14, 0.18, 0.22, 0.25, 0.29, 0.32, 0.35, 0.39, 0.37, 0.58, 0.73, 0.96, 1.34, 2.10, 4.39)
GAUSSIAN_Y = (0.0009, 0.0044, 0.0175, 0.0540, 0.1295, 0.2420, 0.3521, 0.3989)
GAUSSIAN_Y += GAUSSIAN_Y[-2::-1]  # symmetric about t = 0
MEYER_Y = (34780, 28610, 23650, 19630, 16370, 13720, 11540, 9744)
MEYER_Y += (8261, 7030, 6005, 5147, 4427, 3820, 3307, 2872)
KOWALIK_Y = (0.1957, 0.1947, 0.1735, 0.1600, 0.0844, 0.0627)
KOWALIK_Y += (0.0456, 0.0342, 0.0323, 0.0235, 0.0246)
KOWALIK_U = (4, 2, 1, 0.5, 0.25, 0.167, 0.125, 0.1, 0.0833, 0.0714, 0.0625)
KOWALIK_X0 = (0.25, 0.39, 0.415, 0.39)
BIGGS_X = (1, 10, 1, 5, 4, 3)  # f = 0 for every m (the data are this model's values)
OSBORNE1_Y = (0.844, 0.908, 0.932, 0.936, 0.925, 0.908, 0.881, 0.850, 0.818, 0.784, 0.751)
OSBORNE1_Y += (0.718, 0.685, 0.658, 0.628, 0.603, 0.580, 0.558, 0.538, 0.522, 0.506, 0.490)
OSBORNE1_Y += (0.478, 0.467, 0.457, 0.448, 0.438, 0.431, 0.424, 0.420, 0.414, 0.411, 0.406)
OSBORNE2_Y = (1.366, 1.191, 1.112, 1.013, 0.991, 0.885, 0.831, 0.847, 0.786, 0.725, 0.746)
OSBORNE2_Y += (0.679, 0.608, 0.655, 0.616, 0.606, 0.602, 0.626, 0.651, 0.724, 0.649, 0.649)
OSBORNE2_Y += (0.694, 0.644, 0.624, 0.661, 0.612, 0.558, 0.533, 0.495, 0.500, 0.423, 0.395)
OSBORNE2_Y += (0.375, 0.372, 0.391, 0.396, 0.405, 0.428, 0.429, 0.523, 0.562, 0.607, 0.653)
OSBORNE2_Y += (0.672, 0.708, 0.633, 0.668, 0.645, 0.632, 0.591, 0.559, 0.597, 0.625, 0.739)
OSBORNE2_Y += (0.710, 0.729, 0.720, 0.636, 0.581, 0.428, 0.292, 0.162, 0.098, 0.054)
OSBORNE2_X0 = (1.3, 0.65, 0.65, 0.7, 0.6, 3, 5, 7, 2, 4.5, 5.5)

T, Y, U, V, W = sympy.symbols("t y u v w")  # data symbols of the residual families


def freudenstein_roth(x: Symbols) -> Terms:
    x1, x2 = x
    return [-13 + x1 + ((5 - x2) * x2 - 2) * x2, -29 + x1 + ((x2 + 1) * x2 - 14) * x2]


def powell_badly_scaled(x: Symbols) -> Terms:
    x1, x2 = x
    return [10**4 * x1 * x2 - 1, exp(-x1) + exp(-x2) - q("1.0001")]


def brown_badly_scaled(x: Symbols) -> Terms:
    x1, x2 = x
    return [x1 - 10**6, x2 - q("2e-6"), x1 * x2 - 2]


def jennrich_sampson(x: Symbols, m: int = 10) -> Terms:
    x1, x2 = x
    return [Family(2 + 2 * T - (exp(T * x1) + exp(T * x2)), {T: range(1, m + 1)})]


def bard(x: Symbols) -> Terms:
    x1, x2, x3 = x
    i = np.arange(1, 16)  # u_i = i, v_i = 16 - i, w_i = min(u_i, v_i)
    data = {Y: BARD_Y, U: i, V: 16 - i, W: np.minimum(i, 16 - i)}
    return [Family(Y - (x1 + U / (V * x2 + W * x3)), data)]


def gaussian(x: Symbols) -> Terms:
    x1, x2, x3 = x
    t = (8 - np.arange(1, 16)) / 2
    return [Family(x1 * exp(-x2 * (T - x3) ** 2 / 2) - Y, {T: t, Y: GAUSSIAN_Y})]


def meyer(x: Symbols) -> Terms:
    x1, x2, x3 = x
    t = 45 + 5 * np.arange(1, 17)
    return [Family(x1 * exp(x2 / (T + x3)) - Y, {T: t, Y: MEYER_Y})]


def gulf(x: Symbols, m: int = 99) -> Terms:
    x1, x2, x3 = x
    y = 25 + (-50 * sympy.log(T)) ** sympy.Rational(2, 3)
    # |y - x2|^x3 written as ((y - x2)^2)^(x3 / 2): the same value, derivatives without sign()
    return [Family(exp(-(((y - x2) ** 2) ** (x3 / 2)) / x1) - T, {T: np.arange(1, m + 1) / 100})]


def box_3d(x: Symbols, m: int = 10) -> Terms:
    x1, x2, x3 = x
    expr = exp(-T * x1) - exp(-T * x2) - x3 * (exp(-T) - exp(-10 * T))
    return [Family(expr, {T: np.arange(1, m + 1) / 10})]


def kowalik_osborne(x: Symbols) -> Terms:
    x1, x2, x3, x4 = x
    expr = Y - x1 * (U**2 + U * x2) / (U**2 + U * x3 + x4)
    return [Family(expr, {Y: KOWALIK_Y, U: KOWALIK_U})]


def brown_dennis(x: Symbols, m: int = 20) -> Terms:
    x1, x2, x3, x4 = x
    expr = (x1 + T * x2 - exp(T)) ** 2 + (x3 + x4 * sympy.sin(T) - sympy.cos(T)) ** 2
    return [Family(expr, {T: np.arange(1, m + 1) / 5})]


def osborne_1(x: Symbols) -> Terms:
    x1, x2, x3, x4, x5 = x
    t = 10 * np.arange(33)  # t_i = 10 (i - 1)
    return [Family(Y - (x1 + x2 * exp(-T * x4) + x3 * exp(-T * x5)), {T: t, Y: OSBORNE1_Y})]


def biggs_exp6(x: Symbols, m: int = 13) -> Terms:
    x1, x2, x3, x4, x5, x6 = x
    y = exp(-T) - 5 * exp(-10 * T) + 3 * exp(-4 * T)
    expr = x3 * exp(-T * x1) - x4 * exp(-T * x2) + x6 * exp(-T * x5) - y
    return [Family(expr, {T: np.arange(1, m + 1) / 10})]


def osborne_2(x: Symbols) -> Terms:
    x1, x2, x3, x4, x5, x6, x7, x8, x9, x10, x11 = x
    model = x1 * exp(-T * x5) + x2 * exp(-((T - x9) ** 2) * x6)
    model += x3 * exp(-((T - x10) ** 2) * x7) + x4 * exp(-((T - x11) ** 2) * x8)
    return [Family(Y - model, {T: np.arange(65) / 10, Y: OSBORNE2_Y})]  # t_i = (i - 1) / 10


def watson(x: Symbols) -> Terms:
    n = len(x)
    s1 = sum((j - 1) * x[j - 1] * T ** (j - 2) for j in range(2, n + 1))
    s2 = sum(x[j - 1] * T ** (j - 1) for j in range(1, n + 1))
    return [Family(s1 - s2**2 - 1, {T: np.arange(1, 30) / 29}), x[0], x[1] - x[0] ** 2 - 1]


def _renamed(p: Problem, name: str) -> Problem:
    return dataclasses.replace(p, name=name)


@cache
def _fixed() -> tuple[Problem, ...]:
    ls = least_squares
    return (
        _renamed(problems.rosenbrock(2), "Rosenbrock"),
        ls("Freudenstein-Roth", freudenstein_roth, [0.5, -2], 0.0, [5, 4], (48.9842,)),
        ls("Powell badly scaled", powell_badly_scaled, [0, 1], 0.0),
        ls("Brown badly scaled", brown_badly_scaled, [1, 1], 0.0, [1e6, 2e-6]),
        problems.beale_problem(),
        ls("Jennrich-Sampson m=10", jennrich_sampson, [0.3, 0.4], 124.362),
        problems.helical_problem(),
        ls("Bard", bard, [1, 1, 1], 8.21487e-3, None, (17.4286,)),
        ls("Gaussian", gaussian, [0.4, 1, 0], 1.12793e-8),
        ls("Meyer", meyer, [0.02, 4000, 250], 87.9458),
        ls("Gulf m=99", gulf, [5, 2.5, 0.15], 0.0, [50, 25, 1.5]),
        ls("Box 3-D m=10", box_3d, [0, 10, 20], 0.0, [1, 10, 1]),
        problems.powell_problem(),
        problems.wood_problem(),
        ls("Kowalik-Osborne", kowalik_osborne, KOWALIK_X0, 3.07505e-4, None, (1.02734e-3,)),
        ls("Brown-Dennis m=20", brown_dennis, [25, 5, -5, -1], 85822.2),
        ls("Osborne 1", osborne_1, [0.5, 1.5, -1, 0.01, 0.02], 5.46489e-5),
        ls("Biggs EXP6 m=13", biggs_exp6, [1, 2, 1, 1, 1, 1], 0.0, BIGGS_X, (5.65565e-3,)),
        ls("Osborne 2", osborne_2, OSBORNE2_X0, 4.01377e-2),
        ls("Watson n=9", watson, [0.0] * 9, 1.39976e-6),
    )


def fixed_problems() -> list[Problem]:
    """MGH problems 1-20 at their standard sizes and starts, in the paper's order."""
    return list(_fixed())

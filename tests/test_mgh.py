"""The second-order benchmark set (symopt/mgh*.py): all 35 Moré-Garbow-Hillstrom problems and
the scalable ones. Derivatives against finite differences, f at the standard start against the
authors' own Fortran and an independent port, minimum values against the paper, sizes and
starting points as published."""

from __future__ import annotations

import math

import numpy as np
import pytest

from symopt import mgh
from symopt.mgh import benchmark_problems, mgh_problems
from symopt.mgh_fixed import BARD_Y

PROBLEMS = benchmark_problems()
BY_NAME = {p.name: p for p in PROBLEMS}
MGH = mgh_problems()
EPS = np.finfo(float).eps


def sample_points(p, rng) -> list[np.ndarray]:
    """The start, two points near it (relative to each coordinate's size) and the minimiser."""
    near = [p.x0 + s * (1.0 + np.abs(p.x0)) * rng.standard_normal(p.n) for s in (0.1, 0.02)]
    if p.name == "Helical valley":  # theta is discontinuous on x1 = 0, x2 < 0
        for x in near:
            x[0] = abs(x[0]) + 0.5
    return [p.x0, *near] + ([] if p.x_min is None else [p.x_min])


def fd_check(fun, deriv, x, what: str) -> None:
    """deriv(x) against central differences of fun (vector or scalar valued), allowing for the
    truncation error and for the rounding of fun's values (large on the badly scaled problems)."""
    h = 1e-6 * np.maximum(1.0, np.abs(x))
    cols, size = [], 0.0
    for j in range(x.size):
        e = np.zeros(x.size)
        e[j] = h[j]
        up, down = np.asarray(fun(x + e)), np.asarray(fun(x - e))
        cols.append((up - down) / (2 * h[j]))
        size = max(size, float(np.max(np.abs(up))), float(np.max(np.abs(down))))
    fd = np.array(cols).T
    exact = np.asarray(deriv(x))
    scale = max(1.0, float(np.max(np.abs(exact))))
    tol = 1e-6 * scale + 8 * EPS * size / float(np.min(h))
    assert np.max(np.abs(fd - exact)) <= tol, f"{what} at {x}: off by {np.max(np.abs(fd - exact))}"


@pytest.mark.parametrize("p", PROBLEMS, ids=lambda p: p.name)
def test_gradient_matches_finite_differences(p):
    rng = np.random.default_rng(0)
    for x in sample_points(p, rng):
        fd_check(p.f, p.grad, x, "gradient")


@pytest.mark.parametrize("p", PROBLEMS, ids=lambda p: p.name)
def test_hessian_matches_finite_differences_of_gradient(p):
    rng = np.random.default_rng(1)
    for x in sample_points(p, rng):
        h = p.hess(x)
        np.testing.assert_array_equal(h, h.T)
        fd_check(p.grad, p.hess, x, "Hessian")


@pytest.mark.parametrize("p", PROBLEMS, ids=lambda p: p.name)
def test_hessp_matches_dense_hessian(p):
    rng = np.random.default_rng(2)
    for x in sample_points(p, rng):
        v = rng.standard_normal(p.n)
        h = p.hess(x)
        atol = 1e-13 * p.n * max(1.0, float(np.max(np.abs(h))))
        np.testing.assert_allclose(p.hessp(x, v), h @ v, rtol=1e-12, atol=atol)


# f at the standard start x0 and at x0 * 1.1 + 0.05 (where every term of every residual counts).
# "566": TOMS Algorithm 566's OBJFCN, the authors' Fortran for 18 of the problems (built as lib566
# in github.com/mpf/Toms566.jl, called at these sizes); the others: pyopus.problems.mgh, an
# independent Python port (which agrees with 566 where both exist). The paper gives no f(x0).
F_REFERENCE = {
    "Rosenbrock": (24.2, 26.580541),
    "Freudenstein-Roth": (400.5, 635.6207152813),
    "Powell badly scaled": (1.135261717348, 329476.0716987),  # 566
    "Brown badly scaled": (999998000003, 999997700003.1),  # 566
    "Beale": (14.203125, 20.06045831566),  # 566
    "Jennrich-Sampson m=10": (4171.30616196, 37218.33482678),
    "Helical valley": (2500, 2376.114503581),  # 566
    "Bard": (41.68169586168, 35.79723748655),
    "Gaussian": (3.888106991167e-06, 0.02205274106014),  # 566
    "Meyer": (1693607809.436, 1140683781.264),
    "Gulf m=99": (12.11070582557, 10.66535299285),  # 566
    "Box 3-D m=10": (1031.153810609, 1277.608414171),  # 566
    "Powell singular": (215, 293.17750625),
    "Wood": (19192, 25825.7546875),  # 566
    "Kowalik-Osborne": (0.005313172272109, 0.02865725490472),
    "Brown-Dennis m=20": (7926693.336997, 12873526.89192),  # 566
    "Osborne 1": (0.8790262935446, 0.9118260347363),
    "Biggs EXP6 m=13": (0.779070075656, 0.5241361437038),  # 566
    "Osborne 2": (2.093419514212, 5.302638036778),
    "Watson n=9": (30, 16.66279852279),  # 566
    "Extended Rosenbrock n=10": (121, 132.902705),  # 566
    "Extended Powell n=12": (645, 879.53251875),  # 566
    "Penalty I n=10": (148032.56535, 222477.3092243),  # 566
    "Penalty II n=10": (162.652776566, 353.6002712459),  # 566
    "Variably dimensioned n=10": (2198551.1625, 1353292.9746),  # 566
    "Trigonometric n=10": (0.007075759466223, 0.02840434523664),  # 566
    "Brown almost-linear n=10": (273.2480478287, 175.2279433264),
    "Discrete boundary value n=10": (0.0007885191012648, 0.005494282812014),
    "Discrete integral equation n=10": (0.06341684157945, 0.02414599734567),
    "Broyden tridiagonal n=10": (21, 27.62425),
    "Broyden banded n=10": (360, 506.9031976563),
    "Linear full rank n=10 m=20": (50, 56.225),
    "Linear rank 1 n=10 m=20": (8658670, 11455069.375),
    "Linear rank 1 zero n=10 m=20": (4067996, 5382514.04),
    "Chebyquad n=8": (0.03861769828593, 1.731714924375),  # 566
}


@pytest.mark.parametrize("p", MGH, ids=lambda p: p.name)
def test_f_against_the_authors_fortran_and_an_independent_port(p):
    at_start, shifted = F_REFERENCE[p.name]
    assert p.f(p.x0) == pytest.approx(at_start, rel=1e-11)
    assert p.f(p.x0 * 1.1 + 0.05) == pytest.approx(shifted, rel=1e-11)


# (n, m, x0) as published; x0 built independently of the problem modules
T10 = np.arange(1, 11) / 11
STARTS = {
    "Rosenbrock": (2, None, [-1.2, 1]),
    "Freudenstein-Roth": (2, 2, [0.5, -2]),
    "Powell badly scaled": (2, 2, [0, 1]),
    "Brown badly scaled": (2, 3, [1, 1]),
    "Beale": (2, None, [1, 1]),
    "Jennrich-Sampson m=10": (2, 10, [0.3, 0.4]),
    "Helical valley": (3, None, [-1, 0, 0]),
    "Bard": (3, 15, [1, 1, 1]),
    "Gaussian": (3, 15, [0.4, 1, 0]),
    "Meyer": (3, 16, [0.02, 4000, 250]),
    "Gulf m=99": (3, 99, [5, 2.5, 0.15]),
    "Box 3-D m=10": (3, 10, [0, 10, 20]),
    "Powell singular": (4, None, [3, -1, 0, 1]),
    "Wood": (4, None, [-3, -1, -3, -1]),
    "Kowalik-Osborne": (4, 11, [0.25, 0.39, 0.415, 0.39]),
    "Brown-Dennis m=20": (4, 20, [25, 5, -5, -1]),
    "Osborne 1": (5, 33, [0.5, 1.5, -1, 0.01, 0.02]),
    "Biggs EXP6 m=13": (6, 13, [1, 2, 1, 1, 1, 1]),
    "Osborne 2": (11, 65, [1.3, 0.65, 0.65, 0.7, 0.6, 3, 5, 7, 2, 4.5, 5.5]),
    "Watson n=9": (9, 31, [0] * 9),
    "Extended Rosenbrock n=10": (10, 10, [-1.2, 1] * 5),
    "Extended Powell n=12": (12, 12, [3, -1, 0, 1] * 3),
    "Penalty I n=10": (10, 11, list(range(1, 11))),
    "Penalty II n=10": (10, 20, [0.5] * 10),
    "Variably dimensioned n=10": (10, 12, 1 - np.arange(1, 11) / 10),
    "Trigonometric n=10": (10, 10, [0.1] * 10),
    "Brown almost-linear n=10": (10, 10, [0.5] * 10),
    "Discrete boundary value n=10": (10, 10, T10 * (T10 - 1)),
    "Discrete integral equation n=10": (10, 10, T10 * (T10 - 1)),
    "Broyden tridiagonal n=10": (10, 10, [-1] * 10),
    "Broyden banded n=10": (10, 10, [-1] * 10),
    "Linear full rank n=10 m=20": (10, 20, [1] * 10),
    "Linear rank 1 n=10 m=20": (10, 20, [1] * 10),
    "Linear rank 1 zero n=10 m=20": (10, 20, [1] * 10),
    "Chebyquad n=8": (8, 8, np.arange(1, 9) / 9),
}


def test_the_set_has_the_35_problems_with_their_standard_sizes_and_starts():
    assert [p.name for p in MGH] == list(STARTS)
    assert len(BY_NAME) == len(PROBLEMS) == 38  # unique names
    assert not any("," in name for name in BY_NAME)  # --problems takes a comma-separated list
    for p in MGH:
        n, m, x0 = STARTS[p.name]
        assert p.n == n, p.name
        np.testing.assert_allclose(p.x0, x0, rtol=1e-15, atol=0, err_msg=p.name)
        if p.residuals is not None:
            assert p.residuals(p.x0).shape == (m,), p.name
            assert p.jacobian(p.x0).shape == (m, n), p.name


@pytest.mark.parametrize("p", [p for p in PROBLEMS if p.x_min is not None], ids=lambda p: p.name)
def test_f_at_the_known_minimiser(p):
    scale = max(1.0, abs(p.f_min), float(np.max(np.abs(p.x_min))))
    assert p.f(p.x_min) == pytest.approx(p.f_min, abs=1e-12 * scale)
    assert np.linalg.norm(p.grad(p.x_min)) <= 1e-9 * scale


def in_paper_digits(f: float, printed: float) -> bool:
    """The paper prints minima truncated to 6 significant digits ("87.9458...")."""
    unit = 10.0 ** (math.floor(math.log10(printed)) - 5)
    return printed - 1e-3 * unit <= f < printed + unit


def least_squares_minimum(p, x0):
    so = pytest.importorskip("scipy.optimize")
    r = so.least_squares(
        p.residuals, x0, jac=p.jacobian, method="lm", xtol=1e-15, ftol=1e-15, gtol=1e-15
    )
    return r.x, p.f(r.x)


NO_CLOSED_FORM = [p for p in MGH if p.x_min is None and p.residuals is not None]


@pytest.mark.parametrize("p", NO_CLOSED_FORM, ids=lambda p: p.name)
def test_minimum_value_from_the_paper(p):
    """MINPACK's Levenberg-Marquardt (the paper's authors' code) from the standard start reaches
    the paper's f*: every datum and formula enters these 6 digits."""
    _, f = least_squares_minimum(p, p.x0)
    if p.f_min == 0.0:
        assert f <= 1e-20
    else:
        assert in_paper_digits(f, p.f_min), f"{f!r} vs the paper's {p.f_min}"


def test_other_minima_from_the_paper():
    # Freudenstein-Roth: f = 48.9842... at (11.41..., -0.8968...), where LM goes from x0
    fr = BY_NAME["Freudenstein-Roth"]
    x, f = least_squares_minimum(fr, fr.x0)
    assert in_paper_digits(f, fr.f_local[0])
    assert x == pytest.approx([11.41, -0.8968], abs=1e-2)
    # Bard: f -> 17.4286... as x2, x3 -> -inf with x1 = 0.8406... (the mean of the data)
    bard = BY_NAME["Bard"]
    far = np.array([np.mean(BARD_Y), -1e15, -1e15])
    assert far[0] == pytest.approx(0.8406, abs=1e-4)
    assert in_paper_digits(bard.f(far), bard.f_local[0])
    # Brown almost-linear: f = 1 at (0, ..., 0, n + 1)
    bal = BY_NAME["Brown almost-linear n=10"]
    assert bal.f(np.r_[np.zeros(9), 11.0]) == bal.f_local[0] == 1.0


# --- scalable problems --------------------------------------------------------------------------


def test_extended_rosenbrock_is_scipys_rosenbrock_on_each_pair():
    so = pytest.importorskip("scipy.optimize")
    p = BY_NAME["Extended Rosenbrock n=1000"]
    rng = np.random.default_rng(3)
    for x in [p.x0, rng.uniform(-2, 2, p.n)]:
        pairs = x.reshape(-1, 2)
        assert p.f(x) == pytest.approx(sum(so.rosen(q) for q in pairs), rel=1e-13)
        np.testing.assert_allclose(
            p.grad(x).reshape(-1, 2), [so.rosen_der(q) for q in pairs], rtol=1e-13, atol=1e-12
        )


def test_extended_rosenbrock_vectorised_equals_the_sympy_one():
    small = BY_NAME["Extended Rosenbrock n=10"]
    fast = mgh.extended_rosenbrock(10)
    rng = np.random.default_rng(4)
    for x in [small.x0, rng.uniform(-2, 2, 10)]:
        v = rng.standard_normal(10)
        assert fast.f(x) == pytest.approx(small.f(x), rel=1e-14)
        np.testing.assert_allclose(fast.grad(x), small.grad(x), rtol=1e-13, atol=1e-12)
        np.testing.assert_allclose(fast.hess(x), small.hess(x), rtol=1e-13, atol=1e-12)
        np.testing.assert_allclose(fast.hessp(x, v), small.hessp(x, v), rtol=1e-13, atol=1e-11)


def test_quadratic_condition_number_and_minimum():
    p = BY_NAME["Quadratic n=100 cond=1e+06"]
    eig = np.linalg.eigvalsh(p.hess(p.x0))
    assert eig[0] == pytest.approx(1.0, rel=1e-9)
    assert eig[-1] == pytest.approx(1e6, rel=1e-9)
    assert p.f(p.x_min) == p.f_min == -4.4e4
    assert not np.any(p.grad(p.x_min))
    d = p.x0 - p.x_min  # f is quadratic: f(x0) = f* + d.A d / 2
    assert p.f(p.x0) == pytest.approx(p.f_min + 0.5 * d @ p.hess(p.x0) @ d, rel=1e-13)


def test_double_well_chain_minimum_and_start():
    p = BY_NAME["Double well chain n=20"]
    assert p.f(np.zeros(20)) == 20.0
    assert p.f(np.ones(20)) == pytest.approx(0.1 * 19, rel=1e-15)
    assert np.linalg.eigvalsh(p.hess(p.x0))[-1] < 0  # the start is in the concave region
    x = np.array([(-1.0) ** i for i in range(20)])  # the global minimum has alternating signs
    for _ in range(8):
        x -= np.linalg.solve(p.hess(x), p.grad(x))
    assert np.linalg.norm(p.grad(x)) <= 1e-13
    assert np.linalg.eigvalsh(p.hess(x))[0] > 0
    assert p.f(x) == pytest.approx(p.f_min, abs=1e-14)

"""The second-order test problems (Moré, Garbow & Hillstrom 1981): derivatives against finite
differences and scipy, known minima and standard starts."""

from __future__ import annotations

import numpy as np
import pytest

from symopt import problems
from symopt.problems import all_problems

PROBLEMS = all_problems()
IDS = [p.name for p in PROBLEMS]


def sample_points(p, rng):
    """The start, a point near it, a random point and the minimiser (away from branch cuts)."""
    points = [p.x0, p.x0 + 0.1 * rng.standard_normal(p.n), 0.5 + rng.standard_normal(p.n)]
    if p.name == "Helical valley":
        points[2][0] = abs(points[2][0]) + 0.5  # theta is discontinuous on x1 = 0, x2 < 0
    return points + [p.x_min]


def fd_gradient(f, x, h=1e-6):
    return np.array([(f(x + h * e) - f(x - h * e)) / (2 * h) for e in np.eye(x.size)])


# --- problem derivatives -----------------------------------------------------------------------


@pytest.mark.parametrize("p", PROBLEMS, ids=IDS)
def test_gradient_matches_finite_differences(p):
    rng = np.random.default_rng(0)
    for x in sample_points(p, rng):
        g = p.grad(x)
        scale = max(1.0, float(np.max(np.abs(g))))
        np.testing.assert_allclose(fd_gradient(p.f, x), g, rtol=0, atol=1e-6 * scale)


@pytest.mark.parametrize("p", PROBLEMS, ids=IDS)
def test_hessian_matches_finite_differences_of_gradient(p):
    rng = np.random.default_rng(1)
    for x in sample_points(p, rng):
        h = p.hess(x)
        fd = np.array([fd_gradient(lambda y, i=i: p.grad(y)[i], x) for i in range(p.n)])
        scale = max(1.0, float(np.max(np.abs(h))))
        np.testing.assert_allclose(fd, h, rtol=0, atol=1e-6 * scale)
        np.testing.assert_array_equal(h, h.T)


@pytest.mark.parametrize("p", PROBLEMS, ids=IDS)
def test_hessp_matches_dense_hessian(p):
    rng = np.random.default_rng(2)
    for x in sample_points(p, rng):
        v = rng.standard_normal(p.n)
        np.testing.assert_allclose(p.hessp(x, v), p.hess(x) @ v, rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("p", PROBLEMS, ids=IDS)
def test_known_minimum(p):
    assert p.f(p.x_min) == pytest.approx(p.f_min, abs=1e-14)
    assert np.linalg.norm(p.grad(p.x_min)) <= 1e-12
    assert np.linalg.eigvalsh(p.hess(p.x_min))[0] >= -1e-9


@pytest.mark.parametrize("n", [2, 10, 100])
def test_rosenbrock_matches_scipy(n):
    so = pytest.importorskip("scipy.optimize")
    rng = np.random.default_rng(n)
    for x in [problems.rosenbrock(n).x0, rng.standard_normal(n), rng.uniform(-2, 2, n)]:
        v = rng.standard_normal(n)
        assert problems.rosen(x) == pytest.approx(so.rosen(x), rel=1e-14)
        np.testing.assert_allclose(problems.rosen_grad(x), so.rosen_der(x), rtol=1e-13, atol=1e-12)
        np.testing.assert_allclose(problems.rosen_hess(x), so.rosen_hess(x), rtol=1e-13, atol=1e-12)
        np.testing.assert_allclose(
            problems.rosen_hessp(x, v), so.rosen_hess_prod(x, v), rtol=1e-12, atol=1e-10
        )


def test_standard_starts():
    np.testing.assert_array_equal(problems.rosenbrock(4).x0, [-1.2, 1, -1.2, 1])
    assert problems.beale_problem().x0.tolist() == [1, 1]
    assert problems.powell_problem().x0.tolist() == [3, -1, 0, 1]
    assert problems.wood_problem().x0.tolist() == [-3, -1, -3, -1]
    assert problems.helical_problem().x0.tolist() == [-1, 0, 0]
    assert problems.helical(problems.helical_problem().x0) == pytest.approx(2500.0)


# --- trust region: outcomes --------------------------------------------------------------------

"""The generated NumPy trust region on the issue's failure cases (issue 18): an ill-conditioned
quadratic whose last decreases are below f's rounding, a minimiser far outside the default radius
bound, a first step that needs no radius, and the model decrease floor of the exact solver.

The other targets are held to the NumPy minimiser by test_trust_region_{torch,c}.py and
test_jax_trust_region.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from symopt.mgh import benchmark_problems

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "generated" / "numpy"))

from symopt_numpy import _trust_region, trust_region  # noqa: E402

PROBLEMS = {p.name: p for p in benchmark_problems()}


@pytest.mark.parametrize("subproblem", ["auto", "cg"])
def test_an_ill_conditioned_quadratic_converges_below_the_rounding_of_f(subproblem):
    p = PROBLEMS["Quadratic n=100 cond=1e+06"]
    r = trust_region.minimize(p.f, p.grad, p.x0, p.hess, p.hessp, subproblem=subproblem)
    assert r.success and r.grad_norm <= 1e-8, r.message
    assert r.fun == pytest.approx(p.f_min, rel=1e-12)
    if subproblem == "auto":  # the dense Hessian: Newton's step, no radius needed
        assert r.nit == 1


def test_without_the_rounding_guard_the_radius_collapses():
    p = PROBLEMS["Quadratic n=100 cond=1e+06"]
    method = trust_region.METHOD
    plain = type(method)(**{**method.__dict__, "rounding": 0.0})
    r = _trust_region.minimize(
        plain, p.f, p.grad, p.x0, None, p.hessp, gtol=1e-8, max_iter=None, subproblem="cg",
        check_second_order=False, callback=None, hyper=dict(trust_region.DEFAULTS),
    )  # fmt: skip
    assert r.status == 2 and "collapsed" in r.message


def test_a_minimiser_far_beyond_max_radius_is_reached():
    p = PROBLEMS["Brown badly scaled"]  # minimiser (1e6, 2e-6), max_radius = 1000
    r = trust_region.minimize(p.f, p.grad, p.x0, p.hess, p.hessp)
    assert r.success and np.allclose(r.x, [1e6, 2e-6], rtol=1e-9), r.message


def test_linear_least_squares_take_one_step():
    """A positive semidefinite (rank 1) or definite model has a minimiser: no radius is needed."""
    for name in ("Linear full rank n=10 m=20", "Linear rank 1 n=10 m=20"):
        p = PROBLEMS[name]
        r = trust_region.minimize(p.f, p.grad, p.x0, p.hess, p.hessp)
        assert r.success and r.nit == 1, (name, r.message)


def test_an_indefinite_start_takes_radius0_relative_to_x():
    p = PROBLEMS["Double well chain n=20"]  # the Hessian is negative definite at x0
    assert np.linalg.eigvalsh(p.hess(p.x0)).max() < 0
    seen = []
    trust_region.minimize(p.f, p.grad, p.x0, p.hess, callback=seen.append, max_iter=1)
    step = np.linalg.norm(seen[0] - p.x0)
    assert step == pytest.approx(trust_region.DEFAULTS["radius0"], rel=0.11)  # k_easy = 0.1


@pytest.mark.parametrize("seed", range(5))
def test_an_exact_step_out_of_factorisations_is_never_worse_than_the_cauchy_point(seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((6, 6))
    h, g = (a + a.T) / 2, rng.standard_normal(6)
    step = trust_region.exact_step(g, h, 0.7, max_iter=1)
    t = trust_region.cauchy_length(g @ g, g @ h @ g, 0.7)
    cauchy = -t * g
    assert g @ step.d + step.d @ h @ step.d / 2 <= g @ cauchy + cauchy @ h @ cauchy / 2 + 1e-12
    assert np.linalg.norm(step.d) <= 0.7 * (1 + 1e-12)

"""The C trust region against the NumPy target's (issue 18: the same iterates and the same status
in every target, NaN and inf cases included).

Both are rendered from the spec and the current templates and runtimes into a temporary folder,
as ``symopt generate`` lays them out, and share no code: src/runtime_radius.c (through
symopt_c.trust_region, which builds its library there) and NumPy's _trust_region.py and
_subproblem.py. Both are given the dense Hessian only, so ``subproblem="auto"`` is exact in both
and CG multiplies by the dense H in both: every counter is comparable. The NumPy module is the
oracle; facts that do not depend on it (a status, a message, a rejected trial) are stated too.

The dense linear algebra and the dot products round differently (LAPACK and BLAS against C
loops), so the runs agree to rounding, as tests/trust_region_oracle.py defines it: NumPy's
decisions and iterates (to RTOL), or, where NumPy's own run moves under rounding noise on its
gradient and Hessian, NumPy's iterates up to there and an outcome NumPy's noisy runs give. The
noise is half an ulp (the oracle's) and also the backward error of a dot product of length n,
n half-ulps (C sums in another order than BLAS): on Rosenbrock n = 100 by CG, C's path leaves
NumPy's (3e-9 at its 47th iterate) before half-ulp noise moves NumPy's, and n half-ulps does.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
from functools import partial
from types import SimpleNamespace

import numpy as np
import pytest
from trust_region_oracle import (
    RTOL,
    Run,
    assert_same_run,
    deviation,
    half_ulp_noise,
    horizon,
    rendered,
)

from symopt import problems
from symopt.backends import numpy as numpy_backend
from symopt.backends.base import static_files
from symopt.backends.c import second_order as c_second_order
from symopt.backends.c import static_files as c_static_files
from symopt.backends.c.elementwise import PACKAGE as C_PACKAGE
from symopt.backends.numpy import second_order as numpy_second_order
from symopt.resources import builtin_spec

SUBPROBLEMS = ("exact", "cg")
PACKAGES = (C_PACKAGE, numpy_second_order.PACKAGE)
MAX_N = 100  # larger problems are left to the targets' own tests (the NumPy loops are slow)
SEEDS = (0, 1, 2)  # rounding noise: each seed once on the gradient, once on the Hessian
#: Runs whose status rounding decides beyond what NumPy's noisy runs show (measured).
STATUS_BY_ROUNDING = {
    ("Meyer", "cg"): "cond(H) 1e16 at x*: C reaches max_iter (600 iterations), NumPy's runs, noisy "
    "or not, collapse the radius after 530 to 540, all at f = 87.9459",
}


@pytest.fixture(scope="module")
def gen(tmp_path_factory):
    """The C and NumPy trust-region modules with their runtimes, as generated, imported."""
    spec = builtin_spec("trust_region")
    files = c_second_order.files([spec]) + c_static_files()
    files += numpy_second_order.files([spec])
    files += static_files(numpy_backend.RUNTIME, numpy_backend.STATIC.items())
    packages = dict(zip(("c", "numpy"), PACKAGES, strict=True))
    with rendered(tmp_path_factory.mktemp("generated"), files, packages):
        yield SimpleNamespace(
            c=importlib.import_module(f"{C_PACKAGE}.trust_region"),
            numpy=importlib.import_module(f"{numpy_second_order.PACKAGE}.trust_region"),
        )


def problem_set() -> dict[str, problems.Problem]:
    """Every test problem symopt lists (the list functions that exist), by name, n <= MAX_N."""
    lists = [getattr(problems, name, None) for name in ("all_problems", "mgh_problems")]
    for module, name in (("symopt.mgh", "benchmark_problems"), ("symopt.mgh", "mgh_problems")):
        try:
            lists.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            continue
    found: dict[str, problems.Problem] = {}
    for listed in filter(None, lists):
        for p in listed():
            if p.n <= MAX_N:
                found.setdefault(p.name, p)
    return found


PROBLEMS = problem_set()


def run(module, fun, grad, x0, hess, subproblem: str) -> Run:
    path: list[np.ndarray] = []
    result = module.minimize(fun, grad, x0, hess, subproblem=subproblem, callback=path.append)
    return Run(result, path)


def dot_rounding(fn, seed: int, n: int):
    """fn with each value times 1 + e n 2^-53, e uniform in [-1, 1] (a matrix's symmetric): the
    backward error of a dot product of length n, so of C's loops against BLAS's order."""
    rng = np.random.default_rng(seed)

    def noisy(x):
        value = np.asarray(fn(x), dtype=float)
        e = rng.uniform(-1.0, 1.0, size=value.shape)
        if value.ndim == 2:
            e = np.triu(e) + np.triu(e, 1).T
        return value * (1.0 + e * n * 2.0**-53)

    return noisy


def rounding_runs(numpy_tr, p: problems.Problem, subproblem: str) -> list[Run]:
    """NumPy's runs with rounding noise (half an ulp, and a dot product's backward error) on the
    gradient, and on the dense Hessian (the only curvature C has)."""
    runs = []
    for seed in SEEDS:
        for noise in (half_ulp_noise, partial(dot_rounding, n=p.n)):
            runs.append(run(numpy_tr, p.f, noise(p.grad, seed), p.x0, p.hess, subproblem))
            runs.append(run(numpy_tr, p.f, p.grad, p.x0, noise(p.hess, seed), subproblem))
    return runs


@pytest.mark.parametrize("subproblem", SUBPROBLEMS)
@pytest.mark.parametrize("name", list(PROBLEMS))
def test_same_iterates_counts_and_status(gen, name, subproblem):
    """trust_region_oracle.assert_same_run: NumPy's run, or where NumPy's own run moves under
    rounding noise, NumPy's iterates up to there and a status NumPy's noisy runs give."""
    p = PROBLEMS[name]
    ours = run(gen.c, p.f, p.grad, p.x0, p.hess, subproblem)
    theirs = run(gen.numpy, p.f, p.grad, p.x0, p.hess, subproblem)
    rounding = partial(rounding_runs, gen.numpy, p, subproblem)
    if (name, subproblem) in STATUS_BY_ROUNDING:
        k = horizon(theirs, rounding())
        pairs = zip(ours.path[:k], theirs.path[:k], strict=True)
        assert all(deviation(a, b) <= RTOL for a, b in pairs)
        assert not ours.result.success and not theirs.result.success
        assert ours.result.fun == pytest.approx(theirs.result.fun, rel=1e-9)
    else:
        assert_same_run(ours, theirs, rounding)
    assert ours.result.nfev == ours.result.nit + 1  # one f per trial step
    assert ours.result.ngev == len(ours.path) + 1  # every finite trial gradient was accepted


def test_auto_is_exact_with_the_dense_hessian(gen):
    p = problems.wood_problem()
    auto, exact, cg = (
        run(gen.c, p.f, p.grad, p.x0, p.hess, subproblem) for subproblem in ("auto", "exact", "cg")
    )
    assert auto.outcome() == exact.outcome() != cg.outcome()
    assert np.array_equal(auto.result.x, exact.result.x)


# --- NaN and inf ----------------------------------------------------------------------------------

ROSEN = problems.rosenbrock(2)
WOOD = problems.wood_problem()
# H = 1e200 and g = 1e150 are finite, p^T H p = 1e500 is not
OVERFLOW = problems.Problem(
    "overflow",
    lambda x: 0.5e200 * float(x @ x),
    lambda x: 1e200 * x,
    lambda x: 1e200 * np.eye(1),
    lambda x, v: 1e200 * v,
    np.array([1e-50]),
    0.0,
)


def first_trial(numpy_tr, p: problems.Problem, subproblem: str) -> np.ndarray:
    """The first point the NumPy version tries after x0 (where f is asked for the second time):
    a ball around it makes the first trial fail, and the runs go on from there."""
    points = []

    def fun(x):
        points.append(x)
        return p.f(x)

    numpy_tr.minimize(fun, p.grad, p.x0, p.hess, subproblem=subproblem, max_iter=1)
    return points[1]


def ball(centre: np.ndarray, value, otherwise):
    """value(x) within 1e-3 of centre, otherwise(x) elsewhere."""
    return lambda x: value(x) if np.linalg.norm(x - centre) < 1e-3 else otherwise(x)


def nan(shape):
    return lambda x: np.full(shape, math.nan)


#: name -> (problem, (problem, first trial point) -> (fun, grad, hess), status by subproblem,
#: message start by subproblem). "rejected" in a name: a trial point gets a non-finite value.
NON_FINITE = {
    "f = inf at the first trial (rejected)": (
        ROSEN,
        lambda p, t: (ball(t, lambda x: math.inf, p.f), p.grad, p.hess),
        (0, 0),
        ("gradient norm",) * 2,
    ),
    "f = NaN at the first trial, n = 4 (rejected)": (
        WOOD,
        lambda p, t: (ball(t, lambda x: math.nan, p.f), p.grad, p.hess),
        (0, 0),
        ("gradient norm",) * 2,
    ),
    "gradient NaN at the first trial (rejected)": (
        ROSEN,
        lambda p, t: (p.f, ball(t, nan(2), p.grad), p.hess),
        (0, 0),
        ("gradient norm",) * 2,
    ),
    "gradient inf everywhere but at x0 (rejected until the radius collapses)": (
        ROSEN,
        lambda p, t: (
            p.f,
            lambda x: p.grad(x) if np.array_equal(x, p.x0) else np.array([math.inf, 1.0]),
            p.hess,
        ),
        (2, 2),
        ("trust radius collapsed",) * 2,
    ),
    "Hessian NaN where x_0 > 0.5": (
        ROSEN,
        lambda p, t: (p.f, p.grad, lambda x: nan((2, 2))(x) if x[0] > 0.5 else p.hess(x)),
        (3, 3),
        ("non-finite Hessian at iteration ",) * 2,
    ),
    "one Hessian entry NaN at x0": (
        ROSEN,
        lambda p, t: (p.f, p.grad, lambda x: p.hess(x) * np.array([[1.0, math.nan], [1.0, 1.0]])),
        (3, 3),
        ("non-finite Hessian at iteration 0",) * 2,
    ),
    "f NaN at x0": (
        ROSEN,
        lambda p, t: (lambda x: math.nan, p.grad, p.hess),
        (3, 3),
        ("non-finite f or gradient at iteration 0",) * 2,
    ),
    "gradient inf at x0": (
        ROSEN,
        lambda p, t: (p.f, lambda x: np.array([math.inf, 0.0]), p.hess),
        (3, 3),
        ("non-finite f or gradient at iteration 0",) * 2,
    ),
    # CG stops at once; the exact solver takes Newton's step d = -1e-50 to the minimiser 0
    "CG's product overflows": (
        OVERFLOW,
        lambda p, t: (p.f, p.grad, p.hess),
        (0, 3),
        ("gradient norm", "non-finite Hessian-vector product at iteration 0"),
    ),
}


class Recorded:
    """fun and grad that record whether each value they returned was finite."""

    def __init__(self, fun, grad) -> None:
        self.f_finite: list[bool] = []
        self.g_finite: list[bool] = []
        self._fun, self._grad = fun, grad

    def fun(self, x):
        value = self._fun(x)
        self.f_finite.append(math.isfinite(value))
        return value

    def grad(self, x):
        value = self._grad(x)
        self.g_finite.append(bool(np.isfinite(value).all()))
        return value


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NumPy's, on overflowing values
@pytest.mark.parametrize("subproblem", SUBPROBLEMS)
@pytest.mark.parametrize("case", list(NON_FINITE))
def test_non_finite_values_give_the_same_run(gen, case, subproblem):
    problem, make, statuses, starts = NON_FINITE[case]
    trial = first_trial(gen.numpy, problem, subproblem) if "first trial" in case else None
    fun, grad, hess = make(problem, trial)
    c_obj, np_obj = Recorded(fun, grad), Recorded(fun, grad)
    ours = run(gen.c, c_obj.fun, c_obj.grad, problem.x0, hess, subproblem)
    theirs = run(gen.numpy, np_obj.fun, np_obj.grad, problem.x0, hess, subproblem)
    spoilt = dataclasses.replace(problem, f=fun, grad=grad, hess=hess)
    how = assert_same_run(ours, theirs, partial(rounding_runs, gen.numpy, spoilt, subproblem))
    if how == "same":
        assert (c_obj.f_finite, c_obj.g_finite) == (np_obj.f_finite, np_obj.g_finite)
    index = SUBPROBLEMS.index(subproblem)
    assert ours.result.status == statuses[index]
    assert ours.result.message.startswith(starts[index]), ours.result.message
    if "rejected" in case:
        assert not all(c_obj.f_finite[1:] + c_obj.g_finite[1:])
    # a trial point's gradient is asked for when rho > eta: accepted (and called back) iff finite
    assert ours.result.ngev == len(c_obj.g_finite)
    assert sum(c_obj.g_finite[1:]) == len(ours.path)

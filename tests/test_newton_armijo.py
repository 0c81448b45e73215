"""Newton's method with a line search (specs/newton_armijo.toml): the issue's cases against pure
Newton, the benchmark problems against scipy, the same iterates in NumPy, PyTorch and C, its
checks, and what the loader refuses.

The spec's modules (and pure Newton's, to compare) are generated into a temporary folder and each
target's package is loaded under a name of its own, so that the repository's generated/
packages, which other tests import, are neither shadowed nor needed. PyTorch runs the NumPy
problems through an autograd.Function (f forward, the problem's gradient backward) with the
optimizer's dense Hessian replaced by the problem's exact one, so that the three targets see the
same numbers and differ only in their own arithmetic.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import re
import sys
import warnings

import numpy as np
import pytest
from click.testing import CliRunner

from symopt import problems
from symopt.checks import line_search, second_order
from symopt.cli import main
from symopt.lowering.derive import derive
from symopt.resources import builtin_spec
from symopt.spec import load_spec_text

SPEC = builtin_spec("newton_armijo")
COUNTS = ("status", "nit", "ngev", "nhev", "n_fallback", "n_backtracks")
TARGETS = (("numpy", "symopt_numpy"), ("c", "symopt_c"), ("torch", "symopt_torch"))


def load_package(folder, name):
    """The generated package in ``folder`` imported as ``name`` (with its relative imports)."""
    spec = importlib.util.spec_from_file_location(
        name, folder / "__init__.py", submodule_search_locations=[str(folder)]
    )
    package = importlib.util.module_from_spec(spec)
    sys.modules[name] = package
    spec.loader.exec_module(package)
    return package


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """{target: its package}: newton and newton_armijo, NumPy, C and PyTorch (when installed)."""
    out = tmp_path_factory.mktemp("newton_armijo")
    packages = {}
    for target, package in TARGETS:
        if target == "torch" and importlib.util.find_spec("torch") is None:
            continue
        args = ["generate", "--target", target, "--no-builtins", "--out", str(out)]
        args += ["--spec", str(SPEC.source), "--spec", str(builtin_spec("newton").source)]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
        packages[target] = load_package(out / target / package, f"armijo_test_{target}")
    return packages


def module(generated, target, name="newton_armijo"):
    if target not in generated:
        pytest.skip(f"{target} is not installed")
    return importlib.import_module(f"{generated[target].__name__}.{name}")


def x_minus_log_x():
    """f = x - log x, NaN for x < 0 and inf at 0; minimum 1 at x = 1, H = 1/x^2 > 0 (the issue)."""
    return problems.Problem(
        "x - log x",
        lambda x: (
            float(x[0] - math.log(x[0])) if x[0] > 0 else (math.inf if x[0] == 0 else math.nan)
        ),
        lambda x: np.array([1.0 - 1.0 / x[0]]),
        lambda x: np.array([[1.0 / x[0] ** 2]]),
        lambda x, p: p / x**2,
        np.array([3.0]),
        1.0,
        np.array([1.0]),
    )


def run(mod, problem, x0=None, **options):
    """minimize's result and the iterates it reported to its callback."""
    points = []
    x0 = problem.x0 if x0 is None else x0
    result = mod.minimize(
        problem.f, problem.grad, x0, problem.hess, callback=points.append, **options
    )
    return result, points


def decreasing(problem, points) -> bool:
    """f never increases by more than its rounding error along the iterates."""
    values = [problem.f(problem.x0)] + [problem.f(x) for x in points]
    return all(b <= a + 1e-12 * max(1.0, abs(a)) for a, b in zip(values, values[1:], strict=False))


# --- (a) the issue: f = x - log x from x0 = 3 ------------------------------------------------


def test_x_minus_log_x_converges_where_pure_newton_jumps_to_minus_3(generated):
    problem = x_minus_log_x()
    pure, _ = run(module(generated, "numpy", "newton"), problem)
    assert (pure.nit, pure.status, pure.success) == (1, 3, False)
    assert pure.x[0] == pytest.approx(-3.0, rel=1e-15)
    assert math.isnan(pure.fun)  # "returns a worse point than it started from"
    ours, points = run(module(generated, "numpy"), problem)
    assert ours.success and abs(ours.x[0] - 1.0) <= 1e-8 and ours.fun == pytest.approx(1.0)
    values = [problem.f(problem.x0)] + [problem.f(x) for x in points]
    assert all(b < a for a, b in zip(values, values[1:], strict=False))  # strictly decreasing
    # t = 1 lands on x = -3 (NaN), t = 1/2 on x = 0 (inf): both fail, t = 1/4 gives x = 1.5
    assert points[0][0] == pytest.approx(1.5, rel=1e-15)
    assert ours.n_backtracks == 2 and ours.n_fallback == 0


# --- (b) Wood and the benchmark problems, against scipy ---------------------------------------


def test_wood_reaches_the_minimum_where_pure_newton_stalls(generated):
    wood = problems.wood_problem()
    pure, _ = run(module(generated, "numpy", "newton"), wood, on_indefinite="gradient")
    assert pure.status == 1 and pure.nit == 800 and pure.fun > 7.8  # the f = 7.876
    ours, points = run(module(generated, "numpy"), wood)
    assert ours.success and ours.grad_norm <= 1e-8 and ours.n_fallback > 0, ours.message
    np.testing.assert_allclose(ours.x, wood.x_min, atol=1e-8)
    assert decreasing(wood, points) and ours.nit < 60


def benchmark_problems() -> list[problems.Problem]:
    """symopt.problems' set, and the More-Garbow-Hillstrom and scalable problems of symopt.mgh
    where it exists, up to n = 100 (the NumPy Cholesky is a Python loop)."""
    out = list(problems.all_problems())
    try:
        mgh = importlib.import_module("symopt.mgh")
    except ImportError:
        return out
    return out + [p for p in mgh.benchmark_problems() if p.n <= 100]


def scipy_reaches_gtol(problem) -> bool:
    """Whether scipy's Newton-CG or trust-exact ends with ||g|| <= 1e-8 (each given 200 n
    iterations and tolerances tight enough not to stop first)."""
    scipy_optimize = pytest.importorskip("scipy.optimize")
    for method, options in (("Newton-CG", {"xtol": 1e-14}), ("trust-exact", {"gtol": 1e-8})):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = scipy_optimize.minimize(
                problem.f, problem.x0, jac=problem.grad, hess=problem.hess, method=method,
                options={**options, "maxiter": 200 * problem.n},
            )  # fmt: skip
        if np.linalg.norm(problem.grad(result.x)) <= 1e-8:
            return True
    return False


@pytest.mark.parametrize("problem", benchmark_problems(), ids=lambda p: p.name)
def test_every_problem_scipy_solves_is_solved_with_f_decreasing(generated, problem):
    ours, points = run(module(generated, "numpy"), problem)
    assert decreasing(problem, points)
    if scipy_reaches_gtol(problem):
        assert ours.status == 0 and ours.grad_norm <= 1e-8, ours.message


# --- (c) the same iterates, status and counts in NumPy, C and PyTorch --------------------------


def nan_gradient():
    beale = problems.beale_problem()
    return beale, {"grad": lambda x: np.full(2, math.nan)}


def nan_hessian():
    beale = problems.beale_problem()
    return beale, {"hess": lambda x: np.array([[1.0, math.nan], [math.nan, 1.0]])}


#: name -> (problem, replaced derivatives), tolerance of the iterates (relative, and absolute
#: for coordinates near 0): Wood's shifted systems are conditioned ~1e8, and the targets'
#: Cholesky factorisations sum in different orders.
CASES = {
    "beale (H indefinite at the start)": (lambda: (problems.beale_problem(), {}), (1e-10, 1e-12)),
    "wood": (lambda: (problems.wood_problem(), {}), (1e-7, 1e-9)),
    "helical valley": (lambda: (problems.helical_problem(), {}), (1e-10, 1e-12)),
    "rosenbrock": (lambda: (problems.rosenbrock(2), {}), (1e-10, 1e-12)),
    "x - log x (NaN and inf trial points)": (lambda: (x_minus_log_x(), {}), (1e-12, 1e-12)),
    "NaN gradient at the start": (nan_gradient, (0, 0)),
    "NaN Hessian at the start": (nan_hessian, (0, 0)),
}


def masked(message: str) -> str:
    """A message with its numbers in scientific notation masked (they differ in the last digits)."""
    return re.sub(r"\d\.\d+e[+-]\d+", "#", message)


def counts(result) -> list:
    return [getattr(result, k) for k in (*COUNTS, "nfev")]


def numpy_or_c(mod, problem, replaced):
    parts = {"fun": problem.f, "grad": problem.grad, "hess": problem.hess}
    parts = {**parts, **replaced}
    points = []
    result = mod.minimize(
        parts["fun"], parts["grad"], problem.x0, parts["hess"], callback=points.append
    )
    return result, points


def torch_run(mod, problem, replaced, monkeypatch):
    """The optimizer step by step (its iterates), then minimize (its result), on the problem
    through an autograd.Function, with the problem's Hessian."""
    import torch

    grad = replaced.get("grad", problem.grad)
    hess = replaced.get("hess", problem.hess)

    class Loss(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return torch.tensor(problem.f(x.detach().numpy()), dtype=torch.float64)

        @staticmethod
        def backward(ctx, out):
            (x,) = ctx.saved_tensors
            return out * torch.from_numpy(np.asarray(grad(x.detach().numpy()), dtype=float))

    runtime = importlib.import_module(f"{mod.__package__}._newton")

    def dense_hessian(g, params):
        return torch.from_numpy(hess(params[0].detach().numpy().copy()))

    monkeypatch.setattr(runtime, "dense_hessian", dense_hessian)
    w = torch.nn.Parameter(torch.tensor(problem.x0, dtype=torch.float64))
    opt = mod.NewtonArmijo([w])
    points = []
    for _ in range(200):
        try:
            opt.step(lambda: Loss.apply(w))
        except (FloatingPointError, mod.LineSearchError):
            break
        if opt.state[w]["status"] != 1:
            break
        points.append(w.detach().numpy().copy())
    result = mod.minimize(Loss.apply, torch.tensor(problem.x0, dtype=torch.float64))
    return result, points


@pytest.mark.parametrize("case", list(CASES))
def test_numpy_c_and_torch_take_the_same_steps(generated, case, monkeypatch):
    make, tol = CASES[case]
    problem, replaced = make()
    ours, points = numpy_or_c(module(generated, "numpy"), problem, replaced)
    c, c_points = numpy_or_c(module(generated, "c"), problem, replaced)
    assert counts(c) == counts(ours)
    assert masked(c.message) == masked(ours.message)
    np.testing.assert_allclose(c_points, points, rtol=tol[0], atol=tol[1])
    if case.startswith("NaN"):
        assert (ours.status, ours.nit) == (3, 0)
        what = "gradient" if "gradient" in case else "Hessian"
        assert what in ours.message and "iteration 0" in ours.message
    else:
        assert ours.status == 0 and ours.grad_norm <= 1e-8
    if "torch" not in generated:
        return
    t, t_points = torch_run(module(generated, "torch"), problem, replaced, monkeypatch)
    assert [getattr(t, k) for k in COUNTS] == [getattr(ours, k) for k in COUNTS]
    assert t.nfev == ours.nfev + ours.nit  # torch evaluates L again, with g, where it steps
    np.testing.assert_allclose(t_points, points, rtol=tol[0], atol=tol[1])


def test_no_acceptable_step_is_the_same_stop_everywhere(generated, monkeypatch):
    """f finite only at the start: every trial fails until t d is below the rounding of x."""
    x0 = np.array([3.0])
    problem = problems.Problem(
        "only at 3", lambda x: 1.0 if x[0] == 3.0 else math.nan, lambda x: np.array([1.0]),
        lambda x: np.array([[1.0]]), lambda x, p: p, x0, 1.0,
    )  # fmt: skip
    ours, _ = numpy_or_c(module(generated, "numpy"), problem, {})
    c, _ = numpy_or_c(module(generated, "c"), problem, {})
    # t d = -2^-52 is the first trial within half an ulp of 3 (2^-51): 52 rejected trials
    assert (ours.status, ours.nit, ours.n_backtracks, ours.x[0]) == (2, 0, 52, 3.0)
    assert counts(c) == counts(ours)
    assert c.message == ours.message and "below the rounding of x" in ours.message
    if "torch" in generated:
        t, _ = torch_run(module(generated, "torch"), problem, {}, monkeypatch)
        assert [getattr(t, k) for k in COUNTS] == [getattr(ours, k) for k in COUNTS]


# --- (d) the checks, and the loader -------------------------------------------------------------


def test_the_spec_passes_its_checks_and_the_slope_check_catches_a_wrong_slope():
    results = [r for check in second_order.CHECKS for r in check(SPEC, {})]
    results += list(line_search.check_line_search(SPEC, {}))
    assert results and all(r.passed for r in results), [r.name for r in results if not r.passed]
    names = " | ".join(r.name for r in results)
    assert "slope g.T*d is the model's derivative along d" in names
    assert "stationarity condition is (H + lam I) d = -g" in names and "descent" in names
    s = derive(SPEC, None).symbols
    for wrong in (s["g"].T * s["H"] * s["d"], 2 * s["g"].T * s["d"], s["d"].T * s["d"]):
        assert not line_search.slope_result(SPEC, wrong).passed
    assert list(line_search.check_line_search(builtin_spec("newton"), {})) == []


def test_a_large_c1_fails_the_unit_step_claim():
    spec = load_spec_text(SPEC.text.replace("default = 1e-4", "default = 0.75", 1), "x.toml")
    failed = [r for r in line_search.check_line_search(spec, {}) if not r.passed]
    assert len(failed) == 1 and "c1 = 0.75 > 1/2" in failed[0].detail


@pytest.mark.parametrize(
    ("old", "new", "error"),
    [
        ('on_indefinite = "modify"', 'on_indefinite = "fail"', "only 'modify'"),
        ('rule = "line_search"', 'rule = "newton"', 'needs damping = "0"'),
        ('damping = "tau"', 'damping = "0"', "needs a damping variable"),
        ("[hyper.rho]", "[hyper.backtrack_factor]", "needs a hyperparameter 'rho'"),
    ],
)
def test_the_loader_refuses_a_line_search_spec_that_does_not_fit_the_rule(old, new, error):
    assert old in SPEC.text
    with pytest.raises(Exception, match=error):
        load_spec_text(SPEC.text.replace(old, new, 1), "x.toml")

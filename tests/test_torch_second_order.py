"""The PyTorch target for second-order specs: the same iterates as the NumPy trust-region and
Newton code on the same problems, the files it renders, and a renamed spec through the templates.

The generated optimizers run on ``symopt.problems`` written in torch; the NumPy side runs the
same problems with their exact derivatives.
"""

from __future__ import annotations

import copy
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from symopt import problems
from symopt.backends.second_order import MatrixCodePrinter, python_code
from symopt.backends.torch.second_order import PACKAGE, files
from symopt.resources import builtin_spec, second_order_specs
from symopt.spec import load_spec_text

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "generated" / "torch"))
sys.path.insert(0, str(ROOT / "generated" / "numpy"))

from symopt_torch import newton as torch_newton  # noqa: E402
from symopt_torch import trust_region as torch_tr  # noqa: E402

TRUST = builtin_spec("trust_region")
NEWTON = builtin_spec("newton")


# --- the problems in torch ---------------------------------------------------------------------


def rosenbrock(x):
    return (100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2).sum()


def beale(x):
    return sum((c - x[0] * (1.0 - x[1] ** k)) ** 2 for k, c in enumerate((1.5, 2.25, 2.625), 1))


#: name -> (NumPy problem with exact derivatives, the same function in torch)
PROBLEMS = {
    "rosenbrock2": (problems.rosenbrock(2), rosenbrock),
    "rosenbrock10": (problems.rosenbrock(10), rosenbrock),
    "beale": (problems.beale_problem(), beale),
}


def torch_run(fun, x0, steps_until_done: int = 10_000):
    """TrustRegion on x0 with the spec's defaults: the accepted iterates and the state."""
    w = torch.nn.Parameter(torch.tensor(x0, dtype=torch.float64))
    opt = torch_tr.TrustRegion([w])
    accepted_points, state = [], opt._state()
    for _ in range(steps_until_done):
        accepted = state["accepted"]
        opt.step(lambda: fun(w))
        if state["status"] == 0:
            break
        if state["accepted"] > accepted:
            accepted_points.append(w.detach().numpy().copy())
    return accepted_points, state


# --- trust region: the same sequence as the NumPy code -----------------------------------------


@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_trust_region_takes_the_steps_of_the_generated_numpy_code(name):
    numpy_tr = pytest.importorskip("symopt_numpy.trust_region")
    problem, fun = PROBLEMS[name]
    theirs = []
    result = numpy_tr.minimize(
        problem.f,
        problem.grad,
        problem.x0,
        hessp=problem.hessp,
        subproblem="cg",
        callback=theirs.append,
    )
    ours, state = torch_run(fun, problem.x0)
    assert result.success and state["status"] == 0
    assert state["iteration"] == result.nit and state["nhessp"] == result.nhessp
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-9)


# --- Newton: the same sequence as the NumPy code -----------------------------------------------


@pytest.mark.parametrize(
    ("name", "on_indefinite", "x0"),
    [
        ("rosenbrock2", "fail", None),
        ("rosenbrock10", "gradient", [0.9, 0.8] * 5),
        ("beale", "solve", None),
        ("beale", "fail", None),
        ("beale", "gradient", [2.0, 0.2]),
    ],
)
def test_newton_takes_the_steps_of_the_generated_numpy_code(name, on_indefinite, x0):
    numpy_newton = pytest.importorskip("symopt_numpy.newton")
    problem, fun = PROBLEMS[name]
    x0 = problem.x0 if x0 is None else np.array(x0)
    theirs_points = []
    theirs = numpy_newton.minimize(
        problem.f,
        problem.grad,
        x0,
        problem.hess,
        on_indefinite=on_indefinite,
        max_iter=100,
        callback=theirs_points.append,
    )
    w = torch.nn.Parameter(torch.tensor(x0, dtype=torch.float64))
    opt = torch_newton.Newton([w], on_indefinite=on_indefinite)
    ours_points = []
    for _ in range(100):
        try:
            opt.step(lambda: fun(w))
        except torch_newton.NotPositiveDefiniteError:
            break
        if opt.state[w]["status"] != 1:
            break
        ours_points.append(w.detach().numpy().copy())
    assert len(ours_points) == len(theirs_points) == theirs.nit
    for a, b in zip(ours_points, theirs_points, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9)
    result = torch_newton.minimize(fun, torch.tensor(x0), on_indefinite=on_indefinite, max_iter=100)
    assert (result.status, result.nit, result.n_fallback) == (
        theirs.status,
        theirs.nit,
        theirs.n_fallback,
    )


# --- what the target renders -------------------------------------------------------------------


def test_files_are_one_module_and_one_test_per_spec_and_match_the_generated_folder():
    specs = list(second_order_specs().values())
    rendered = files(specs)
    assert sorted(f.path for f in rendered) == sorted(
        path
        for s in specs
        for path in (f"torch/{PACKAGE}/{s.name}.py", f"torch/tests/test_{s.name}.py")
    )
    assert [f.text for f in files(specs)] == [f.text for f in rendered]  # deterministic
    for f in rendered:
        assert (ROOT / "generated" / f.path).read_text(encoding="utf-8") == f.text, f.path
        body = f.text.split("\n", 4)[-1]
        assert max(len(line) for line in body.splitlines()) <= 100, f.path


def test_the_modules_run_the_derived_pieces():
    printer = MatrixCodePrinter("torch", ", dtype=H.dtype, device=H.device")
    for spec, module in ((TRUST, "trust_region"), (NEWTON, "newton")):
        code = python_code(spec, printer)
        text = (ROOT / "generated" / "torch" / PACKAGE / f"{module}.py").read_text()
        assert f"    return {code['predicted']}\n" in text
    newton_code = python_code(NEWTON, printer)
    assert f"    return {newton_code['matrix']}, {newton_code['rhs']}\n" in text


def test_a_renamed_spec_goes_through_the_templates_of_its_rule(tmp_path):
    """The templates follow the control rule, not the name: a copy of each built-in under
    another name and class name renders, imports and runs."""
    quadratic_a = torch.tensor([[3.0, 1.0], [1.0, 2.0]], dtype=torch.float64)

    def quadratic(x):
        return 0.5 * x @ (quadratic_a @ x) - x.sum()

    for spec, cls, expected_nit in ((NEWTON, "Hessian", 1), (TRUST, "Region", None)):
        text = spec.text.replace(f'name = "{spec.name}"', f'name = "my_{spec.name}"', 1)
        text = text.replace(f'class_name = "{spec.class_name}"', f'class_name = "{cls}"', 1)
        renamed = load_spec_text(text, f"my_{spec.name}.toml")
        out = {f.path: f.text for f in files([renamed])}
        path = tmp_path / f"my_{spec.name}.py"
        path.write_text(out[f"torch/{PACKAGE}/my_{spec.name}.py"], encoding="utf-8")
        assert f"torch/tests/test_my_{spec.name}.py" in out
        loaded = importlib.util.spec_from_file_location(f"my_{spec.name}", path)
        module = importlib.util.module_from_spec(loaded)
        sys.modules[loaded.name] = module
        loaded.loader.exec_module(module)
        assert hasattr(module, cls)
        result = module.minimize(quadratic, torch.zeros(2, dtype=torch.float64))
        assert result.success, result.message
        expected = torch.linalg.solve(quadratic_a, torch.ones(2, dtype=torch.float64))
        torch.testing.assert_close(result.x, expected)
        if expected_nit is not None:
            assert result.nit == expected_nit


def test_a_resumed_trust_region_run_matches_an_uninterrupted_one_on_a_model():
    """state_dict through torch.save and torch.load, mid-training on a small model."""
    import io

    torch.manual_seed(0)
    X = torch.randn(64, 3, dtype=torch.float64)
    y = torch.sin(X.sum(dim=1, keepdim=True))
    model = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    model = model.double()
    opt = torch_tr.TrustRegion(model.parameters(), max_cg_iter=10)

    def closure(m=model):
        return torch.nn.functional.mse_loss(m(X), y)

    for _ in range(5):
        opt.step(closure)
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buffer)
    for _ in range(5):
        opt.step(closure)
    buffer.seek(0)
    saved = torch.load(buffer)
    again = copy.deepcopy(model)
    again.load_state_dict(saved["model"])
    opt2 = torch_tr.TrustRegion(again.parameters())
    opt2.load_state_dict(saved["opt"])
    for _ in range(5):
        opt2.step(lambda: closure(again))
    for p, q in zip(model.parameters(), again.parameters(), strict=True):
        assert torch.equal(p, q)

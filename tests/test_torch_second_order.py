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
from symopt.backends.torch import runtime_files
from symopt.backends.torch.second_order import PACKAGE, files
from symopt.files.format import format_python
from symopt.moons import make_moons
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


def torch_run(fun, x0, subproblem: str, steps_until_done: int = 10_000):
    """TrustRegion.step on x0 with the spec's defaults: the accepted iterates and the state."""
    w = torch.nn.Parameter(torch.tensor(x0, dtype=torch.float64))
    opt = torch_tr.TrustRegion([w], subproblem=subproblem)
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


@pytest.mark.parametrize("subproblem", ["exact", "cg"])
@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_trust_region_takes_the_steps_of_the_generated_numpy_code(name, subproblem):
    """The optimizer's step(closure) on a parameter (tests/test_trust_region_torch.py compares
    minimize on every problem, and the non-finite cases)."""
    numpy_tr = pytest.importorskip("symopt_numpy.trust_region")
    problem, fun = PROBLEMS[name]
    theirs = []
    result = numpy_tr.minimize(
        problem.f,
        problem.grad,
        problem.x0,
        problem.hess,
        problem.hessp,
        subproblem=subproblem,
        callback=theirs.append,
    )
    ours, state = torch_run(fun, problem.x0, subproblem)
    assert result.success and state["status"] == 0
    assert state["iteration"] == result.nit and state["nhessp"] == result.nhessp
    assert state["nfev"] == result.nfev and state["ngev"] == result.ngev
    assert state["nhev"] == (result.nhev - 1 if subproblem == "exact" else 0)  # no final check
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
    rendered = format_python(files(specs))
    assert sorted(f.path for f in rendered) == sorted(
        path
        for s in specs
        for path in (f"torch/{PACKAGE}/{s.name}.py", f"torch/tests/test_{s.name}.py")
    )
    assert [f.text for f in format_python(files(specs))] == [f.text for f in rendered]
    for f in rendered:
        assert (ROOT / "generated" / f.path).read_text(encoding="utf-8") == f.text, f.path
        body = f.text.split("\n", 4)[-1]
        assert max(len(line) for line in body.splitlines()) <= 100, f.path


def test_the_modules_run_the_derived_pieces():
    printer = MatrixCodePrinter("torch", ", dtype=H.dtype, device=H.device")

    def code(text: str) -> str:  # as ruff formats it
        return "".join(text.split()).replace(",)", ")")

    for spec, module in ((TRUST, "trust_region"), (NEWTON, "newton")):
        pieces = python_code(spec, printer)
        text = code((ROOT / "generated" / "torch" / PACKAGE / f"{module}.py").read_text())
        assert f"return{code(pieces['predicted'])}def" in text
    newton_code = python_code(NEWTON, printer)
    assert f"return{code(newton_code['matrix'])},{code(newton_code['rhs'])}def" in text


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
        out = {f.path: f.text for f in files([renamed]) + runtime_files()}
        package = tmp_path / f"renamed_{spec.name}"
        package.mkdir()
        (package / "__init__.py").write_text("")
        for path, text in out.items():
            if path.startswith(f"torch/{PACKAGE}/"):
                (package / path.rsplit("/", 1)[1]).write_text(text, encoding="utf-8")
        assert f"torch/tests/test_my_{spec.name}.py" in out
        sys.path.insert(0, str(tmp_path))
        try:
            module = importlib.import_module(f"renamed_{spec.name}.my_{spec.name}")
        finally:
            sys.path.remove(str(tmp_path))
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


# --- the trust-region runtime (_trust_region.py), once for every trust-region spec ---------------

from symopt_torch.trust_region import (  # noqa: E402
    DEFAULTS,
    TrustRegion,
    cg_tolerance,
    hessian_vector_product,
    loss_and_gradient,
    minimize,
    predicted_reduction,
    steihaug_step,
)

#: name -> (function, start, global minimiser, most iterations allowed)
TR_PROBLEMS = {
    "rosenbrock2": (rosenbrock, [-1.2, 1.0], [1.0] * 2, 60),
    "rosenbrock10": (rosenbrock, [-1.2, 1.0] * 5, [1.0] * 10, 100),
    "beale": (beale, [1.0, 1.0], [3.0, 0.5], 40),
}


def tensor(values, dtype=torch.float64, device="cpu"):
    return torch.tensor(values, dtype=dtype, device=device)


def dense_hessian(fun, x):
    return torch.autograd.functional.hessian(fun, x.detach())


def two_moons(dtype, n=40):
    X, y = make_moons(n, noise=0.2, seed=0)
    return torch.tensor(X, dtype=dtype), torch.tensor(y, dtype=dtype)


def mlp(dtype, hidden=4):
    return torch.nn.Sequential(
        torch.nn.Linear(2, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, 1)
    ).to(dtype)


def bce(model, X, y):
    return torch.nn.functional.binary_cross_entropy_with_logits(model(X)[:, 0], y)


@pytest.mark.parametrize("name", sorted(TR_PROBLEMS))
def test_hessian_vector_products_equal_the_dense_hessian_times_the_vector(name):
    fun, x0, _, _ = TR_PROBLEMS[name]
    gen = torch.Generator().manual_seed(3)
    for x in (tensor(x0), tensor(x0) + torch.randn(len(x0), generator=gen, dtype=torch.float64)):
        w = x.clone().requires_grad_(True)
        _, g = loss_and_gradient(lambda w=w: fun(w), [w])
        hvp = hessian_vector_product(g, [w])
        H = dense_hessian(fun, x)
        for _ in range(3):
            v = torch.randn(len(x0), generator=gen, dtype=torch.float64)
            expected = H @ v
            scale = float(H.abs().max() * v.abs().max())
            assert float((hvp(v) - expected).abs().max()) <= 1e-13 * scale


def test_hessian_vector_products_through_a_model_equal_the_dense_hessian():
    torch.manual_seed(0)
    model = mlp(torch.float64, hidden=4)
    X, y = two_moons(torch.float64, n=40)
    params = list(model.parameters())
    sizes = [p.numel() for p in params]
    flat = torch.cat([p.detach().reshape(-1) for p in params])

    def loss_of(v):
        parts = dict(zip([n for n, _ in model.named_parameters()], v.split(sizes), strict=True))
        shaped = {k: t.view_as(p) for (k, t), p in zip(parts.items(), params, strict=True)}
        logits = torch.func.functional_call(model, shaped, (X,))[:, 0]
        return torch.nn.functional.binary_cross_entropy_with_logits(logits, y)

    _, g = loss_and_gradient(lambda: bce(model, X, y), params)
    hvp = hessian_vector_product(g, params)
    H = torch.autograd.functional.hessian(loss_of, flat)
    v = torch.randn(flat.numel(), dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    assert float((hvp(v) - H @ v).abs().max()) <= 1e-12 * float(H.abs().max() * v.abs().max())


@pytest.mark.parametrize("radius", [0.05, 0.5, 5.0, 1000.0])
@pytest.mark.parametrize("name", sorted(TR_PROBLEMS))
def test_each_cg_iterate_decreases_the_model_and_stays_inside_the_radius(name, radius):
    """CG stopped after k = 1, 2, ... iterations returns its k-th iterate (or its boundary
    step): the model decrease m(0) - m(d_k) grows with k and ||d_k|| <= r; H d is exact."""
    fun, x0, _, _ = TR_PROBLEMS[name]
    x = tensor(x0)
    w = x.clone().requires_grad_(True)
    _, g_graph = loss_and_gradient(lambda: fun(w), [w])
    g = g_graph.detach()
    H = dense_hessian(fun, x)
    hvp = hessian_vector_product(g_graph, [w])
    previous = 0.0
    for k in range(1, 2 * len(x0) + 2):
        step = steihaug_step(g, hvp, radius, 0.0, max_iter=k)
        assert step.inner <= k
        norm = float(step.d.norm())
        assert norm <= radius * (1 + 1e-12)
        if step.on_boundary:
            assert norm == pytest.approx(radius, rel=1e-12)
        torch.testing.assert_close(step.hd, H @ step.d, rtol=1e-10, atol=1e-10 * float(g.norm()))
        decrease = float(predicted_reduction(g, step.d, H @ step.d))
        assert decrease >= previous - 1e-12 * abs(previous) and decrease > 0.0
        previous = decrease
        if step.inner < k:  # stopped on the boundary (or converged): no more iterates
            break


def test_the_first_step_at_beales_start_meets_negative_curvature():
    """H is indefinite at (1, 1): the step goes to the boundary of the trust region."""
    x = tensor([1.0, 1.0])
    assert float(torch.linalg.eigvalsh(dense_hessian(beale, x))[0]) < 0
    w = x.clone().requires_grad_(True)
    _, g = loss_and_gradient(lambda: beale(w), [w])
    step = steihaug_step(g.detach(), hessian_vector_product(g, [w]), 1.0, 0.0, max_iter=10)
    assert step.on_boundary and float(step.d.norm()) == pytest.approx(1.0, rel=1e-12)


def test_cg_tolerance_is_relative_to_the_first_gradient():
    assert cg_tolerance(4.0, 4.0, 0.5) == 2.0  # min(0.5, 1) ||g||
    assert cg_tolerance(1e-4, 1.0, 0.5) == pytest.approx(1e-6)  # sqrt(||g|| / ||g0||) ||g||
    assert cg_tolerance(1e-4 * 7, 7.0, 0.5) == pytest.approx(7e-6)  # scale invariant


def test_rejected_steps_restore_the_parameters_exactly_and_accepted_ones_decrease_the_loss():
    fun, x0, _, _ = TR_PROBLEMS["rosenbrock2"]
    w = torch.nn.Parameter(tensor(x0))
    opt = TrustRegion([w])
    rejected = 0
    for _ in range(40):
        before = w.detach().clone()
        accepted = opt.state[w].get("accepted", 0)
        loss = float(opt.step(lambda: fun(w)))
        state = opt.state[w]
        if state["status"] == 0:
            break
        if state["accepted"] == accepted:
            rejected += 1
            assert torch.equal(w.detach(), before)
            assert state["rho"] <= DEFAULTS["eta"]
        else:
            assert state["rho"] > DEFAULTS["eta"]
            assert float(fun(w.detach())) < loss
    assert rejected > 0


@pytest.mark.parametrize("subproblem", ["exact", "cg"])
def test_state_dict_round_trip_continues_identically(subproblem):
    fun, x0, _, _ = TR_PROBLEMS["rosenbrock10"]
    w = torch.nn.Parameter(tensor(x0))
    opt = TrustRegion([w], subproblem=subproblem, max_cg_iter=6)
    for _ in range(9):
        opt.step(lambda: fun(w))
    assert opt.radius != DEFAULTS["radius0"]
    saved_w, saved = w.detach().clone(), copy.deepcopy(opt.state_dict())
    ours = []
    for _ in range(12):
        opt.step(lambda: fun(w))
        ours.append(w.detach().clone())
    w2 = torch.nn.Parameter(saved_w.clone())
    opt2 = TrustRegion([w2])
    opt2.load_state_dict(saved)
    assert opt2.param_groups[0]["max_cg_iter"] == 6
    assert opt2.param_groups[0]["subproblem"] == subproblem
    for expected in ours:
        opt2.step(lambda: fun(w2))
        assert torch.equal(w2.detach(), expected)
    ours_state, theirs = dict(opt.state[w]), dict(opt2.state[w2])
    assert torch.equal(theirs.pop("grad"), ours_state.pop("grad"))
    # the resumed optimizer rebuilt the graph of g at the loaded point: one closure call more
    ours_state["nfev"] += 1
    ours_state["ngev"] += 1
    assert theirs == ours_state


# --- a real model ------------------------------------------------------------------------------


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cuda_takes_the_steps_cpu_takes(dtype):
    fun, x0, _, _ = TR_PROBLEMS["rosenbrock10"]
    on_gpu = minimize(fun, tensor(x0, dtype, "cuda"), gtol=1e-4)
    on_cpu = minimize(fun, tensor(x0, dtype), gtol=1e-4)
    assert on_gpu.success and on_gpu.x.device.type == "cuda"
    if dtype == torch.float64:
        assert on_gpu.nit == on_cpu.nit
        torch.testing.assert_close(on_gpu.x.cpu(), on_cpu.x, rtol=1e-9, atol=1e-9)


def test_misuse_is_a_clear_error():
    w = torch.nn.Parameter(tensor([1.0, 2.0]))
    v = torch.nn.Parameter(tensor([3.0]))
    with pytest.raises(ValueError, match="one parameter group"):
        TrustRegion([{"params": [w]}, {"params": [v]}])
    with pytest.raises(TypeError, match="one dtype and device"):
        TrustRegion([w, torch.nn.Parameter(torch.ones(1, dtype=torch.float32))])
    with pytest.raises(ValueError, match="eta"):
        TrustRegion([w], eta=1.0)
    with pytest.raises(ValueError, match="max_cg_iter"):
        TrustRegion([w], max_cg_iter=0)
    opt = TrustRegion([w])
    with pytest.raises(ValueError, match="closure"):
        opt.step()

    def calls_backward():
        loss = rosenbrock(w)
        loss.backward()
        return loss

    with pytest.raises(RuntimeError, match="backward"):
        opt.step(calls_backward)
    with pytest.raises(FloatingPointError, match="non-finite f or gradient at iteration 0"):
        opt.step(lambda: rosenbrock(w) * float("nan"))
    with pytest.raises(ValueError, match="unknown subproblem 'dense'"):
        TrustRegion([w], subproblem="dense")


# --- the Newton runtime (_newton.py), once for every Newton spec ------------------------------

from symopt_torch.newton import (  # noqa: E402
    DEFAULT_ON_INDEFINITE,
    MAX_PARAMS,
    Newton,
)
from symopt_torch.newton import dense_hessian as runtime_dense_hessian  # noqa: E402
from symopt_torch.newton import minimize as newton_minimize  # noqa: E402


@pytest.mark.parametrize(
    ("fun", "x"),
    [(rosenbrock, [-1.2, 1.0, -1.2, 1.0, -1.2]), (beale, [1.0, 1.0]), (beale, [0.3, -0.7])],
)
def test_the_dense_hessian_is_autograds(fun, x):
    x = tensor(x)
    w = x.clone().requires_grad_(True)
    _, g = loss_and_gradient(lambda: fun(w), [w])
    expected = torch.autograd.functional.hessian(fun, x)
    torch.testing.assert_close(runtime_dense_hessian(g, [w]), expected, rtol=1e-13, atol=1e-13)


def test_the_dense_hessian_of_a_model_spans_all_its_parameters():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
    model = model.double()
    X = torch.randn(20, 3, dtype=torch.float64)
    params = list(model.parameters())
    _, g = loss_and_gradient(lambda: model(X).pow(2).mean(), params)
    H = runtime_dense_hessian(g, params)
    n = sum(p.numel() for p in params)
    assert H.shape == (n, n) and torch.equal(H, H.T)
    v = torch.randn(n, dtype=torch.float64)
    hv = torch.autograd.grad(g, params, v, retain_graph=True)
    torch.testing.assert_close(H @ v, torch.cat([t.reshape(-1) for t in hv]))


def test_too_many_parameters_are_refused():
    big = torch.nn.Linear(50, 40)  # 2040 parameters
    assert sum(p.numel() for p in big.parameters()) > MAX_PARAMS
    with pytest.raises(ValueError, match=f"max_params = {MAX_PARAMS}"):
        Newton(big.parameters())
    Newton(big.parameters(), max_params=2100)


def test_newton_state_dict_round_trip_continues_identically():
    w = torch.nn.Parameter(tensor([-1.2, 1.0]))
    opt = Newton([w])
    for _ in range(2):
        opt.step(lambda: rosenbrock(w))
    saved_w, saved = w.detach().clone(), copy.deepcopy(opt.state_dict())
    ours = []
    for _ in range(4):
        opt.step(lambda: rosenbrock(w))
        ours.append(w.detach().clone())
    w2 = torch.nn.Parameter(saved_w.clone())
    opt2 = Newton([w2], on_indefinite="gradient")
    opt2.load_state_dict(saved)
    assert opt2.param_groups[0]["on_indefinite"] == DEFAULT_ON_INDEFINITE
    for expected in ours:
        opt2.step(lambda: rosenbrock(w2))
        assert torch.equal(w2.detach(), expected)
    assert opt2.state[w2] == opt.state[w]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_newton_on_cuda_takes_the_steps_cpu_takes():
    on_gpu = newton_minimize(rosenbrock, tensor([-1.2, 1.0], device="cuda"))
    on_cpu = newton_minimize(rosenbrock, tensor([-1.2, 1.0]))
    assert on_gpu.success and on_gpu.nit == on_cpu.nit and on_gpu.x.device.type == "cuda"
    torch.testing.assert_close(on_gpu.x.cpu(), on_cpu.x)


def test_newton_misuse_is_a_clear_error():
    w = torch.nn.Parameter(tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match="one parameter group"):
        Newton([{"params": [w]}, {"params": [torch.nn.Parameter(tensor([1.0]))]}])
    with pytest.raises(ValueError, match="on_indefinite"):
        Newton([w], on_indefinite="ignore")
    opt = Newton([w])
    with pytest.raises(ValueError, match="closure"):
        opt.step()

    def calls_backward():
        loss = rosenbrock(w)
        loss.backward()
        return loss

    with pytest.raises(RuntimeError, match="backward"):
        opt.step(calls_backward)

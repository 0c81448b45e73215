"""The C backend's static runtime, tested once for every spec: the class mechanics of
symopt_c._optimizer (threads, state_dict, replaced arrays, argument checks) over the kernel
classes of Adam's and SGD's default settings (``symopt_c._adam.Adam``, ``_sgd.SGD``: the spec's
names, state ``m`` and ``v``; ``symopt_c.Adam``, with torch.optim's arguments, runs them and is
tested in test_c_api.py), the loader's constants, that the runtime ships verbatim, and the dense
solvers of src/runtime.c (Cholesky, More-Sorensen with the hard case, Steihaug-CG, the
trust-region driver) against eigendecompositions, the NumPy target and scipy.

The per-spec tests (generated/c/tests/test_NAME.py) check what each spec derives: its update
against the reference stepper, edge gradients, its hyperparameter domains, its sanitizer run."""

import math
import sys
from pathlib import Path

import numpy as np
import pytest

from symopt.backends.c import STATIC, STATIC_DIR, static_files
from symopt.backends.c.elementwise import CFLAGS, PARALLEL_MIN
from symopt.reference import ReferenceStepper
from symopt.resources import elementwise_specs

ROOT = Path(__file__).resolve().parents[1]
GENERATED = ROOT / "generated" / "c"
sys.path.insert(0, str(GENERATED))
sys.path.insert(0, str(GENERATED / "tests"))

import symopt_c  # noqa: E402
from _c_support import (  # noqa: E402
    cases,
    global_solution,
    instance,
    model,
    numpy_version,
    symmetric,
)
from symopt_c import _lib  # noqa: E402
from symopt_c._adam import Adam, adam_step  # noqa: E402
from symopt_c._api import ApiOptimizer  # noqa: E402
from symopt_c._optimizer import Optimizer  # noqa: E402
from symopt_c._sgd import SGD  # noqa: E402
from symopt_c.diag_newton import DiagNewton, diag_newton_step  # noqa: E402
from symopt_c.trust_region import (  # noqa: E402
    EXACT_K_EASY,
    EXACT_K_HARD,
    EXACT_MAX_ITER,
    cg_step,
    cholesky,
    is_positive_semidefinite,
    minimize,
    trust_region_step,
)

from symopt.problems import beale_problem, rosenbrock  # noqa: E402

DTYPES = [np.float64, np.float32]
#: Tensor sizes large enough for the kernels to split them between threads.
LARGE = (_lib.PARALLEL_MIN + 4097, 3, _lib.PARALLEL_MIN // 2 + 1)


def snapshot(opt):
    return [a.copy() for p, s in zip(opt.params, opt.state, strict=True) for a in (p, *s.values())]


def test_static_files_ship_verbatim_and_the_loader_has_the_backend_constants():
    for (source, path, _), file in zip(STATIC, static_files(), strict=True):
        assert file.path == path
        assert file.text.endswith((STATIC_DIR / source).read_text())
        assert (ROOT / "generated" / path).read_text() == file.text
    assert _lib.CFLAGS == CFLAGS and _lib.PARALLEL_MIN == PARALLEL_MIN


@pytest.fixture
def threads():
    """Lets a test change the thread count; restores it afterwards."""
    before = _lib.get_num_threads()
    yield _lib.set_num_threads
    _lib.set_num_threads(before)


@pytest.mark.parametrize("dtype", DTYPES)
def test_threads_give_bit_identical_results(dtype, threads):
    rng = np.random.default_rng(9)
    ws = [rng.standard_normal(n).astype(dtype) for n in LARGE]
    grads = [[rng.standard_normal(w.shape).astype(dtype) for w in ws] for _ in range(4)]
    runs = []
    for count in (1, 2, 3):
        threads(count)
        opt = Adam([w.copy() for w in ws])
        for gs in grads:
            opt.step(gs)
        runs.append(snapshot(opt))
    for run in runs[1:]:
        for a, b in zip(runs[0], run, strict=True):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", DTYPES)
def test_functional_step_equals_class_on_large_tensors(dtype):
    """The single-tensor entry point equals the multi-tensor one, bit for bit, also where the
    class's step runs in parallel."""
    rng = np.random.default_rng(4)
    ws = [rng.standard_normal(n).astype(dtype) for n in (1000, *LARGE)]
    opt = Adam([w.copy() for w in ws])
    states = [{name: s[name].copy() for name in ("m", "v")} for s in opt.state]
    for k in range(10):
        gs = [rng.standard_normal(w.shape).astype(dtype) for w in ws]
        opt.step(gs)
        for w, g, state in zip(ws, gs, states, strict=True):
            adam_step(w, g, state["m"], state["v"], 1 + k)
    for w, p, state, own in zip(ws, opt.params, states, opt.state, strict=True):
        np.testing.assert_array_equal(w, p)
        for name in state:
            np.testing.assert_array_equal(state[name], own[name])


@pytest.mark.parametrize("cls", [Adam, SGD])
def test_state_dict_resume_is_identical(cls):
    rng = np.random.default_rng(5)
    w = rng.standard_normal((5, 7))
    grads = [rng.standard_normal((5, 7)) for _ in range(40)]
    opt = cls([w.copy()])
    for g in grads[:20]:
        opt.step([g])
    saved = opt.state_dict()
    resumed = cls([opt.params[0].copy()])
    for g in grads[20:]:
        opt.step([g])
    resumed.load_state_dict(saved)
    for g in grads[20:]:
        resumed.step([g])
    for a, b in zip(snapshot(resumed), snapshot(opt), strict=True):
        np.testing.assert_array_equal(a, b)
    assert saved["steps"] == 20, "state_dict must be a snapshot, not a live view"
    assert list(saved["hyper"]) == list(cls.hyperparameters)


def test_bad_state_dicts_are_rejected():
    opt = Adam([np.zeros(3)])
    good = opt.state_dict()
    with pytest.raises(ValueError, match="parameter states"):
        opt.load_state_dict({**good, "state": []})
    with pytest.raises(ValueError, match="keys"):
        opt.load_state_dict({**good, "state": [{"m": np.zeros(3)}]})
    with pytest.raises(ValueError, match="shape"):
        opt.load_state_dict({**good, "state": [{"m": np.zeros(4), "v": np.zeros(3)}]})
    with pytest.raises(ValueError, match="unknown hyperparameter"):
        opt.load_state_dict({**good, "hyper": {"momentum": 0.5}})


def test_replaced_arrays_are_picked_up():
    """Swapping a parameter or state array for a new object takes effect at the next step."""
    rng = np.random.default_rng(11)
    w = rng.standard_normal(64)
    g = rng.standard_normal(64)
    opt = Adam([w.copy()])
    twin = Adam([w.copy()])
    opt.step([g])
    twin.step([g])
    opt.params[0] = opt.params[0].copy()
    opt.state[0] = {name: value.copy() for name, value in opt.state[0].items()}
    for _ in range(3):
        opt.step([g])
        twin.step([g])
    for a, b in zip(snapshot(opt), snapshot(twin), strict=True):
        np.testing.assert_array_equal(a, b)


def test_hyperparameters_set_between_steps_are_used():
    spec = elementwise_specs()["adam"]
    rng = np.random.default_rng(6)
    w = rng.standard_normal(50)
    opt = Adam([w.copy()])
    ref = ReferenceStepper(spec, [w])
    for k in range(20):
        opt.lr = 1e-3 * (1.0 + 0.5 * np.cos(k))
        opt.beta1 = 0.9 - 0.01 * k
        g = rng.standard_normal(50)
        opt.step([g])
        ref.step([g], lr=opt.lr, beta1=opt.beta1)
    np.testing.assert_allclose(opt.params[0], ref.params[0], rtol=1e-12, atol=1e-14)
    opt.eps = -1.0
    with pytest.raises(ValueError, match="eps"):
        opt.step([np.zeros(50)])


def test_mismatched_gradient_is_rejected():
    opt = Adam([np.zeros(3)])
    with pytest.raises(ValueError, match="grads"):
        opt.step([np.zeros(4)])
    with pytest.raises(ValueError, match="grads"):
        opt.step([np.zeros(3, dtype=np.float32)])
    with pytest.raises(ValueError, match="C-contiguous"):
        opt.step([np.zeros(6)[::2]])
    with pytest.raises(ValueError, match="expected 1 gradient"):
        opt.step([])
    with pytest.raises(TypeError, match="float32 or float64"):
        Adam([np.zeros(3, dtype=np.int64)])
    with pytest.raises(ValueError, match="writeable"):
        frozen = np.zeros(3)
        frozen.flags.writeable = False
        adam_step(frozen, np.zeros(3), np.zeros(3), np.zeros(3), 1)


def test_overlapping_written_arrays_are_rejected():
    """Each parameter and state array gets its own update: they must not share memory. (A
    gradient may share memory with them: test_c_safety.py.)"""
    w = np.zeros(8)
    with pytest.raises(ValueError, match="share memory"):
        Adam([w[:5], w[3:]]).step([np.zeros(5), np.zeros(5)])
    with pytest.raises(ValueError, match="share memory"):
        adam_step(w, np.zeros(8), w, np.zeros(8), 1)
    with pytest.raises(ValueError, match="share memory"):
        SGD([w, w]).step([np.zeros(8), np.zeros(8)])


def test_every_optimizer_is_a_thin_binding_of_the_shared_class():
    """Each plain spec's class, and each kernel of a class with torch.optim's arguments (one per
    variant: ``_adam__amsgrad.Adam`` calls ``symopt_adam__amsgrad_step_*``)."""
    for name, cls in symopt_c.OPTIMIZERS.items():
        family = issubclass(cls, ApiOptimizer)  # its kernels: a setting of its flags -> class
        kernels = list(dict.fromkeys(cls.kernels.values())) if family else [cls]
        for kernel in kernels:
            module = kernel.__module__.rpartition(".")[2]
            assert issubclass(kernel, Optimizer)
            assert kernel.NAME == module.lstrip("_") and kernel.NAME.split("__")[0] == name
            assert kernel.hyperparameters == tuple(kernel.DEFAULTS)
            assert kernel.check_hyper(*map(float, kernel.DEFAULTS.values())) is None


# The dense solvers of src/runtime.c, once, through the generated trust-region module (the
# per-spec tests check the derived system, the predicted decrease and minimize of each spec).

#: The exact step at its default tolerances gets at least this fraction of the optimal decrease
#: of the model: 1 - K_HARD, More & Sorensen's bound for the hard case (the boundary steps may end
#: up to K_EASY r outside the region, so more is fine). Measured worst over 4000 random
#: instances of each kind: 0.89.
DECREASE = 1 - EXACT_K_HARD


@pytest.mark.parametrize("seed", range(20))
def test_cholesky_reports_the_first_failing_column(seed):
    """Column k fails first when the leading (k + 1) x (k + 1) block of H + lam I is the first
    that is not positive definite (eigenvalues from numpy.linalg.eigvalsh)."""
    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(1, 9))
    H = symmetric(rng, n, rng.uniform(-2.0, 4.0, n))[0]
    lam = float(rng.uniform(0.0, 0.5))
    damped = H + lam * np.eye(n)
    minors = [np.linalg.eigvalsh(damped[: k + 1, : k + 1])[0] for k in range(n)]
    expected = next((k for k, m in enumerate(minors) if m <= 0.0), -1)
    _, k, pivot = cholesky(H, lam)
    assert k == expected
    assert (pivot <= 0.0) if k >= 0 else pivot == 0.0


def test_positive_semidefinite_test():
    rng = np.random.default_rng(5)
    a = rng.standard_normal((6, 5))
    assert is_positive_semidefinite(a @ a.T)  # singular, positive semidefinite
    assert not is_positive_semidefinite(symmetric(rng, 6, [-1e-3, 1, 2, 3, 4, 5])[0])
    assert is_positive_semidefinite(np.zeros((3, 3)))


@pytest.mark.parametrize(("kind", "seed", "n"), cases())
def test_exact_step_satisfies_the_optimality_conditions(kind, seed, n):
    H, g, radius = instance(kind, seed, n)
    step = trust_region_step(H, g, radius)
    d, lam = step.d, step.lam
    scale = max(1.0, float(np.abs(np.linalg.eigvalsh(H)).max()))
    assert step.converged
    assert lam >= 0.0
    # H + lam I positive semidefinite
    assert np.linalg.eigvalsh(H)[0] + lam >= -1e-9 * scale
    if not step.hard_case:
        # (H + lam I) d = -g, to rounding
        residual = np.linalg.norm(H @ d + lam * d + g)
        assert residual <= 1e-10 * (scale * np.linalg.norm(d) + np.linalg.norm(g) + lam)
    # lam (r - ||d||) = 0, up to the boundary tolerance K_EASY
    d_norm = float(np.linalg.norm(d))
    if lam == 0.0 and not step.on_boundary:
        assert d_norm <= radius * (1 + 1e-12)
    else:
        assert abs(d_norm - radius) <= EXACT_K_EASY * radius * (1 + 1e-12)
    # the model's decrease: the predicted one, and close to the optimum
    assert step.predicted == pytest.approx(-model(H, g, d), rel=1e-12, abs=1e-300)
    lam_star, d_star = global_solution(H, g, radius)
    best = -model(H, g, d_star)
    assert step.predicted >= DECREASE * best - 1e-12 * scale * radius**2
    assert step.lam_lb <= lam_star * (1 + 1e-9) + 1e-12


@pytest.mark.parametrize(("kind", "seed", "n"), cases())
def test_exact_step_at_tight_tolerances_is_the_global_minimiser(kind, seed, n):
    H, g, radius = instance(kind, seed, n)
    lam_star, d_star = global_solution(H, g, radius)
    step = trust_region_step(H, g, radius, k_easy=1e-13, k_hard=1e-13, max_iter=300)
    scale = max(1.0, float(np.abs(np.linalg.eigvalsh(H)).max()))
    best = -model(H, g, d_star)
    # the decrease is optimal; lam too, except where the lowest eigenvalue makes it ill-posed
    assert step.predicted >= best * (1 - 1e-8) - 1e-12 * scale * radius**2
    assert np.linalg.norm(step.d) <= radius * (1 + 1e-12)
    if kind in ("positive definite", "indefinite"):
        assert step.converged
        assert abs(step.lam - lam_star) <= 1e-7 * (scale + lam_star)
        assert np.linalg.norm(step.d - d_star) <= 1e-6 * (1 + np.linalg.norm(d_star))


@pytest.mark.parametrize(("kind", "seed", "n"), cases())
def test_exact_step_matches_the_numpy_version(kind, seed, n):
    """With the default budget of factorisations, and with budgets of 1 and 2 (the step is then
    the better of the last iterate and the Cauchy point; for g = 0 the NumPy version's Cauchy
    length divides by ||g|| = 0 and raises, so those only with the default budget)."""
    reference = numpy_version("trust_region").exact_step
    H, g, radius = instance(kind, seed, n)
    budgets = ((0.0, EXACT_MAX_ITER), (0.5, EXACT_MAX_ITER), (0.0, 1), (0.5, 2))
    for hint, budget in budgets[:2] if kind == "zero gradient" else budgets:
        step = trust_region_step(H, g, radius, lam_lb_hint=hint, max_iter=budget)
        other = reference(g, H, radius, lam_lb_hint=hint, max_iter=budget)
        scale = 1 + np.linalg.norm(other.d)
        assert np.linalg.norm(step.d - other.d) <= 1e-9 * scale
        assert np.linalg.norm(step.hd - other.hd) <= 1e-9 * (1 + np.linalg.norm(other.hd))
        assert step.lam == pytest.approx(other.lam, rel=1e-9, abs=1e-12)
        assert step.lam_lb == pytest.approx(other.lam_lb, rel=1e-9, abs=1e-12)
        assert (step.on_boundary, step.inner) == (other.on_boundary, other.inner)


def cauchy_decrease(H, g, radius):
    """m(0) - m(-t g) at the best t in [0, r / ||g||] (the Cauchy point), from the quadratic
    q(t) = -t g.g + t^2 g.H g / 2."""
    gg, ghg = float(g @ g), float(g @ H @ g)
    t_max = radius / math.sqrt(gg)
    t = min(gg / ghg, t_max) if ghg > 0 else t_max
    return t * gg - 0.5 * t * t * ghg


@pytest.mark.parametrize(("kind", "seed", "n"), [c for c in cases() if c[0] != "zero gradient"])
def test_exact_step_out_of_factorisations_is_no_worse_than_the_cauchy_point(kind, seed, n):
    """The condition of the trust region's convergence theory, whatever the budget."""
    H, g, radius = instance(kind, seed, n)
    for budget in (1, 2, 3):
        step = trust_region_step(H, g, radius, max_iter=budget)
        assert step.inner <= budget
        assert np.linalg.norm(step.d) <= radius * (1 + EXACT_K_EASY)
        assert step.predicted == pytest.approx(-model(H, g, step.d), rel=1e-12, abs=1e-300)
        assert step.predicted >= cauchy_decrease(H, g, radius) * (1 - 1e-12)
        if not step.converged:
            d_norm = float(np.linalg.norm(step.d))
            assert step.on_boundary == (d_norm >= (1 - EXACT_K_EASY) * radius)


@pytest.mark.parametrize(("kind", "seed", "n"), cases())
def test_cg_step(kind, seed, n):
    """Steihaug's CG decreases the model, stays in the region, and stops inside only when the
    residual is below tol; it agrees with the NumPy version's. (For g = 0 it stops at once, at
    d = 0, on the zero-curvature direction p = -g.)"""
    H, g, radius = instance(kind, seed, n)
    tol = 1e-3 * float(np.linalg.norm(g))
    step = cg_step(H, g, radius, tol)
    assert step.predicted == pytest.approx(-model(H, g, step.d), rel=1e-12, abs=1e-300)
    assert step.predicted >= 0.0
    d_norm = float(np.linalg.norm(step.d))
    if kind == "zero gradient":
        assert d_norm == 0.0 and step.inner == 1
    elif step.on_boundary:
        assert d_norm == pytest.approx(radius, rel=1e-12)
    else:
        assert d_norm <= radius
        assert np.linalg.norm(H @ step.d + g) <= tol * (1 + 1e-9) or step.inner == 2 * n
    try:
        reference = numpy_version("trust_region").steihaug_step
    except pytest.skip.Exception:
        return
    other = reference(g, lambda v: H @ v, radius, tol)
    assert np.linalg.norm(step.d - other.d) <= 1e-10 * (1 + np.linalg.norm(other.d))
    assert (step.on_boundary, step.inner) == (other.on_boundary, other.inner)


def test_cg_step_stops_at_a_product_that_is_not_finite():
    """p^T H p overflows for a finite H and g: no step (None), as the NumPy version's."""
    H, g = np.diag([1e200, 1.0]), np.array([1e150, 1.0])
    assert cg_step(H, g, 1.0, 1e-3) is None
    assert numpy_version("trust_region").steihaug_step(g, lambda v: H @ v, 1.0, 1e-3) is None
    assert cg_step(np.diag([1e100, 1.0]), np.array([1e100, 1.0]), 1.0, 1e-3) is not None  # 1e300


@pytest.mark.parametrize("problem", [rosenbrock(2), beale_problem()])
def test_minimize_agrees_with_scipy_trust_exact(problem):
    optimize = pytest.importorskip("scipy.optimize")
    theirs = optimize.minimize(
        problem.f,
        problem.x0,
        jac=problem.grad,
        hess=problem.hess,
        method="trust-exact",
        options={"gtol": 1e-8},
    )
    ours = minimize(problem.f, problem.grad, problem.x0, problem.hess, subproblem="exact")
    assert ours.success
    np.testing.assert_allclose(ours.x, theirs.x, rtol=0, atol=1e-6)


def test_saddle_point_and_callbacks():
    problem = beale_problem()
    saddle = np.array([0.0, 1.0])  # the gradient vanishes here, and H is indefinite
    result = minimize(problem.f, problem.grad, saddle, problem.hess)
    assert (result.status, result.success, result.nit) == (4, False, 0)
    assert "saddle point" in result.message
    unchecked = minimize(problem.f, problem.grad, saddle, problem.hess, check_second_order=False)
    assert unchecked.success and unchecked.nhev == 0
    seen = []
    result = minimize(problem.f, problem.grad, problem.x0, problem.hess, callback=seen.append)
    assert len(seen) == result.ngev - 1 and np.array_equal(seen[-1], result.x)


def test_failures_are_reported():
    problem = rosenbrock(2)
    f, grad, hess, x0 = problem.f, problem.grad, problem.hess, problem.x0
    short = minimize(f, grad, x0, hess, max_iter=2)
    assert (short.status, short.nit) == (1, 2)
    assert short.message == "maximum number of iterations (2) reached"
    nan = minimize(lambda x: math.nan, grad, x0, hess)
    assert (nan.status, nan.message) == (3, "non-finite f or gradient at iteration 0")
    calls = []

    def failing(x):
        calls.append(x)
        if len(calls) == 3:
            raise ZeroDivisionError("from the objective")
        return f(x)

    with pytest.raises(ZeroDivisionError, match="from the objective"):
        minimize(failing, grad, x0, hess)
    with pytest.raises(ValueError, match="grad"):
        minimize(f, lambda x: np.zeros(3), x0, hess)
    with pytest.raises(ValueError, match="hess"):
        minimize(f, grad, x0)
    with pytest.raises(ValueError, match="eta"):
        minimize(f, grad, x0, hess, eta=math.nan)
    with pytest.raises(ValueError, match="shrink_below"):
        minimize(f, grad, x0, hess, eta=0.5, shrink_below=0.25)
    with pytest.raises(ValueError, match="subproblem"):
        minimize(f, grad, x0, hess, subproblem="dogleg")
    with pytest.raises(ValueError, match="radius"):
        trust_region_step(np.eye(2), np.ones(2), 0.0)
    with pytest.raises(ValueError, match="g must be a vector of 2"):
        trust_region_step(np.eye(2), np.ones(3), 1.0)
    with pytest.raises(ValueError, match="H must be a square matrix"):
        trust_region_step(np.ones((2, 3)), np.ones(2), 1.0)


# The class mechanics of symopt_c._diagonal, once, through the generated diagonal Newton.


@pytest.mark.parametrize("dtype", DTYPES)
def test_diagonal_newton_threads_give_bit_identical_results(dtype, threads):
    rng = np.random.default_rng(4)
    problems = [
        tuple(rng.standard_normal(n).astype(dtype) for _ in range(2))
        + (rng.random(n).astype(dtype),)
        for n in LARGE
    ]
    runs = []
    for count in (1, 2, 3):
        threads(count)
        params = [w.copy() for w, _, _ in problems]
        opt = DiagNewton(params)
        for _ in range(2):
            opt.step([g for _, g, _ in problems], [c for _, _, c in problems])
        runs.append(params)
    for run in runs[1:]:
        for a, b in zip(runs[0], run, strict=True):
            np.testing.assert_array_equal(a, b)


def test_diagonal_newton_rejects_mismatched_and_overlapping_arrays():
    opt = DiagNewton([np.zeros(3)])
    ok = np.ones(3)
    with pytest.raises(ValueError, match="expected 1 gradient"):
        opt.step([], [ok])
    with pytest.raises(ValueError, match="expected 1 diagonal"):
        opt.step([ok], [ok, ok])
    with pytest.raises(ValueError, match="diagonals"):
        opt.step([ok], [np.ones(4)])
    with pytest.raises(ValueError, match="grads"):
        opt.step([np.ones(3, dtype=np.float32)], [ok])
    with pytest.raises(ValueError, match="C-contiguous"):
        opt.step([ok], [np.ones(6)[::2]])
    w = np.ones(8)
    with pytest.raises(ValueError, match="share memory"):
        DiagNewton([w[:5], w[3:]]).step([np.ones(5)] * 2, [np.ones(5)] * 2)


def test_diagonal_newton_reads_aliased_inputs_as_they_were_before_the_step():
    w = np.linspace(1.0, 2.0, 8)
    expected = w.copy()
    diag_newton_step(expected, w.copy(), w.copy())
    diag_newton_step(w, w, w)  # the gradient and the curvature are the parameter
    np.testing.assert_array_equal(w, expected)
    params = [np.linspace(-1.0, 1.0, 6), np.linspace(1.0, 3.0, 6)]
    copies = [p.copy() for p in params]
    DiagNewton(params).step(params, [params[1], params[1]])
    DiagNewton(copies).step([c.copy() for c in copies], [copies[1].copy()] * 2)
    for a, b in zip(params, copies, strict=True):
        np.testing.assert_array_equal(a, b)

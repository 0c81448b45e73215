"""The PyTorch trust region against the generated NumPy minimiser, its oracle: the same iterates,
counters, statuses and messages on the problems of ``symopt.problems`` (and the Moré-Garbow-
Hillstrom set) written in torch, with both subproblem solvers, and on non-finite cases (f inf or
NaN at trial points, a NaN gradient at trial points, a NaN Hessian at the start or later, NaN f
at x0); the subproblem solvers on random instances; one closure call per iteration.

Both targets are rendered into a temporary folder from the spec and the templates, with their
runtime files, as ``symopt generate`` lays them out. The NumPy side runs each problem with its
exact hand-written or SymPy-derived derivatives; the torch side differentiates the torch form
by autograd, so the two differ by rounding only. Where that changes the run (badly scaled or
ill-conditioned problems, long runs), the NumPy minimiser's own path is shown to move as much
under a rounding-level change of its derivatives, and the iterates agree until it does.
"""

from __future__ import annotations

import importlib
import math
import re
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import sympy
from trust_region_oracle import rendered

from symopt import problems
from symopt.backends import numpy as numpy_backend
from symopt.backends import torch as torch_backend
from symopt.backends.base import static_files
from symopt.backends.numpy import second_order as numpy_second_order
from symopt.backends.torch import second_order as torch_second_order
from symopt.mgh_build import Family
from symopt.resources import builtin_spec

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.usefixtures("one_torch_thread")

SPEC = builtin_spec("trust_region")
PACKAGES = (numpy_second_order.PACKAGE, torch_second_order.PACKAGE)
MAX_N = 100  # larger problems are left to the NumPy target's own tests
MAX_ITER = 300  # both targets stop there (status 1): bounds the time of the slow problems
RTOL = 1e-9  # iterates, relative to max(1, ||x||_inf)
EPS = 2.0**-52


@pytest.fixture(scope="module")
def gen(tmp_path_factory):
    """The generated NumPy and PyTorch trust-region modules with their runtimes, imported."""
    files = torch_second_order.files([SPEC]) + torch_backend.runtime_files()
    files += numpy_second_order.files([SPEC])
    files += static_files(numpy_backend.RUNTIME, numpy_backend.STATIC.items())
    packages = dict(zip(("numpy", "torch"), PACKAGES, strict=True))
    with rendered(tmp_path_factory.mktemp("generated"), files, packages):
        yield SimpleNamespace(
            tr=importlib.import_module(f"{torch_second_order.PACKAGE}.trust_region"),
            numpy_tr=importlib.import_module(f"{numpy_second_order.PACKAGE}.trust_region"),
        )


# --- the problems in torch ---------------------------------------------------------------------


def rosen(x):
    return (100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2).sum()


def beale(x):
    return sum((c - x[0] * (1.0 - x[1] ** k)) ** 2 for k, c in enumerate((1.5, 2.25, 2.625), 1))


def powell(x):
    x1, x2, x3, x4 = x
    return (x1 + 10 * x2) ** 2 + 5 * (x3 - x4) ** 2 + (x2 - 2 * x3) ** 4 + 10 * (x1 - x4) ** 4


def wood(x):
    x1, x2, x3, x4 = x
    return (
        100 * (x2 - x1**2) ** 2
        + (1 - x1) ** 2
        + 90 * (x4 - x3**2) ** 2
        + (1 - x3) ** 2
        + 10.1 * ((x2 - 1) ** 2 + (x4 - 1) ** 2)
        + 19.8 * (x2 - 1) * (x4 - 1)
    )


def helical(x):
    """symopt.problems.helical's branch of theta: atan(x2 / x1) / 2 pi, + 1/2 where x1 < 0."""
    x1, x2, x3 = x
    if float(x1.detach()) == 0.0:
        theta = 0.25 if float(x2.detach()) >= 0.0 else -0.25
    else:
        theta = torch.atan(x2 / x1) / (2 * math.pi) + (0.5 if float(x1.detach()) < 0 else 0.0)
    return 100 * ((x3 - 10 * theta) ** 2 + (torch.hypot(x1, x2) - 1) ** 2) + x3**2


HAND_WRITTEN = {
    problems.rosen: rosen,
    problems.beale: beale,
    problems.powell: powell,
    problems.wood: wood,
    problems.helical: helical,
}


def _float64(fn):
    return lambda *args: fn(*(torch.as_tensor(a, dtype=torch.float64) for a in args))


#: SymPy's torch printer calls these on Python numbers too (sqrt(2), 2**0.5, ...).
TORCH_FUNCTIONS = {
    "pow": lambda a, b: a**b,
    **{
        name: _float64(getattr(torch, name))
        for name in ("sqrt", "exp", "log", "sin", "cos", "atan")
    },
}


def least_squares(p: problems.Problem):
    """f = r.r with the residuals SymPy prints for torch, from the expressions the NumPy side
    differentiates (a Family: one expression over data rows, vectorised)."""
    compiled = getattr(p.residuals, "__self__", None)
    assert compiled is not None, f"{p.name}: no SymPy residuals to print for torch"
    x = sympy.symbols(f"x_0:{compiled.n}")
    pieces = []
    for item in compiled.residuals(x):
        family = item if isinstance(item, Family) else Family(sympy.sympify(item), {})
        symbols = list(family.data)
        fn = sympy.lambdify([x, *symbols], family.expr, modules=[TORCH_FUNCTIONS, "torch"])
        columns = [torch.tensor(family.data[s], dtype=torch.float64) for s in symbols]
        rows = len(columns[0]) if columns else 1
        pieces.append((fn, columns, rows))

    def f(v):
        parts = [
            torch.as_tensor(fn(list(v), *columns), dtype=v.dtype).expand(rows)
            for fn, columns, rows in pieces
        ]
        r = torch.cat(parts)
        return r.dot(r)

    return f


def torch_form(p: problems.Problem):
    return HAND_WRITTEN[p.f] if p.f in HAND_WRITTEN else least_squares(p)


def numpy_problems() -> dict[str, problems.Problem]:
    """Every problem the list functions give (those that exist), by name, n <= MAX_N."""
    found: dict[str, problems.Problem] = {}
    lists = [getattr(problems, n, None) for n in ("all_problems", "mgh_problems")]
    for module, name in (
        ("symopt.mgh_fixed", "fixed_problems"),
        ("symopt.mgh_variable", "variable_problems"),
    ):
        lists.append(getattr(importlib.import_module(module), name))
    for listed in filter(None, lists):
        for p in listed():
            if p.n <= MAX_N:
                found.setdefault(p.name, p)
    return found


PROBLEMS = numpy_problems()


# --- the same iterates as NumPy ----------------------------------------------------------------


def deviation(a, b) -> float:
    """max |a - b| relative to max(1, ||b||_inf)."""
    a, b = np.asarray(a), np.asarray(b)
    return float(np.max(np.abs(a - b)) / max(1.0, float(np.max(np.abs(b)))))


def message_code(message: str) -> str:
    """The message with its decimal numbers (||g||, r, f) masked; integers (k) kept."""
    return re.sub(r"-?\d+\.\d*(e[-+]?\d+)?|-?\d+e[-+]?\d+|nan|inf", "#", message)


def counts(r) -> tuple:
    return r.status, r.nit, r.nfev, r.ngev, r.nhev


def run_numpy(numpy_tr, p, subproblem, f=None, grad=None, hess=None, hessp=None):
    seen = []
    result = numpy_tr.minimize(
        f or p.f,
        grad or p.grad,
        p.x0,
        hess or p.hess,
        hessp or p.hessp,
        subproblem=subproblem,
        max_iter=MAX_ITER,
        callback=seen.append,
    )
    return result, seen


def run_torch(tr, fun, x0, subproblem):
    seen, calls = [], []

    def counted(x):
        calls.append(1)
        return fun(x)

    result = tr.minimize(
        counted,
        torch.tensor(x0, dtype=torch.float64),
        subproblem=subproblem,
        max_iter=MAX_ITER,
        callback=lambda x: seen.append(x.numpy()),
    )
    assert len(calls) == result.nfev  # every closure call counted, one per iteration
    return result, seen


def differences(got, path, expected, expected_path) -> list[str]:
    """Where the torch run differs from the NumPy run (empty: the same run)."""
    out = []
    if counts(got) != counts(expected):
        out.append(f"status, nit, nfev, ngev, nhev {counts(got)} != {counts(expected)}")
    if message_code(got.message) != message_code(expected.message):
        out.append(f"message {got.message!r} != {expected.message!r}")
    # CG stops at ||H d + g|| <= tol ~ ||g||: near a singular minimiser g is mostly rounding,
    # different in the hand-written and in autograd's gradient, and a last CG solve may take an
    # iteration more or less (without moving the iterates by RTOL): 2% of the products, or one
    # in each of the last two solves (on an AMD EPYC, torch's run of Extended Powell takes 83
    # products where NumPy's takes 85; their dot products round differently there)
    if abs(got.nhessp - expected.nhessp) > max(2, 0.02 * expected.nhessp):
        out.append(f"nhessp {got.nhessp} != {expected.nhessp}")
    if len(path) != len(expected_path):
        out.append(f"{len(path)} accepted iterates, not {len(expected_path)}")
    deviations = [deviation(a, b) for a, b in zip(path, expected_path, strict=False)]
    out += [f"iterate {k} deviates by {d:.1e}" for k, d in enumerate(deviations) if d > RTOL][:1]
    if got.fun != pytest.approx(expected.fun, rel=1e-8, abs=1e-20):
        out.append(f"f {got.fun} != {expected.fun}")
    return out


def rounding_spread(numpy_tr, p, subproblem, expected, expected_path) -> tuple[list[float], bool]:
    """The NumPy minimiser's own sensitivity to rounding: how far its path moves, iterate by
    iterate (the largest of three runs), when its gradient is scaled by 1 + 2^-52 or 1 - 2^-52
    or the entries of its Hessian by 1 +- 2^-52 at random; and whether its counts change."""
    signs = np.random.default_rng(0).choice([-1.0, 1.0], size=(p.n, p.n))
    scale = 1.0 + EPS * (np.triu(signs) + np.triu(signs, 1).T)
    variants = [
        {"grad": lambda x: p.grad(x) * (1.0 + EPS)},
        {"grad": lambda x: p.grad(x) * (1.0 - EPS)},
        {"hess": lambda x: p.hess(x) * scale, "hessp": lambda x, v: (p.hess(x) * scale) @ v},
    ]
    spread = [0.0] * len(expected_path)
    counts_change = False
    for variant in variants:
        result, path = run_numpy(numpy_tr, p, subproblem, **variant)
        counts_change |= counts(result) != counts(expected)
        for k, (a, b) in enumerate(zip(path, expected_path, strict=False)):
            spread[k] = max(spread[k], deviation(a, b))
    return spread, counts_change


@pytest.mark.parametrize("subproblem", ["exact", "cg"])
@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_same_iterates_counts_and_status_as_numpy(gen, name, subproblem):
    """The same run; or, where torch's differs, NumPy's own path moves at least as much under a
    rounding-level change (badly scaled and ill-conditioned problems, long runs): there the
    iterates agree until NumPy leaves its own path by RTOL, within 10 times its own spread."""
    p = PROBLEMS[name]
    expected, expected_path = run_numpy(gen.numpy_tr, p, subproblem)
    got, path = run_torch(gen.tr, torch_form(p), p.x0, subproblem)
    found = differences(got, path, expected, expected_path)
    if not found:
        return
    spread, counts_change = rounding_spread(gen.numpy_tr, p, subproblem, expected, expected_path)
    leaves = next((k for k, s in enumerate(spread) if s > RTOL), None)
    assert leaves is not None or counts_change, f"NumPy is stable under rounding, but {found}"
    for k in range(min(len(path), len(spread) if leaves is None else leaves)):
        assert deviation(path[k], expected_path[k]) <= RTOL + 10.0 * spread[k], f"iterate {k}"


# --- non-finite values: the same decisions as NumPy --------------------------------------------


class _ZeroWithGradient(torch.autograd.Function):
    """0 at every x, with the gradient ``slope(x)`` (a tensor like x, no graph of its own)."""

    @staticmethod
    def forward(ctx, x, slope):
        ctx.save_for_backward(x)
        ctx.slope = slope
        return x.new_zeros(())

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * ctx.slope(x), None


class _ZeroWithCurvature(torch.autograd.Function):
    """0 at every x with gradient 0, and the Hessian NaN where ``where(x)``."""

    @staticmethod
    def forward(ctx, x, where):
        ctx.save_for_backward(x)
        ctx.where = where
        return x.new_zeros(())

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        nan_slope = lambda v: torch.where(ctx.where(v), math.nan, 0.0) * torch.ones_like(v)  # noqa: E731
        return grad * _ZeroWithGradient.apply(x, nan_slope) * torch.ones_like(x), None


ROSENBROCK = problems.rosenbrock(2)


def in_region(axis: int, below: float):
    return lambda x: x[axis] < below


def region_case(kind: str, axis: int, below: float):
    """(torch f, NumPy f, grad, hess, hessp): Rosenbrock with f = inf or NaN, the gradient NaN,
    or the Hessian NaN where x[axis] < below (f and the gradient finite there)."""
    p, inside = ROSENBROCK, in_region(axis, below)
    nan = np.full(2, math.nan)
    if kind in ("inf", "nan"):
        value = math.inf if kind == "inf" else math.nan

        def fun(x):
            return torch.where(inside(x), torch.tensor(value, dtype=x.dtype), rosen(x))

        return fun, lambda x: value if inside(x) else p.f(x), p.grad, p.hess, p.hessp
    if kind == "gradient":
        slope = lambda v: torch.where(inside(v), math.nan, 0.0) * torch.ones_like(v)  # noqa: E731

        def fun(x):
            return rosen(x) + _ZeroWithGradient.apply(x, slope)

        return fun, p.f, lambda x: nan if inside(x) else p.grad(x), p.hess, p.hessp

    def fun(x):
        return rosen(x) + _ZeroWithCurvature.apply(x, inside)

    def hess(x):
        return np.full((2, 2), math.nan) if inside(x) else p.hess(x)

    return fun, p.f, p.grad, hess, lambda x, v: hess(x) @ v


#: (kind, axis, below) -> what happens: from (-1.2, 1) both paths step to points with
#: x2 < -0.01 (where rho > eta without the region), x1 < 0.5 holds at x0, x2 < 0.3 later.
NON_FINITE = {
    ("inf", 1, -0.01): "rejected trials",
    ("nan", 1, -0.01): "rejected trials",
    ("gradient", 1, -0.01): "rejected trials",
    ("hessian", 0, 0.5): "status 3 at iteration 0",
    ("hessian", 1, 0.3): "status 3 later",
}


@pytest.mark.parametrize("subproblem", ["exact", "cg"])
@pytest.mark.parametrize("case", list(NON_FINITE), ids=list(NON_FINITE.values()))
def test_non_finite_values_take_numpy_decisions(gen, case, subproblem):
    fun, f, grad, hess, hessp = region_case(*case)
    p, inside, evaluated = ROSENBROCK, in_region(*case[1:]), []
    expected, expected_path = run_numpy(gen.numpy_tr, p, subproblem, f, grad, hess, hessp)
    got, path = run_torch(gen.tr, lambda x: evaluated.append(inside(x)) or fun(x), p.x0, subproblem)
    assert differences(got, path, expected, expected_path) == []
    kind, outcome = case[0], NON_FINITE[case]
    if outcome == "rejected trials":
        assert got.status == 0 and any(evaluated) and not any(inside(x) for x in path)
        # a trial point with rho > eta whose gradient is NaN: evaluated, counted, rejected
        assert (got.ngev > len(path) + 1) == (kind == "gradient")
    else:
        what = "Hessian" if subproblem == "exact" else "Hessian-vector product"
        assert got.message == f"non-finite {what} at iteration {got.nit}"
        assert got.status == 3 and (got.nit == 0) == (outcome == "status 3 at iteration 0")


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_a_non_finite_f_at_x0_stops_at_once(gen, value):
    p = ROSENBROCK
    got = gen.tr.minimize(lambda x: rosen(x) * value, torch.tensor(p.x0))
    expected = gen.numpy_tr.minimize(lambda x: value, p.grad, p.x0, p.hess)
    assert counts(got) == counts(expected) == (3, 0, 1, 1, 0)
    assert got.message == expected.message == "non-finite f or gradient at iteration 0"


# --- the subproblem solvers --------------------------------------------------------------------


def random_instance(seed: int, hard: bool, n: int = 5):
    """A symmetric H (indefinite for about half the seeds), g and a radius; hard: the hard case,
    g orthogonal to the eigenvector of H's lowest eigenvalue and r large."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    eigenvalues = np.sort(rng.uniform(-3.0, 5.0, n))
    h = q @ np.diag(eigenvalues) @ q.T
    c = rng.standard_normal(n)
    radius = float(rng.uniform(0.05, 3.0))
    if hard:
        c[0] = 0.0
        radius = 2.0 * np.linalg.norm(c[1:] / (eigenvalues[1:] - eigenvalues[0])) + 0.5
    return (h + h.T) / 2, q @ c, radius


@pytest.mark.parametrize(
    ("seed", "hard"), [(s, False) for s in range(16)] + [(s, True) for s in range(4)]
)
def test_subproblem_solvers_take_numpy_steps(gen, seed, hard):
    h, g, radius = random_instance(seed, hard)
    h_, g_ = torch.tensor(h), torch.tensor(g)
    tol = 0.01 * float(np.linalg.norm(g))
    pairs = [
        (gen.numpy_tr.exact_step(g, h, radius), gen.tr.exact_step(g_, h_, radius)),
        (
            gen.numpy_tr.exact_step(g, h, radius, max_iter=2),
            gen.tr.exact_step(g_, h_, radius, max_iter=2),
        ),
        (
            gen.numpy_tr.steihaug_step(g, h.__matmul__, radius, tol),
            gen.tr.steihaug_step(g_, h_.__matmul__, radius, tol),
        ),
    ]
    numpy_module = sys.modules[f"{numpy_second_order.PACKAGE}._subproblem"]
    torch_module = sys.modules[f"{torch_second_order.PACKAGE}._subproblem"]
    newton = (
        numpy_module.model_minimiser(gen.numpy_tr.METHOD, g, h, h.__matmul__, tol),
        torch_module.model_minimiser(gen.tr.METHOD, g_, h_, h_.__matmul__, tol),
    )
    # None where H is not positive definite and CG meets curvature <= 0 (in the hard case g
    # misses the negative eigenvector, and CG finds a stationary point of the model)
    assert (newton[0] is None) == (newton[1] is None)
    assert (newton[0] is None) <= (np.linalg.eigvalsh(h)[0] <= 0)
    for expected, got in pairs + ([newton] if newton[0] is not None else []):
        assert (got.on_boundary, got.inner) == (expected.on_boundary, expected.inner)
        np.testing.assert_allclose(got.d.numpy(), expected.d, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(got.hd.numpy(), expected.hd, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(got.lam, expected.lam, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(got.lam_lb, expected.lam_lb, rtol=1e-10, atol=1e-12)


def test_a_nan_hessian_vector_product_stops_cg(gen):
    h = torch.eye(3, dtype=torch.float64)
    step = gen.tr.steihaug_step(
        torch.ones(3, dtype=torch.float64), lambda v: h @ v * math.nan, 1.0, 0.1
    )
    assert step is None


# --- the optimizer: one closure call per step ---------------------------------------------------


def test_step_calls_the_closure_once_and_re_evaluates_parameters_set_from_outside(gen):
    """The loss and gradient of an accepted trial are the next step's; parameters changed
    between steps are noticed (their version counters) and evaluated anew."""
    w = torch.nn.Parameter(torch.tensor([-1.2, 1.0, -1.2, 1.0], dtype=torch.float64))
    opt = gen.tr.TrustRegion([w])
    calls = []

    def closure():
        calls.append(w.detach().clone())
        return rosen(w)

    opt.step(closure)
    assert len(calls) == 2  # x0, then the trial point
    for _ in range(5):
        before = len(calls)
        opt.step(closure)
        assert len(calls) == before + 1
    assert w.grad is None
    with torch.no_grad():
        w.copy_(torch.tensor([0.5, 0.5, 0.5, 0.5]))
    before = len(calls)
    loss = opt.step(closure)
    assert len(calls) == before + 2 and torch.equal(calls[before], w.detach() * 0 + 0.5)
    assert float(loss) == pytest.approx(float(rosen(torch.full((4,), 0.5))))
    state = opt.state[w]
    assert state["nfev"] == len(calls) and state["iteration"] == 7


def test_the_exact_solver_runs_in_float64_for_float32_parameters(gen):
    p = PROBLEMS["Wood"]
    got = gen.tr.minimize(
        wood, torch.tensor(p.x0, dtype=torch.float32), subproblem="exact", gtol=1e-3
    )
    assert got.success and got.x.dtype == torch.float32
    np.testing.assert_allclose(got.x.numpy(), p.x_min, atol=1e-3)

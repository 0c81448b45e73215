"""The JAX target's trust-region minimiser against the generated NumPy one (the reference
algorithm): the same statuses, messages, counts and iterates, up to rounding, on every problem
symopt ships (n <= 100) and where f, the gradient or the Hessian is NaN or inf
(tests/trust_region_oracle.py says what "up to rounding" means and measures it); also with JAX's
own derivatives; f called only while JAX traces it, Hessian-vector products that are ``jax.jvp``
of ``jax.grad``, and the derived pieces really used (a wrong one changes the iterates).

Both packages are rendered into a temporary folder from the spec, the templates and the runtime
files, as ``symopt generate`` lays them out. To give the JAX minimiser NumPy's exact derivatives,
a problem's f, gradient, Hessian and Hessian-vector product are host callbacks tied together by
``jax.custom_jvp`` (:func:`with_numpy_derivatives`): the same values reach both minimisers.
"""

from __future__ import annotations

import ast
import importlib
import re
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from trust_region_oracle import (
    Run,
    assert_same_run,
    deviation,
    non_finite_problems,
    rounding_runs,
    run_numpy,
)

from symopt import problems
from symopt.backends.numpy import NumpyBackend
from symopt.backends.render import render
from symopt.files.format import format_python
from symopt.resources import builtin_spec, data_dir
from symopt.spec import load_spec

jax = pytest.importorskip("jax")
jnp = jax.numpy

from symopt.backends.jax import second_order  # noqa: E402

RUNTIME = Path(second_order.__file__).with_name("runtime")
SPEC = load_spec(data_dir("specs") / "trust_region.toml")
OWN = (second_order.PACKAGE, "symopt_numpy", "_jax_problems")
MAX_N = 100  # larger problems are left to the benchmarks


def shipped_problems() -> dict[str, problems.Problem]:
    """Every problem symopt ships with n <= MAX_N, by name, each once: symopt.problems' lists
    and the Moré-Garbow-Hillstrom modules', whichever exist."""
    makers = [getattr(problems, name, None) for name in ("all_problems", "mgh_problems")]
    for module, name in (("mgh_fixed", "fixed_problems"), ("mgh_variable", "variable_problems")):
        try:
            makers.append(getattr(importlib.import_module(f"symopt.{module}"), name))
        except (ImportError, AttributeError):
            continue
    found = {(p.f, p.x0.tobytes()): p for make in makers if make is not None for p in make()}
    return {p.name: p for p in found.values() if p.n <= MAX_N}


PROBLEMS = shipped_problems()
NON_FINITE = non_finite_problems()


def write_packages(root: Path) -> None:
    """The generated JAX module and test with its runtime, and the NumPy package."""
    files = second_order.files([SPEC]) + NumpyBackend().files([SPEC])
    for f in format_python(files):
        (root / f.path).parent.mkdir(parents=True, exist_ok=True)
        (root / f.path).write_text(f.text, encoding="utf-8")
    package = root / "jax" / second_order.PACKAGE
    for name in second_order.RUNTIME:
        (package / name).write_text((RUNTIME / name).read_text(encoding="utf-8"), encoding="utf-8")
    (package / "__init__.py").write_text("", encoding="utf-8")  # the lead backend renders its own
    for name, path in second_order.TEST_RUNTIME.items():
        (root / path).write_text((RUNTIME / name).read_text(encoding="utf-8"), encoding="utf-8")


def own_modules() -> list[str]:
    return [m for m in sys.modules if m.split(".")[0] in OWN]


@pytest.fixture(scope="module")
def gen(tmp_path_factory):
    """The rendered JAX and NumPy packages imported (JAX's float64 on); sys.path, sys.modules
    and jax's x64 flag are restored after."""
    root = tmp_path_factory.mktemp("generated")
    write_packages(root)
    before = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    with pytest.MonkeyPatch.context() as mp:
        for name in own_modules():  # generated/ packages imported by other tests: put back after
            mp.delitem(sys.modules, name)
        for folder in ("jax/tests", "jax", "numpy"):
            mp.syspath_prepend(str(root / folder))
        yield SimpleNamespace(
            root=root,
            tr=importlib.import_module(f"{second_order.PACKAGE}.trust_region"),
            runtime=importlib.import_module(f"{second_order.PACKAGE}._trust_region"),
            problems=importlib.import_module("_jax_problems"),
            numpy_tr=importlib.import_module("symopt_numpy.trust_region"),
            numpy_runtime=importlib.import_module("symopt_numpy._trust_region"),
        )
        for name in own_modules():
            del sys.modules[name]
    jax.config.update("jax_enable_x64", before)


def host(fn, shape: tuple[int, ...]):
    """fn (NumPy, float64) as a JAX-traceable function."""
    out = jax.ShapeDtypeStruct(shape, jnp.float64)

    def call(*args):
        return np.asarray(fn(*(np.asarray(a) for a in args)), dtype=np.float64)

    return lambda *args: jax.pure_callback(call, out, *args, vmap_method="sequential")


def with_numpy_derivatives(p: problems.Problem):
    """(f, hessp) for the JAX minimiser whose values are p's own: jax.grad(f) is p.grad,
    jax.hessian(f) is p.hess (times the identity's columns: exact), hessp is p.hessp."""
    n = p.n
    value, gradient, hessian = host(p.f, ()), host(p.grad, (n,)), host(p.hess, (n, n))

    @jax.custom_jvp
    def grad(x):
        return gradient(x)

    grad.defjvp(lambda primals, tangents: (grad(*primals), hessian(*primals) @ tangents[0]))

    @jax.custom_jvp
    def f(x):
        return value(x)

    f.defjvp(lambda primals, tangents: (f(*primals), grad(*primals) @ tangents[0]))
    return f, host(p.hessp, (n,))


def run_jax(tr, f, x0, subproblem: str, hessp=None) -> Run:
    path: list = []
    r = tr.minimize(f, jnp.asarray(x0), hessp=hessp, subproblem=subproblem, callback=path.append)
    return Run(r, path)


def compare(gen, p: problems.Problem, subproblem: str) -> tuple[Run, Run, str]:
    """NumPy's and JAX's runs on p with the same derivatives, checked by the oracle."""
    f, hessp = with_numpy_derivatives(p)
    expected = run_numpy(gen.numpy_tr, p, subproblem)
    got = run_jax(gen.tr, f, p.x0, subproblem, hessp)
    how = assert_same_run(got, expected, lambda: rounding_runs(gen.numpy_tr, p, subproblem))
    return expected, got, how


@pytest.mark.parametrize("subproblem", ["exact", "cg"])
@pytest.mark.parametrize("name", list(PROBLEMS))
def test_same_run_as_numpy_on_every_problem(gen, name, subproblem):
    compare(gen, PROBLEMS[name], subproblem)


@pytest.mark.parametrize("subproblem", ["exact", "cg"])
@pytest.mark.parametrize("name", list(NON_FINITE))
def test_same_run_as_numpy_where_values_are_not_finite(gen, name, subproblem):
    p, status = NON_FINITE[name]
    expected, got, how = compare(gen, p, subproblem)
    assert how == "same" and expected.result.status == status
    if status == 0:  # trial points were rejected for their non-finite values: another path
        baseline = run_numpy(gen.numpy_tr, problems.rosenbrock(2), subproblem).path
        assert (
            len(baseline) != len(expected.path)
            or max(map(deviation, baseline, expected.path)) > 0.01
        )


@pytest.mark.parametrize("subproblem", ["exact", "cg"])
@pytest.mark.parametrize("name", [p.name for p in problems.all_problems()])
def test_same_run_as_numpy_with_jax_own_derivatives(gen, name, subproblem):
    """JAX differentiates the jnp formulas of _jax_problems: NumPy's derivatives to rounding."""
    p, q = {p.name: p for p in problems.all_problems()}[name], gen.problems.BUILDERS[name]()
    np.testing.assert_array_equal(np.asarray(q.x0), p.x0)
    expected = run_numpy(gen.numpy_tr, p, subproblem)
    got = run_jax(gen.tr, q.f, q.x0, subproblem)
    assert_same_run(got, expected, lambda: rounding_runs(gen.numpy_tr, p, subproblem))


def chosen(runtime, args: tuple) -> str:
    """runtime.choose_subproblem(*args), or the message of its ValueError."""
    try:
        return runtime.choose_subproblem(*args)
    except ValueError as error:
        return str(error)


def test_scalar_rules_are_numpys(gen):
    """update_radius, ratio, cg_tolerance and choose_subproblem: NumPy's values and errors."""
    ours, numpy_ = gen.runtime, gen.numpy_runtime
    hyper = gen.tr.DEFAULTS
    inf, nan = float("inf"), float("nan")
    for rho in (-inf, 0.1, 0.5, 0.9):
        for on_boundary in (True, False):
            for x_scale in (1.0, 1e9):
                args = (2.0, rho, 1.5, on_boundary, x_scale, hyper)
                assert ours.update_radius(*args) == numpy_.update_radius(*args)
    for f, f_new, pred in [
        (1.0, 0.5, 0.6),
        (1e8, 1e8, 1e-9),
        (0.0, -1.0, 0.0),
        (1.0, inf, 1.0),
        (1.0, nan, 1.0),
        (1.0, 0.5, nan),
        (1.0, 0.5, inf),
        (-3.0, -3.0, 1e-30),
    ]:
        assert ours.ratio(f, f_new, pred, 10.0) == numpy_.ratio(f, f_new, pred, 10.0)
    assert ours.cg_tolerance(1e-4, 1.0, 0.5) == numpy_.cg_tolerance(1e-4, 1.0, 0.5)
    for n in (2, 1442, 1443):
        for subproblem in ("auto", "exact", "cg", "dogleg"):
            for has in [(True, True), (True, False), (False, True), (False, False)]:
                args = (subproblem, n, *has, gen.tr.EXACT_MAX_N)
                assert chosen(ours, args) == chosen(numpy_, args)
    assert gen.tr.EXACT_MAX_N == gen.numpy_tr.EXACT_MAX_N == 1442
    assert ours.STATUS == numpy_.STATUS
    with pytest.raises(ValueError, match="unknown subproblem"):
        gen.tr.minimize(gen.problems.beale, jnp.ones(2), subproblem="dogleg")


def random_instance(seed: int, hard: bool, n: int = 4):
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


#: Seeds 25 and 60: CG meets negative curvature after its first iteration, and the boundary
#: point behind it (the smaller root) has the lower model value.
INSTANCES = [(seed, False) for seed in (*range(12), 25, 60)] + [(seed, True) for seed in range(4)]


def assert_same_step(got, expected) -> None:
    assert (got.on_boundary, got.inner) == (expected.on_boundary, expected.inner)
    for field in ("d", "hd", "lam"):
        np.testing.assert_allclose(
            getattr(got, field), getattr(expected, field), rtol=1e-10, atol=1e-12
        )


@pytest.mark.parametrize(("seed", "hard"), INSTANCES)
def test_subproblem_solvers_take_numpy_steps(gen, seed, hard):
    h, g, radius = random_instance(seed, hard)
    h_, g_ = jnp.asarray(h), jnp.asarray(g)
    # max_iter 1 and 2: the factorisations run out, and the last iterate (cut to the boundary)
    # or the Cauchy point is taken, whichever has the lower model value
    for max_iter in (None, 1, 2):
        options = {} if max_iter is None else {"max_iter": max_iter}
        expected = gen.numpy_tr.exact_step(g, h, radius, **options)
        assert_same_step(gen.tr.exact_step(g_, h_, radius, **options), expected)
    tol = 0.01 * np.linalg.norm(g)
    expected = gen.numpy_tr.steihaug_step(g, h.__matmul__, radius, tol)
    assert_same_step(gen.tr.steihaug_step(g_, jnp.matmul, h_, radius, tol), expected)


def test_factorisations_running_out_take_the_cauchy_point_when_it_is_better(gen):
    """Both outcomes of the comparison happen among the instances above (so the test above
    checks the Cauchy length and the cut against NumPy's)."""
    taken = set()
    for seed, hard in INSTANCES:
        h, g, radius = random_instance(seed, hard)
        step = gen.tr.exact_step(jnp.asarray(g), jnp.asarray(h), radius, max_iter=1)
        ghg = g @ h @ g
        t = radius / np.linalg.norm(g) if ghg <= 0 else min(g @ g / ghg, radius / np.linalg.norm(g))
        taken.add(bool(np.allclose(step.d, -t * g, rtol=1e-12)))
    assert taken == {True, False}


def test_cg_stops_on_a_non_finite_hessian_vector_product(gen):
    h, g, radius = random_instance(3, False)
    h[1, 2] = h[2, 1] = np.nan
    assert gen.numpy_tr.steihaug_step(g, h.__matmul__, radius, 1e-3) is None
    assert gen.tr.steihaug_step(jnp.asarray(g), jnp.matmul, jnp.asarray(h), radius, 1e-3) is None


def test_f_is_only_traced_and_hessp_is_jvp_of_grad(gen):
    calls = []

    def rosen(x):
        calls.append(isinstance(x, jax.core.Tracer))
        return gen.problems.rosen(x)

    p = problems.rosenbrock(100)
    r = gen.tr.minimize(rosen, jnp.asarray(p.x0), subproblem="cg")
    assert r.success and r.nfev > 100 and r.nhessp > 1000
    # traced once each for f, its gradient, the two CG loops' H v (the model's minimiser while
    # the radius is unlimited, then Steihaug's) and the final check's Hessian
    assert all(calls) and len(calls) <= 5
    x, v = jnp.asarray(p.x0), jnp.cos(jnp.arange(100.0))
    hvp = gen.tr.hessian_vector_product(gen.problems.rosen)
    reference = lambda x, v: jax.jvp(jax.grad(gen.problems.rosen), (x,), (v,))[1]  # noqa: E731
    assert str(jax.make_jaxpr(hvp)(x, v)) == str(jax.make_jaxpr(reference)(x, v))
    np.testing.assert_allclose(hvp(x, v), p.hessp(p.x0, np.asarray(v)), rtol=1e-13, atol=1e-11)
    # forward over reverse: nothing of the Hessian's size is formed
    sizes = [np.prod(var.aval.shape) for e in jax.make_jaxpr(hvp)(x, v).eqns for var in e.outvars]
    assert max(sizes) <= 100


def wrong_pieces(name: str) -> str:
    """Python redefining the derived scalar piece ``name`` as 1.5 times itself."""
    right = f"_right_{name}"
    return f"\n\n{right} = {name}\n\n\ndef {name}(*args):\n    return 1.5 * {right}(*args)\n"


@pytest.mark.parametrize(
    ("piece", "wrong", "problem", "subproblem"),
    [
        ("predicted", "-d @ Hd - g @ d", "Beale", "cg"),
        ("matrix", "2*lam*jnp.eye(n) + H", "Beale", "exact"),
        ("scalar_pieces", "secular_newton", "Beale", "exact"),
        ("scalar_pieces", "boundary_tau_max", "Beale", "cg"),
        ("scalar_pieces", "boundary_tau_min", "Wood", "exact"),
    ],
)
def test_a_wrong_derived_piece_changes_the_iterates(gen, piece, wrong, problem, subproblem):
    data = second_order.data(SPEC)
    if piece == "scalar_pieces":
        data["scalar_pieces"] += wrong_pieces(wrong)
    else:
        data["code"] = {**data["code"], piece: wrong}
    stem = "wrong_" + re.sub(r"\W", "_", wrong)
    module = gen.root / "jax" / second_order.PACKAGE / f"{stem}.py"
    module.write_text(render("jax/second_order/trust_region.py.jinja", **data), encoding="utf-8")
    wrong_tr = importlib.import_module(f"{second_order.PACKAGE}.{module.stem}")
    p = PROBLEMS[problem]
    f, hessp = with_numpy_derivatives(p)
    expected = run_numpy(gen.numpy_tr, p, subproblem)
    got = run_jax(wrong_tr, f, p.x0, subproblem, hessp)
    same = got.outcome() == expected.outcome() and len(got.path) == len(expected.path)
    assert not (same and max(map(deviation, got.path, expected.path)) <= 1e-6)
    right = run_jax(gen.tr, f, p.x0, subproblem, hessp)  # the right pieces: NumPy's run
    assert right.outcome() == expected.outcome()


def test_files_are_the_trust_region_module_and_its_test():
    files = second_order.files([SPEC, builtin_spec("newton"), builtin_spec("kfac")])
    assert [f.path for f in files] == [
        f"jax/{second_order.PACKAGE}/trust_region.py",
        "jax/tests/test_trust_region.py",
    ]
    module = files[0].text
    assert "return lam*jnp.eye(n) + H" in module and "return -0.5*d @ Hd - g @ d" in module
    assert "def minimize(\n    f: Callable" in module
    for name in ("secular_newton", "boundary_tau_min", "boundary_tau_max", "cauchy_length"):
        assert f"def {name}(" in module
    for name in [*second_order.RUNTIME, *second_order.TEST_RUNTIME]:
        assert (RUNTIME / name).is_file()


def test_runtime_imports_jax_and_the_standard_library_only():
    allowed = {"jax", "__future__", "math", "collections", "dataclasses", "functools", "typing"}
    for name in [*second_order.RUNTIME, *second_order.TEST_RUNTIME]:
        tree = ast.parse((RUNTIME / name).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots = {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                roots = {node.module.split(".")[0]}
            else:
                continue
            assert roots <= allowed, f"{name} imports {roots - allowed}"

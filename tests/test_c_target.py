"""The C target: warning-free C99 with gcc and clang, the printer, names that clash with C, the
loader (missing compiler, rebuilds), the Makefile, results without OpenMP, agreement with the
NumPy target, the second-order specs (the derived system in the Cholesky solve, user specs with
other choices, generated tests that catch a wrong step), and updates past element-wise algebra:
conditionals, state set from the first gradient and per-tensor reductions (in passes) against the
reference stepper, and the one-line refusal of what the C target does not generate.

A spec with flags (a family) has a kernel per variant: its own C source, header, driver, binding
(``symopt_c._adam__amsgrad``) and tests (``tests/test__adam__amsgrad.py``), and the family's
class with torch.optim's arguments (``symopt_c.adam``) runs them; the default variant's C names
are the spec's (``src/adam.c``, ``symopt_adam_step_f32``)."""

import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import sympy
from click.testing import CliRunner

from symopt.backends.base import kernel_specs
from symopt.backends.c import STATIC, CBackend
from symopt.backends.c.elementwise import CFLAGS, CPrinter, c_identifiers, template_data
from symopt.backends.c.second_order import TEMPLATES as C_KINDS
from symopt.backends.c.second_order import c_pieces
from symopt.backends.second_order import kind
from symopt.cli import main
from symopt.lowering.kernel import lower
from symopt.resources import builtin_specs, elementwise_specs, second_order_specs
from symopt.spec import load_spec_text

ROOT = Path(__file__).resolve().parents[1]
GENERATED = ROOT / "generated" / "c"
sys.path.insert(0, str(GENERATED))
sys.path.insert(0, str(ROOT / "generated" / "numpy"))

#: The element-wise built-ins the C target generates (it refuses matrix updates and the like).
SPECS = {n: s for n, s in elementwise_specs().items() if CBackend().unsupported(s) is None}
#: Their kernels by Python module: a plain spec's is its own (``nesterov``), a family's one per
#: variant (``_adam``, ``_adam__amsgrad``, ...), each a C source named without the underscore.
KERNELS = {k.name: k for s in SPECS.values() for k in kernel_specs(s)}
#: The specs with flags: a class with the library's arguments beside their kernels.
FAMILIES = [s for s in SPECS.values() if s.family is not None]
MODELS = second_order_specs()
#: The second-order specs the C target generates (dense Newton, trust region, diagonal Newton).
C_MODELS = {n: s for n, s in MODELS.items() if kind(s) in C_KINDS}
STRICT = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"]
C_FILES = sorted(GENERATED.glob("src/*.c")) + sorted(GENERATED.glob("tests/driver_*.c"))


def compilers() -> list[str]:
    return [cc for cc in ("gcc", "clang") if shutil.which(cc)]


def accepts(cc: str, flag: str, tmp_path: Path) -> bool:
    probe = tmp_path / "probe.c"
    probe.write_text("int main(void) { return 0; }\n")
    done = subprocess.run(
        [cc, flag, str(probe), "-o", str(tmp_path / "probe")], capture_output=True
    )
    return done.returncode == 0


def run_python(code: str, env: dict, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=cwd, timeout=300
    )


@pytest.mark.parametrize("openmp", [False, True], ids=["serial", "openmp"])
@pytest.mark.parametrize("cc", ["gcc", "clang"])
def test_generated_c_compiles_without_warnings(cc, openmp, tmp_path):
    if shutil.which(cc) is None:
        pytest.skip(f"{cc} is not installed")
    flags = [*CFLAGS, *STRICT]
    if openmp:
        if not accepts(cc, "-fopenmp", tmp_path):
            pytest.skip(f"{cc} has no OpenMP here")
        flags.append("-fopenmp")
    runtime = [p for p, _, _ in STATIC if p.endswith(".c")]
    assert len(C_FILES) == 2 * (len(KERNELS) + len(C_MODELS)) + len(runtime)
    for source in C_FILES:
        done = subprocess.run(
            [
                cc,
                *flags,
                f"-I{GENERATED / 'include'}",
                "-c",
                str(source),
                "-o",
                str(tmp_path / "x.o"),
            ],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, f"{cc} {source.name}:\n{done.stderr[-3000:]}"
        assert done.stderr == "", f"{cc} {source.name} printed:\n{done.stderr[-3000:]}"


@pytest.mark.parametrize("cxx", ["g++", "clang++"])
def test_headers_are_valid_cpp(cxx, tmp_path):
    if shutil.which(cxx) is None:
        pytest.skip(f"{cxx} is not installed")
    source = tmp_path / "use.cpp"
    source.write_text(
        '#include "symopt/symopt.h"\n'
        "int main() {\n"
        "    float w[3] = {1, 2, 3}, g[3] = {1, 1, 1}, m[3] = {0}, v[3] = {0};\n"
        "    symopt_trust_region_hyper hyper = SYMOPT_TRUST_REGION_HYPER_DEFAULTS;\n"
        "    symopt_objective objective = 0;\n"
        "    (void)symopt_adam_step_f32;\n"
        "    (void)symopt_newton_step;\n"
        "    (void)symopt_diag_newton_step_multi_f32;\n"
        "    (void)symopt_trust_region_minimize;\n"
        "    (void)objective;\n"
        "    return (int)(w[0] + g[0] + m[0] + v[0] + hyper.radius0) - 3"
        " + SYMOPT_ADAM_T_START - 1;\n"
        "}\n"
    )
    done = subprocess.run(
        [cxx, "-std=c++11", "-Wall", "-Wextra", "-Werror", "-pedantic"]
        + [f"-I{GENERATED / 'include'}", "-c", str(source), "-o", str(tmp_path / "use.o")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]


def test_float_printer_uses_float_functions_and_literals():
    x, y = sympy.symbols("x y", real=True)
    helpers: set[str] = set()
    f32 = CPrinter("f32", {}, helpers)
    assert f32.doprint(sympy.sqrt(x) + sympy.Float("1e-8")) == "sqrtf(x) + 1.0e-8F"
    assert f32.doprint(sympy.Rational(1, 3) * x**2) == "(1.0F/3.0F)*(x*x)"
    assert f32.doprint(sympy.exp(x) / (x - y) ** 2) == "expf(x)/((x - y)*(x - y))"
    assert f32.doprint(sympy.Max(x, y, 2)) == "symopt_max_f32(2, symopt_max_f32(x, y))"
    assert helpers == {"max_f32"}
    f64 = CPrinter("f64", {"x": "x_"}, helpers)
    assert (
        f64.doprint(abs(x) + sympy.sign(y) + x**3) == "pow(x_, 3) + fabs(x_) + symopt_sign_f64(y)"
    )


def test_names_that_clash_with_c_or_cpp_are_renamed():
    names = c_identifiers(["w", "pow", "pow_", "new", "fmax", "omp_x", "beta1"])
    assert names == {
        "w": "w",
        "pow": "pow__",
        "pow_": "pow_",
        "new": "new_",
        "fmax": "fmax_",
        "omp_x": "omp_x_",
        "beta1": "beta1",
    }


def test_adam_kernel_is_fused_and_the_prelude_is_in_double():
    data = template_data(SPECS["adam"], lower(SPECS["adam"]))
    f32 = next(p for p in data["precisions"] if p["suffix"] == "f32")
    code = [st["code"] for st in f32["body"]]
    assert code == [
        "beta1*m + g*one_minus_beta1",
        "beta2*v + (g*g)*one_minus_beta2",
        "m_new*neg_step_size/(eps_hat + sqrtf(v_new)) + w",
    ]
    assert all(
        "pow(" in c["code"] or "beta" in c["code"] or "eps" in c["code"] for c in data["prelude"]
    )
    source = (GENERATED / "src" / "adam.c").read_text()
    assert source.count("for (_i = 0; _i < n; ++_i)") == 2  # one fused loop per precision
    assert source.count("#pragma omp parallel") == 2  # one region per call, for all tensors
    assert (
        "const double neg_step_size = -lr*sqrt_bias_correction_beta2/(1 - pow(beta1, t));" in source
    )


def test_every_generated_file_has_a_header_and_the_set_is_complete():
    specs = [s for s in builtin_specs().values() if CBackend().unsupported(s) is None]
    files = CBackend().files(specs)
    paths = {f.path for f in files}
    # five files per kernel (each variant of a family) and per second-order spec, a class module
    # and its tests per family, the element-wise specs' TOML for their tests, five shared
    # rendered files (with the pkg-config template) and the static runtime; block-diagonal
    # Newton and K-FAC are not generated in C
    expected = 5 * (len(KERNELS) + len(C_MODELS)) + 2 * len(FAMILIES) + len(SPECS) + 5
    assert len(paths) == len(files) == expected + len(STATIC)
    assert {"block_newton", "kfac"} <= set(MODELS) - set(C_MODELS)
    assert {
        "c/src/newton.c",
        "c/tests/test_trust_region.py",
        "c/symopt_c/_second_order.py",
        "c/src/runtime.c",
        "c/symopt.pc.in",
        "c/tests/specs/adam.toml",
        "c/src/adam.c",
        "c/src/adam__amsgrad.c",
        "c/symopt_c/_adam.py",
        "c/symopt_c/_adam__amsgrad.py",
        "c/tests/test__adam.py",
        "c/symopt_c/adam.py",
        "c/tests/test_adam.py",
        "c/symopt_c/_api.py",
    } <= paths
    for f in files:
        first = f.text.splitlines()[0]
        assert first.startswith(("// Generated by symopt", "# Generated by symopt")), f.path
    assert files == CBackend().files(specs), "rendering must be deterministic"
    shared = {f.path: f.text for f in files}
    for name in [*(k.lstrip("_") for k in KERNELS), *C_MODELS]:
        assert f"\tsrc/{name}.c \\\n" in shared["c/Makefile"]
        assert f'#include "symopt/{name}.h"' in shared["c/include/symopt/symopt.h"]
    for name in C_MODELS:
        assert f'#include "symopt/{name}.h"' in shared["c/include/symopt/symopt.h"]
        init = shared["c/symopt_c/__init__.py"]
        assert f"from .{name} import {C_MODELS[name].class_name}, {name}_step" in init


def test_element_wise_output_does_not_depend_on_the_second_order_specs():
    """The C target takes every spec and splits them itself; without second-order specs the
    shared files are what they were before second-order specs existed."""
    alone = {f.path: f.text for f in CBackend().files(list(SPECS.values()))}
    every = [s for s in builtin_specs().values() if CBackend().unsupported(s) is None]
    both = {f.path: f.text for f in CBackend().files(every)}
    changed = {p for p in alone if alone[p] != both[p]}
    assert changed == {"c/Makefile", "c/include/symopt/symopt.h", "c/symopt_c/__init__.py"}
    assert (
        "src/newton.c" not in alone["c/Makefile"]
        and "SECOND_ORDER" not in alone["c/symopt_c/__init__.py"]
    )


def kernel_class(package: str, module: str) -> type:
    """The class of a kernel module (``_adam__amsgrad``, or a plain spec's ``nesterov``)."""
    return getattr(importlib.import_module(f"{package}.{module}"), KERNELS[module].class_name)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("module", sorted(KERNELS))
def test_c_agrees_with_the_numpy_target(module, dtype):
    """Two independent code paths from one spec, for every kernel (each variant of a family):
    the same numbers up to the rounding of a different operation order (often bit for bit)."""
    rng = np.random.default_rng(1)
    shapes = [(300,), (7, 3), (1,)]
    ws = [rng.standard_normal(s).astype(dtype) for s in shapes]
    c_opt = kernel_class("symopt_c", module)([w.copy() for w in ws])
    np_opt = kernel_class("symopt_numpy", module)([w.copy() for w in ws])
    for _ in range(50):
        gs = [rng.standard_normal(s).astype(dtype) for s in shapes]
        c_opt.step(gs)
        np_opt.step(gs)
    rtol = 1e-12 if dtype == np.float64 else 1e-4
    for a, b in zip(c_opt.params, np_opt.params, strict=True):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * float(np.max(np.abs(b))))
    for sa, sb in zip(c_opt.state, np_opt.state, strict=True):
        for key in sa:
            scale = float(np.max(np.abs(sb[key])))
            np.testing.assert_allclose(sa[key], sb[key], rtol=rtol, atol=rtol * scale)


CLASHING_SPEC = """
name = "clash"
class_name = "Clash"
title = "Clipped sign descent with C-clashing names"
summary = "A test spec: its names are C functions and a C++ keyword, and it uses every helper."
reference = "none"

update = [
  "new = max(fmax*new, abs(g))",
  "s = s + log(2 + g**2)",
  "w = w - powf*sign(g)*min(abs(g), new)/(1 + exp(-s))",
]

[hyper.powf]
default = 0.01
domain = "positive"
doc = "step size"

[hyper.fmax]
default = 0.9
domain = "unit_closed_open"
doc = "decay of the running maximum"

[state.new]
init = "0"
doc = "running maximum of |g|"

[state.s]
init = "0"
doc = "accumulated log(2 + g^2)"
"""


def test_user_spec_with_clashing_names_generates_c_whose_tests_pass(tmp_path):
    spec = tmp_path / "clash.toml"
    spec.write_text(CLASHING_SPEC)
    out = tmp_path / "gen"
    result = CliRunner().invoke(
        main, ["generate", "--target", "c", "--no-builtins", "--spec", str(spec), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    source = (out / "c/src/clash.c").read_text()
    assert "double powf__" not in source and "double powf_" in source and "fmax_" in source
    assert "symopt_max_f32(" in source and "symopt_sign_f64(" in source
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(out / "c/tests")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    assert " passed" in done.stdout and "skipped" not in done.stdout


def test_missing_compiler_is_reported_clearly(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("CC", "SYMOPT_C_LIB")}
    env.update(PATH=str(tmp_path), XDG_CACHE_HOME=str(tmp_path), PYTHONPATH=str(GENERATED))
    code = (
        "import numpy as np, symopt_c\n"
        "try:\n"
        "    symopt_c.Adam([np.zeros(3)])\n"
        "except symopt_c.CompilerNotFoundError as exc:\n"
        "    print(exc)\n"
    )
    done = run_python(code, env, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "needs a C compiler" in done.stdout and "apt-get install gcc" in done.stdout
    env["CC"] = "no-such-cc"
    done = run_python(code, env, tmp_path)
    assert "$CC is 'no-such-cc' and" in done.stdout, done.stdout + done.stderr


STEP_AND_SAVE = """
import sys
import numpy as np
import symopt_c
rng = np.random.default_rng(0)
ws = [rng.standard_normal(n).astype(np.float32) for n in (70001, 5, 33000)]
opt = symopt_c.Adam(ws)
symopt_c.set_num_threads(2)
for _ in range(3):
    opt.step([rng.standard_normal(w.size).astype(np.float32) for w in ws])
np.save(sys.argv[1] if len(sys.argv) > 1 else "out.npy", np.concatenate(opt.params))
print(symopt_c.library_path(), symopt_c.openmp())
"""


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory) -> np.ndarray:
    """STEP_AND_SAVE's result with the repository's library (OpenMP when available)."""
    folder = tmp_path_factory.mktemp("reference")
    env = {**os.environ, "PYTHONPATH": str(GENERATED)}
    env.pop("SYMOPT_C_LIB", None)
    done = run_python(STEP_AND_SAVE, env, folder)
    assert done.returncode == 0, done.stderr
    return np.load(folder / "out.npy")


def test_sources_change_rebuilds_and_no_openmp_gives_identical_results(tmp_path, reference_run):
    copy = tmp_path / "c"
    shutil.copytree(GENERATED, copy, ignore=shutil.ignore_patterns("build", "__pycache__"))
    env = {**os.environ, "PYTHONPATH": str(copy), "SYMOPT_C_OPENMP": "0"}
    env.pop("SYMOPT_C_LIB", None)
    first = run_python(STEP_AND_SAVE, env, tmp_path)
    assert first.returncode == 0, first.stderr
    path, openmp = first.stdout.split()
    assert Path(path).parent == copy / "build" and openmp == "0"
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), reference_run)
    with open(copy / "src" / "sgd.c", "a") as handle:
        handle.write("// an edit\n")
    second = run_python(STEP_AND_SAVE, env, tmp_path)
    assert second.returncode == 0, second.stderr
    rebuilt = second.stdout.split()[0]
    assert rebuilt != path and Path(rebuilt).is_file() and not Path(path).exists()


def test_makefile_builds_a_library_the_package_can_load(tmp_path, reference_run):
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    copy = tmp_path / "c"
    shutil.copytree(GENERATED, copy, ignore=shutil.ignore_patterns("build", "__pycache__"))
    done = subprocess.run(["make", "-C", str(copy), "-j2", "all"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    # `make check` compiles every source with -Werror, as test_generated_c_compiles_without_
    # warnings does: here only that it is a well-formed target over every source and driver
    dry = subprocess.run(["make", "-C", str(copy), "-n", "check"], capture_output=True, text=True)
    assert dry.returncode == 0 and "-Werror" in dry.stdout, dry.stderr
    library = copy / "build" / "libsymopt.so"
    assert library.is_file() and (copy / "build" / "libsymopt.a").is_file()
    env = {**os.environ, "PYTHONPATH": str(copy), "SYMOPT_C_LIB": str(library)}
    run = run_python(STEP_AND_SAVE, env, tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split()[0] == str(library)
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), reference_run)


def test_generated_tests_catch_a_wrong_kernel(tmp_path):
    """The generated C tests can fail: swap beta1 for beta2 in the float64 first moment of
    Adam's default kernel (src/adam.c, tested by tests/test__adam.py)."""
    copy = tmp_path / "c"
    shutil.copytree(GENERATED, copy, ignore=shutil.ignore_patterns("build", "__pycache__"))
    source = copy / "src" / "adam.c"
    right = "const double m_new = beta1*m + g*one_minus_beta1;"
    assert right in source.read_text()
    source.write_text(source.read_text().replace(right, right.replace("beta1*m", "beta2*m")))
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "float64"]
        + [str(copy / "tests" / "test__adam.py")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
        env={k: v for k, v in os.environ.items() if k != "SYMOPT_C_LIB"},
    )
    assert done.returncode == 1, done.stdout[-2000:]
    assert "test_matches_reference" in done.stdout and "exceeds the tolerance" in done.stdout


def test_second_order_code_solves_the_derived_system():
    """The system matrix, its right-hand side and the predicted decrease are printed from the
    derivation, and the generated sources use exactly those."""
    damped = c_pieces(MODELS["trust_region"])
    assert damped["entry"] == "lam*(double)(i == j) + H[i * n + j]"
    assert damped["rhs"] == "-g[i]"
    assert damped["predicted"] == "-1.0/2.0*dHd - gd"
    assert [(d["name"], d["left"], d["right"]) for d in damped["dots"]] == [
        ("dHd", "d", "Hd"),
        ("gd", "g", "d"),
    ]
    assert c_pieces(MODELS["newton"])["entry"] == "H[i * n + j]"
    source = (GENERATED / "src" / "trust_region.c").read_text()
    assert "    return lam*(double)(i == j) + H[i * n + j];\n" in source
    assert "    return -g[i];\n" in source
    assert "    return -1.0/2.0*dHd - gd;\n" in source
    header = (GENERATED / "include" / "symopt" / "trust_region.h").read_text()
    assert "//     (lam*I + H)*d = -g\n" in header
    assert "#define SYMOPT_TRUST_REGION_ETA 0.0\n" in header


@pytest.mark.parametrize("cc", ["gcc", "clang"])
def test_all_headers_together_are_strict_c99(cc, tmp_path):
    """Every header in one translation unit (the objective type is defined once) and each
    second-order header alone."""
    if shutil.which(cc) is None:
        pytest.skip(f"{cc} is not installed")
    units = {
        "all.c": '#include "symopt/symopt.h"\n#include "symopt/newton.h"\n',
        "alone.c": '#include "symopt/trust_region.h"\n',
    }
    for name, text in units.items():
        source = tmp_path / name
        source.write_text(text + "int main(void) { return SYMOPT_TRUST_REGION_CONVERGED; }\n")
        command = [cc, *STRICT, f"-I{GENERATED / 'include'}", "-c", str(source)]
        done = subprocess.run(
            [*command, "-o", str(tmp_path / "x.o")],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0 and done.stderr == "", done.stderr[-3000:]


USER_TRUST_REGION = """
name = "my_region"
class_name = "MyRegion"
title = "A trust region with other constants"
summary = "A test spec: the damping is called mu, the subproblem is exact, the rule is slower."
reference = "none"

[model]
order = 2
curvature = "hessian"
damping = "mu"

[control]
rule = "radius"
subproblem = "exact"

[hyper.eta]
default = 0.1
domain = "unit_closed_open"

[hyper.shrink_below]
default = 0.2
domain = "unit_open"

[hyper.shrink]
default = 0.5
domain = "unit_open"

[hyper.expand_above]
default = 0.8
domain = "unit_open"

[hyper.expand]
default = 3.0
domain = "positive"

[hyper.radius0]
default = 0.5
domain = "positive"

[hyper.max_radius]
default = 100.0
domain = "positive"
"""

USER_NEWTON = """
name = "steep_newton"
class_name = "SteepNewton"
title = "Newton with a steepest-descent fallback"
summary = "A test spec: Newton's method that takes a gradient step where H is indefinite."
reference = "none"

[model]
order = 2
curvature = "hessian"
damping = "0"
step = "-inv(H) @ g"

[control]
rule = "newton"
on_indefinite = "gradient"
"""


def test_user_second_order_specs_generate_c_whose_tests_pass(tmp_path):
    files = []
    for name, text in (("my_region", USER_TRUST_REGION), ("steep_newton", USER_NEWTON)):
        spec = tmp_path / f"{name}.toml"
        spec.write_text(text)
        files += ["--spec", str(spec)]
    out = tmp_path / "gen"
    result = CliRunner().invoke(
        main, ["generate", "--target", "c", "--no-builtins", *files, "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    header = (out / "c/include/symopt/my_region.h").read_text()
    assert "//     (mu*I + H)*d = -g\n" in header and "#define SYMOPT_MY_REGION_ETA 0.1\n" in header
    assert "#define SYMOPT_MY_REGION_SUBPROBLEM SYMOPT_MY_REGION_EXACT\n" in header
    newton = (out / "c/include/symopt/steep_newton.h").read_text()
    assert "#define SYMOPT_STEEP_NEWTON_ON_INDEFINITE SYMOPT_STEEP_NEWTON_GRADIENT\n" in newton
    assert 'DEFAULT_ON_INDEFINITE = "gradient"' in (out / "c/symopt_c/steep_newton.py").read_text()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(out / "c/tests")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    assert " passed" in done.stdout and " failed" not in done.stdout


@pytest.mark.parametrize(
    ("name", "right", "wrong", "test"),
    [
        ("trust_region", "    return -g[i];\n", "    return g[i];\n", "cholesky_and_solve"),
        (
            "trust_region",
            "    return lam*(double)(i == j) + H[i * n + j];\n",
            "    return 0.5*lam*(double)(i == j) + H[i * n + j];\n",
            "cholesky_and_solve",
        ),
        ("newton", "    return H[i * n + j];\n", "    return H[i * n + i];\n", "match_numpy"),
        (
            "diag_newton",
            "_a, lam, neg_lr);\n        }\n    }\n}\n\nvoid symopt_diag_newton_step_multi_f64(",
            "_a, neg_lr, lam);\n        }\n    }\n}\n\nvoid symopt_diag_newton_step_multi_f64(",
            "numpy_formula",
        ),
    ],
)
def test_generated_second_order_tests_catch_a_wrong_step(name, right, wrong, test, tmp_path):
    """The generated tests can fail: a sign error in the right-hand side, half the damping, a
    system matrix that reads the wrong entries, or diagonal Newton's hyperparameters swapped."""
    copy = tmp_path / "c"
    shutil.copytree(GENERATED, copy, ignore=shutil.ignore_patterns("build", "__pycache__"))
    source = copy / "src" / f"{name}.c"
    assert source.read_text().count(right) == 1
    source.write_text(source.read_text().replace(right, wrong))
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", test]
        + [str(copy / "tests" / f"test_{name}.py")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
        env={k: v for k, v in os.environ.items() if k != "SYMOPT_C_LIB"},
    )
    assert done.returncode == 1, done.stdout[-2000:]
    assert " failed" in done.stdout


def test_conditionals_print_as_one_line_ternaries_and_truth_values_are_int():
    x, y = sympy.symbols("x y", real=True)
    f32 = CPrinter("f32", {}, set())
    inner = sympy.Piecewise((y, y < 0), (0, True))
    nested = sympy.Piecewise((x, x > 0), (inner, True))
    assert f32.doprint(nested) == "(x > 0 ? x : (y < 0 ? y : 0))"
    either = sympy.Or(sympy.And(x > 0, y > 0), x < -1)
    assert f32.doprint(either) == "x < -1 || (x > 0 && y > 0)"  # no -Wparentheses
    chosen = sympy.Piecewise((x, either), (y, True))
    assert f32.doprint(chosen) == "((x < -1 || (x > 0 && y > 0)) ? x : y)"
    assert f32.doprint(sympy.Not(sympy.And(x > 0, y > 0))) == "!(x > 0 && y > 0)"
    assert c_identifiers(["const", "int"]) == {"const": "const_", "int": "int_"}
    rprop = template_data(SPECS["rprop"], lower(SPECS["rprop"]))
    body = {st["name"]: st for st in rprop["precisions"][0]["body"]}
    assert body["tmp1"]["ctype"] == "int" and body["tmp1"]["code"] == "tmp0 < 0"
    assert body["tmp2"]["code"] == "(tmp1 ? 0 : g)"
    radam = template_data(SPECS["radam"], lower(SPECS["radam"]))
    kinds = {c["name"]: c["ctype"] for c in radam["prelude"]}
    assert kinds["condition"] == "int" and kinds["neg_step_size"] == "double"


def test_unsupported_features_are_refused_in_one_line_and_nothing_is_written(tmp_path):
    assert CBackend.supports == {
        "conditionals",
        "state initialised from the first gradient",
        "per-tensor reductions",
        "per-tensor scalar state",
    }
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        ["generate", "--target", "c", "--spec", str(ROOT / "specs" / "muon.toml")]
        + ["--no-builtins", "--out", str(out)],
    )
    assert result.exit_code == 2, result.output
    [line] = result.output.strip().splitlines()
    assert line.startswith(
        f"error: {ROOT / 'specs' / 'muon.toml'}: the c target cannot generate 'muon': "
        "fixed-count iterations, matrix products, transposes, updates for some parameter "
        "shapes only; try --target numpy or docs or torch or jax"
    )
    assert not out.exists()


TENSOR_SPECS = {
    "trusty": """
name = "trusty"
class_name = "Trusty"
title = "A LARS-like trust ratio"
summary = "A test spec: momentum on a gradient rescaled by a trust ratio of norms, where() on them."
reference = "none"
update = [
  "w_norm = norm(w)",
  "g_norm = norm(g)",
  "ratio = where(w_norm > 0 and g_norm > 0, coeff*w_norm/(g_norm + decay*w_norm), 1)",
  "b = momentum*b + ratio*(g + decay*w)",
  "w = w - lr*b",
]
[hyper.lr]
default = 0.01
domain = "positive"
[hyper.momentum]
default = 0.9
domain = "unit_closed_open"
[hyper.decay]
default = 0.01
domain = "nonnegative"
[hyper.coeff]
default = 0.5
domain = "positive"
[state.b]
init = "g"
doc = "momentum buffer, set to the first gradient"
""",
    "centred": """
name = "centred"
class_name = "Centred"
title = "Centred, normalised momentum"
summary = "A test spec: three passes (a mean, then the norm of the centred momentum)."
reference = "none"
update = ["m = beta*m + (1 - beta)*g", "c = m - mean(m)", "w = w - lr*c/(norm(c) + eps)"]
[hyper.lr]
default = 0.01
domain = "positive"
[hyper.beta]
default = 0.9
domain = "unit_closed_open"
[hyper.eps]
default = 1e-8
domain = "positive"
[state.m]
init = "0"
""",
    "peak": """
name = "peak"
class_name = "Peak"
title = "Gradient differences over their norm, gradients over their peak"
summary = "A test spec: a state read in the last pass, a maximum and a sum."
reference = "none"
update = [
  "d = g - p",
  "p = g",
  "w = w - lr*d/(norm(d) + eps) - lr*g/(max(abs(g)) + eps) - lr*sum(g)/(sum(abs(g)) + eps)",
]
[hyper.lr]
default = 0.01
domain = "positive"
[hyper.eps]
default = 1e-8
domain = "positive"
[state.p]
init = "0"
""",
}

COMPARE = """
import importlib, json, sys
import numpy as np
import symopt_c
from symopt.reference import ReferenceStepper, relative_error
from symopt.spec import load_spec
from symopt.spec.family import module_name, variants
names = sys.argv[1].split(",")
out = {}
for spec in [v for n in names for v in variants(load_spec(f"{sys.argv[2]}/tests/specs/{n}.toml"))]:
    module = module_name(spec)  # a plain spec's name, a family's variant's: _radam__weight_decay
    cls = getattr(importlib.import_module(f"symopt_c.{module}"), spec.class_name)
    rng = np.random.default_rng(5)
    sizes = [5000, 1, 33, 300000]  # 2 blocks, one, one, 64 blocks
    ws = [rng.standard_normal(n) for n in sizes]
    grads = [[rng.standard_normal(n) * 10.0 ** rng.uniform(-2, 1) for n in sizes] for _ in range(8)]
    ref = ReferenceStepper(spec, ws)
    for gs in grads:
        ref.step(gs)
    for dtype in ("float64", "float32"):
        results = []
        for threads in (1, 3):
            symopt_c.set_num_threads(threads)
            opt = cls([w.astype(dtype) for w in ws])
            for gs in grads:
                opt.step([g.astype(dtype) for g in gs])
            results.append(opt)
        one, three = results
        arrays = lambda o: [*o.params, *(s[k] for s in o.state for k in sorted(s))]
        ref_arrays = [*ref.params, *(s[k] for s in ref.state for k in sorted(s))]
        out[f"{module} {dtype}"] = {
            "error": max(relative_error(a, r) for a, r in zip(arrays(one), ref_arrays)),
            "threads agree": all(np.array_equal(a, b) for a, b in zip(arrays(one), arrays(three))),
        }
out["openmp"] = symopt_c.openmp()
print(json.dumps(out))
"""


#: The built-ins whose C code has conditionals, first-gradient state and reductions.
TENSOR_BUILTINS = ("rprop", "radam", "lamb")
#: Their kernels (each variant of rprop and radam) and the test specs', by Python module.
TENSOR_KERNELS = [k.name for n in TENSOR_BUILTINS for k in kernel_specs(SPECS[n])] + [*TENSOR_SPECS]


@pytest.fixture(scope="module")
def tensor_c(tmp_path_factory) -> Path:
    """The C target's files for conditionals, first-gradient state and reductions: the built-in
    rprop, radam and lamb (every variant), and the test specs above."""
    specs = [SPECS[name] for name in TENSOR_BUILTINS]
    specs += [load_spec_text(text, file=f"{name}.toml") for name, text in TENSOR_SPECS.items()]
    folder = tmp_path_factory.mktemp("tensor")
    for f in CBackend().files(specs):
        (folder / f.path).parent.mkdir(parents=True, exist_ok=True)
        (folder / f.path).write_text(f.text)
    return folder / "c"


@pytest.mark.parametrize("cc", ["gcc", "clang"])
def test_conditionals_and_passes_compile_without_warnings(cc, tensor_c, tmp_path):
    if shutil.which(cc) is None:
        pytest.skip(f"{cc} is not installed")
    sources = [*sorted(tensor_c.glob("src/*.c")), *sorted(tensor_c.glob("tests/driver_*.c"))]
    runtime = [p for p, _, _ in STATIC if p.endswith(".c")]
    assert len(sources) == 2 * len(TENSOR_KERNELS) + len(runtime)
    modes = [[], ["-fopenmp"]] if accepts(cc, "-fopenmp", tmp_path) else [[]]
    for openmp in modes:
        for source in sources:
            done = subprocess.run(
                [cc, *CFLAGS, *STRICT, *openmp, f"-I{tensor_c / 'include'}", "-c", str(source)]
                + ["-o", str(tmp_path / "x.o")],
                capture_output=True,
                text=True,
            )
            assert done.returncode == 0 and done.stderr == "", f"{source.name}: {done.stderr}"
    lamb = (tensor_c / "src" / "lamb.c").read_text()
    assert lamb.count("#pragma omp single") == 2 and "static void lamb_pass2_f32(" in lamb


def test_conditionals_and_reductions_match_the_reference_stepper(tensor_c):
    """float64 to 1e-12 of each array's scale and float32 loosely, over tensors of one block,
    two and sixty-four, with results that do not depend on the number of threads; every kernel
    (each variant of a family, under the spec's names) against the reference stepper."""
    names = [*TENSOR_BUILTINS, *TENSOR_SPECS]
    env = {**os.environ, "PYTHONPATH": f"{tensor_c}{os.pathsep}{ROOT}"}
    env.pop("SYMOPT_C_LIB", None)
    done = subprocess.run(
        [sys.executable, "-c", COMPARE, ",".join(names), str(tensor_c)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout)
    assert len(results) == 2 * len(TENSOR_KERNELS) + 1
    for name in TENSOR_KERNELS:
        assert results[f"{name} float64"]["error"] < 1e-12, (name, results[f"{name} float64"])
        assert results[f"{name} float32"]["error"] < 1e-4, (name, results[f"{name} float32"])
        assert all(results[f"{name} {dtype}"]["threads agree"] for dtype in ("float64", "float32"))


def test_generated_tests_of_passes_pass_and_catch_a_wrong_sum(tensor_c, tmp_path):
    """The generated tests of a three-pass spec (reference comparisons, the sanitizer driver with
    three threads sharing a tensor's blocks) pass, and fail when a block's partial sum is lost."""
    env = {k: v for k, v in os.environ.items() if k != "SYMOPT_C_LIB"}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist"]
    done = subprocess.run(
        [*command, str(tensor_c / "tests" / "test_centred.py")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
        env=env,
    )
    assert done.returncode == 0 and " passed" in done.stdout, done.stdout[-3000:]
    assert "skipped" not in done.stdout, done.stdout[-3000:]
    copy = tmp_path / "c"
    shutil.copytree(tensor_c, copy, ignore=shutil.ignore_patterns("build", "__pycache__"))
    source = copy / "src" / "centred.c"
    right = "acc_c += _part[_b * CENTRED_ACC + 0];"
    assert source.read_text().count(right) == 4  # float and double, shared and whole
    source.write_text(source.read_text().replace(right, "acc_c = _part[_b * CENTRED_ACC + 0];"))
    done = subprocess.run(
        [*command, "-k", "matches_reference and float64", str(copy / "tests" / "test_centred.py")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
        env=env,
    )
    assert done.returncode == 1 and "exceeds the tolerance" in done.stdout, done.stdout[-3000:]

"""The trust-region solvers' scalar formulas: each derived piece passes its symbolic check and a
deliberately wrong formula fails it; the printed Python, JAX and C functions give the numbers of
the SymPy expressions (evaluated exactly by SymPy, an independent path)."""

from __future__ import annotations

import ctypes
import math
import os
import shutil
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import sympy

from symopt.backends import second_order as backend
from symopt.backends.c.elementwise import CFLAGS
from symopt.backends.c.scalar_pieces import c_scalar_functions
from symopt.backends.scalar_pieces import jax_scalar_functions, python_scalar_functions
from symopt.checks import solver_pieces as checks
from symopt.files.format import ruff_binary
from symopt.lowering.derive import derive
from symopt.lowering.solver_pieces import solver_pieces
from symopt.resources import builtin_spec
from symopt.spec.model import N

TRUST = builtin_spec("trust_region")
S = {name: sympy.Symbol(name) for name in "lam d_norm w_sq radius pp pd dd gg ghg".split()}
CHECKS = {
    "secular_newton": checks.check_secular_newton,
    "boundary_tau_max": checks.check_boundary_taus,
    "boundary_tau_min": checks.check_boundary_taus,
    "cauchy_length": checks.check_cauchy_length,
}


def verdict(check, spec=TRUST):
    (result,) = check(spec, {})
    assert result.method == "symbolic"
    return result


def with_piece(monkeypatch, name: str, expr: sympy.Expr) -> None:
    """The checks see ``name`` replaced by ``expr`` (in the pieces' own symbols)."""
    own = {s.name: s for p in solver_pieces(TRUST) for s in p.expr.free_symbols}
    expr = expr.xreplace({s: own[s.name] for s in expr.free_symbols})
    pieces = [replace(p, expr=expr) if p.name == name else p for p in solver_pieces(TRUST)]
    monkeypatch.setattr(checks, "solver_pieces", lambda spec: pieces)


@pytest.mark.parametrize("check", sorted(set(CHECKS.values()), key=lambda c: c.__name__))
def test_every_piece_check_passes_for_the_trust_region(check):
    result = verdict(check)
    assert result.passed, result.detail
    assert "n = 2 and n = 3" in result.detail


lam, d_norm, w_sq, radius = (S[k] for k in ("lam", "d_norm", "w_sq", "radius"))
pp, pd, dd, gg, ghg = (S[k] for k in ("pp", "pd", "dd", "gg", "ghg"))
DISC = sympy.sqrt(sympy.Max(0, dd * (radius**2 - pp) + pd**2))
T_MAX = sympy.Piecewise(((radius**2 - pp) / (pd + DISC), pd > 0), ((DISC - pd) / dd, True))
T_MIN = sympy.Piecewise(((radius**2 - pp) / (pd - DISC), pd < 0), ((-pd - DISC) / dd, True))
T_B = radius / sympy.sqrt(gg)


@pytest.mark.parametrize(
    ("name", "wrong"),
    [
        ("secular_newton", lam - d_norm**2 * (d_norm - radius) / (radius * w_sq)),  # sign
        ("secular_newton", lam + d_norm * (d_norm - radius) / (radius * w_sq)),  # a factor
        ("secular_newton", lam + w_sq * (d_norm - radius) / radius),  # the Hessian's norm
        ("boundary_tau_max", T_MIN),  # the wrong root
        ("boundary_tau_min", T_MAX),
        ("boundary_tau_max", T_MAX.subs(pd + DISC, pd - DISC)),  # a sign in one branch
        ("boundary_tau_max", T_MAX.xreplace({pd > 0: pd < 0})),  # the cancelling branch
        ("boundary_tau_min", T_MIN / 2),
        ("cauchy_length", sympy.Piecewise((sympy.Min(T_B, gg / (2 * ghg)), ghg > 0), (T_B, True))),
        ("cauchy_length", sympy.Piecewise((sympy.Max(T_B, gg / ghg), ghg > 0), (T_B, True))),
        ("cauchy_length", sympy.Piecewise((sympy.Min(T_B, gg / ghg), ghg > 0), (2 * T_B, True))),
        ("cauchy_length", sympy.Piecewise((sympy.Min(T_B, gg / ghg), ghg < 0), (T_B, True))),
        ("cauchy_length", sympy.Min(T_B, gg / ghg)),  # no case for ghg <= 0
    ],
)
def test_a_wrong_formula_fails_its_check(monkeypatch, name, wrong):
    assert verdict(CHECKS[name]).passed
    assert wrong != next(p.at(S) for p in solver_pieces(TRUST) if p.name == name)
    with_piece(monkeypatch, name, wrong)
    result = verdict(CHECKS[name])
    assert not result.passed, result.detail


def test_the_derived_formulas_are_the_textbook_ones():
    pieces = {p.name: p.at(S) for p in solver_pieces(TRUST)}
    newton = lam + (d_norm**2 / w_sq) * (d_norm - radius) / radius  # Nocedal & Wright (4.44)
    assert sympy.simplify(pieces["secular_newton"] - newton) == 0
    assert pieces["boundary_tau_max"] == T_MAX and pieces["boundary_tau_min"] == T_MIN
    cauchy = sympy.Piecewise((sympy.Min(T_B, gg / ghg), ghg > 0), (T_B, True))
    assert pieces["cauchy_length"] == cauchy


@pytest.mark.parametrize("flip", [-1, sympy.Rational(1, 2)])
def test_a_wrong_predicted_decrease_fails(monkeypatch, flip):
    assert verdict(checks.check_predicted_decrease_any_step).passed
    right = backend.derived_pieces

    def wrong(spec):
        out = dict(right(spec))
        g, d, hd = (sympy.MatrixSymbol(x, N, 1) for x in ("g", "d", backend.HD))
        out["predicted"] = -(g.T * d) * flip - sympy.Rational(1, 2) * d.T * hd
        return out

    monkeypatch.setattr(backend, "derived_pieces", wrong)
    result = verdict(checks.check_predicted_decrease_any_step)
    assert not result.passed and "at n = 2" in result.detail


def test_the_norm_identity_fails_for_a_step_with_the_wrong_damping():
    s = derive(TRUST, 2).symbols
    H, g, lam = s["H"], s["g"], s["lam"]
    right = -(H + lam * sympy.eye(2)).inv() * g
    wrong = -(H + 2 * lam * sympy.eye(2)).inv() * g
    assert checks.norm_derivative_identity(TRUST, 2, right)
    assert not checks.norm_derivative_identity(TRUST, 2, wrong)
    assert not checks.norm_derivative_identity(TRUST, 2, lam * g)


def exact(name: str, args: tuple[float, ...]) -> float:
    """The piece evaluated by SymPy on the floats: no printer involved."""
    piece = next(p for p in solver_pieces(TRUST) if p.name == name)
    values = {a: sympy.Float(v, 30) for a, v in zip(piece.args, args, strict=True)}
    return float(piece.expr.xreplace({s: values[s.name] for s in piece.expr.free_symbols}))


def samples(name: str, rng: np.random.Generator, count: int = 30) -> list[tuple[float, ...]]:
    """Inputs as the solvers pass them: norms and dot products of random vectors."""
    out = []
    for _ in range(count):
        p, d, r = rng.normal(size=3), rng.normal(size=3), float(rng.uniform(0.1, 3.0))
        if name == "secular_newton":
            out.append((abs(rng.normal()), float(np.linalg.norm(d)), float(rng.uniform(0.1, 5)), r))
        elif name.startswith("boundary"):
            p *= r * rng.uniform(0.0, 1.2) / np.linalg.norm(p)  # inside and outside the ball
            out.append((float(p @ p), float(p @ d), float(d @ d), r))
        else:
            out.append((float(d @ d), float(rng.normal() * (d @ d)), r))
    return out


def load(text: str, **namespace) -> dict:
    exec(compile(text, "<printed>", "exec"), namespace)  # noqa: S102 - the code under test
    return namespace


def test_printed_python_functions_give_the_expressions_numbers(tmp_path):
    text = python_scalar_functions(TRUST)
    assert text == python_scalar_functions(TRUST)
    path = tmp_path / "pieces.py"
    path.write_text(f"import math\n\n\n{text}")
    subprocess.run([ruff_binary(), "format", "--quiet", "--isolated", str(path)], check=True)
    lint = [ruff_binary(), "check", "--isolated", "--line-length", "100", str(path)]
    assert subprocess.run(lint, capture_output=True, text=True).returncode == 0
    for source in (text, path.read_text()):
        functions = load(source, math=math)
        rng = np.random.default_rng(7)
        for piece in solver_pieces(TRUST):
            for args in samples(piece.name, rng):
                got = functions[piece.name](*args)
                assert type(got) is float and got == pytest.approx(exact(piece.name, args), 1e-12)


def test_boundary_roots_lie_on_the_sphere_and_never_divide_by_zero():
    f = load(python_scalar_functions(TRUST), math=math)
    rng = np.random.default_rng(3)
    for _ in range(50):
        p, d, r = rng.normal(size=4), rng.normal(size=4), float(rng.uniform(0.5, 2.0))
        p *= r * rng.uniform(0.0, 1.0) / np.linalg.norm(p)
        args = (float(p @ p), float(p @ d), float(d @ d), r)
        low, high = f["boundary_tau_min"](*args), f["boundary_tau_max"](*args)
        assert low <= 0.0 <= high
        for tau in (low, high):
            assert np.linalg.norm(p + tau * d) == pytest.approx(r, 1e-10)
    # p on the boundary with d tangent: both roots 0 (a naive form divides 0 by 0)
    assert f["boundary_tau_min"](1.0, 0.0, 2.0, 1.0) == f["boundary_tau_max"](1.0, 0.0, 2.0, 1.0)
    assert f["secular_newton"](0.0, 1e200, 1.0, 1.0) == math.inf  # x*x, not x**2's OverflowError


def test_printed_jax_functions_trace_and_match():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy
    functions = load(jax_scalar_functions(TRUST), jnp=jnp, Array=jax.Array)
    rng = np.random.default_rng(11)
    for piece in solver_pieces(TRUST):
        args = np.array(samples(piece.name, rng, 20))
        got = jax.jit(jax.vmap(functions[piece.name]))(*args.T)
        want = [exact(piece.name, tuple(a)) for a in args]
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-12)


@pytest.mark.skipif(shutil.which("gcc") is None, reason="no C compiler")
def test_printed_c_functions_compile_strictly_and_give_pythons_numbers(tmp_path):
    text = c_scalar_functions(TRUST, "tr")
    wrappers = []
    for piece in solver_pieces(TRUST):
        params = ", ".join(f"double {a}" for a in piece.args)
        wrappers.append(
            f"double call_{piece.name}({params}) {{ return tr_{piece.name}"
            f"({', '.join(piece.args)}); }}"
        )
    source = tmp_path / "pieces.c"
    source.write_text("#include <math.h>\n\n" + text + "\n" + "\n".join(wrappers) + "\n")
    library = tmp_path / "pieces.so"
    flags = [*CFLAGS, "-Wall", "-Wextra", "-Werror", "-pedantic", "-shared"]
    subprocess.run(["gcc", *flags, str(source), "-o", str(library), "-lm"], check=True)
    lib = ctypes.CDLL(str(library))
    python = load(python_scalar_functions(TRUST), math=math)
    rng = np.random.default_rng(5)
    for piece in solver_pieces(TRUST):
        fn = getattr(lib, f"call_{piece.name}")
        fn.restype, fn.argtypes = ctypes.c_double, [ctypes.c_double] * len(piece.args)
        for args in samples(piece.name, rng):
            assert fn(*args) == python[piece.name](*args)  # the same operations, bit for bit
    nan = float("nan")
    assert math.isnan(lib.call_boundary_tau_max(nan, -1.0, 1.0, 1.0))  # NaN propagates


def test_printing_is_deterministic_across_processes():
    code = (
        "from symopt.backends.scalar_pieces import python_scalar_functions as p\n"
        "from symopt.backends.c.scalar_pieces import c_scalar_functions as c\n"
        "from symopt.resources import builtin_spec\n"
        "s = builtin_spec('trust_region'); print(p(s) + c(s, 'tr'), end='')\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.stdout == python_scalar_functions(TRUST) + c_scalar_functions(TRUST, "tr")

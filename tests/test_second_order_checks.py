"""Second-order specs: the derivation from the Taylor model and the checks of the step."""

from __future__ import annotations

import pytest
import sympy
from click.testing import CliRunner

from symopt.checks import run_checks
from symopt.cli import main
from symopt.errors import SpecError
from symopt.lowering.derive import derive, is_zero_matrix
from symopt.resources import builtin_spec, second_order_specs
from symopt.spec import load_spec_text

TRUST = builtin_spec("trust_region")
NEWTON = builtin_spec("newton")
WRITTEN = 'step = "-inv(H + lam*I) @ g"'


def with_step(step: str, base=TRUST):
    return load_spec_text(base.text.replace(base.text.split("step = ")[1].split("\n")[0], step))


def failed(spec) -> set[str]:
    return {r.name for r in run_checks(spec, {}) if not r.passed}


@pytest.mark.parametrize("name", sorted(second_order_specs()))
def test_builtin_second_order_specs_pass_every_check_symbolically(name):
    results = run_checks(builtin_spec(name), {})
    assert len(results) >= 8
    assert all(r.passed and r.method == "symbolic" for r in results), [
        (r.name, r.detail) for r in results if not r.passed
    ]


def test_general_derivation_is_the_damped_newton_step():
    d = derive(TRUST, None)
    g, H, eye = d.symbols["g"], d.symbols["H"], d.symbols["I"]
    lam = sympy.Symbol("lam", nonnegative=True)
    assert is_zero_matrix(d.matrix - (H + lam * eye))
    assert is_zero_matrix(d.step - (-(H + lam * eye).I * g))


@pytest.mark.parametrize("n", [2, 3])
def test_explicit_derivation_solves_the_system_at_random_points(n):
    d = derive(TRUST, n)
    rng = __import__("numpy").random.default_rng(n)
    a = rng.normal(size=(n, n))
    values = {}
    for i in range(n):
        values[sympy.Symbol(f"g_{i + 1}", real=True)] = sympy.Rational(int(rng.integers(-9, 9)))
        for j in range(i, n):
            values[sympy.Symbol(f"h_{i + 1}{j + 1}", real=True)] = sympy.Rational(
                round(float((a @ a.T)[i, j]) * 100), 100
            )
    lam = sympy.Symbol("lam", nonnegative=True)
    values[lam] = sympy.Rational(3, 7)
    H = d.symbols["H"].xreplace(values)
    g = d.symbols["g"].xreplace(values)
    step = d.step.xreplace(values)
    assert (H + values[lam] * sympy.eye(n)) * step + g == sympy.zeros(n, 1)


def test_a_sign_error_fails_the_stationarity_minimiser_and_limit_checks():
    bad = failed(with_step('"inv(H + lam*I) @ g"'))
    assert "the step is a stationary point of the model (its gradient vanishes there)" in bad
    assert "for positive definite H + lam I the step is the model's minimiser" in bad
    assert "with lam = 0 the step is Newton's step -H^-1 g" in bad
    assert "as lam -> infinity, lam d -> -g (gradient descent with step 1/lam)" in bad
    assert any(name.startswith("the written step") for name in bad)


def test_missing_damping_fails_the_damped_checks_but_not_the_newton_limit():
    bad = failed(with_step('"-inv(H) @ g"'))
    assert "the step is a stationary point of the model (its gradient vanishes there)" in bad
    assert "as lam -> infinity, lam d -> -g (gradient descent with step 1/lam)" in bad
    assert "||d(lam)|| decreases in lam where H + lam I is positive definite" in bad
    assert "with lam = 0 the step is Newton's step -H^-1 g" not in bad


def test_a_wrong_newton_step_fails():
    bad = failed(with_step('"-H @ g"', NEWTON))
    assert "the step is Newton's step -H^-1 g" in bad
    assert "Newton's step reaches a quadratic's stationary point in one step" in bad


def test_failure_detail_names_a_nonzero_component():
    results = run_checks(with_step('"inv(H + lam*I) @ g"'), {})
    stationary = next(r for r in results if r.name.startswith("the step is a stationary"))
    assert stationary.detail == "at n = 2 a component is 2*g_1"


@pytest.mark.parametrize(
    ("change", "key", "reason"),
    [
        (
            ('curvature = "hessian"', 'curvature = "hessain"'),
            "model.curvature",
            "unknown curvature",
        ),
        ((WRITTEN, 'step = "H @ H"'), "model.step", "must be a vector"),
        ((WRITTEN, 'step = "inv(g)"'), "model.step", "inv() of a 3 x 1 matrix"),
        ((WRITTEN, 'step = "g + H"'), "model.step", "invalid matrix expression"),
        ((WRITTEN, 'step = "__import__(g)"'), "model.step", "unknown function"),
        ((WRITTEN, 'step = "H**2 @ g"'), "model.step", "not allowed"),
        ((WRITTEN, 'step = "x @ g"'), "model.step", "unknown symbol 'x'"),
        (('rule = "radius"', 'rule = "newton"'), "model.damping", "needs damping"),
        (('rule = "radius"', 'rule = "radial"'), "control.rule", "unknown rule"),
        (("[hyper.eta]", "[hyper.etta]"), "hyper", "needs a hyperparameter 'eta'"),
        (("default = 0.75", "default = 0.1"), "hyper", "eta < shrink_below < expand_above"),
        (("order = 2", "order = 3"), "model.order", "only order 2"),
    ],
)
def test_bad_second_order_specs_are_one_line_errors(change, key, reason):
    text = TRUST.text.replace(*change)
    assert text != TRUST.text
    with pytest.raises(SpecError) as err:
        load_spec_text(text, "mine.toml")
    message = str(err.value)
    assert message.startswith(f"mine.toml: {key}: ") and reason in message, message
    assert "\n" not in message


def test_cli_check_show_and_verify(tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["check", "newton", "trust_region"])
    assert result.exit_code == 0, result.output
    assert "23 checks on 2 spec(s): 23 passed, 0 failed (23 symbolic)" in result.output
    wrong = tmp_path / "wrong.toml"
    wrong.write_text(TRUST.text.replace(WRITTEN, 'step = "inv(H + lam*I) @ g"'))
    result = runner.invoke(main, ["check", "--spec", str(wrong)])
    assert result.exit_code == 1 and "FAIL" in result.output
    result = runner.invoke(main, ["show", "trust_region"])
    assert "derived step: d = -(lam*I + H)**(-1)*g" in result.output
    result = runner.invoke(main, ["verify", "torch.optim.Adam", "--against", "newton"])
    assert result.exit_code == 2
    assert result.output.startswith("error: --against: newton is a second-order spec")


def test_structured_specs_also_prove_their_curvature_identities():
    results = {r.name: r for r in run_checks(builtin_spec("kfac"), {})}
    assert all(r.passed and r.method == "symbolic" for r in results.values())
    refuted = [name for name in results if name.startswith("NOT: ")]
    assert len(refuted) >= 2  # the batch is not exact, the factored solve is not the damped one
    diag = {r.name for r in run_checks(builtin_spec("diag_newton"), {})}
    assert any(name.startswith("NOT: ") and "diagonal" in name for name in diag)


KFAC = builtin_spec("kfac")


@pytest.mark.parametrize(
    ("change", "key", "reason"),
    [
        (('structure = "kronecker"', 'structure = "kronecker2"'), "model.structure", "unknown"),
        (('rule = "damped"', 'rule = "radius"'), "control.rule", "uses the 'damped' rule"),
        (("default = 10\n", "default = 2.5\n"), "hyper.inverse_every.default", "whole number"),
        (("[hyper.decay]", "[hyper.decay2]"), "hyper", "needs a hyperparameter 'decay'"),
        (('curvature = "ggn"', 'curvature = "gnn"'), "model.curvature", "unknown curvature"),
    ],
)
def test_bad_structured_specs_are_one_line_errors(change, key, reason):
    text = KFAC.text.replace(*change)
    assert text != KFAC.text
    with pytest.raises(SpecError) as err:
        load_spec_text(text, "k.toml")
    assert str(err.value).startswith(f"k.toml: {key}: ") and reason in str(err.value)

"""The command line as a user meets it: tables, exit codes, one-line errors and no tracebacks."""

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from symopt.cli import main
from symopt.resources import builtin_specs


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def test_list_shows_the_nine_algorithms():
    result = run("list")
    assert result.exit_code == 0
    for name in [
        "sgd",
        "momentum",
        "nesterov",
        "adagrad",
        "rmsprop",
        "adam",
        "adamax",
        "nadam",
        "adabelief",
    ]:
        assert f"\n{name} " in result.output
    assert "beta1=0.9" in result.output


def test_show_prints_equations_hyperparameters_and_notes():
    result = run("show", "adam")
    assert result.exit_code == 0
    assert "m = beta1*m + (1 - beta1)*g" in result.output
    assert re.search(r"beta2 += 0.999 +in \[0, 1\)", result.output)
    assert "t = 0" in result.output  # the note on the article's typo
    # the spec as written: its flags, the state only one of them needs, its variants
    assert re.search(r"amsgrad += False", result.output)
    assert "vmax     = 0        (only with amsgrad)" in result.output
    assert "drop-in for torch.optim.Adam" in result.output
    assert "_adam__amsgrad: amsgrad" in result.output


def test_check_named_specs_exits_zero_with_methods():
    result = run("check", "momentum", "nesterov")
    assert result.exit_code == 0, result.output
    assert "symbolic" in result.output
    assert "0 failed" in result.output


@pytest.fixture
def broken(tmp_path: Path):
    def write(old: str, new: str, name: str = "momentum") -> str:
        path = tmp_path / "broken.toml"
        text = builtin_specs()[name].text
        assert old in text
        path.write_text(text.replace(old, new))
        return str(path)

    return write


def test_check_fails_with_exit_1_on_a_wrong_relation(broken):
    result = run("check", "--spec", broken('where = { rho = "0" }', 'where = { rho = "1/2" }'))
    assert result.exit_code == 1
    assert "FAIL" in result.output and "w differs" in result.output


def test_check_fails_on_t_from_zero(broken):
    result = run("check", "--spec", broken('name = "adam"', 'name = "adam"\nt_start = 0', "adam"))
    assert result.exit_code == 1
    assert "division by zero: 1 - beta1**t can be 0 at t = 0" in result.output


def test_missing_init_is_a_one_line_error(broken):
    result = run("check", "--spec", broken('init = "0"\n', ""))
    assert result.exit_code == 2
    assert result.output.count("\n") == 1
    assert "state.v" in result.output and "no initial value" in result.output
    assert "Traceback" not in result.output


def test_malicious_spec_executes_nothing(broken, tmp_path):
    marker = tmp_path / "pwned"
    path = broken('"v = rho*v + g",', f"\"v = __import__('os').system('touch {marker}')\",")
    for command in (
        ["check", "--spec", path],
        ["show", "--spec", path],
        ["generate", "--spec", path, "--out", str(tmp_path / "out")],
    ):
        result = run(*command)
        assert result.exit_code == 2
        assert "update[0]: only plain function calls are allowed" in result.output
    assert not marker.exists()
    assert not (tmp_path / "out").exists()


def test_unknown_algorithm_suggests_the_closest_name():
    result = run("show", "adamm")
    assert result.exit_code == 2
    assert "did you mean 'adam'" in result.output


def test_missing_spec_file():
    result = run("check", "--spec", "does/not/exist.toml")
    assert result.exit_code == 2
    assert "does/not/exist.toml: no such file" in result.output


def test_unknown_target():
    result = run("generate", "--target", "fortran", "--check")
    assert result.exit_code == 2  # a usage error
    assert "unknown target 'fortran'" in result.output


def test_show_kernel_prints_what_each_kind_of_spec_is_generated_from():
    fused = run("show", "adam", "--kernel")
    assert fused.exit_code == 0 and "element-wise body (SSA" in fused.output
    tensor = run("show", "muon", "--kernel")
    assert tensor.exit_code == 0, tensor.output
    statements = tensor.output.split("whole-tensor statements, 2-D parameters")[1].splitlines()
    assert statements[4:8] == [
        "  repeat 5 times:",
        "    a_mat = MatProduct(x, Transposed(x))",
        "    b_mat = a_mat*ns_b + ns_c*MatProduct(a_mat, a_mat)",
        "    x = ns_a*x + MatProduct(b_mat, x)",
    ]

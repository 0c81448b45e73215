"""symopt verify: correct implementations pass, broken ones fail with the right diagnosis."""

import json

import handwritten
import pytest
from click.testing import CliRunner

from symopt.cli import main
from symopt.resources import elementwise_specs
from symopt.verify import verify

SPECS = elementwise_specs()


@pytest.mark.parametrize("name", sorted(handwritten.CORRECT))
def test_correct_handwritten_implementation_passes(name):
    report = verify(handwritten.CORRECT[name], SPECS[name], steps=25, seeds=1, long=0)
    assert report.passed, report.summary()
    assert report.max_error < 1e-12
    assert set(report.compared_state) == set(SPECS[name].state_names)


@pytest.mark.parametrize("broken", list(handwritten.BROKEN), ids=lambda f: f.__name__)
def test_broken_implementation_fails_with_the_right_diagnosis(broken):
    name, variant = handwritten.BROKEN[broken]
    report = verify(broken, SPECS[name], steps=25, seeds=1, long=0)
    assert not report.passed
    assert report.first_difference is not None and report.first_difference.step >= 1
    assert report.diagnosis is not None, report.summary()
    assert report.diagnosis.rules == (variant,), report.summary()
    assert report.diagnosis.explained, report.summary()


def test_generated_numpy_class_passes():
    import symopt_numpy

    report = verify(symopt_numpy.Adam, SPECS["adam"], steps=20, seeds=1, long=0)
    assert report.passed, report.summary()
    assert sorted(report.compared_state) == ["m", "v"]


def test_first_difference_names_the_quantity_that_parts_first():
    report = verify(handwritten.adamax_eps_inside_max, SPECS["adamax"], steps=10, seeds=1, long=0)
    assert report.first_difference.step == 1
    assert report.first_difference.quantity == "u"


def test_cli_json_and_exit_codes():
    runner = CliRunner()
    ok = runner.invoke(
        main, ["verify", "handwritten.adam", "--against", "adam", "--steps", "10", "--long", "0"]
    )
    assert ok.exit_code == 0, ok.output
    assert ok.stdout.startswith("PASS")
    bad = runner.invoke(
        main,
        [
            "verify",
            "handwritten.adam_eps_inside_sqrt",
            "--against",
            "adam",
            "--steps",
            "10",
            "--json",
        ],
    )
    assert bad.exit_code == 1
    data = json.loads(bad.stdout)
    assert data["passed"] is False and data["diagnosis"]["rules"] == ["eps_inside_sqrt"]


def test_cli_errors_are_one_line():
    runner = CliRunner()
    result = runner.invoke(main, ["verify", "handwritten.nope", "--against", "adam"])
    assert result.exit_code == 2 and "has no attribute 'nope'" in result.output
    result = runner.invoke(
        main, ["verify", "handwritten.adam", "--against", "adam", "--hyper", "lr"]
    )
    assert result.exit_code == 2 and "expected NAME=VALUE" in result.output


def test_cli_progress_goes_to_stderr_and_the_report_alone_to_stdout():
    result = CliRunner().invoke(
        main, ["verify", "handwritten.adam", "--against", "adam", "--steps", "5", "--long", "0"]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("PASS") and result.stdout.count("\n") == 1
    runs = [line for line in result.stderr.splitlines() if line.startswith("verify: run ")]
    assert (
        runs
        and runs[0].startswith("verify: run 1/")
        and runs[-1].split()[2].split("/")[0] == str(len(runs))
    )

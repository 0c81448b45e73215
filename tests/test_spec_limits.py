"""Limits of a spec (issue 22, item 4): every constant is a double, ``t_start`` is bounded, and
every check runs under a time budget and says ``timeout`` when it runs past it."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import sympy

from symopt.checks import budget, run_checks
from symopt.checks.result import TIMEOUT
from symopt.errors import SpecError
from symopt.spec import load_spec_text
from symopt.spec.numbers import double_problem

ROOT = Path(__file__).resolve().parents[1]
TOO_LARGE = r"is out of range for a double \(largest 1\.8e308\)"
TOO_SMALL = r"is out of range for a double: it rounds to 0 \(smallest 4\.9e-324\)"


def spec_text(update: str, default: str = "0.1", head: str = "") -> str:
    return f"""{head}
name = "tiny"
class_name = "Tiny"
title = "Tiny"
summary = "s"
reference = "r"
update = ["{update}"]

[hyper.lr]
default = {default}
domain = "nonnegative"
"""


def load(update: str, default: str = "0.1", head: str = ""):
    return load_spec_text(spec_text(update, default, head), "tiny.toml")


# The oracle: Python's correctly rounded int / int, which overflows or gives 0.0 exactly when
# a double cannot hold the number.
@pytest.mark.parametrize(
    ("p", "q"),
    [
        (2**1024 - 2**970, 1),  # the midpoint above the largest double: rounds to inf
        (2**1024 - 2**970 - 1, 1),  # just below it: rounds to the largest double
        (1, 2**1075),  # half the smallest subnormal: ties to even, 0
        (1, 2**1075 - 1),  # just above it: the smallest subnormal
        (10**309, 1),
        (1, 10**400),
        (10**308, 1),
        (1, 10**323),
    ],
)
def test_double_problem_agrees_with_python_float(p, q):
    try:
        fits = p / q != 0.0
    except OverflowError:
        fits = False
    assert (double_problem(sympy.Rational(p, q)) is None) == fits


@pytest.mark.parametrize(
    ("update", "reason"),
    [
        ("w = w - lr*g*1e399", f"the constant 1e399 {TOO_LARGE}"),
        ("w = w - g/1e399", f"the constant 1e399 {TOO_LARGE}"),
        ("w = w - lr*g*1e-400", f"the constant 1e-400 {TOO_SMALL}"),
        # folded by SymPy: no literal is out of range, their product (with w - ...: its negative) is
        ("w = w - lr*g*(1e308*10)", f"the constant -1.00e\\+309 {TOO_LARGE}"),
        ("w = w - lr*g*1e200*1e200", f"the constant -1.00e\\+400 {TOO_LARGE}"),
        ("w = w - lr*g*exp(-1000)", f"the constant exp\\(-1000\\) {TOO_SMALL}"),
        (
            "w = w - lr*g*" + "9" * 400,
            f"the constant 99999999...9999 \\(400 characters\\) {TOO_LARGE}",
        ),
    ],
)
def test_constants_that_are_no_double_are_spec_errors(update, reason):
    with pytest.raises(SpecError, match=f"^tiny.toml: update\\[0\\]: {reason}$"):
        load(update)


def test_constants_a_double_holds_still_load():
    spec = load("w = w - lr*g*1e300*1e300/1e300 + 1e-320*g + 1.7976931348623157e308*g")
    w, g, lr = (sympy.Symbol(n, real=True) for n in "w g lr".split())
    lr = next(s for s in spec.update[0].expr.free_symbols if s.name == "lr")
    big, tiny = sympy.Rational(17976931348623157 * 10**292), sympy.Rational(1, 10**320)
    assert spec.update[0].expr == w - 10**300 * lr * g + tiny * g + big * g


@pytest.mark.parametrize(
    ("default", "reason"),
    [
        ("1" + "0" * 400, f"the integer 10000000...0000 \\(401 characters\\) {TOO_LARGE}"),
        ("1e400", f"the constant 1e400 {TOO_LARGE}"),
        ("1e-400", f"the constant 1e-400 {TOO_SMALL}"),
        ("1" + "0" * 5000, "not valid TOML: Exceeds the limit \\(4300 digits\\)"),
    ],
)
def test_defaults_that_are_no_double_are_spec_errors(default, reason):
    key = "" if "TOML" in reason else "hyper.lr.default: "
    with pytest.raises(SpecError, match=f"^tiny.toml: {key}{reason}"):
        load("w = w - lr*g", default)


def test_a_tiny_default_that_is_a_double_is_kept():
    assert load("w = w - lr*g", "1e-320").defaults == {"lr": 1e-320}
    assert load("w = w - lr*g", "0.0e5").defaults == {"lr": 0.0}


def test_the_cli_exits_2_with_one_line_for_a_huge_default(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(spec_text("w = w - lr*g", "1" + "0" * 400))
    done = subprocess.run(
        [sys.executable, "-m", "symopt", "check", "--spec", str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().endswith(
        "hyper.lr.default: the integer 10000000...0000 (401 characters) is out of range for a "
        "double (largest 1.8e308)"
    )


@pytest.mark.parametrize("t_start", [-1, 10**6 + 1, 2**63])
def test_t_start_is_bounded(t_start):
    reason = f"the first step counter must be 0 to 1,000,000, got {t_start}"
    with pytest.raises(SpecError, match=f"^tiny.toml: t_start: {reason}$"):
        load("w = w - lr*g", head=f"t_start = {t_start}")


def test_t_start_at_its_bound_loads():
    assert load("w = w - lr*g", head="t_start = 1000000").t_start == 10**6


def test_a_check_past_its_budget_reports_timeout(monkeypatch):
    """``((1+g)**64)**64`` keeps the descent check busy for minutes: with a 2 s budget it is a
    failed ``timeout`` row within seconds, and the checks before it keep their verdicts."""
    monkeypatch.setenv(budget.ENVIRONMENT, "2")
    spec = load("w = w - lr*g*((1 + g)**64)**64")
    start = time.monotonic()
    results = run_checks(spec, {})
    elapsed = time.monotonic() - start
    assert elapsed < 20
    timed_out = [r for r in results if r.method == TIMEOUT]
    assert [(r.name, r.failed, r.status) for r in timed_out] == [("descent", True, "FAIL")]
    assert timed_out[0].detail.startswith("did not finish within 2 s")
    assert all(r.passed for r in results if r.method != TIMEOUT)


def test_the_budget_interrupts_code_that_catches_every_exception():
    def stubborn() -> None:
        while True:
            try:
                time.sleep(0.05)
            except Exception:  # noqa: BLE001, S110 - what a careless check might do
                pass

    start = time.monotonic()
    with pytest.raises(budget.CheckTimeout), budget.budget(0.3):
        stubborn()
    assert 0.25 < time.monotonic() - start < 5


def test_the_budget_restores_an_outer_timer():
    import signal

    fired: list[int] = []
    previous = signal.signal(signal.SIGALRM, lambda *_: fired.append(1))
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.5)
        with budget.budget(10):
            pass
        assert 0 < signal.getitimer(signal.ITIMER_REAL)[0] <= 0.5
        time.sleep(0.8)
        assert fired == [1]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize(("text", "expected"), [("", 300.0), ("7.5", 7.5), ("0", 0.0)])
def test_the_budget_comes_from_the_environment(monkeypatch, text, expected):
    monkeypatch.setenv(budget.ENVIRONMENT, text)
    assert budget.seconds() == expected

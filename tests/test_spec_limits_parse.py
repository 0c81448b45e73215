"""What the expression parser refuses so that a spec means what it says and stays cheap to check
(issue 22, items 6 and 8): look-alike Unicode names, tabs, odd roots of negative constants,
powers SymPy combines past the exponent limit, exponential towers, and TOML integers of 401
digits wherever a number enters; Python's SyntaxWarnings never reach the user."""

from __future__ import annotations

import re
import subprocess
import sys
import time

import pytest
import sympy
from test_spec_limits import load, spec_text

from symopt.errors import SpecError
from symopt.spec import load_spec_text

NOT_ASCII = "an expression uses ASCII names, numbers and operators"
NOT_PRINTABLE = "an expression is one line of printable text, without comments"


@pytest.mark.parametrize(
    ("update", "word", "char"),
    [
        ("w = w - ｌｒ*g", "ｌｒ", "ｌ (U+FF4C)"),  # NFKC would make it lr
        ("w = w - lr*ｇ", "ｇ", "ｇ (U+FF47)"),
        ("w = w - lr*g*２", "２", "２ (U+FF12)"),
        ("w = w - lré*g", "lré", "é (U+00E9)"),
        ("ｗ = w - lr*g", "ｗ", "ｗ (U+FF57)"),  # the assigned name too
    ],
)
def test_non_ascii_in_an_expression_is_refused_by_name(update, word, char):
    glyph, code = char.split(" ")
    reason = f"'{word}' is not ASCII (character '{glyph}', {code[1:-1]}): {NOT_ASCII}"
    with pytest.raises(SpecError, match=f"^{re.escape(f'tiny.toml: update[0]: {reason}')}$"):
        load(update)


def test_the_nfkc_look_alike_would_otherwise_be_the_declared_name():
    """The oracle for why the rule exists: Python itself reads ``ｌｒ`` as ``lr``."""
    import ast

    assert ast.parse("ｌｒ", mode="eval").body.id == "lr"  # type: ignore[attr-defined]


def test_non_ascii_in_an_argument_check_is_refused():
    text = spec_text("w = w - lr*g") + (
        '\n[api]\narguments = ["lr"]\nchecks = [{ require = "0 <= ｌｒ", message = "bad" }]\n'
    )
    with pytest.raises(SpecError, match=f"'ｌｒ' is not ASCII .*{NOT_ASCII}$"):
        load_spec_text(text, "tiny.toml")


@pytest.mark.parametrize(
    "update", ["w = w -\tlr*g", "\tw = w - lr*g", "w = w - lr*g\t", "w = w - lr*g\n"]
)
def test_a_tab_or_line_break_anywhere_is_refused(update):
    toml_escaped = update.replace("\t", "\\t").replace("\n", "\\n")
    with pytest.raises(SpecError, match=f"^tiny.toml: update\\[0\\]: {NOT_PRINTABLE}$"):
        load(toml_escaped)


def test_spaces_around_a_line_are_stripped():
    spec = load("  w = w - lr*g  ")
    assert spec.update[0].text == "w = w - lr*g"


def test_an_odd_root_of_a_negative_constant_is_refused():
    """Every target computes pow(-8, 1/3) as NaN (the principal root is complex), so the real
    root -2 is written as -(8**(1/3))."""
    with pytest.raises(SpecError, match="contains a complex or infinite constant$"):
        load("w = w - lr*g*(-8)**(1/3)")
    w, g = sympy.symbols("w g", real=True)
    spec = load("w = w - lr*g*(-(8**(1/3)))")
    lr = next(s for s in spec.update[0].expr.free_symbols if s.name == "lr")
    assert float(-(8 ** (1 / 3))) == pytest.approx(-2.0)  # the real root, as a float
    assert spec.update[0].expr == w + 2 * lr * g


@pytest.mark.parametrize(
    ("update", "exponent"),
    [
        ("w = w - lr*g*((1 + g)**64)**64", "4096"),
        ("w = w - lr*g*(1 + g)**40*(1 + g)**40", "80"),
        ("w = w - lr*(g**8)**9", "72"),
        ("w = w - lr*(g**-8)**9", "-72"),
    ],
)
def test_powers_sympy_combines_past_the_limit_are_refused(update, exponent):
    reason = f"exponent {exponent} \\(as SymPy combines the powers\\) is out of range"
    start = time.monotonic()
    with pytest.raises(SpecError, match=f"^tiny.toml: update\\[0\\]: {reason}"):
        load(update)
    assert time.monotonic() - start < 5


def test_powers_at_the_limit_load():
    g = sympy.Symbol("g", real=True)
    assert load("w = w - lr*(g**8)**8").update[0].expr.has(g**64)


@pytest.mark.parametrize(
    "update",
    [
        "w = w - lr*" + "exp(" * 30 + "g" + ")" * 30,
        "w = w - lr*exp(exp(exp(exp(g))))",
        "w = w - lr*2**(2**(2**(2**g)))",
        "w = w - lr*exp(lr**exp(exp(g)))",
    ],
)
def test_exponential_towers_are_refused_at_once(update):
    start = time.monotonic()
    with pytest.raises(SpecError, match="exponentials nested deeper than 3 levels"):
        load(update)
    assert time.monotonic() - start < 5


def test_three_nested_exponentials_load():
    assert load("w = w - lr*exp(exp(exp(g)))").update[0].expr.has(sympy.exp)


BIG = "1" + "0" * 400
INT_LIMIT = "the integer 10000000...0000 \\(401 characters\\) is out of range for a double"


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        (f"\n[state.m]\ninit = {BIG}\n", "state.m.init"),
        (f"\n[checks.at_rest.where]\nlr = {BIG}\n", "checks.at_rest.where.lr"),
        (f"\n[flag.f]\ndefault = {BIG}\n", "flag.f.default"),
        (f"off_at_zero = {BIG}\n", "hyper.lr.off_at_zero"),
    ],
)
def test_a_401_digit_integer_anywhere_is_a_spec_error(extra, key):
    text = spec_text('m = m + g", "w = w - lr*m') + extra
    with pytest.raises(SpecError, match=f"^tiny.toml: {key}: {INT_LIMIT}"):
        load_spec_text(text, "tiny.toml")


def test_a_401_digit_t_start_or_repeat_is_a_spec_error():
    with pytest.raises(SpecError, match=f"^tiny.toml: t_start: {INT_LIMIT}"):
        load("w = w - lr*g", head=f"t_start = {BIG}")
    text = spec_text("w = w - lr*g").replace(
        'update = ["w = w - lr*g"]', f'update = [{{ repeat = {BIG}, update = ["w = w - lr*g"] }}]'
    )
    with pytest.raises(SpecError, match=f"^tiny.toml: update\\[0\\].repeat: {INT_LIMIT}"):
        load_spec_text(text, "tiny.toml")


def test_an_expression_python_warns_about_is_one_line_on_stderr(tmp_path):
    """``1if`` makes Python's parser warn (invalid decimal literal); the user sees the error
    line only, even with warnings shown (``-W default``)."""
    path = tmp_path / "warns.toml"
    path.write_text(spec_text("w = w - lr*g*(1if g > 0 else 2)"), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-W", "default", "-m", "symopt", "check", "--spec", str(path)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"error: {path}: update[0]: 'a if c else b' (write where(c, a, b)) is not allowed in an "
        "expression"
    ]


def test_an_expression_sympy_makes_complex_is_refused():
    """SymPy writes abs(exp(sqrt(sqrt(g)))) with cos and atan2 (g may be negative): the PyTorch
    target printed them as Python's math functions of a tensor (fuzz run)."""
    with pytest.raises(SpecError, match="is no real expression: SymPy writes it with atan2, cos"):
        load("w = w - lr*abs(exp(sqrt(sqrt(g))))")
    assert load("w = w - lr*abs(exp(sqrt(abs(g))))").update[0].target == "w"

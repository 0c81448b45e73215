"""Tests of spec loading: each mistake is one SpecError naming the file, the key and the reason."""

from __future__ import annotations

import re

import numpy as np
import pytest
import sympy

from symopt.errors import SpecError
from symopt.resources import data_dir
from symopt.spec import load_spec, load_spec_text, symbol_table

FILE = "specs/my_momentum.toml"

HEADER = """\
name = "mymom"
class_name = "MyMom"
title = "My momentum"
summary = "Heavy-ball momentum."
reference = "none"
"""

UPDATE = ["v = rho*v + g", "w = w - lr*v"]

HYPERS = """
[hyper.lr]
default = 0.01
domain = "positive"
latex = "\\\\eta"
doc = "learning rate"

[hyper.rho]
default = 0.9
domain = "unit_closed_open"
"""

STATES = """
[state.v]
init = "0"
doc = "velocity"
"""


def spec_text(
    *,
    update: list[str] | None = None,
    top: str = "",
    hypers: str = HYPERS,
    states: str = STATES,
    tail: str = "",
) -> str:
    """The valid momentum spec, with one part swapped or some text added."""
    lines = ", ".join(f'"{line}"' for line in (UPDATE if update is None else update))
    return f"{HEADER}{top}update = [{lines}]\n{hypers}{states}{tail}"


VALID = spec_text()


def expect_error(text: str, key: str | None, reason: str) -> SpecError:
    """Loading fails with ``FILE: KEY: REASON``; ``reason`` is a regular expression."""
    prefix = re.escape(f"{FILE}: {key}: " if key else f"{FILE}: ")
    with pytest.raises(SpecError, match=f"^{prefix}{reason}") as info:
        load_spec_text(text, FILE)
    assert info.value.file == FILE
    assert (info.value.key or None) == key
    assert "\n" not in str(info.value)
    return info.value


# ---------------------------------------------------------------------------------------------
# The valid spec
# ---------------------------------------------------------------------------------------------


def test_valid_spec_loads():
    spec = load_spec_text(VALID, FILE)
    assert spec.name == "mymom"
    assert spec.class_name == "MyMom"
    assert spec.source == FILE
    assert spec.text == VALID
    assert spec.t_start == 1
    assert spec.hyper_names == ("lr", "rho")
    assert spec.defaults == {"lr": 0.01, "rho": 0.9}
    assert [h.domain for h in spec.hypers] == ["positive", "unit_closed_open"]
    assert spec.hypers[0].latex == "\\eta"
    assert spec.hypers[0].doc == "learning rate"
    assert spec.state_names == ("v",)
    assert spec.states[0].init == 0
    assert [a.target for a in spec.update] == ["v", "w"]
    assert [a.text for a in spec.update] == UPDATE
    assert spec.intermediates == ()
    assert spec.lookahead_free is None
    assert spec.relations == () and spec.properties == ()


def test_valid_spec_expressions_use_the_domain_assumptions():
    spec = load_spec_text(VALID, FILE)
    lr, rho = sympy.Symbol("lr", positive=True), sympy.Symbol("rho", nonnegative=True)
    v, g, w = (sympy.Symbol(n, real=True) for n in "vgw")
    table = symbol_table(spec)
    assert table["rho"] == rho and table["lr"] == lr
    assert spec.update[0].expr == rho * v + g
    assert spec.update[1].expr == w - lr * v


def test_valid_spec_with_intermediate_and_numeric_init():
    text = spec_text(
        update=["v = rho*v + g", "delta = lr*v", "w = w - delta"],
        states='\n[state.v]\ninit = 0\n\n[intermediate.delta]\nlatex = "s"\n',
    )
    spec = load_spec_text(text, FILE)
    assert spec.intermediates == ("delta",)
    assert spec.intermediate_latex == {"delta": "s"}
    assert spec.states[0].init == 0


def test_grad_at_w_needs_no_lookahead_free_form():
    spec = load_spec_text(spec_text(update=["v = rho*v + grad(w)", "w = w - lr*v"]), FILE)
    assert spec.lookahead_free is None


def test_lookahead_with_a_lookahead_free_form_loads():
    text = spec_text(
        update=["v = rho*v - lr*grad(w + rho*v)", "w = w + v"],
        tail="""
[lookahead_free]
summary = "store p = w + rho v"
variables = { w = "w - rho*v" }
update = ["v = rho*v - lr*g", "w = w + rho*v - lr*g"]
""",
    )
    spec = load_spec_text(text, FILE)
    assert spec.lookahead_free is not None
    assert [a.target for a in spec.executable_update] == ["v", "w"]


def test_relation_and_property_load():
    text = spec_text(
        tail="""
[[relations]]
name = "with rho = 0 it is plain SGD"
where = { rho = "0" }
other = "sgd"

[[properties]]
kind = "scale_invariant"
name = "not really, but the table is well formed"
where = { rho = "0" }
""",
    )
    spec = load_spec_text(text, FILE)
    assert spec.relations[0].other == "sgd"
    assert spec.relations[0].where == {"rho": 0}
    assert spec.properties[0].kind == "scale_invariant"


# ---------------------------------------------------------------------------------------------
# Mistakes the brief lists, one by one
# ---------------------------------------------------------------------------------------------


def test_not_toml():
    err = expect_error(VALID + "\nupdate = [\n", None, r"not valid TOML: ")
    assert err.key is None
    expect_error("name = \n", None, r"not valid TOML: .*line 1")


def test_unknown_top_level_key_with_suggestion():
    expect_error(
        spec_text(top="updates = []\n"), "updates", r"unknown key \(did you mean 'update'\?\)"
    )
    expect_error(
        spec_text(top="tstart = 1\n"), "tstart", r"unknown key \(did you mean 't_start'\?\)"
    )


def test_unknown_top_level_key_without_suggestion():
    err = expect_error(spec_text(top="zzzzzz = 1\n"), "zzzzzz", r"unknown key$")
    assert "did you mean" not in str(err)


def test_top_level_key_after_a_table_header_is_an_unknown_key_of_that_table():
    text = HEADER + HYPERS + 'update = ["v = rho*v + g", "w = w - lr*v"]\n' + STATES
    expect_error(text, "hyper.rho.update", r"unknown key$")


@pytest.mark.parametrize(
    "update, key, reason",
    [
        (
            ["v = rh*v + g", "w = w - lr*v"],
            "update[0]",
            r"unknown symbol 'rh' \(did you mean 'rho'\?\)",
        ),
        (
            ["v = rho*v + g", "w = w - lrr*v"],
            "update[1]",
            r"unknown symbol 'lrr' \(did you mean 'lr'\?\)",
        ),
        (
            ["v = rho*v + gg", "w = w - lr*v"],
            "update[0]",
            r"unknown symbol 'gg' \(did you mean 'g'\?\)",
        ),
        (
            ["v = rho*v + g", "w = w - lr*vv"],
            "update[1]",
            r"unknown symbol 'vv' \(did you mean 'v'\?\)",
        ),
    ],
)
def test_unknown_symbol_in_update_suggests_closest(update, key, reason):
    expect_error(spec_text(update=update), key, reason)


def test_unknown_symbol_suggests_an_intermediate_assigned_earlier():
    update = ["v = rho*v + g", "delta = lr*v", "w = w - delt"]
    expect_error(
        spec_text(update=update), "update[2]", r"unknown symbol 'delt' \(did you mean 'delta'\?\)"
    )


def test_intermediate_used_before_assignment():
    update = ["v = rho*v + g", "w = w - lr*d", "d = v"]
    expect_error(spec_text(update=update), "update[1]", r"'d' is used before it is assigned")


def test_intermediate_used_in_its_own_definition():
    update = ["v = rho*v + g", "d = d + v", "w = w - lr*d"]
    expect_error(spec_text(update=update), "update[1]", r"'d' is used before it is assigned")


@pytest.mark.parametrize(
    "line, reason",
    [
        ("lr = 2*lr", r"cannot assign to the hyperparameter 'lr'"),
        ("rho = 0", r"cannot assign to the hyperparameter 'rho'"),
        ("g = 2*g", r"cannot assign to the gradient g"),
        ("t = t + 1", r"cannot assign to the step counter t"),
    ],
)
def test_assigning_a_protected_name(line, reason):
    update = ["v = rho*v + g", line, "w = w - lr*v"]
    expect_error(spec_text(update=update), "update[1]", reason)


def test_state_without_init():
    states = '\n[state.v]\nlatex = "v"\ndoc = "velocity"\n'
    expect_error(
        spec_text(states=states),
        "state.v",
        r"state variable 'v' has no initial value \(add init = \.\.\.\)",
    )


def test_state_never_updated():
    states = STATES + '\n[state.u]\ninit = "0"\n'
    expect_error(spec_text(states=states), "update", r"state variable 'u' is never updated")


def test_w_never_updated():
    expect_error(spec_text(update=["v = rho*v + g"]), "update", r"the parameter w is never updated")


def test_a_name_assigned_again_reads_the_value_the_line_before_left():
    update = ["v = rho*v + g", "v = 2*v", "d = lr*v", "d = d/2", "w = w - d", "w = w*(1 - lr)"]
    spec = load_spec_text(spec_text(update=update), FILE)
    table = symbol_table(spec)
    v, d, w = table["v"], table["d"], table["w"]
    assert [a.target for a in spec.update] == ["v", "v", "d", "d", "w", "w"]
    assert spec.update[1].expr == 2 * v and spec.update[3].expr == d / 2
    assert spec.update[5].expr == w * (1 - table["lr"])
    assert spec.intermediates == ("d",)  # listed once, however often assigned
    assert all(a.repeat is None for a in spec.update)


@pytest.mark.parametrize(
    "name, default, reason",
    [
        ("rho", "1.0", r"default 1\.0 is outside its domain unit_closed_open \[0, 1\)"),
        ("rho", "-0.1", r"default -0\.1 is outside its domain unit_closed_open \[0, 1\)"),
        ("rho", "nan", r"default nan is outside its domain unit_closed_open"),
        ("lr", "-0.01", r"default -0\.01 is outside its domain positive \(0, inf\)"),
        ("lr", "0", r"default 0 is outside its domain positive \(0, inf\)"),
        ("lr", "inf", r"default inf is outside its domain positive \(0, inf\)"),
    ],
)
def test_default_outside_its_domain(name, default, reason):
    old = "default = 0.01" if name == "lr" else "default = 0.9"
    hypers = HYPERS.replace(old, f"default = {default}")
    expect_error(spec_text(hypers=hypers), f"hyper.{name}.default", reason)


def test_unknown_domain():
    hypers = HYPERS.replace('domain = "unit_closed_open"', 'domain = "unit"')
    expect_error(
        spec_text(hypers=hypers),
        "hyper.rho.domain",
        r"unknown domain 'unit'; known: positive, nonnegative, unit_open, unit_closed_open, real",
    )


def test_lookahead_gradient_without_lookahead_free_form():
    update = ["v = rho*v - lr*grad(w + rho*v)", "w = w + v"]
    expect_error(
        spec_text(update=update),
        "update",
        r"grad\(\.\.\.\) at a point other than w needs a \[lookahead_free\] form "
        r"\(an equivalent update that uses only g\), so code can be generated",
    )


def test_relation_where_with_unknown_hyperparameter():
    tail = """
[[relations]]
name = "with mu = 0 it is plain SGD"
where = { mu = "0" }
other = "sgd"
"""
    expect_error(spec_text(tail=tail), "relations[0].where.mu", r"'mu' is not a hyperparameter")


def test_unknown_property_kind():
    tail = """
[[properties]]
kind = "monotone"
name = "the loss goes down"
"""
    expect_error(
        spec_text(tail=tail),
        "properties[0].kind",
        r"unknown property 'monotone'; known: scale_invariant, unbiased",
    )


# ---------------------------------------------------------------------------------------------
# More mistakes, from the loader's other rules
# ---------------------------------------------------------------------------------------------


OTHER_MISTAKES = [
    (VALID.replace('title = "My momentum"\n', ""), None, r"missing required key 'title'"),
    (VALID.replace('name = "mymom"', 'name = "my-mom"'), "name", r"'my-mom' is not a valid name"),
    (VALID.replace('name = "mymom"', 'name = "_mom"'), "name", r"'_mom' is not a valid name"),
    (VALID.replace('name = "mymom"', 'name = "grad"'), "name", r"'grad' is reserved"),
    (
        VALID.replace('class_name = "MyMom"', 'class_name = "myMom"'),
        "class_name",
        r"'myMom' must be a CamelCase name such as 'Adam'",
    ),
    (spec_text(top='t_start = "1"\n'), "t_start", r"expected int, got '1'"),
    (spec_text(top="t_start = true\n"), "t_start", r"expected int, got True"),
    (
        spec_text(hypers=HYPERS.replace("default = 0.01", "default = true")),
        "hyper.lr.default",
        r"expected int or float, got True",
    ),
    (
        spec_text(hypers=HYPERS.replace("default = 0.01", 'default = "0.01"')),
        "hyper.lr.default",
        r"expected int or float, got '0.01'",
    ),
    (
        spec_text(hypers=HYPERS.replace("default = 0.01\n", "")),
        "hyper.lr",
        r"missing required key 'default'",
    ),
    (
        spec_text(hypers=HYPERS.replace('doc = "learning rate"', 'dco = "learning rate"')),
        "hyper.lr.dco",
        r"unknown key \(did you mean 'doc'\?\)",
    ),
    (
        spec_text(hypers=HYPERS.replace("[hyper.rho]", "[hyper.t]")),
        "hyper.t",
        r"'t' is reserved \(w, g, t, grad, rows and cols are built in\)",
    ),
    (spec_text(hypers="\nhyper = { lr = 0.1 }\n"), "hyper.lr", r"expected a table"),
    (
        spec_text(states=STATES.replace("[state.v]", "[state.w]")),
        "state.w",
        r"'w' is reserved",
    ),
    (
        spec_text(states=STATES + '\n[state.lr]\ninit = "0"\n'),
        "state.lr",
        r"'lr' is already a hyperparameter",
    ),
    (
        spec_text(states=STATES.replace('init = "0"', 'init = "t"')),
        "state.v.init",
        r"unknown symbol 't'",
    ),
    (
        spec_text(states=STATES.replace('init = "0"', 'init = "1/0"')),
        "state.v.init",
        r"division by the constant 0",
    ),
    (spec_text(update=[]), "update", r"expected a non-empty list of 'NAME = EXPRESSION' strings"),
    (
        HEADER + "update = 1\n" + HYPERS + STATES,
        "update",
        r"expected a non-empty list",
    ),
    (
        spec_text(update=["v = rho*v + g", "w - lr*v"]),
        "update[1]",
        r"expected 'NAME = EXPRESSION', got 'w - lr\*v'",
    ),
    (
        spec_text(update=["v = rho*v + g", "w -= lr*v"]),
        "update[1]",
        r"expected one assignment 'NAME = EXPRESSION', got 'w -= lr\*v'",
    ),
    (
        spec_text(update=["v = rho*v + g", "w = w - lr*(v"]),
        "update[1]",
        r"invalid expression 'w = w - lr\*\(v': '\(' was never closed",
    ),
    (
        spec_text(update=["v = rho*v + g", "w = w - lr*v.real"]),
        "update[1]",
        r"attribute access is not allowed in an expression",
    ),
    (
        spec_text(update=["v = rho*v + g", "w = w - lr*sqr(v)"]),
        "update[1]",
        r"unknown function 'sqr' \(did you mean 'sqrt'\?\)",
    ),
    (
        spec_text(update=["v = rho*v + g", "w = w - lr*v**100"]),
        "update[1]",
        r"exponent 100 is out of range",
    ),
    (
        spec_text(update=["v = rho*v + g", "w = w - lr*v/(1 - 1)"]),
        "update[1]",
        r"division by the constant 0",
    ),
    (
        spec_text(update=["v = rho*v + g", "w = w - lr*v", "_z = 1"]),
        "update[2]",
        r"names starting with '_' are not allowed: '_z'",
    ),
    (
        spec_text(tail='\n[intermediate.v]\nlatex = "v"\n'),
        "intermediate.v",
        r"'v' is not an intermediate of the update",
    ),
    (
        spec_text(
            update=["v = rho*v - lr*grad(w + rho*v)", "w = w + v"],
            tail='\n[lookahead_free]\nupdate = ["v = rho*v - lr*g", "w = w + rho*v - lr*g"]\n',
        ),
        "lookahead_free",
        r"missing required key 'variables'",
    ),
    (
        spec_text(
            update=["v = rho*v - lr*grad(w + rho*v)", "w = w + v"],
            tail="\n[lookahead_free]\nvariables = {}\n"
            'update = ["v = rho*v - lr*grad(w)", "w = w + rho*v - lr*g"]\n',
        ),
        "lookahead_free.update",
        r"the look-ahead-free form must use only g, not grad\(\.\.\.\)",
    ),
    (
        spec_text(
            update=["v = rho*v - lr*grad(w + rho*v)", "w = w + v"],
            tail='\n[lookahead_free]\nvariables = { lr = "lr" }\n'
            'update = ["v = rho*v - lr*g", "w = w + rho*v - lr*g"]\n',
        ),
        "lookahead_free.variables.lr",
        r"'lr' is not w or a state variable",
    ),
    (
        spec_text(tail='\n[[relations]]\nname = "x"\nwhere = { rho = "0" }\n'),
        "relations[0]",
        r"give exactly one of 'other' \(a spec name\) or an inline 'update'",
    ),
    (
        spec_text(tail='\n[[relations]]\nname = "x"\nwhere = { rho = "grad(w)" }\nother = "sgd"\n'),
        "relations[0].where.rho",
        r"grad\(\.\.\.\) is only allowed in update equations",
    ),
    (
        spec_text(tail='\n[[relations]]\nname = "x"\nother = "sgd"\nreplace = ["z = 1"]\n'),
        "relations[0].replace[0]",
        r"'z' is not a variable of the spec",
    ),
    (
        spec_text(tail='\n[[relations]]\nname = "x"\nothre = "sgd"\n'),
        "relations[0].othre",
        r"unknown key \(did you mean 'other'\?\)",
    ),
    (
        spec_text(
            tail='\n[[properties]]\nkind = "unbiased"\nname = "x"\nstate = "w"\n'
            'corrected = "v"\nexpect = "g"\n'
        ),
        "properties[0].state",
        r"'w' is not a state variable",
    ),
    (
        spec_text(
            tail='\n[[properties]]\nkind = "unbiased"\nname = "x"\nstate = "v"\n'
            'corrected = "v"\nexpect = "g"\n'
        ),
        "properties[0].corrected",
        r"'v' is not an intermediate",
    ),
    (
        spec_text(tail='\n[[properties]]\nkind = "scale_invariant"\nname = "x"\nstate = "v"\n'),
        "properties[0].state",
        r"unknown key",
    ),
]


@pytest.mark.parametrize(
    "text, key, reason", OTHER_MISTAKES, ids=[key or "file" for _, key, _ in OTHER_MISTAKES]
)
def test_other_mistakes(text, key, reason):
    expect_error(text, key, reason)


@pytest.mark.parametrize("kind", ["hyper", "state"])
@pytest.mark.parametrize("keyword", ["lambda", "None", "if"])
def test_python_keyword_as_a_name_is_rejected(kind, keyword):
    # A keyword cannot appear in an equation, and generated code cannot use it as a variable, so
    # the name itself is refused (not the first equation that uses it, with 'invalid syntax').
    table = f"\n[{kind}.{keyword}]\n" + (
        'default = 0.5\ndomain = "positive"\n' if kind == "hyper" else 'init = "0"\n'
    )
    text = spec_text(hypers=HYPERS + table) if kind == "hyper" else spec_text(states=STATES + table)
    expect_error(text, f"{kind}.{keyword}", r".*(keyword|not a valid name)")


def test_first_problem_wins_and_no_partial_spec_is_returned():
    # Both a bad domain and a bad update: the hyperparameters are validated first.
    hypers = HYPERS.replace('domain = "unit_closed_open"', 'domain = "unit"')
    expect_error(spec_text(hypers=hypers, update=["w = w - lrr*g"]), "hyper.rho.domain", r"unknown")


# ---------------------------------------------------------------------------------------------
# Tensor-level constructs: repeat blocks, state shapes, applies_to and [otherwise], [checks]
# ---------------------------------------------------------------------------------------------

MATRIX = 'applies_to = "matrix"\n'
ROW_STATE = '\n[state.r]\ninit = "0"\nshape = "rows"\n'
OTHERWISE = '\n[otherwise]\nupdate = ["v = rho*v + g", "w = w - lr*v"]\n'


def spec_with(update: str, *, top: str = "", states: str = STATES, tail: str = "") -> str:
    """The momentum spec with ``update = [UPDATE]`` written as raw TOML (for repeat tables)."""
    return f"{HEADER}{top}update = [{update}]\n{HYPERS}{states}{tail}"


def test_repeat_block_is_stored_unrolled_and_runs_in_order():
    from symopt.reference import ReferenceStepper
    from symopt.spec.elementwise import Repeat

    text = spec_with(
        '"v = rho*v + g", "x = v", { repeat = 3, update = ["x = x/2", "y = x"] }, '
        '{ repeat = 2, update = ["y = y + 1"] }, "w = w - lr*y"'
    )
    spec = load_spec_text(text, FILE)
    assert [a.target for a in spec.update] == ["v", "x", *["x", "y"] * 3, "y", "y", "w"]
    assert [a.repeat for a in spec.update[2:4]] == [Repeat(0, 3, 0)] * 2
    assert [a.repeat for a in spec.update[6:10]] == [Repeat(0, 3, 2)] * 2 + [
        Repeat(1, 2, 0),
        Repeat(1, 2, 1),
    ]
    assert spec.update[0].repeat is None and spec.update[-1].repeat is None
    assert "fixed-count iterations" in spec.features
    stepper = ReferenceStepper(spec, [np.array([0.0])], lr=1.0)
    stepper.step([np.array([8.0])])  # v = 8, x halved 3 times = 1, y = 1 + 2 = 3
    assert stepper.params[0].tolist() == [-3.0]


def test_reassignment_runs_sequentially_in_the_reference_stepper():
    from symopt.reference import ReferenceStepper

    spec = load_spec_text(spec_text(update=["v = rho*v + g", "v = 2*v", "w = w - lr*v"]), FILE)
    stepper = ReferenceStepper(spec, [np.array([0.0])], lr=1.0, rho=0.5)
    stepper.step([np.array([1.0])])  # v = 1, then 2; w = -2
    stepper.step([np.array([1.0])])  # v = 0.5*2 + 1 = 2, then 4; w = -6
    assert stepper.params[0].tolist() == [-6.0] and stepper.state[0]["v"].tolist() == [4.0]


def test_matrix_spec_with_otherwise_shapes_and_check_scopes_loads():
    text = spec_text(
        top=MATRIX,
        update=["v = rho*v + g", "r = row_mean(g**2)", "w = w - lr*v/sqrt(r + rows/cols)"],
        states=STATES + ROW_STATE,
        tail=OTHERWISE + '\n[checks.at_rest]\nwhere = { lr = "0" }\n',
    )
    spec = load_spec_text(text, FILE)
    table = symbol_table(spec)
    assert spec.applies_to == "matrix"
    assert [s.shape for s in spec.states] == ["full", "rows"]
    assert [a.target for a in spec.otherwise] == ["v", "w"]
    assert [s.name for s in spec.states_of(spec.update)] == ["v", "r"]
    assert [s.name for s in spec.states_of(spec.otherwise)] == ["v"]
    assert spec.check_scopes == {"at_rest": {"lr": 0}}
    assert table["rows"].is_integer and table["rows"].is_positive
    assert spec.update[2].expr.has(table["rows"], table["cols"])
    assert {"row/column reductions", "updates for some parameter shapes only"} <= spec.features


def test_state_set_from_the_first_gradient_loads():
    states = STATES.replace('init = "0"', 'init = "g*lr"')
    spec = load_spec_text(spec_text(states=states), FILE)
    table = symbol_table(spec)
    assert spec.states[0].init == table["g"] * table["lr"]
    assert "state initialised from the first gradient" in spec.features
    assert spec.elementwise  # still one coordinate at a time


def test_matrix_spec_without_otherwise_has_no_other_update():
    spec = load_spec_text(spec_text(top=MATRIX), FILE)
    assert spec.applies_to == "matrix" and spec.otherwise == ()


def _repeat(body: str) -> str:
    return spec_with(f'"v = rho*v + g", "x = v", {body}, "w = w - lr*x"')


TENSOR_MISTAKES = [
    (
        spec_text(update=["v = rho*v + g", "w = w - lr*v*(g > 0)"]),
        "update[1]",
        r"a comparison is only allowed in the condition of where\(cond, a, b\)$",
    ),
    (
        spec_text(update=["v = rho*v + g", "w = w - lr*(v or g)"]),
        "update[1]",
        r"'or' is only allowed in the condition of where\(cond, a, b\)$",
    ),
    (
        spec_text(update=["v = rho*v + g", "w = w - lr*where(v, v, 0)"]),
        "update[1]",
        r"the condition of where\(\) must be a comparison such as 'g\*p > 0' or a flag "
        r"\(joined with and, or, not\), got 'v'$",
    ),
    (
        spec_text(update=["v = rho*v + g", "w = w - lr*where(v > 0, v)"]),
        "update[1]",
        r"where\(\) takes 3 argument\(s\), got 2$",
    ),
    (
        spec_text(update=["v = rho*v + g", "w = w - lr*v*rows"]),
        "update[1]",
        r"'rows' is only defined in the main update of a spec with applies_to = 'matrix' or "
        r"'multidim'$",
    ),
    (
        _repeat('{ repeat = 0, update = ["x = x/2"] }'),
        "update[2].repeat",
        r"expected 1 to 20 runs, got 0$",
    ),
    (
        _repeat('{ repeat = 21, update = ["x = x/2"] }'),
        "update[2].repeat",
        r"expected 1 to 20 runs, got 21$",
    ),
    (
        _repeat('{ repeat = "5", update = ["x = x/2"] }'),
        "update[2].repeat",
        r"expected int, got '5'$",
    ),
    (_repeat('{ update = ["x = x/2"] }'), "update[2]", r"missing required key 'repeat'$"),
    (
        _repeat('{ repeat = 5, updates = ["x = x/2"] }'),
        "update[2].updates",
        r"unknown key \(did you mean 'update'\?\)$",
    ),
    (
        _repeat("{ repeat = 5 }"),
        "update[2].update",
        r"expected a non-empty list of 'NAME = EXPRESSION' strings$",
    ),
    (
        _repeat('{ repeat = 5, update = [{ repeat = 2, update = ["x = x/2"] }] }'),
        "update[2].update",
        r"expected a non-empty list of 'NAME = EXPRESSION' strings "
        r"\(a repeat block cannot hold another\)$",
    ),
    (
        _repeat("5"),
        "update[2]",
        r"expected 'NAME = EXPRESSION' or \{ repeat = N, update = \[\.\.\] \}$",
    ),
    (
        _repeat('{ repeat = 2, update = ["x = x/q"] }'),
        "update[2].update[0]",
        r"unknown symbol 'q'$",
    ),
    (
        spec_text(states=STATES + '\n[state.r]\ninit = "0"\nshape = "row"\n'),
        "state.r.shape",
        r"unknown shape 'row'; known: full, scalar, rows, cols$",
    ),
    (
        spec_text(
            update=["v = rho*v + g", "r = row_mean(g)", "w = w - lr*v*r"],
            states=STATES + ROW_STATE,
        ),
        "state.r.shape",
        r"'rows' state needs applies_to = 'matrix' or 'multidim'$",
    ),
    (
        spec_text(
            update=["v = rho*v + g", "s = mean(g**2)", "w = w - lr*v*s"],
            states=STATES + '\n[state.s]\ninit = "mean(g**2)"\nshape = "scalar"\n',
        ),
        "state.s.init",
        r"'scalar' state cannot start from g or w$",
    ),
    (
        spec_text(top='applies_to = "matrices"\n'),
        "applies_to",
        r"expected one of 'any', 'matrix', 'multidim', got 'matrices'$",
    ),
    (
        spec_text(tail=OTHERWISE),
        "otherwise",
        r"\[otherwise\] needs applies_to = 'matrix' or 'multidim'$",
    ),
    (
        spec_text(
            top=MATRIX,
            update=["v = rho*v + g", "r = row_mean(g)", "w = w - lr*v*r"],
            states=STATES + ROW_STATE,
            tail='\n[otherwise]\nupdate = ["v = rho*v + g", "r = g", "w = w - lr*v"]\n',
        ),
        "otherwise.update",
        r"'r' has shape 'rows': only the matrix update may assign it$",
    ),
    (
        spec_text(top=MATRIX, tail='\n[otherwise]\nupdate = ["v = rho*v + g"]\n'),
        "otherwise.update",
        r"the parameter w is never updated$",
    ),
    (
        spec_text(top=MATRIX, tail='\n[otherwise]\nupdates = ["w = w - lr*g"]\n'),
        "otherwise.updates",
        r"unknown key \(did you mean 'update'\?\)$",
    ),
    (
        spec_text(
            top=MATRIX, update=["w = w - lr*g"], tail='\n[otherwise]\nupdate = ["w = w - lr*g"]\n'
        ),
        "update",
        r"state variable 'v' is never updated$",
    ),
    (
        spec_text(top=MATRIX, tail='\n[otherwise]\nupdate = ["v = rho*v + g", "w = w - v/rows"]\n'),
        "otherwise.update[1]",
        r"'rows' is only defined in the main update",
    ),
    (
        spec_text(update=["v = rho*v + g", "cols = v", "w = w - lr*cols"]),
        "update[1]",
        r"'cols' is reserved \(w, g, t, grad, rows and cols are built in\)$",
    ),
    (
        spec_text(tail='\n[checks.at_rset]\nwhere = { lr = "0" }\n'),
        "checks.at_rset",
        r"unknown check; known: at_rest, well_defined, descent$",
    ),
    (
        spec_text(tail='\n[checks.at_rest]\nwhere = { mu = "0" }\n'),
        "checks.at_rest.where.mu",
        r"'mu' is not a hyperparameter$",
    ),
    (
        spec_text(tail='\n[checks.descent]\nwere = { lr = "1" }\n'),
        "checks.descent.were",
        r"unknown key \(did you mean 'where'\?\)$",
    ),
    (
        spec_text(tail="\n[checks]\nat_rest = 1\n"),
        "checks.at_rest",
        r"expected a table with where = \{ NAME = VALUE \}$",
    ),
    (
        spec_text(tail='\n[checks.well_defined]\nwhere = { lr = "g > 0" }\n'),
        "checks.well_defined.where.lr",
        r"a comparison is only allowed in the condition of where",
    ),
]


@pytest.mark.parametrize(
    "text, key, reason",
    TENSOR_MISTAKES,
    ids=[f"{i}-{key}" for i, (_, key, _) in enumerate(TENSOR_MISTAKES)],
)
def test_tensor_construct_mistakes(text, key, reason):
    expect_error(text, key, reason)


# ---------------------------------------------------------------------------------------------
# load_spec: files
# ---------------------------------------------------------------------------------------------


def test_load_spec_reads_a_file(tmp_path):
    path = tmp_path / "mymom.toml"
    path.write_text(VALID, encoding="utf-8")
    spec = load_spec(path)
    assert spec.name == "mymom"
    assert spec.source == str(path)
    assert load_spec(str(path)).update == spec.update


def test_load_spec_missing_file(tmp_path):
    path = tmp_path / "nope.toml"
    with pytest.raises(SpecError, match=rf"^{re.escape(str(path))}: no such file$") as info:
        load_spec(path)
    assert info.value.file == str(path)


def test_load_spec_not_utf8(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes(VALID.replace("Heavy-ball", "caf\u00e9").encode("latin-1"))
    with pytest.raises(
        SpecError, match=rf"^{re.escape(str(path))}: cannot read: 'utf-8' codec can't decode"
    ):
        load_spec(path)


def test_load_spec_directory(tmp_path):
    with pytest.raises(SpecError, match=rf"^{re.escape(str(tmp_path))}: cannot read"):
        load_spec(tmp_path)


def test_load_spec_errors_name_the_path(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(spec_text(update=["v = rho*v + g", "w = w - lrr*v"]), encoding="utf-8")
    with pytest.raises(
        SpecError, match=rf"^{re.escape(str(path))}: update\[1\]: unknown symbol 'lrr'"
    ):
        load_spec(path)


# ---------------------------------------------------------------------------------------------
# Built-in specs
# ---------------------------------------------------------------------------------------------

SPEC_DIR = data_dir("specs")
SECOND_ORDER_NAMES = [
    "block_newton",
    "diag_newton",
    "kfac",
    "newton",
    "newton_armijo",
    "trust_region",
]
#: Every built-in element-wise spec: each file in specs/ that is not second-order.
BUILTIN_NAMES = sorted(p.stem for p in SPEC_DIR.glob("*.toml") if p.stem not in SECOND_ORDER_NAMES)


def test_every_builtin_spec_loads():
    from symopt.resources import builtin_specs

    specs = builtin_specs()
    assert sorted(specs) == sorted(BUILTIN_NAMES + SECOND_ORDER_NAMES)
    # The specs this suite names elsewhere are among them (the list grows with specs/).
    assert {"adam", "sgd", "nesterov", "muon", "rprop"} <= set(BUILTIN_NAMES)
    for name, spec in specs.items():
        assert spec.name == name
        assert spec.source == f"specs/{name}.toml"
        if name in SECOND_ORDER_NAMES:
            assert spec.kind == "second_order" and spec.step_text
        else:
            assert any(a.target == "w" for a in spec.update)


@pytest.mark.parametrize("name", BUILTIN_NAMES)
def test_builtin_spec_file_loads_with_load_spec_text(name):
    from symopt.resources import data_dir

    path = data_dir("specs") / f"{name}.toml"
    spec = load_spec_text(path.read_text(encoding="utf-8"), str(path))
    assert spec.name == name
    for state in spec.state_names:  # assigned by the update or by [otherwise]
        assert state in {a.target for a in (*spec.update, *spec.otherwise)}


def test_row_reductions_need_a_matrix_update():
    update = ["v = rho*v + g/row_mean(g**2)", "w = w - lr*v"]
    expect_error(
        spec_text(update=update),
        "update",
        r"'v = rho\*v \+ g/row_mean\(g\*\*2\)': row_mean\(\) needs a 2-D parameter: only the "
        r"update of a spec with applies_to = 'matrix' or 'multidim' may use row/column "
        r"reductions$",
    )
    # a multi-dimensional parameter is a stack of matrices: its rows are those of the last two axes
    top = 'applies_to = "multidim"\n'
    assert load_spec_text(spec_text(update=update, top=top, tail=OTHERWISE), FILE).takes_update(3)


def test_a_multidim_update_is_taken_by_every_parameter_of_two_or_more_dimensions():
    spec = load_spec_text(spec_text(top='applies_to = "multidim"\n', tail=OTHERWISE), FILE)
    assert [spec.takes_update(n) for n in range(5)] == [False, False, True, True, True]
    assert spec.shapes_taken == "multi-dimensional"
    with pytest.raises(SpecError, match="'rows' is only defined in the main update of a spec"):
        load_spec_text(spec_text(update=["v = rho*v + g*rows", "w = w - lr*v"]), FILE)


# -- rules the spec fuzz run found missing (issue 22): each spec below loaded and then broke a
# -- target (a NameError, targets that disagreed, a module that did not import) ---------------

PER_TENSOR = r"'{op}' of a value that is one number per tensor \(made of hyperparameters, t and"
MATRIX_TAIL = '\napplies_to = "matrix"\n'


@pytest.mark.parametrize(
    ("update", "key", "op"),
    [
        (["v = rho*v + g", "w = w - lr*sum(rho**t)*v"], "update[1]", "sum"),
        (["c = mean(lr)", "v = rho*v + g*c", "w = w - lr*v"], "update[0]", "mean"),
        (["c = norm(w)", "v = rho*v + g*norm(c)", "w = w - lr*v"], "update[1]", "norm"),
    ],
)
def test_a_reduction_of_a_number_is_refused(update, key, op):
    expect_error(spec_text(update=update), key, PER_TENSOR.format(op=op))


def test_a_reduction_of_a_number_in_an_init_is_refused():
    states = '\n[state.v]\ninit = "mean(lr)"\n'
    expect_error(spec_text(states=states), "state.v.init", PER_TENSOR.format(op="mean"))


def test_a_matrix_operation_of_a_number_is_refused():
    update = ["v = rho*v + g", "x = v @ transpose(norm(v))", "w = w - lr*x"]
    text = spec_text(update=update, top=MATRIX_TAIL)
    expect_error(text, "update[1]", PER_TENSOR.format(op="transpose"))


def test_reductions_of_values_made_of_tensors_still_load():
    update = ["v = rho*v + g", "c = norm(v)", "s = sum(v/c)", "w = w - lr*s*v"]
    assert load_spec_text(spec_text(update=update), FILE).update[2].target == "s"


def test_an_otherwise_update_that_reads_a_state_it_never_assigns_is_refused():
    top = 'applies_to = "matrix"\n'
    tail = '\n[otherwise]\nupdate = ["w = w - lr*g/(1 + v*v)"]\n'
    expect_error(
        spec_text(top=top, tail=tail),
        "otherwise.update",
        r"reads the state 'v', which it never assigns",
    )


def test_an_api_choice_whose_first_option_is_not_the_flags_default_is_refused():
    tail = """
[flag.fast]
default = true
[api]
arguments = ["lr", "rho", "mode"]
[api.choices.mode]
slow = { fast = false }
quick = { fast = true }
"""
    update = ["v = rho*v + g", "w = w - where(fast, 2*lr, lr)*v"]
    expect_error(
        spec_text(update=update, tail=tail),
        "api.choices.mode.slow.fast",
        "the first choice is the default, so it must keep the flag's default, true",
    )


@pytest.mark.parametrize("value", ["inf", "-inf", "nan"])
def test_an_api_constant_that_is_not_finite_is_refused(value):
    tail = f'\n[api]\narguments = ["lr", "rho", "steps5"]\nconstants = {{ steps5 = {value} }}\n'
    expect_error(spec_text(tail=tail), "api.constants.steps5", "expected a finite number")


def test_a_lookahead_gradient_in_an_update_with_a_reduction_is_refused():
    """Only element-wise updates are generated from their [lookahead_free] form."""
    tail = '\n[lookahead_free]\nupdate = ["v = rho*v - lr*g", "w = w + rho*v - lr*g"]\n'
    tail += '[lookahead_free.variables]\nw = "w - rho*v"\n'
    update = ["v = rho*v - lr*grad(w + rho*v)", "w = w + mean(v)"]
    expect_error(
        spec_text(update=update, tail=tail),
        "update",
        r"grad\(...\) at a point other than w needs an element-wise update",
    )


@pytest.mark.parametrize(
    ("require", "why"),
    [
        ("1e20 <= lr", r"the defaults \(lr = 0.01\) do not satisfy it"),
        ("0 <= log(rho - 0.9)", r"the defaults \(rho = 0.9\) leave it undefined"),
    ],
)
def test_an_api_check_the_defaults_fail_is_refused(require, why):
    """Every target would refuse to construct the optimizer with its own defaults."""
    message = "bad: {lr}"
    tail = f'\n[api]\nchecks = [{{ require = "{require}", message = "{message}" }}]\n'
    expect_error(spec_text(tail=tail), "api.checks[0].require", why)

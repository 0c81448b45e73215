"""The flag matrix of a drop-in spec, and verify on it: every spec whose [api] matches a
torch.optim class gives that class's numbers on every row (each flag off and on, each
off_at_zero hyperparameter at 0 and not, maximize off and on, hyperparameters moved)."""

import contextlib
import tomllib
from unittest import mock

import pytest
from click.testing import CliRunner

from symopt.api_matrix import (
    api_kwargs,
    defaults,
    flag_matrix,
    label,
    moved,
    setting_of,
    spec_hyper,
)
from symopt.cli import main
from symopt.errors import SpecError, Unsupported
from symopt.resources import builtin_specs, data_dir
from symopt.spec import load_spec
from symopt.spec.family import variant_for

torch = pytest.importorskip("torch")

from symopt.verify import verify  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

#: Per row: a short run on gradients of random magnitudes, with zeros, and depending on the
#: parameters.
STEPS = 15
STREAMS = ("random", "sparse", "rosenbrock")


def drop_in_specs() -> list[tuple[str, object]]:
    """(name, loaded spec or the error loading it) for every built-in spec whose [api]
    matches a torch.optim class: picked up from the files, so a new spec is tested at once."""
    try:
        loaded = {s.source.rpartition("/")[2]: s for s in builtin_specs().values()}
    except SpecError:  # one spec does not load: load the others one by one
        loaded = {}
    out = []
    for path in sorted(data_dir("specs").glob("*.toml")):
        try:
            matches = tomllib.loads(path.read_text())["api"]["matches"]
        except (KeyError, TypeError, tomllib.TOMLDecodeError):
            continue
        if not str(matches).startswith("torch.optim."):
            continue
        try:
            out.append((path.stem, loaded.get(path.name) or load_spec(path)))
        except SpecError as exc:
            out.append((path.stem, exc))
    return out


DROP_INS = drop_in_specs()


def cases() -> list:
    out = []
    for name, spec in DROP_INS:
        if isinstance(spec, Exception):
            out.append(pytest.param(spec, None, id=f"{name}-does-not-load"))
            continue
        for row in flag_matrix(spec):
            out.append(pytest.param(spec, row, id=f"{name}-{label(row)}"))
    return out


def torch_class(spec):
    return getattr(torch.optim, spec.family.api.matches.rpartition(".")[2])


@contextlib.contextmanager
def full_precision():
    """float64 throughout: torch keeps scalar state (step, NAdam's mu_product, ASGD's eta and
    mu) in the default dtype, and torch.optim.Muon runs Newton-Schulz in bfloat16 (here a copy
    in the parameters' dtype, as in test_parity_rprop_muon.py)."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        with mock.patch.object(torch.Tensor, "bfloat16", lambda self: self.clone()):
            yield
    finally:
        torch.set_default_dtype(before)


@pytest.mark.parametrize(("spec", "row"), cases())
def test_verify_passes_on_every_row(spec, row):
    if isinstance(spec, Exception):
        pytest.fail(f"the spec does not load: {spec}")
    cls = torch_class(spec)
    try:
        cls([torch.zeros(2, 2, dtype=torch.float64)], **row)
    except ValueError as exc:
        pytest.skip(f"torch.optim.{cls.__name__} refuses the row: {exc}")
    except TypeError as exc:
        pytest.fail(f"[api] arguments that torch.optim.{cls.__name__} does not take: {exc}")
    with full_precision():
        report = verify(
            cls, spec, hyper=row, steps=STEPS, seeds=1, streams=STREAMS, large=False, diagnose=False
        )
    assert report.passed, report.summary()
    assert report.arguments == row  # every argument given, none left at torch's default
    variant = variant_for(spec, setting_of(spec, row))
    assert set(report.compared_state) <= set(variant.state_names)


def test_every_drop_in_spec_is_found():
    assert "adam" in [name for name, _ in DROP_INS]


# -- flag_matrix, setting_of, spec_hyper on adam ----------------------------------------------

ADAM = dict(DROP_INS)["adam"]


def test_adam_matrix_has_every_combination_and_a_moved_row():
    rows = flag_matrix(ADAM)
    assert len(rows) == 2**4 + 1  # amsgrad, decoupled_weight_decay, weight_decay, maximize
    combos = {
        (r["amsgrad"], r["decoupled_weight_decay"], r["weight_decay"], r["maximize"])
        for r in rows[:-1]
    }
    assert combos == {
        (a, d, wd, m)
        for a in (False, True)
        for d in (False, True)
        for wd in (0.0, 0.1)
        for m in (False, True)
    }
    assert rows[0] == {
        "lr": 0.001,
        "betas": (0.9, 0.999),
        "eps": 1e-8,
        "weight_decay": 0.0,
        "amsgrad": False,
        "maximize": False,
        "decoupled_weight_decay": False,
    }
    # torch's order of arguments, tuples packed
    assert all(list(r) == list(rows[0]) for r in rows)
    assert flag_matrix(ADAM) == rows  # deterministic


def test_adam_moved_row_moves_every_hyperparameter_that_is_no_axis():
    row = flag_matrix(ADAM)[-1]
    assert label(row) == "moved"
    assert row["lr"] == pytest.approx(0.002)
    assert row["betas"] == pytest.approx((0.95, 0.9995))
    assert row["eps"] == pytest.approx(2e-8)
    assert (row["weight_decay"], row["amsgrad"], row["decoupled_weight_decay"]) == (0, False, False)
    assert row["maximize"] is False


def test_moved_rule_per_domain():
    assert moved("unit_closed_open", 0.9) == pytest.approx(0.95)
    assert moved("unit_open", 0.5) == pytest.approx(0.75)
    assert moved("positive", 1e-3) == pytest.approx(2e-3)
    assert moved("nonnegative", 0) == pytest.approx(0.1)
    assert moved("nonnegative", 0.3) == pytest.approx(0.6)
    assert moved("real", -0.8) == -0.8


def test_labels_are_short_and_unique():
    labels = [label(r) for r in flag_matrix(ADAM)]
    assert len(set(labels)) == len(labels)
    assert labels[0] == "plain"
    assert "amsgrad+decoupled_weight_decay+weight_decay=0.1+maximize" in labels
    # a plain dict (a copy) still gets a readable label
    assert label({"lr": 0.5, "betas": (0.9, 0.99), "amsgrad": True}) == (
        "lr=0.5,betas=(0.9,0.99),amsgrad=True"
    )


def test_setting_of_and_spec_hyper():
    row = {**defaults(ADAM), "betas": (0.8, 0.99), "weight_decay": 0.1, "amsgrad": True}
    assert setting_of(ADAM, row) == {
        "amsgrad": True,
        "decoupled_weight_decay": False,
        "weight_decay": True,
    }
    assert spec_hyper(ADAM, row) == {
        "lr": 0.001,
        "beta1": 0.8,
        "beta2": 0.99,
        "eps": 1e-8,
        "weight_decay": 0.1,
    }
    # missing arguments take the defaults; a zero off_at_zero hyperparameter is off
    assert setting_of(ADAM, {}) == ADAM.family.default_setting()
    assert spec_hyper(ADAM, {"lr": 0.5})["lr"] == 0.5
    with pytest.raises(ValueError, match="not an argument"):
        spec_hyper(ADAM, {"beta1": 0.5})  # torch's names only


def test_every_adam_row_is_valid_for_torch_and_covers_its_signature():
    import inspect

    params = set(inspect.signature(torch.optim.Adam).parameters) - {"params"}
    for row in flag_matrix(ADAM):
        assert set(row) <= params
        torch.optim.Adam([torch.zeros(1, dtype=torch.float64)], **row)
    # every argument that changes the numbers is in each row
    assert params - set(flag_matrix(ADAM)[0]) == {
        "foreach",
        "capturable",
        "differentiable",
        "fused",
    }


def test_spec_without_api_has_no_matrix(tmp_path):
    path = tmp_path / "plain.toml"
    path.write_text(
        'name = "plain"\nclass_name = "Plain"\ntitle = "t"\nsummary = "s"\nreference = "r"\n'
        'update = ["w = w - lr*g"]\n[hyper.lr]\ndefault = 0.1\ndomain = "positive"\n'
    )
    with pytest.raises(ValueError, match="matches no library class"):
        flag_matrix(load_spec(path))


TOY = """
name = "toy"
class_name = "Toy"
title = "Toy"
summary = "A toy with every kind of argument."
reference = "none"
update = ["w = w - lr*where(big, 2, 1)*where(heavy, g/(abs(g) + eps1 + eps2), g)"]

[api]
matches = "torch.optim.Toy"
arguments = ["lr", "eps", "iters", "mode", "*", "maximize"]
tuples = { eps = ["eps1", "eps2"] }
machine_epsilon = ["eps1"]
constants = { iters = 5 }
fixed = { heavy = false }

[api.choices.mode]
small = { big = false }
large = { big = true }
message = "Mode {mode} is not supported"

[flag.big]
default = false

[flag.heavy]
default = false

[hyper.lr]
default = 0.1
domain = "positive"

[hyper.eps1]
default = 2.220446049250313e-16
domain = "positive"

[hyper.eps2]
default = 0.001
domain = "nonnegative"
"""


def test_choices_constants_fixed_flags_and_machine_epsilon(tmp_path):
    path = tmp_path / "toy.toml"
    path.write_text(TOY)
    toy = load_spec(path)
    rows = flag_matrix(toy)
    # a choice is varied over its strings, a fixed flag not at all, a constant stays
    assert [label(r) for r in rows] == [
        "plain",
        "maximize",
        "mode=large",
        "mode=large+maximize",
        "moved",
    ]
    assert rows[0] == {
        "lr": 0.1,
        "eps": (None, 0.001),
        "iters": 5,
        "mode": "small",
        "maximize": False,
    }
    assert rows[-1]["mode"] is None and rows[-1]["iters"] == 5
    assert rows[-1]["eps"] == pytest.approx((2 * 2.220446049250313e-16, 0.002))
    assert setting_of(toy, rows[2]) == {"big": True, "heavy": False}
    assert setting_of(toy, {"mode": None}) == {"big": False, "heavy": False}  # None: the first
    # torch's eps=None is the machine epsilon of the parameters' dtype
    assert spec_hyper(toy, rows[0])["eps1"] == 2.0**-52
    assert spec_hyper(toy, rows[0], "float32")["eps1"] == 2.0**-23
    given = {"mode": "large", "eps1": "none", "eps2": "0.5", "iters": "5"}
    assert api_kwargs(toy, given) == {**rows[2], "eps": (None, 0.5)}
    for bad, message in [
        ({"mode": "huge"}, "mode: expected 'small', 'large' or none"),
        ({"iters": 3}, "iters: the spec fixes it at 5"),
        ({"heavy": True}, "Toy takes no argument 'heavy'"),
        ({"eps2": None}, "eps2: expected a finite number"),
    ]:
        with pytest.raises(Unsupported, match=message):
            api_kwargs(toy, bad)


def test_api_kwargs_reads_torch_and_spec_names_and_strings():
    kwargs = api_kwargs(
        ADAM, {"betas": "0.8,0.99", "beta2": "0.9", "amsgrad": "true", "weight_decay": 0.1}
    )
    assert kwargs["betas"] == (0.8, 0.9) and kwargs["amsgrad"] is True
    assert kwargs["weight_decay"] == 0.1 and kwargs["maximize"] is False
    assert api_kwargs(ADAM, {"foreach": "none"})["foreach"] is None
    for bad, message in [
        ({"amsgrd": True}, "did you mean 'amsgrad'"),
        ({"amsgrad": 1.0}, "amsgrad is a flag"),
        ({"maximize": "yes"}, "maximize is a flag"),
        ({"lr": True}, "lr: expected a finite number"),
        ({"betas": "0.9"}, "betas: expected 2 numbers"),
    ]:
        with pytest.raises(Unsupported, match=message):
            api_kwargs(ADAM, bad)


# -- verify with flags -------------------------------------------------------------------------


def test_verify_runs_the_variant_and_compares_its_state():
    report = verify(
        torch.optim.Adam,
        ADAM,
        hyper={"amsgrad": True, "weight_decay": 0.1, "maximize": True},
        steps=STEPS,
        seeds=1,
    )
    assert report.passed and report.max_error < 1e-12, report.summary()
    assert report.variant == "amsgrad, weight_decay != 0, maximize"
    assert sorted(report.compared_state) == ["m", "v", "vmax"]
    assert "(amsgrad, weight_decay != 0, maximize)" in report.summary()


class Adam(torch.optim.Adam):
    """A drop-in that drops one argument: verify must notice."""

    drop = ""

    def __init__(self, params, **kwargs):
        kwargs.pop(self.drop)
        super().__init__(params, **kwargs)


@pytest.mark.parametrize(
    ("drop", "given"),
    [
        ("maximize", {"maximize": True}),
        ("amsgrad", {"amsgrad": True}),
        ("decoupled_weight_decay", {"decoupled_weight_decay": True, "weight_decay": 0.1}),
        ("eps", {"eps": 1e-3}),
    ],
)
def test_an_argument_the_implementation_ignores_fails(drop, given):
    cls = type("Adam", (Adam,), {"drop": drop})
    report = verify(cls, ADAM, hyper=given, steps=STEPS, seeds=1, diagnose=False)
    assert not report.passed, report.summary()


def test_a_class_that_is_not_the_match_keeps_the_old_path():
    # AdamW is not adam's [api] class: its own weight_decay default stays, and verify names it
    report = verify(torch.optim.AdamW, ADAM, steps=20, seeds=1, streams=("random",))
    assert not report.passed and report.variant == ""
    assert report.arguments == {"lr": 0.001, "betas": (0.9, 0.999), "eps": 1e-08}
    assert report.defaults["weight_decay"] == 0.01
    assert report.diagnosis.rules == ("decoupled_weight_decay",)
    assert report.diagnosis.fitted == {"weight_decay": 0.01}


def test_cli_verify_with_flags():
    runner = CliRunner()
    args = ["verify", "torch.optim.Adam", "--against", "adam", "--steps", "10", "--seeds", "1"]
    flags = ["--hyper", "amsgrad=true", "--hyper", "weight_decay=0.1", "--hyper", "maximize=true"]
    ok = runner.invoke(main, args + flags)
    assert ok.exit_code == 0, ok.output
    assert ok.stdout.startswith("PASS  torch.optim.Adam against adam (amsgrad, weight_decay")
    for bad, message in [
        ("amsgrad=maybe", "amsgrad is a flag: expected true or false, got 'maybe'"),
        ("amsgrd=true", "Adam takes no argument 'amsgrd' (did you mean 'amsgrad'?)"),
        ("lr=-1", "Invalid learning rate: -1.0"),
    ]:
        result = runner.invoke(main, [*args, "--hyper", bad])
        assert result.exit_code == 2, result.output
        assert result.output.count("\n") == 1 and message in result.output, result.output

"""symopt verify on bad input and odd implementations: one-line errors with exit 2 (usage) or 3
(the implementation raised), every hyperparameter reaching the implementation, states the
implementation never writes left uncompared."""

import numpy as np
import pytest
from click.testing import CliRunner

from symopt.cli import main
from symopt.errors import Unsupported
from symopt.resources import elementwise_specs
from symopt.verify import verify
from symopt.verify.binding import bind

SPECS = elementwise_specs()
QUICK = ["--steps", "5", "--seeds", "1", "--long", "0"]


def adam(w, g, state, t, lr, beta1, beta2, eps):
    state["m"] = beta1 * state["m"] + (1 - beta1) * g
    state["v"] = beta2 * state["v"] + (1 - beta2) * g * g
    m_hat = state["m"] / (1 - beta1**t)
    return w - lr * m_hat / (np.sqrt(state["v"] / (1 - beta2**t)) + eps)


def adam_own_keys(w, g, state, t, lr, beta1, beta2, eps):
    # keeps its moments under its own names: the seeded m and v are never written
    m = state.setdefault("exp_avg", np.zeros_like(w))
    v = state.setdefault("exp_avg_sq", np.zeros_like(w))
    m[...] = beta1 * m + (1 - beta1) * g
    v[...] = beta2 * v + (1 - beta2) * g * g
    m_hat = m / (1 - beta1**t)
    return w - lr * m_hat / (np.sqrt(v / (1 - beta2**t)) + eps)


def adam_raises(w, g, state, t, lr, beta1, beta2, eps):
    if t == 3:
        raise RuntimeError("kaboom\nsecond line")
    return adam(w, g, state, t, lr, beta1, beta2, eps)


def adam_betas(w, g, state, t, lr, betas, eps):
    """Takes the betas as a tuple, as torch does."""
    return adam(w, g, state, t, lr, betas[0], betas[1], eps)


def momentum_three_betas(w, g, state, t, lr, betas):
    """A three-beta method: v = b1 v + b2 g, w = w - lr (v + b3 g)."""
    state["v"] = betas[0] * state["v"] + betas[1] * g
    return w - lr * (state["v"] + betas[2] * g)


def sgd_lr_named_step(w, g, state, t, step):
    return w - step * g


def run(*args):
    """The exit status, and what was printed: the report (stdout), or the error (stderr, less
    the progress lines)."""
    result = CliRunner().invoke(main, ["verify", *args])
    errors = [line for line in result.stderr.splitlines(True) if not line.startswith("verify: ")]
    return result.exit_code, result.stdout or "".join(errors)


def test_implementation_raising_is_exit_3_on_one_line():
    code, out = run(f"{__name__}.adam_raises", "--against", "adam", *QUICK)
    assert code == 3, out
    assert out.count("\n") == 1 and "raised RuntimeError at step 3" in out
    assert "kaboom second line" in out and "Traceback" not in out


@pytest.mark.parametrize(
    ("hyper", "message"),
    [
        ("lr=-1", "lr=-1.0 is outside adam's domain for it, (0, inf)"),
        ("eps=0", "eps=0.0 is outside adam's domain for it, (0, inf)"),
        ("beta1=1", "beta1=1.0 is outside adam's domain"),
        ("nonsense=1", "nonsense: neither a hyperparameter of adam"),
        ("lr=abc", "not a number"),
    ],
)
def test_bad_hyperparameters_are_usage_errors(hyper, message):
    code, out = run(f"{__name__}.adam", "--against", "adam", "--hyper", hyper, *QUICK)
    assert code == 2 and out.count("\n") == 1 and message in out, out


def test_torch_refusing_its_arguments_is_a_usage_error_with_its_message():
    pytest.importorskip("torch")
    code, out = run("torch.optim.Adam", "--against", "adam", "--hyper", "lr=-1", *QUICK)
    assert code == 2 and "Invalid learning rate: -1.0" in out and out.count("\n") == 1, out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--map", "m=exp_avgg"], "Adam has no state 'exp_avgg' (its state: exp_avg, exp_avg_sq"),
        (["--map", "q=exp_avg"], "q: neither a state (m, v) nor a hyperparameter"),
        (["--map", "lr=rate"], "Adam takes no argument 'rate'"),
    ],
)
def test_bad_maps_are_usage_errors(args, message):
    pytest.importorskip("torch")
    target = "torch.optim.Adam" if "exp_avgg" in args[1] else "torch.optim.SGD"
    against = "adam" if target.endswith("Adam") else "momentum"
    if "q=" in args[1]:
        target, against = "torch.optim.Adam", "adam"
    code, out = run(target, "--against", against, *args, *QUICK)
    assert code == 2 and out.count("\n") == 1, out
    assert message.replace("Adam takes", "SGD takes") in out or message in out, out


def test_against_and_spec_exactly_one(tmp_path):
    spec = tmp_path / "mine.toml"
    spec.write_text((SPECS["adam"].source and open(SPECS["adam"].source).read()) or "")
    code, out = run(f"{__name__}.adam", "--spec", str(spec), *QUICK)
    assert code == 0 and out.startswith("PASS"), out
    code, out = run(f"{__name__}.adam", "--spec", str(spec), "--against", "adam", *QUICK)
    assert code == 2 and "one of them" in out, out
    code, out = run(f"{__name__}.adam", *QUICK)
    assert code == 2 and "--against NAME or --spec FILE" in out, out


def test_unknown_target_is_a_usage_error():
    code, out = run("no_such_module.Adam", "--against", "adam", *QUICK)
    assert code == 2 and "cannot import 'no_such_module'" in out, out


def test_states_a_step_function_never_writes_are_not_compared():
    report = verify(adam_own_keys, SPECS["adam"], steps=10, seeds=1, long=0)
    assert report.passed, report.summary()
    # m and v found again by value, under the function's own names
    assert report.compared_state == {"m": "exp_avg (by value)", "v": "exp_avg_sq (by value)"}


def test_every_hyperparameter_reaches_the_implementation():
    # a betas tuple, and an argument named otherwise mapped with --map
    hyper = {"lr": 0.01, "beta1": 0.8, "beta2": 0.95, "eps": 1e-6}
    report = verify(adam_betas, SPECS["adam"], hyper=hyper, steps=10, seeds=1, long=0)
    assert report.passed and report.arguments["betas"] == (0.8, 0.95), report.summary()
    with pytest.raises(Unsupported, match="lr = 0.001 does not reach .*--map lr=ARGUMENT"):
        verify(sgd_lr_named_step, SPECS["sgd"], steps=3, seeds=1, long=0)
    report = verify(
        sgd_lr_named_step,
        SPECS["sgd"],
        hyper={"lr": 0.3},
        state_map={"lr": "step"},
        steps=10,
        seeds=1,
        long=0,
    )
    assert report.passed and report.arguments == {"step": 0.3}, report.summary()


def test_a_tuple_of_three_betas_is_assembled(tmp_path):
    import inspect

    from symopt.spec import load_spec

    spec_file = tmp_path / "three.toml"
    spec_file.write_text(
        'name = "three"\nclass_name = "Three"\ntitle = "Three betas"\n'
        'summary = "test"\nreference = "none"\n'
        'update = ["v = beta1*v + beta2*g", "w = w - lr*(v + beta3*g)"]\n'
        + "".join(
            f'[hyper.{h}]\ndefault = {d}\ndomain = "{dom}"\nlatex = "{h}"\n'
            for h, d, dom in (
                ("lr", 0.01, "positive"),
                ("beta1", 0.9, "unit_closed_open"),
                ("beta2", 0.5, "unit_closed_open"),
                ("beta3", 0.25, "unit_closed_open"),
            )
        )
        + '[state.v]\ninit = "0"\nlatex = "v"\n'
    )
    spec = load_spec(spec_file)
    binding = bind(spec, inspect.signature(momentum_three_betas), 4, {}, {}, "f")
    assert binding.kwargs == {"lr": 0.01, "betas": (0.9, 0.5, 0.25)}
    report = verify(momentum_three_betas, spec, hyper={"betas": "0.8,0.4,0.2"}, steps=10, seeds=1)
    assert report.passed and report.arguments["betas"] == (0.8, 0.4, 0.2), report.summary()


def test_a_spec_hyperparameter_named_weight_decay_diagnoses_without_crashing():
    torch = pytest.importorskip("torch")
    # adamw's weight_decay reaches Adam's (L2) weight_decay: it differs, and is diagnosed
    report = verify(torch.optim.Adam, SPECS["adamw"], steps=10, seeds=1, long=0)
    assert not report.passed and report.diagnosis is not None, report.summary()
    assert report.arguments["weight_decay"] == 0.01


def test_optax_adam_from_the_command_line():
    pytest.importorskip("optax")
    code, out = run("optax.adam", "--against", "adam", *QUICK)
    assert code == 0 and out.startswith("PASS  optax.adam against adam"), out


def test_readme_example_is_what_verify_prints():
    pytest.importorskip("torch")
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    command = "$ symopt verify torch.optim.Adamax --against adamax\n"
    shown = readme.split(command, 1)[1].split("\n```", 1)[0]
    code, out = run("torch.optim.Adamax", "--against", "adamax")
    assert code == 1 and out.rstrip("\n") == shown, out
    from symopt.verify.streams import LARGE, LONG, STREAMS

    assert "seven kinds" in readme and len(STREAMS) == 7
    assert "70,000 elements, 40 steps and one run of 1,000" in readme
    assert (LARGE, LONG) == (70_000, 1000)


def test_nadam_with_psi_zero_is_fitted_as_zero():
    torch = pytest.importorskip("torch")
    report = verify(
        torch.optim.NAdam, SPECS["nadam"], hyper={"momentum_decay": 0.0}, steps=20, seeds=1
    )
    assert report.diagnosis.rules == ("momentum_schedule",), report.summary()
    assert report.diagnosis.fitted == {"momentum_decay": 0.0}

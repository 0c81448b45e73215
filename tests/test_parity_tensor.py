"""Tensor-level specs (LAMB, LARS, Adafactor, RAdam) against libraries nobody here wrote.

The reference stepper runs each spec straight from its equations; pytorch_optimizer and
torch.optim run their own code on the same gradient stream in float64. Agreement to 1e-10 on every
parameter and every state both keep, over 100 steps on tensors of several shapes, is evidence that
the spec says what the library does (and that the stepper evaluates reductions, conditionals, row
and column state as the library does).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from implementations import implementations, make

from symopt.reference import relative_error
from symopt.spec import load_spec
from symopt.spec.family import variant_for

torch = pytest.importorskip("torch")
pytorch_optimizer = pytest.importorskip("pytorch_optimizer")

SPECS = Path(__file__).resolve().parents[1] / "specs"
STEPS = 100
TOLERANCE = 1e-10
#: 1-D, 2-D wide and tall, 3-D.
SHAPES = [(7,), (5, 13), (17, 3), (2, 3, 4)]

Hyper = Mapping[str, float]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@dataclass(frozen=True)
class Case:
    """One spec, its library optimizer and how their hyperparameters and states correspond."""

    spec: str
    make: Callable[[list], object]  # params -> the library optimizer with its own defaults
    configure: Callable[[object, Hyper], None]  # set the spec's hyperparameters on it
    states: Mapping[str, str]  # spec state -> library state key
    shapes: list[tuple[int, ...]]


def _setter(group: Callable[[Hyper], dict]) -> Callable[[object, Hyper], None]:
    return lambda opt, h: opt.param_groups[0].update(group(h))


def _configure_lamb(opt, h: Hyper) -> None:
    opt.param_groups[0].update(
        lr=h["lr"], betas=(h["beta1"], h["beta2"]), weight_decay=h["weight_decay"], eps=h["eps"]
    )
    opt.clamp = h["max_norm"]  # a class attribute in the library, a hyperparameter in the spec


def _lars_group(h: Hyper) -> dict:
    keys = ("lr", "weight_decay", "momentum", "dampening", "trust_coefficient")
    return {k: h[k] for k in keys}


def _adafactor_group(h: Hyper) -> dict:
    return {
        "lr": h["lr"],
        "beta2_decay": h["beta2_decay"],
        "eps": (h["eps1"], h["eps2"]),
        "d": h["d"],
        "weight_decay": h["weight_decay"],
    }


def _radam_group(h: Hyper) -> dict:
    return {
        "lr": h["lr"],
        "betas": (h["beta1"], h["beta2"]),
        "eps": h["eps"],
        "weight_decay": h["weight_decay"],
    }


#: torch's eps1 default (None) means the dtype's machine epsilon; the spec fixes float64's.
ADAFACTOR_EPS = (2.220446049250313e-16, 1e-3)

CASES = {
    "lamb": Case(
        "lamb",
        pytorch_optimizer.Lamb,
        _configure_lamb,
        {"m": "exp_avg", "v": "exp_avg_sq"},
        SHAPES,
    ),
    "lars": Case(
        "lars",
        pytorch_optimizer.LARS,
        _setter(_lars_group),
        {"b": "momentum_buffer"},
        SHAPES + [(2, 3, 2, 2)],  # the trust ratio covers 3-D and 4-D kernels too
    ),
    "adafactor": Case(
        "adafactor",
        lambda p: torch.optim.Adafactor(p, eps=ADAFACTOR_EPS),
        _setter(_adafactor_group),
        {"r": "row_var", "c": "col_var", "v": "variance"},
        SHAPES + [(2, 3, 2, 2)],  # 3-D and 4-D: stacks of matrices, factored per matrix
    ),
    "radam": Case(
        "radam",
        torch.optim.RAdam,
        _setter(_radam_group),
        {"m": "exp_avg", "v": "exp_avg_sq"},
        SHAPES,
    ),
}

#: Non-default hyperparameters: weight decay on, other rates and bounds moved so the clamps,
#: clips and switches take their other branch at some steps.
NON_DEFAULT = {
    "lamb": {"lr": 0.02, "beta1": 0.8, "beta2": 0.95, "weight_decay": 0.1, "max_norm": 2.0},
    "lars": {
        "lr": 0.1,
        "weight_decay": 0.01,
        "momentum": 0.7,
        "dampening": 0.2,
        "trust_coefficient": 0.02,
    },
    "adafactor": {"lr": 0.5, "beta2_decay": -0.6, "eps2": 0.05, "d": 1.5, "weight_decay": 0.02},
    "radam": {"lr": 0.01, "beta1": 0.5, "beta2": 0.9, "eps": 1e-6, "weight_decay": 0.05},
}


def _initial(shapes: list[tuple[int, ...]], rng: np.random.Generator) -> list[np.ndarray]:
    """Random tensors, the last one large (LAMB's weight-norm clamp), the second all zeros."""
    params = [rng.standard_normal(s) * 10.0 ** rng.uniform(-1, 0.5) for s in shapes]
    params[1] = np.zeros(shapes[1])
    params[-1] = params[-1] * 10.0
    return params


def run_pair(
    case: Case, schedule: Callable[[int], Hyper], seed: int, kind: str = "reference"
) -> dict[str, float]:
    """Step spec (``kind``: the reference stepper or generated code) and library side by side;
    the worst relative error of each compared array."""
    written = load_spec(SPECS / f"{case.spec}.toml")
    defaults = written.family.raw.defaults if written.family else written.defaults
    # the variant that runs every value of the schedule (weight decay on: the variant for
    # nonzero weight_decay, started at 0 where the schedule starts at the defaults)
    values = {k: v for step in range(STEPS) for k, v in schedule(step).items()}
    axes = written.family.axes if written.family else ()
    spec = variant_for(written, {a: values[a] != 0 for a in axes if a in values})
    rng = np.random.default_rng(seed)
    w0 = _initial(case.shapes, rng)
    ref = make(kind, spec, w0, **{h: defaults[h] for h in spec.hyper_names})  # the defaults ...
    params = [torch.nn.Parameter(torch.tensor(w, dtype=torch.float64)) for w in w0]
    lib = case.make(params)  # ... and the library's, until the schedule says otherwise
    worst: dict[str, float] = {}
    for step in range(STEPS):
        hyper = schedule(step)
        if hyper:
            case.configure(lib, {**defaults, **hyper})
        grads = [rng.standard_normal(s) * 10.0 ** rng.uniform(-2, 1) for s in case.shapes]
        if step == 0:  # zero gradients at a zero and a nonzero tensor: the zero-norm branches
            grads[1] = np.zeros(case.shapes[1])
            grads[2] = np.zeros(case.shapes[2])
        for p, g in zip(params, grads, strict=True):
            p.grad = torch.tensor(g, dtype=torch.float64)
        lib.step()
        ref.step(grads, **hyper)
        for i, p in enumerate(params):
            _record(worst, f"{i}.w", ref.params[i], p.detach().numpy())
            state = lib.state[p]
            for name, value in ref.state[i].items():
                if case.states[name] in state:
                    _record(worst, f"{i}.{name}", value, state[case.states[name]].numpy())
    return worst


def _record(worst: dict[str, float], key: str, ours: np.ndarray, theirs: np.ndarray) -> None:
    assert ours.shape == theirs.shape, f"{key}: shape {ours.shape} != {theirs.shape}"
    error = relative_error(ours, theirs)
    worst[key] = max(worst.get(key, 0.0), error if math.isfinite(error) else math.inf)


def _assert_close(name: str, worst: dict[str, float], expected_states: int) -> None:
    bad = {k: f"{v:.2e}" for k, v in worst.items() if not v <= TOLERANCE}
    assert not bad, f"{name}: relative errors above {TOLERANCE}: {bad}"
    states = [k for k in worst if not k.endswith(".w")]
    assert len(states) == expected_states, f"{name}: compared states {sorted(states)}"


#: How many (parameter, state) pairs each case compares: every state the library also keeps.
STATE_PAIRS = {"lamb": 2 * 4, "lars": 5, "adafactor": 1 + 2 * 4, "radam": 2 * 4}


#: (spec, implementation): the reference stepper, and the generated NumPy and C code.
PAIRS = [(name, kind) for name in sorted(CASES) for kind in implementations(name)]


@pytest.mark.parametrize(("name", "kind"), PAIRS)
def test_defaults_match_the_library(name, kind):
    worst = run_pair(CASES[name], lambda step: {}, seed=3, kind=kind)
    _assert_close(name, worst, STATE_PAIRS[name])


@pytest.mark.parametrize(("name", "kind"), PAIRS)
def test_non_default_hyperparameters_match_the_library(name, kind):
    worst = run_pair(CASES[name], lambda step: NON_DEFAULT[name], seed=5, kind=kind)
    _assert_close(name, worst, STATE_PAIRS[name])


@pytest.mark.parametrize(("name", "kind"), PAIRS)
def test_hyperparameters_changed_mid_run_match_the_library(name, kind):
    """Defaults for the first 40 steps, then the non-default values (weight decay on)."""
    schedule = lambda step: NON_DEFAULT[name] if step >= 40 else {}  # noqa: E731
    worst = run_pair(CASES[name], schedule, seed=7, kind=kind)
    _assert_close(name, worst, STATE_PAIRS[name])

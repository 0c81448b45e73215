"""The AdamW, AMSGrad, Lion and Yogi specs step exactly as libraries nobody here wrote (float64).

The reference stepper runs each spec straight from its equations; torch.optim and pytorch_optimizer
run their own code on the same gradient stream. Agreement of the weights and of every state to 1e-10
over 100 steps, on 1-D, 2-D and 3-D tensors, with the library's defaults and with other values
(weight decay on), is evidence that the spec states the library's algorithm, conventions included.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from implementations import implementations, make

from symopt.reference import relative_error
from symopt.spec import load_spec

torch = pytest.importorskip("torch")
pytorch_optimizer = pytest.importorskip("pytorch_optimizer")

SPECS = Path(__file__).resolve().parents[1] / "specs"
STEPS = 100
SHAPES = [(7,), (5, 3), (2, 3, 4)]
TOLERANCE = 1e-10

Make = Callable[..., object]


def _adam_args(h: dict[str, float]) -> dict[str, object]:
    """Our hyperparameter names as torch-style keyword arguments (betas as a pair)."""
    args: dict[str, object] = dict(h)
    if "beta1" in args:
        args["betas"] = (args.pop("beta1"), args.pop("beta2"))
    return args


def _amsgrad(params, **h) -> object:
    return torch.optim.Adam(params, amsgrad=True, **_adam_args(h))


#: spec name -> (library constructor, our state name -> the library's, non-default hyperparameters)
CASES: dict[str, tuple[Make, dict[str, str], dict[str, float]]] = {
    "adamw": (
        lambda p, **h: torch.optim.AdamW(p, **_adam_args(h)),
        {"m": "exp_avg", "v": "exp_avg_sq"},
        {"lr": 0.02, "beta1": 0.8, "beta2": 0.99, "eps": 1e-6, "weight_decay": 0.1},
    ),
    "amsgrad": (
        _amsgrad,
        {"m": "exp_avg", "v": "exp_avg_sq", "v_max": "max_exp_avg_sq"},
        {"lr": 0.01, "beta1": 0.8, "beta2": 0.95, "eps": 1e-7, "weight_decay": 0.05},
    ),
    "lion": (
        lambda p, **h: pytorch_optimizer.Lion(p, **_adam_args(h)),
        {"m": "exp_avg"},
        {"lr": 0.003, "beta1": 0.8, "beta2": 0.95, "weight_decay": 0.5},
    ),
    "yogi": (
        lambda p, **h: pytorch_optimizer.Yogi(p, **_adam_args(h)),
        {"m": "exp_avg", "v": "exp_avg_sq"},
        {
            "lr": 0.05,
            "beta1": 0.8,
            "beta2": 0.95,
            "eps": 1e-4,
            "initial_accumulator": 1e-3,
            "weight_decay": 0.2,
        },
    ),
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _run(
    name: str, hyper: dict[str, float], foreach: bool, kind: str = "reference"
) -> dict[str, float]:
    """Step both side by side (``kind``: the reference stepper or generated code); the worst
    relative error of w and of each mapped state."""
    library, states, _ = CASES[name]
    rng = np.random.default_rng(sum(map(ord, name)))
    w0 = [rng.standard_normal(s) for s in SHAPES]
    ours = make(kind, load_spec(SPECS / f"{name}.toml"), w0, **hyper)
    params = [torch.nn.Parameter(torch.tensor(w, dtype=torch.float64)) for w in w0]
    theirs = library(params, foreach=foreach, **hyper)
    worst = dict.fromkeys(["w", *states], 0.0)
    for _ in range(STEPS):
        grads = [rng.standard_normal(s) * 10.0 ** rng.uniform(-2, 1) for s in SHAPES]
        ours.step(grads)
        for p, g in zip(params, grads, strict=True):
            p.grad = torch.tensor(g)
        theirs.step()
        for i, p in enumerate(params):
            worst["w"] = max(worst["w"], relative_error(ours.params[i], p.detach().numpy()))
            for mine, key in states.items():
                expected = theirs.state[p][key].numpy()
                worst[mine] = max(worst[mine], relative_error(ours.state[i][mine], expected))
    moved = min(relative_error(p.detach().numpy(), w) for p, w in zip(params, w0, strict=True))
    assert moved > 1e-3, f"{name}: the weights barely moved ({moved:.1e}); the test shows nothing"
    if name == "amsgrad":  # the running maximum must bite, or AMSGrad is not told from Adam
        gaps = [theirs.state[p]["max_exp_avg_sq"] - theirs.state[p]["exp_avg_sq"] for p in params]
        assert max(float(d.max()) for d in gaps) > 0.0, "v_max never exceeded v"
    return worst


@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize("setting", ["defaults", "non_default"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_reference_matches_library(name, setting, foreach):
    """With defaults neither side gets a hyperparameter: the spec's defaults are the library's."""
    hyper = CASES[name][2] if setting == "non_default" else {}
    worst = _run(name, hyper, foreach)
    bad = {k: f"{v:.1e}" for k, v in worst.items() if not v <= TOLERANCE}
    assert not bad, f"{name} ({setting}, foreach={foreach}): relative errors {bad}"


@pytest.mark.parametrize("setting", ["defaults", "non_default"])
@pytest.mark.parametrize(
    ("name", "kind"),
    [(n, k) for n in sorted(CASES) for k in implementations(n) if k != "reference"],
)
def test_generated_code_matches_library(name, kind, setting):
    """The generated NumPy and C optimizers against the library directly (its foreach path)."""
    hyper = CASES[name][2] if setting == "non_default" else {}
    worst = _run(name, hyper, True, kind)
    bad = {k: f"{v:.1e}" for k, v in worst.items() if not v <= TOLERANCE}
    assert not bad, f"{name} ({setting}, {kind}): relative errors {bad}"


def test_non_default_settings_turn_weight_decay_on():
    """The non-default runs exercise the decay term of every spec."""
    for name, (_, _, hyper) in CASES.items():
        spec = load_spec(SPECS / f"{name}.toml")
        assert hyper["weight_decay"] > 0, name
        assert set(hyper) <= set(spec.defaults), name
        assert all(hyper[k] != spec.defaults[k] for k in hyper), name

"""Rprop and Muon (reference stepper, generated NumPy and C code) against torch.optim, float64.

torch.optim.Muon runs its Newton-Schulz iteration in bfloat16 whatever the parameters' dtype; the
spec runs it in the parameters' precision. That is the one convention difference, so the
comparison removes torch's cast (``Tensor.bfloat16`` returns a copy in the same dtype) and runs
torch's own code otherwise; ``symopt verify torch.optim.Muon --against muon`` shows the
difference the cast makes (a relative 3e-4, named as the size of bfloat16 rounding).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from implementations import implementations, make

from symopt.reference import relative_error
from symopt.spec import load_spec

torch = pytest.importorskip("torch")

SPECS = Path(__file__).resolve().parents[1] / "specs"
STEPS = 100
TOLERANCE = 1e-10
CASES = {
    # spec: (library, non-default hyperparameters as (ours, theirs), shapes, state map)
    "rprop": (
        torch.optim.Rprop,
        (
            {"lr": 0.03, "etaminus": 0.3, "etaplus": 1.5, "step_min": 1e-4, "step_max": 0.2},
            {"lr": 0.03, "etas": (0.3, 1.5), "step_sizes": (1e-4, 0.2)},
        ),
        [(7,), (5, 3), (2, 3, 4)],
        {"step_size": "step_size", "p": "prev"},
    ),
    "muon": (
        torch.optim.Muon,
        (
            {"lr": 0.02, "weight_decay": 0.05, "momentum": 0.9, "eps": 1e-6},
            {"lr": 0.02, "weight_decay": 0.05, "momentum": 0.9, "eps": 1e-6},
        ),
        [(5, 8), (9, 4), (1, 6)],
        {"b": "momentum_buffer"},
    ),
}


def _full_precision():
    """torch.optim.Muon's bfloat16 cast made a copy in the parameters' own dtype."""
    return mock.patch.object(torch.Tensor, "bfloat16", lambda self: self.clone())


@pytest.mark.parametrize("setting", ["defaults", "non_default"])
@pytest.mark.parametrize(
    ("name", "kind"), [(n, k) for n in sorted(CASES) for k in implementations(n)]
)
def test_matches_torch(name, kind, setting):
    library, (ours_hyper, theirs_hyper), shapes, states = CASES[name]
    if setting == "defaults":
        ours_hyper, theirs_hyper = {}, {}
    rng = np.random.default_rng(sum(map(ord, name)))
    w0 = [rng.standard_normal(s) for s in shapes]
    ours = make(kind, load_spec(SPECS / f"{name}.toml"), w0, **ours_hyper)
    params = [torch.nn.Parameter(torch.tensor(w, dtype=torch.float64)) for w in w0]
    theirs = library(params, **theirs_hyper)
    worst = dict.fromkeys(["w", *states], 0.0)
    patch = _full_precision() if name == "muon" else contextlib.nullcontext()
    with patch:
        for _ in range(STEPS):
            grads = [rng.standard_normal(s) * 10.0 ** rng.uniform(-2, 1) + 0.1 for s in shapes]
            for p, g in zip(params, grads, strict=True):
                p.grad = torch.tensor(g)
            theirs.step()
            ours.step(grads)
            for i, p in enumerate(params):
                worst["w"] = max(worst["w"], relative_error(ours.params[i], p.detach().numpy()))
                for mine, key in states.items():
                    theirs_state = theirs.state[p][key].numpy()
                    worst[mine] = max(
                        worst[mine], relative_error(ours.state[i][mine], theirs_state)
                    )
    moved = min(relative_error(p.detach().numpy(), w) for p, w in zip(params, w0, strict=True))
    assert moved > 1e-3, f"{name}: the weights barely moved ({moved:.1e})"
    bad = {k: f"{v:.1e}" for k, v in worst.items() if not v <= TOLERANCE}
    assert not bad, f"{name} ({kind}, {setting}): relative errors {bad}"

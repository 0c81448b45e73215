"""The torch.optim (and pytorch_optimizer) optimizers whose mathematics equal a spec, with
hyperparameters that exercise them: the cases both the NumPy and the PyTorch targets are compared
with."""

from unittest import mock

import pytest
import torch


def po():
    """pytorch_optimizer, imported when a case needs it (a test without it is skipped)."""
    return pytest.importorskip("pytorch_optimizer")


class MuonFloat(torch.optim.Muon):
    """torch.optim.Muon without its bfloat16 cast of the Newton-Schulz iteration (the spec runs
    it in the parameter's precision)."""

    def step(self, closure=None):
        with mock.patch.object(torch.Tensor, "bfloat16", lambda self: self.clone()):
            return super().step(closure)


def _betas(h):
    return (h["beta1"], h["beta2"])


# algorithm -> (our hyperparameters, torch constructor taking (params, our hyperparameters)).
# The drop-ins for a torch.optim class (sgd, adam, rmsprop, muon, ...) take torch's own arguments
# and are compared on their whole flag matrix in test_torch_optim_parity.py.
CASES = {
    "momentum": (
        {"lr": 0.02, "rho": 0.9},
        lambda p, h: torch.optim.SGD(p, lr=h["lr"], momentum=h["rho"]),
    ),
    # Our look-ahead-free Nesterov stores p = w + rho v, which torch's nesterov=True steps.
    "nesterov": (
        {"lr": 0.02, "rho": 0.9},
        lambda p, h: torch.optim.SGD(p, lr=h["lr"], momentum=h["rho"], nesterov=True),
    ),
    "amsgrad": (
        {"lr": 0.01, "beta1": 0.8, "beta2": 0.99, "eps": 1e-8, "weight_decay": 0.1},
        lambda p, h: torch.optim.Adam(
            p,
            lr=h["lr"],
            betas=_betas(h),
            eps=h["eps"],
            weight_decay=h["weight_decay"],
            amsgrad=True,
        ),
    ),  # fmt: skip
    "lion": (
        {"lr": 0.001, "beta1": 0.8, "beta2": 0.95, "weight_decay": 0.1},
        lambda p, h: po().Lion(p, lr=h["lr"], betas=_betas(h), weight_decay=h["weight_decay"]),
    ),
    "yogi": (
        {
            "lr": 0.01,
            "beta1": 0.8,
            "beta2": 0.99,
            "eps": 1e-3,
            "initial_accumulator": 1e-6,
            "weight_decay": 0.1,
        },
        lambda p, h: po().Yogi(
            p,
            lr=h["lr"],
            betas=_betas(h),
            eps=h["eps"],
            initial_accumulator=h["initial_accumulator"],
            weight_decay=h["weight_decay"],
        ),
    ),  # fmt: skip
    "lamb": (
        {"lr": 0.01, "beta1": 0.8, "beta2": 0.99, "weight_decay": 0.1, "eps": 1e-6},
        lambda p, h: po().Lamb(
            p, lr=h["lr"], betas=_betas(h), weight_decay=h["weight_decay"], eps=h["eps"]
        ),
    ),
    "lars": (
        {
            "lr": 0.01,
            "weight_decay": 0.01,
            "momentum": 0.9,
            "dampening": 0.1,
            "trust_coefficient": 0.01,
        },
        lambda p, h: po().LARS(
            p,
            lr=h["lr"],
            weight_decay=h["weight_decay"],
            momentum=h["momentum"],
            dampening=h["dampening"],
            trust_coefficient=h["trust_coefficient"],
        ),
    ),  # fmt: skip
}

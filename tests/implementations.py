"""The implementations of a spec a parity test steps beside a library: the reference stepper and
the generated NumPy and C optimizers (the generated PyTorch ones are compared in
tests/torch_cases.py). All three take the same calls: ``step(grads, **hyper)``, ``params``,
``state[i][name]``."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np

from symopt.backends import BACKENDS
from symopt.reference import ReferenceStepper
from symopt.spec import Spec
from symopt.spec.family import module_name

GENERATED = Path(__file__).resolve().parents[1] / "generated"
for target in ("numpy", "c"):
    sys.path.insert(0, str(GENERATED / target))

PACKAGES = {"numpy": "symopt_numpy", "c": "symopt_c"}


class Generated:
    """A generated optimizer class behind the reference stepper's calls."""

    def __init__(self, target: str, spec: Spec, params: list[np.ndarray], hyper: dict) -> None:
        # a spec with flags: the kernel module of its variant (``_radam__weight_decay``)
        module = importlib.import_module(f"{PACKAGES[target]}.{module_name(spec)}")
        self.opt = getattr(module, spec.class_name)([p.copy() for p in params], **hyper)

    @property
    def params(self) -> list[np.ndarray]:
        return self.opt.params

    @property
    def state(self) -> list[dict[str, np.ndarray]]:
        return self.opt.state

    def step(self, grads, **hyper: float) -> None:
        for name, value in hyper.items():
            setattr(self.opt, name, value)
        self.opt.step(grads)


def implementations(spec_name: str) -> list[str]:
    """Every implementation of a built-in spec: the reference, NumPy, and C where it generates."""
    from symopt.spec import load_spec

    spec = load_spec(GENERATED.parent / "specs" / f"{spec_name}.toml")
    out = ["reference", "numpy"]
    return out + (["c"] if BACKENDS["c"].unsupported(spec) is None else [])


def make(kind: str, spec: Spec, params: list[np.ndarray], **hyper: float):
    if kind == "reference":
        return ReferenceStepper(spec, [p.copy() for p in params], **hyper)
    return Generated(kind, spec, params, hyper)

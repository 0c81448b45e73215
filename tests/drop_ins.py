"""The built-in specs that are drop-ins for a torch.optim class, and what the tests comparing
them with it share: the library class, parameter shapes, and torch.optim.Muon without its
bfloat16 cast."""

from __future__ import annotations

import contextlib
import importlib
from unittest import mock

from symopt.resources import builtin_specs


def drop_ins() -> dict:
    """Built-in specs that are drop-ins for a torch.optim class, by name."""
    return {
        name: spec
        for name, spec in builtin_specs().items()
        if spec.family is not None and spec.family.api.matches.startswith("torch.optim.")
    }


def library_class(spec):
    module, _, name = spec.family.api.matches.rpartition(".")
    return getattr(importlib.import_module(module), name)


def exact(spec):
    """torch.optim.Muon runs Newton-Schulz in bfloat16 whatever the parameters' dtype (the
    generated classes in theirs: docs/torch-parity.md); compared without that cast."""
    if spec.family.api.matches == "torch.optim.Muon":
        import torch

        return mock.patch.object(torch.Tensor, "bfloat16", lambda self: self.clone())
    return contextlib.nullcontext()


def shapes(spec) -> list[tuple[int, ...]]:
    """Three parameters the spec's update takes: matrices for a matrix-only update."""
    if spec.applies_to == "matrix" and not spec.otherwise:
        return [(5, 3), (4, 4), (3, 6)]
    return [(5, 3), (7,), (2, 3, 4)]

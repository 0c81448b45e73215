"""Code generation targets. Adding one = a module here + a template folder + tests."""

from __future__ import annotations

from symopt.targets.base import Target
from symopt.targets.c import CTarget
from symopt.targets.docs import DocsTarget
from symopt.targets.numpy import NumpyTarget
from symopt.targets.torch import TorchTarget

TARGETS: dict[str, Target] = {
    t.name: t for t in (NumpyTarget(), DocsTarget(), CTarget(), TorchTarget())
}

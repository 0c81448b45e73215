"""Backends: each renders lowered specs into files. Adding one = a package here + a template
folder + tests (see docs/adding-a-backend.md)."""

from __future__ import annotations

from symopt.backends.base import Backend
from symopt.backends.c import CBackend
from symopt.backends.docs import DocsBackend
from symopt.backends.jax import JaxBackend
from symopt.backends.numpy import NumpyBackend
from symopt.backends.torch import TorchBackend

BACKENDS: dict[str, Backend] = {
    b.name: b for b in (NumpyBackend(), DocsBackend(), CBackend(), TorchBackend(), JaxBackend())
}

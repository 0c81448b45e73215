"""What ``symopt verify TARGET`` names: an import path, loaded without running anything else,
and the adapter that drives it."""

from __future__ import annotations

import importlib
import inspect

from symopt.errors import Unsupported
from symopt.verify.adapters import (
    Adapter,
    ClassAdapter,
    FunctionAdapter,
    ImplementationError,
    TorchAdapter,
)
from symopt.verify.optax_adapter import OptaxAdapter, is_optax_factory


def load_target(path: str) -> object:
    """Import ``pkg.mod.Name`` (or ``pkg.mod:Name``) without executing anything else."""
    module_name, _, attr = path.replace(":", ".").rpartition(".")
    if not module_name or not attr:
        raise Unsupported(
            f"expected an import path like torch.optim.Adam, got {path!r}", key="TARGET"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise Unsupported(f"cannot import {module_name!r}: {exc}", key="TARGET") from None
    except Exception as exc:  # noqa: BLE001  (importing runs the module's code)
        raise ImplementationError(
            f"importing {module_name!r} raised {type(exc).__name__}: {exc}"
        ) from exc
    if not hasattr(module, attr):
        raise Unsupported(f"{module_name!r} has no attribute {attr!r}", key="TARGET")
    return getattr(module, attr)


def adapter_factory(target: object) -> type[Adapter]:
    """The adapter for ``target``: by what it is (a torch optimizer class, a class with a step
    method, an optax factory, or a step function)."""
    if inspect.isclass(target):
        try:
            import torch

            if issubclass(target, torch.optim.Optimizer):
                return TorchAdapter
        except ImportError:
            pass
        if hasattr(target, "step"):
            return ClassAdapter
        raise Unsupported(f"{target.__name__} has no step() method", key="TARGET")
    if is_optax_factory(target):
        return OptaxAdapter
    if callable(target):
        return FunctionAdapter
    raise Unsupported(
        f"{target!r} is neither an optimizer class, an optax transformation nor a step function",
        key="TARGET",
    )

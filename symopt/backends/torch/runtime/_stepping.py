"""What every generated first-order PyTorch optimizer does around its kernels at each step:
the wrapper of ``step`` (gradients off, torch.optim's hooks and profiler range only when used),
the closure, the parameters with gradients, a new parameter's state and the step counters.

Depends on torch only.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable, Iterator, Mapping

import torch
from torch.optim import Optimizer
from torch.optim import optimizer as torch_optimizer

__all__ = [
    "LeanStepHooks",
    "advance",
    "advance_all",
    "evaluate",
    "gradients",
    "prepare_state",
    "step_tensor",
    "with_gradients",
    "without_grad",
]


def without_grad(step: Callable) -> Callable:
    """``torch.no_grad()`` around a step method, at a twentieth of the decorator's cost (about 4
    microseconds a call: as much as a fused step of 10^4 elements)."""

    @functools.wraps(step)
    def run(*args, **kwargs):
        enabled = torch.is_grad_enabled()
        torch._C._set_grad_enabled(False)
        try:
            return step(*args, **kwargs)
        finally:
            torch._C._set_grad_enabled(enabled)

    return run


def lean_step_hooks(step: Callable) -> Callable:
    """torch.optim's wrapper of ``step`` (a profiler range, the step pre- and post-hooks), run
    only while a profiler records or a hook is registered: the range alone costs about 6
    microseconds a call, as much as a fused step of 10^5 elements. torch's wrapper always, on a
    torch without the registries of global hooks read here."""
    hooked = Optimizer.profile_hook_step(step)
    pre_hooks = getattr(torch_optimizer, "_global_optimizer_pre_hooks", None)
    post_hooks = getattr(torch_optimizer, "_global_optimizer_post_hooks", None)
    if pre_hooks is None or post_hooks is None:
        return hooked

    @functools.wraps(step)
    def run(self, *args, **kwargs):
        if (
            pre_hooks
            or post_hooks
            or self._optimizer_step_pre_hooks
            or self._optimizer_step_post_hooks
            or torch._C._autograd._profiler_enabled()
        ):
            return hooked(self, *args, **kwargs)
        return step(self, *args, **kwargs)

    return run


class LeanStepHooks(Optimizer):
    """A ``torch.optim.Optimizer`` whose ``step`` is wrapped by :func:`lean_step_hooks` instead
    of torch's wrapper (torch wraps it in ``__init__`` and on unpickling, through this method)."""

    def _patch_step_function(self) -> None:
        cls = type(self)
        self._zero_grad_profile_name = f"Optimizer.zero_grad#{cls.__name__}.zero_grad"
        if not getattr(cls.step, "hooked", None):
            cls.step = lean_step_hooks(cls.step)
            cls.step.hooked = True


def evaluate(closure: Callable | None):
    """The closure's loss, computed with gradients on (a step runs under no_grad), or None."""
    if closure is None:
        return None
    with torch.enable_grad():
        return closure()


def gradients(
    params: list[torch.Tensor], name: str, maximize: bool
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(parameter, gradient) for each parameter with a gradient: negated for ``maximize``;
    sparse gradients and complex parameters refused."""
    return zip(*with_gradients(params, name, maximize), strict=True)


def with_gradients(
    params: list[torch.Tensor], name: str, maximize: bool
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The parameters with a gradient and their gradients (negated for ``maximize``); sparse
    gradients and complex parameters refused. Whole lists at a time: a step's Python cost is
    per parameter."""
    params = [p for p in params if p.grad is not None]
    grads = [p.grad for p in params]
    if any([grad.is_sparse for grad in grads]):
        raise RuntimeError(f"{name} does not support sparse gradients")
    if any([p.is_complex() for p in params]):
        raise RuntimeError(f"{name} does not support complex parameters")
    return params, ([-grad for grad in grads] if maximize else grads)


def prepare_state(
    state: dict, fresh: dict, keys: Mapping[str, str], counter: str, tensor_counter: bool
) -> None:
    """A parameter's state before its step: new, or completed where keys are missing (from a
    checkpoint of torch.optim with another setting of the flags, or without a step counter).
    ``fresh``: the initial state, by the spec's names."""
    if counter not in state:
        state[counter] = step_tensor(0) if tensor_counter else 0
    for name, tensor in fresh.items():
        state.setdefault(keys.get(name, name), tensor)


def step_tensor(value: float) -> torch.Tensor:
    """A step counter as torch.optim keeps it: a 0-d float tensor on the CPU."""
    dtype = torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32
    return torch.tensor(float(value), dtype=dtype)


#: The C type of a step counter kept as a 0-d CPU tensor, by its dtype.
COUNTER_CTYPES = {torch.float32: ctypes.c_float, torch.float64: ctypes.c_double}


def advance(state: dict, counter: str) -> int:
    """Count one more step; the number of steps taken, this one included.

    A counter that is a 0-d float CPU tensor (torch.optim's) is incremented in its memory: a
    torch op would cost about 5 microseconds per parameter, more than a small fused step."""
    steps = state[counter]
    if isinstance(steps, torch.Tensor):
        cell_type = COUNTER_CTYPES.get(steps.dtype)
        if cell_type is not None and steps.is_cpu and steps.dim() == 0:
            cell = cell_type.from_address(steps.data_ptr())
            cell.value += 1
            return int(cell.value)
        steps.add_(1)
        return int(steps.item())
    state[counter] = steps + 1
    return steps + 1


def advance_all(states: list[dict], counter: str) -> list[int]:
    """:func:`advance` for each state; counters that are 0-d float CPU tensors of one dtype
    (torch.optim's) through one ctypes array each, the others one by one."""
    counts = [state[counter] for state in states]
    if counts and all([type(c) is int for c in counts]):
        for state, steps in zip(states, counts, strict=True):
            state[counter] = steps + 1
        return [steps + 1 for steps in counts]
    first = counts[0] if counts else None
    cell_type = COUNTER_CTYPES.get(first.dtype) if isinstance(first, torch.Tensor) else None
    if (
        cell_type is None
        or not all([isinstance(c, torch.Tensor) for c in counts])
        or not all([c.dtype is first.dtype for c in counts])
        or not all([c.is_cpu for c in counts])
        or any([c.dim() for c in counts])
    ):
        return [advance(state, counter) for state in states]
    cells = [cell_type.from_address(c.data_ptr()) for c in counts]
    out = [int(cell.value) + 1 for cell in cells]
    for cell, steps in zip(cells, out, strict=True):
        cell.value = steps
    return out

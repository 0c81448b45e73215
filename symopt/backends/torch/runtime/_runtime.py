"""What every generated element-wise optimizer shares: a ``torch.optim.Optimizer`` base class.

A generated module binds what is derived from its spec (the hyperparameters' domains, the
initial state, the scalars computed once per step, and the foreach and single-tensor bodies of
the update); this class runs them: param groups, hyperparameter checks, state initialisation and
step counting, grouping of tensors by device, dtype and step count, scratch buffers kept between
steps (so that a step allocates no memory), and the choice of the foreach or single-tensor path.

Depends on torch only.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.optim import Optimizer

__all__ = ["ElementwiseOptimizer", "zero_dim"]


def zero_dim(like: torch.Tensor, *values: float) -> tuple[torch.Tensor, ...]:
    """Scalars as 0-d tensors, for the in-place foreach add/mul/div: on the CPU these ops run
    tensor by tensor and would make a tensor of a Python scalar for every one. In the dtype the
    elements are computed in, so that results equal those with the Python scalar."""
    dtype = torch.promote_types(like.dtype, torch.float32)
    return tuple(torch.full((), x, dtype=dtype, device=like.device) for x in values)


class ElementwiseOptimizer(Optimizer):
    """An optimizer whose update runs element by element over a parameter, its gradient and
    its state tensors.

    A subclass sets, as class attributes:

    * ``hyperparameters``: the names of the hyperparameters, in the order the functions below
      take them;
    * ``arrays``: the update's arrays in the order the update functions take them (``"w"`` the
      parameter, ``"g"`` its gradient, any other name a tensor in ``state[p]``), followed by
      ``scratch`` scratch tensors like the parameter and ``masks`` boolean ones (conditions);
    * ``step_key``: the state key of the step counter (``"step"`` unless a state has that name);
    * ``t_start``: the step counter of the first step;
    * ``check_hyper(*hyper)``: raises ValueError for a hyperparameter outside its domain;
    * ``initial_state(p, group)``: the state tensors of a new parameter, by name;
    * ``scalars(t, *hyper)``: the scalars the update takes, computed once per step and group;
    * ``update_foreach(*lists, scalars)`` and ``update_single(*tensors, scalars)``: the update of
      lists of tensors (one device, dtype and step) and of one tensor, in place.
    """

    hyperparameters: tuple[str, ...] = ()
    arrays: tuple[str, ...] = ("w", "g")
    scratch: int = 0
    masks: int = 0
    step_key: str = "step"
    t_start: int = 1
    check_hyper: Callable[..., None]
    initial_state: Callable[[torch.Tensor, dict], dict]
    scalars: Callable[..., tuple[float, ...]]
    update_foreach: Callable[..., None]
    update_single: Callable[..., None]

    def __init__(self, params, hyper: dict, foreach: bool | None = None) -> None:
        type(self).check_hyper(*(float(hyper[name]) for name in self.hyperparameters))
        super().__init__(params, {**hyper, "foreach": foreach})
        self._scratch: dict[torch.Tensor, tuple[torch.Tensor, ...]] = {}

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        self._scratch = {}
        for group in self.param_groups:
            group.setdefault("foreach", None)

    def add_param_group(self, param_group: dict) -> None:
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        type(self).check_hyper(*(float(group[name]) for name in self.hyperparameters))

    def _new_scratch(self, p: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Scratch tensors like p, kept between steps (out of the state: they hold nothing
        between steps) so that a step allocates no memory."""
        buffers = tuple(
            torch.empty_like(p, memory_format=torch.preserve_format) for _ in range(self.scratch)
        ) + tuple(
            torch.empty_like(p, dtype=torch.bool, memory_format=torch.preserve_format)
            for _ in range(self.masks)
        )
        self._scratch[p] = buffers
        return buffers

    def _tensors(self, p: torch.Tensor, grad: torch.Tensor, state: dict) -> list[torch.Tensor]:
        """The update's arguments for one parameter, in the order of ``arrays`` and scratch."""
        tensors = [p if a == "w" else grad if a == "g" else state[a] for a in self.arrays]
        if self.scratch or self.masks:
            buffers = self._scratch.get(p)
            first = p.dtype if self.scratch else torch.bool
            if buffers is None or buffers[0].shape != p.shape or buffers[0].dtype != first:
                buffers = self._new_scratch(p)
            tensors += buffers
        return tensors

    @torch.no_grad()
    def step(self, closure=None):
        """One step for every parameter with a gradient; returns the closure's loss, if any."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        cls = type(self)
        name = cls.__name__
        for group in self.param_groups:
            hyper = tuple(float(group[h]) for h in self.hyperparameters)
            cls.check_hyper(*hyper)
            buckets: dict[tuple, list[list[torch.Tensor]]] = {}
            for p in group["params"]:
                grad = p.grad
                if grad is None:
                    continue
                if grad.is_sparse:
                    raise RuntimeError(f"{name} does not support sparse gradients")
                if torch.is_complex(p):
                    raise RuntimeError(f"{name} does not support complex parameters")
                state = self.state[p]
                counter = self.step_key
                if not state:
                    state[counter] = 0
                    state.update(cls.initial_state(p, group))
                state[counter] += 1
                key = (p.device, p.dtype, state[counter])
                lists = buckets.get(key)
                if lists is None:
                    width = len(self.arrays) + self.scratch + self.masks
                    lists = buckets[key] = [[] for _ in range(width)]
                for tensors, tensor in zip(lists, self._tensors(p, grad, state), strict=True):
                    tensors.append(tensor)
            foreach = group["foreach"] is not False
            for (_, _, steps), lists in buckets.items():
                scalars = cls.scalars(self.t_start + steps - 1, *hyper)
                if foreach:
                    cls.update_foreach(*lists, scalars)
                else:
                    for tensors in zip(*lists, strict=True):
                        cls.update_single(*tensors, scalars)
        return loss

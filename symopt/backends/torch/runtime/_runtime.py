"""What every generated element-wise optimizer shares: a ``torch.optim.Optimizer`` base class.

A generated module binds what is derived from its spec (the hyperparameters' domains, the
initial state, the scalars computed once per step, and the foreach and single-tensor bodies of
the update); this class runs them: param groups, hyperparameter checks, state initialisation and
step counting, grouping of tensors by device, dtype and step count, scratch buffers kept between
steps (so that a step allocates no memory), and the choice of the foreach or single-tensor path.

Depends on torch only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

import torch
from torch.optim import Optimizer

__all__ = [
    "ElementwiseOptimizer",
    "advance",
    "evaluate",
    "gradients",
    "prepare_state",
    "step_tensor",
    "zero_dim",
]


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

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        self.__dict__.pop("_scratch", None)
        for group in self.param_groups:
            group.setdefault("foreach", None)

    def add_param_group(self, param_group: dict) -> None:
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        type(self).check_hyper(*(float(group[name]) for name in self.hyperparameters))

    @torch.compiler.disable  # a compiled training step runs it eagerly (a graph break)
    @torch.no_grad()
    def step(self, closure=None):
        """One step for every parameter with a gradient; returns the closure's loss, if any."""
        loss = evaluate(closure)
        cls = type(self)
        for group in self.param_groups:
            hyper = tuple(float(group[h]) for h in self.hyperparameters)
            cls.check_hyper(*hyper)
            cls.run_group(self, group["params"], hyper, foreach=group["foreach"] is not False)
        return loss

    @classmethod
    def run_group(
        cls,
        opt: Optimizer,
        params: list[torch.Tensor],
        hyper: tuple[float, ...],
        *,
        foreach: bool = True,
        maximize: bool = False,
        keys: Mapping[str, str] | None = None,
        counter: str | None = None,
        tensor_counter: bool = False,
        name: str | None = None,
    ) -> None:
        """One step of the parameters of one group with these hyperparameters.

        ``opt`` holds the state (``opt.state``) and the scratch buffers (``opt._scratch``): this
        class's optimizer, or a class with torch.optim's arguments that runs this kernel for
        one setting of its flags, with the state under its ``keys`` (``m`` -> ``exp_avg``), its
        step ``counter`` a 0-d tensor as in torch.optim, and the gradient negated for
        ``maximize``."""
        name = name or cls.__name__
        values = dict(zip(cls.hyperparameters, hyper, strict=True))
        keys = keys or {}
        counter = counter or cls.step_key
        names = [a for a in cls.arrays if a not in ("w", "g")]
        buckets: dict[tuple, list[list[torch.Tensor]]] = {}
        for p, grad in gradients(params, name, maximize):
            state = opt.state[p]
            if counter not in state or any(keys.get(n, n) not in state for n in names):
                fresh = cls.initial_state(p, values)
                prepare_state(state, fresh, keys, counter, tensor_counter)
            steps = advance(state, counter)
            key = (p.device, p.dtype, steps)
            lists = buckets.get(key)
            if lists is None:
                width = len(cls.arrays) + cls.scratch + cls.masks
                lists = buckets[key] = [[] for _ in range(width)]
            arrays = [
                p if a == "w" else grad if a == "g" else state[keys.get(a, a)] for a in cls.arrays
            ]
            for tensors, tensor in zip(lists, arrays + cls.scratch_for(opt, p), strict=True):
                tensors.append(tensor)
        for (_, _, steps), lists in buckets.items():
            scalars = cls.scalars(cls.t_start + steps - 1, *hyper)
            if foreach:
                cls.update_foreach(*lists, scalars)
            else:
                for tensors in zip(*lists, strict=True):
                    cls.update_single(*tensors, scalars)

    @classmethod
    def scratch_for(cls, opt: Optimizer, p: torch.Tensor) -> list[torch.Tensor]:
        """The scratch tensors of ``p`` (``cls.scratch`` like it, ``cls.masks`` boolean), kept by
        ``opt`` between steps (out of the state: they hold nothing between steps) so that a
        step allocates no memory."""
        if not (cls.scratch or cls.masks):
            return []
        store = opt.__dict__.setdefault("_scratch", {})
        buffers = store.get(p)
        first = p.dtype if cls.scratch else torch.bool
        wanted = cls.scratch + cls.masks
        if (
            buffers is None
            or len(buffers) != wanted
            or buffers[0].shape != p.shape
            or buffers[0].dtype != first
        ):
            buffers = tuple(
                torch.empty_like(p, memory_format=torch.preserve_format) for _ in range(cls.scratch)
            ) + tuple(
                torch.empty_like(p, dtype=torch.bool, memory_format=torch.preserve_format)
                for _ in range(cls.masks)
            )
            store[p] = buffers
        return list(buffers)


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
    for p in params:
        grad = p.grad
        if grad is None:
            continue
        if grad.is_sparse:
            raise RuntimeError(f"{name} does not support sparse gradients")
        if torch.is_complex(p):
            raise RuntimeError(f"{name} does not support complex parameters")
        yield p, (-grad if maximize else grad)


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


def advance(state: dict, counter: str) -> int:
    """Count one more step; the number of steps taken, this one included."""
    steps = state[counter]
    if isinstance(steps, torch.Tensor):
        steps.add_(1)
        return int(steps.item())
    state[counter] = steps + 1
    return steps + 1

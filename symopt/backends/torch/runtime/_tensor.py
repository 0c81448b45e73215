"""The runtime of generated PyTorch optimizers whose specs work on whole tensors (norms, row and
column statistics, matrix products, fixed-count iterations): each parameter's step is one
generated function of whole-tensor statements, run parameter by parameter.

A generated module binds the hyperparameters' domains, the initial state, the scalars computed
once per step and the update function(s); this class runs them as a ``torch.optim.Optimizer``:
param groups, hyperparameter checks, state initialisation (in the spec's shapes) and step
counting, and the parameters a spec for 2-D parameters refuses, as ``torch.optim.Muon`` does.

A spec whose only tensor-level constructs are whole-tensor reductions and state of one value per
tensor (LAMB, LARS, ASGD, torch's NAdam) has a fused kernel too (``fused=True``): the passes of
``_csrc/NAME.c`` over all tensors of a device, dtype and step at once (``_fused.run_stages``).
Its state is the tensor path's, so either path resumes the other's checkpoints.

Depends on torch only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch.optim import Optimizer

from . import _fused
from ._stepping import LeanStepHooks, advance, evaluate, gradients, prepare_state, without_grad

SHAPE_WORDS = {"any": "all", "matrix": "2-D", "multidim": "multi-dimensional"}

__all__ = ["TensorOptimizer", "state_tensor"]

#: ``update(w, g, state, scalars)``: one parameter's step, w and ``state``'s tensors in place.
Update = Callable[[torch.Tensor, torch.Tensor, dict, tuple], None]


def state_tensor(shape: str, p: torch.Tensor, value: float) -> torch.Tensor:
    """A state tensor of one of the spec's shapes for parameter ``p``, on its device and in its
    dtype: ``full`` (like p), ``scalar`` (0-d), ``rows`` (..., R, 1) or ``cols`` (..., 1, C): one
    value per row or column of each matrix in the last two dimensions."""
    shape_of = tuple(p.shape)
    size = {
        "full": shape_of,
        "scalar": (),
        "rows": (*shape_of[:-1], 1) if p.ndim >= 2 else None,
        "cols": (*shape_of[:-2], 1, shape_of[-1]) if p.ndim >= 2 else None,
    }[shape]
    if size is None:
        raise ValueError(f"a {shape} state needs a 2-D parameter, got shape {tuple(p.shape)}")
    if shape == "full":
        return torch.full_like(p, value, memory_format=torch.preserve_format)
    return torch.full(size, value, dtype=p.dtype, device=p.device)


class TensorOptimizer(LeanStepHooks):
    """An optimizer whose update needs whole tensors, run parameter by parameter.

    A subclass sets, as class attributes:

    * ``hyperparameters``: the names of the hyperparameters, in the order the functions below
      take them;
    * ``t_start``: the step counter of the first step; ``step_key``: its key in the state;
    * ``applies_to``: which parameters ``update`` is for ("any", "matrix": 2-D, "multidim": 2-D
      or more); ``update_other`` is the step of every other parameter, or None when the spec
      refuses them (ValueError);
    * ``check_hyper(*hyper)``: raises ValueError for a hyperparameter outside its domain;
    * ``initial_state(p, group, matrix)``: the state tensors of a new parameter, by name;
    * ``scalars(t, *hyper)``: the scalars the update takes, computed once per step and group;
    * ``update`` and ``update_other``: one parameter's step (:data:`Update`);
    * ``fused_kernel`` (only where there is one): the fused kernel's name (``_csrc/NAME.c``), with
      ``fused_states`` and ``fused_other_states``: the states ``update`` and ``update_other``
      read and write, in the kernel's order, and ``scalar_states``: those of one value per
      tensor; else ``not_fused``: why there is none.
    """

    hyperparameters: tuple[str, ...] = ()
    t_start: int = 1
    step_key: str = "step"
    #: Which parameters take ``update``: "any", "matrix" (2-D) or "multidim" (2-D or more).
    applies_to: str = "any"
    check_hyper: Callable[..., None]
    initial_state: Callable[[torch.Tensor, dict, bool], dict]
    scalars: Callable[..., tuple]
    update: Update
    update_other: Update | None = None
    fused_states: tuple[str, ...] = ()
    fused_other_states: tuple[str, ...] = ()
    scalar_states: tuple[str, ...] = ()
    #: Why a class without a fused kernel has none.
    not_fused: str = "it has no fused kernel"

    def __init__(self, params, hyper: dict, fused: bool | None = None) -> None:
        type(self).check_hyper(*(float(hyper[name]) for name in self.hyperparameters))
        super().__init__(params, {**hyper, "fused": fused})

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("fused", None)

    def add_param_group(self, param_group: dict) -> None:
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        cls = type(self)
        cls.check_hyper(*(float(group[name]) for name in self.hyperparameters))
        cls.refuse_shapes(group["params"], cls.__name__)
        if group.get("fused"):
            cls.kernel_name(cls.__name__)

    @classmethod
    def kernel_name(cls, name: str) -> str:
        """The fused kernel's name; RuntimeError (one line) where the class has none."""
        kernel = getattr(cls, "fused_kernel", None)
        if kernel is None:
            raise RuntimeError(
                f"{name}: fused=True: {cls.not_fused}; fused kernels take element-wise work "
                "and per-tensor reductions only"
            )
        return kernel

    @classmethod
    def refuse_shapes(cls, params: list[torch.Tensor], name: str) -> None:
        """ValueError for a parameter the spec's update is not for, when it has no other."""
        if cls.update_other is None:
            for p in params:
                if not cls.takes_update(p):
                    raise ValueError(
                        f"{name} applies to {SHAPE_WORDS[cls.applies_to]} parameters "
                        f"only; got a parameter of shape {tuple(p.shape)}"
                    )

    @classmethod
    def takes_update(cls, p: torch.Tensor) -> bool:
        """Whether ``p`` takes ``update`` (every parameter does when ``applies_to`` is "any")."""
        ndim = p.ndim
        return cls.applies_to == "any" or ndim == 2 or (cls.applies_to == "multidim" and ndim > 2)

    @torch.compiler.disable  # a compiled training step runs it eagerly (a graph break)
    @without_grad
    def step(self, closure=None):
        """One step for every parameter with a gradient; returns the closure's loss, if any."""
        loss = evaluate(closure)
        cls = type(self)
        for group in self.param_groups:
            hyper = tuple(float(group[h]) for h in self.hyperparameters)
            cls.check_hyper(*hyper)
            cls.run_group(self, group["params"], hyper, fused=bool(group.get("fused")))
        return loss

    @classmethod
    def run_group(
        cls,
        opt: Optimizer,
        params: list[torch.Tensor],
        hyper: tuple[float, ...],
        *,
        foreach: bool = True,
        fused: bool = False,
        maximize: bool = False,
        keys: Mapping[str, str] | None = None,
        counter: str | None = None,
        tensor_counter: bool = False,
        name: str | None = None,
    ) -> None:
        """One step of the parameters of one group with these hyperparameters, parameter by
        parameter (``foreach`` has nothing to choose), or with ``fused`` by the fused kernel,
        one call per device, dtype, step count and update; the other arguments as in
        ``ElementwiseOptimizer.run_group``."""
        name = name or cls.__name__
        keys = keys or {}
        counter = counter or cls.step_key
        kernel = cls.kernel_name(name) if fused else None
        values = dict(zip(cls.hyperparameters, hyper, strict=True))
        buckets: dict[tuple, list[tuple]] = {}
        for p, grad in gradients(params, name, maximize):
            matrix = cls.takes_update(p)
            if not matrix and cls.update_other is None:
                raise ValueError(
                    f"{name} applies to {SHAPE_WORDS[cls.applies_to]} parameters only, "
                    f"got {p.ndim}-D"
                )
            state = opt.state[p]
            fresh = cls.initial_state(p, values, matrix) if counter not in state else {}
            prepare_state(state, fresh, keys, counter, tensor_counter)
            steps = advance(state, counter)
            buckets.setdefault((p.device, p.dtype, steps, matrix), []).append((p, grad, state))
        for (_, _, steps, matrix), rows in buckets.items():
            t = cls.t_start + steps - 1
            if kernel is not None:
                names = cls.fused_states if matrix else cls.fused_other_states
                lists = [[row[0] for row in rows], [row[1] for row in rows]]
                lists += [[row[2][keys.get(n, n)] for row in rows] for n in names]
                scalar = [k for k, n in enumerate(names, 2) if n in cls.scalar_states]
                if _fused.run_stages(kernel, lists, t, hyper, not matrix, scalar=scalar) is None:
                    continue
            update = cls.update if matrix else cls.update_other
            step_scalars = cls.scalars(t, *hyper)
            for p, grad, state in rows:
                view = {n: state[k] for n, k in keys.items() if k in state} if keys else state
                update(p, grad, view, step_scalars)

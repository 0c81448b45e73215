"""The runtime of generated classes called like a library's (torch.optim's arguments, defaults,
validation messages and state_dict layout), over kernels generated for each setting of a spec's
flags.

A generated module binds the arguments (tuples such as ``betas`` for ``beta1`` and ``beta2``),
the check of their values, the axes that pick a kernel (flags, and hyperparameters whose 0
switches a term off) and the kernel of each setting, and the state keys; this class runs them:
per param group it picks the kernel of the group's setting and runs it on the group's tensors,
with the gradient negated for ``maximize``, the state under torch.optim's keys and the step
counter a 0-d tensor, as torch.optim keeps them.

Depends on torch only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch

from ._runtime import ElementwiseOptimizer, check_fused, check_loaded
from ._stepping import LeanStepHooks, evaluate, without_grad

__all__ = ["ApiOptimizer"]

#: Framework arguments this runtime cannot honour when true, and why.
REFUSED = {
    "capturable": "CUDA graph capture is not supported: leave capturable=False",
    "differentiable": "the update runs under torch.no_grad(): leave differentiable=False",
}
#: Why fused=True is refused for a spec whose kernels are not element-wise.
NOT_FUSED = (
    "fused kernels are generated for element-wise specs and per-tensor reductions only: "
    "use foreach (the default)"
)


class ApiOptimizer(LeanStepHooks):
    """A ``torch.optim.Optimizer`` with a library's arguments, running generated kernels.

    A subclass sets, as class attributes:

    * ``tuples``: an argument that is a tuple of hyperparameters -> their names;
    * ``axes``: ``(name, kind)`` pairs, kind ``"flag"`` (true/false) or ``"nonzero"`` (a
      hyperparameter whose 0 switches off a term), in the order of ``kernels``' keys;
    * ``kernels``: each setting of the axes (a tuple of bools) -> the kernel class that runs it
      (an ``ElementwiseOptimizer`` or ``TensorOptimizer`` subclass of the module's variants);
    * ``state_keys``: the spec's state names -> the keys of the state dict;
    * ``choices``: a string argument (Muon's ``adjust_lr_fn``) -> its values -> the flags each
      sets; ``machine_epsilon``: hyperparameters that may be None, the machine epsilon of the
      parameters' dtype (Adafactor's ``eps=(None, 1e-3)``);
    * ``check_arguments(**values)``: raises ValueError, with the library's message, for values
      the library refuses (hyperparameters and flags by the spec's names).
    """

    tuples: Mapping[str, tuple[str, ...]] = {}
    axes: tuple[tuple[str, str], ...] = ()
    kernels: Mapping[tuple[bool, ...], type] = {}
    state_keys: Mapping[str, str] = {}
    #: A string argument -> each of its values (None among them) -> the flags it sets.
    choices: Mapping[str, Mapping[str | None, Mapping[str, bool]]] = {}
    #: Hyperparameters whose None means the machine epsilon of the parameters' dtype.
    machine_epsilon: tuple[str, ...] = ()
    check_arguments: Callable[..., None]

    def __init__(self, params, defaults: dict) -> None:
        name = type(self).__name__
        for key, why in REFUSED.items():
            if defaults.get(key):
                raise RuntimeError(f"{name}: {key}=True: {why}")
        check_fused(name, defaults.get("foreach"), defaults.get("fused"))
        if defaults.get("fused") and not self.fusable():
            raise RuntimeError(f"{name}: fused=True: {NOT_FUSED}")
        type(self).check_arguments(**self.values(defaults, torch.get_default_dtype()))
        super().__init__(params, defaults)

    @classmethod
    def fusable(cls) -> bool:
        """Whether every kernel of the spec has a fused form (worked out once per class)."""
        if "_fusable" not in cls.__dict__:
            cls._fusable = all(hasattr(kernel, "fused_kernel") for kernel in cls.kernels.values())
        return cls._fusable

    def add_param_group(self, param_group: dict) -> None:
        super().add_param_group(param_group)
        kernel = next(iter(self.kernels.values()))
        refuse = getattr(kernel, "refuse_shapes", None)  # a spec for 2-D parameters only
        if refuse is not None:
            refuse(self.param_groups[-1]["params"], type(self).__name__)

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        self.__dict__.pop("_scratch", None)
        for group in self.param_groups:
            for key, value in self.defaults.items():
                group.setdefault(key, value)

    def load_state_dict(self, state_dict: dict) -> None:
        """torch.optim's, after ``_runtime.check_loaded``: a parameter's state may hold some of
        the keys of this class's kernels (torch.optim's own checkpoints do; the others are
        created when a step needs them), each state tensor shaped as the kernels shape it."""
        kernels = list(dict.fromkeys(self.kernels.values()))
        first = kernels[0]

        def expected(p: torch.Tensor, group: dict) -> dict:
            shapes: dict = {key: None for key in self.state_keys.values()}
            for kernel in kernels:
                if issubclass(kernel, ElementwiseOptimizer):
                    values = self.values(group, p.dtype)
                    meta = torch.empty_like(p, device="meta")
                    state = kernel.initial_state(meta, values)
                    for name, tensor in state.items():
                        shapes[self.state_keys.get(name, name)] = tuple(tensor.shape)
            return {**shapes, "step": None}

        check_loaded(self, state_dict, expected, "step", first.t_start, every=False)
        super().load_state_dict(state_dict)

    def values(self, group: Mapping, dtype: torch.dtype) -> dict:
        """A group's arguments and, by the spec's names, its hyperparameters and flags: tuples
        unpacked, choices turned into the flags they set, None resolved for ``dtype``."""
        out = dict(group)
        for key, parts in self.tuples.items():
            if key in group:
                value = group[key]
                if not isinstance(value, (tuple, list)) or len(value) != len(parts):
                    raise ValueError(f"{key} must be a tuple of {len(parts)} values, got {value!r}")
                out.update(zip(parts, value, strict=True))
        for key, options in self.choices.items():
            if key in group:  # a value outside them: the first's, until it is refused
                out.update(options.get(group[key], options[None]))
        for name in self.machine_epsilon:
            if out.get(name) is None:
                out[name] = torch.finfo(dtype).eps
        return out

    def kernel(self, values: Mapping) -> type:
        """The kernel class of a group's setting of the axes."""
        setting = tuple(
            bool(values[name]) if kind == "flag" else float(values[name]) != 0
            for name, kind in self.axes
        )
        return self.kernels[setting]

    @torch.compiler.disable  # a compiled training step runs it eagerly (a graph break)
    @without_grad
    def step(self, closure=None):
        """One step for every parameter with a gradient; returns the closure's loss, if any."""
        loss = evaluate(closure)
        name = type(self).__name__
        for group in self.param_groups:
            params = group["params"]
            dtype = next((p.dtype for p in params if p.grad is not None), None)
            if dtype is None:
                continue
            values = self.values(group, dtype)
            kernel = self.kernel(values)
            fused = bool(group.get("fused"))
            check_fused(name, group.get("foreach"), fused)
            if fused and not self.fusable():
                raise RuntimeError(f"{name}: fused=True: {NOT_FUSED}")
            options = {"fused": True} if fused else {}
            kernel.run_group(
                self,
                params,
                tuple([float(values[h]) for h in kernel.hyperparameters]),
                foreach=group.get("foreach") is not False,
                **options,
                maximize=bool(group.get("maximize", False)),
                keys=self.state_keys,
                counter="step",
                tensor_counter=True,
                name=name,
            )
        return loss

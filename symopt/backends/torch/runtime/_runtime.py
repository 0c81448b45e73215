"""What every generated element-wise optimizer shares: a ``torch.optim.Optimizer`` base class.

A generated module binds what is derived from its spec (the hyperparameters' domains, the
initial state, the scalars computed once per step, and the foreach and single-tensor bodies of
the update); this class runs them: param groups, hyperparameter checks, state initialisation and
step counting, grouping of tensors by device, dtype and step count, scratch buffers kept between
steps (so that a step allocates no memory), and the choice of the foreach or single-tensor path.

The rules of every target (symopt_numpy's ``_runtime`` states them; here with torch's state):

* aliasing: a gradient may share memory with its parameter or the parameter's state tensors,
  and the step reads its values from before the step (it gets a copy); the parameters and the
  state tensors are torch.optim's to keep apart (each its own memory);
* step counters: the counter a step runs with is in [t_start, 2**63 - 1] (ValueError at the
  step otherwise); a loaded state's counter (``state[p][step]``: the steps taken) must be a
  whole number in [0, 2**63 - 1 - t_start] (TypeError, ValueError) when it is loaded;
* ``load_state_dict`` checks, before anything changes, each parameter's state keys (another
  optimizer's state names keys this one does not have: ValueError naming them), counters and
  the shapes of the state tensors.

Depends on torch only.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping

import torch
from torch.optim import Optimizer

from . import _fused
from ._stepping import (
    LeanStepHooks,
    advance_all,
    evaluate,
    prepare_state,
    with_gradients,
    without_grad,
)

__all__ = ["ElementwiseOptimizer", "check_fused", "check_loaded", "zero_dim"]


#: The largest step counter (the C target takes t as a 64-bit C long; every target refuses what
#: one refuses).
T_MAX = 2**63 - 1


def zero_dim(like: torch.Tensor, *values: float) -> tuple[torch.Tensor, ...]:
    """Scalars as 0-d tensors, for the in-place foreach add/mul/div: on the CPU these ops run
    tensor by tensor and would make a tensor of a Python scalar for every one. In the dtype the
    elements are computed in, so that results equal those with the Python scalar."""
    dtype = torch.promote_types(like.dtype, torch.float32)
    return tuple(torch.full((), x, dtype=dtype, device=like.device) for x in values)


class ElementwiseOptimizer(LeanStepHooks):
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
      lists of tensors (one device, dtype and step) and of one tensor, in place;
    * ``fused_kernel``: the name of the fused kernel (``_csrc/NAME.c``, ``_triton/NAME.py``), and
      ``fused_scalars(scalars)``: its scalar arguments, from those of ``scalars``.
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
    fused_kernel: str
    fused_scalars: Callable[[tuple[float, ...]], tuple[float, ...]]

    def __init__(
        self, params, hyper: dict, foreach: bool | None = None, fused: bool | None = None
    ) -> None:
        check_fused(type(self).__name__, foreach, fused)
        type(self).check_hyper(*(float(hyper[name]) for name in self.hyperparameters))
        super().__init__(params, {**hyper, "foreach": foreach, "fused": fused})

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        self.__dict__.pop("_scratch", None)
        for group in self.param_groups:
            group.setdefault("foreach", None)
            group.setdefault("fused", None)

    def add_param_group(self, param_group: dict) -> None:
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        type(self).check_hyper(*(float(group[name]) for name in self.hyperparameters))

    def load_state_dict(self, state_dict: dict) -> None:
        """torch.optim's, after :func:`check_loaded` (a parameter's state has all of this
        optimizer's keys, shaped as it shapes them, or none)."""
        cls = type(self)

        def expected(p: torch.Tensor, group: dict) -> dict:
            meta = torch.empty_like(p, device="meta")
            state = cls.initial_state(meta, {h: group[h] for h in cls.hyperparameters})
            return {**{k: tuple(v.shape) for k, v in state.items()}, cls.step_key: None}

        check_loaded(self, state_dict, expected, cls.step_key, cls.t_start, every=True)
        super().load_state_dict(state_dict)

    @torch.compiler.disable  # a compiled training step runs it eagerly (a graph break)
    @without_grad
    def step(self, closure=None):
        """One step for every parameter with a gradient; returns the closure's loss, if any."""
        loss = evaluate(closure)
        cls = type(self)
        for group in self.param_groups:
            hyper = tuple(float(group[h]) for h in self.hyperparameters)
            cls.check_hyper(*hyper)
            cls.run_group(
                self,
                group["params"],
                hyper,
                foreach=group["foreach"] is not False,
                fused=bool(group["fused"]),
            )
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
        """One step of the parameters of one group with these hyperparameters.

        ``opt`` holds the state (``opt.state``) and the scratch buffers (``opt._scratch``): this
        class's optimizer, or a class with torch.optim's arguments that runs this kernel for
        one setting of its flags, with the state under its ``keys`` (``m`` -> ``exp_avg``), its
        step ``counter`` a 0-d tensor as in torch.optim, and the gradient negated for
        ``maximize``. ``fused``: the fused kernel runs each group it can take."""
        name = name or cls.__name__
        keys = keys or {}
        counter = counter or cls.step_key
        state_keys, required, order = cls.layout(tuple(keys.items()), counter)
        params, grads = with_gradients(params, name, maximize)
        states = [opt.state[p] for p in params]
        if not all([required <= state.keys() for state in states]):
            values = dict(zip(cls.hyperparameters, hyper, strict=True))
            for p, state in zip(params, states, strict=True):
                if not required <= state.keys():
                    fresh = cls.initial_state(p, values)
                    prepare_state(state, fresh, keys, counter, tensor_counter)
        counts = advance_all(states, counter)
        columns = [[state[k] for state in states] for k in state_keys]
        rows = zip(params, grads, *columns, strict=True)
        if len(set(counts)) == 1 and len({(p.device, p.dtype) for p in params}) == 1:
            buckets = {(None, None, counts[0]): list(rows)}  # the usual case: one bucket
        else:
            buckets: dict[tuple, list[tuple]] = {}
            for p, steps, row in zip(params, counts, rows, strict=True):
                buckets.setdefault((p.device, p.dtype, steps), []).append(row)
        for (_, _, steps), rows in buckets.items():
            columns = list(zip(*rows, strict=True))
            lists = [list(columns[i]) for i in order]
            t = cls.t_start + steps - 1
            if not cls.t_start <= t <= T_MAX:
                raise ValueError(f"the step counter t must be in [{cls.t_start}, {T_MAX}], got {t}")
            scalars = cls.scalars(t, *hyper)
            if fused and _fused.run(cls.fused_kernel, lists, cls.fused_scalars(scalars)) is None:
                continue  # it copies a gradient that overlaps an array it writes
            unshare(columns[1], columns[0], columns[2:], lists[order.index(1)])
            scratch = [cls.scratch_for(opt, p) for p in lists[0]]
            lists += [list(buffers) for buffers in zip(*scratch, strict=True)]
            if foreach:
                cls.update_foreach(*lists, scalars)
            else:
                for tensors in zip(*lists, strict=True):
                    cls.update_single(*tensors, scalars)

    @classmethod
    @functools.cache
    def layout(cls, keys: tuple[tuple[str, str], ...], counter: str) -> tuple:
        """The state keys of the arrays, the keys a prepared state has, and where each array of
        ``cls.arrays`` sits in a row ``(w, g, *state)``; once per class, keys and counter."""
        names = [a for a in cls.arrays if a not in ("w", "g")]
        state_keys = [dict(keys).get(n, n) for n in names]
        order = [["w", "g", *names].index(a) for a in cls.arrays]
        return state_keys, frozenset([counter, *state_keys]), order

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


def unshare(grads: tuple, params: tuple, states: list[tuple], out: list[torch.Tensor]) -> None:
    """``out`` (the gradients' list of a step) with a copy of each gradient that shares storage
    with its parameter or one of its state tensors: in place, the step would read values it has
    already written. One set test where no gradient shares storage with anything written."""
    at = [g.untyped_storage().data_ptr() for g in grads]
    written = [[t.untyped_storage().data_ptr() for t in column] for column in (params, *states)]
    if set(at).isdisjoint([ptr for column in written for ptr in column]):
        return
    for column in written:
        for i, (grad, ptr) in enumerate(zip(at, column, strict=True)):
            if grad == ptr and out[i] is grads[i]:
                out[i] = grads[i].clone()


def steps_taken(where: str, value: object, t_start: int) -> int:
    """A loaded step counter (the steps taken: an int, or torch.optim's 0-d float tensor) as an
    int, once the next step's counter ``t_start + steps`` is one the steps take."""
    number = value.item() if isinstance(value, torch.Tensor) and value.numel() == 1 else value
    if isinstance(number, float) and number.is_integer():
        number = int(number)
    if isinstance(number, bool) or not isinstance(number, int):
        raise TypeError(f"{where} (steps taken) must be an integer, got {value!r}")
    if not 0 <= number <= T_MAX - t_start:
        raise ValueError(f"{where} (steps taken) must be in [0, {T_MAX - t_start}], got {number}")
    return number


def check_loaded(
    opt: Optimizer,
    state_dict: Mapping,
    expected: Callable[[torch.Tensor, dict], Mapping[str, tuple | None]],
    counter: str,
    t_start: int,
    *,
    every: bool,
) -> None:
    """ValueError (TypeError for a counter that is no number) for a state_dict that
    ``opt.load_state_dict`` would take but no step could run: a parameter's state with a key
    ``expected(p, group)`` lacks (its keys -> the shape of the state tensor, None: unchecked; all
    of them when ``every``), a state tensor of another shape, a bad step counter. Parameters are
    matched as torch.optim matches them (in order); what torch.optim refuses is left to it."""
    if not isinstance(state_dict, Mapping) or set(state_dict) != {"state", "param_groups"}:
        keys = sorted(state_dict) if isinstance(state_dict, Mapping) else type(state_dict)
        raise ValueError(f"state_dict has keys {keys}, expected ['param_groups', 'state']")
    saved = [i for group in state_dict["param_groups"] for i in group["params"]]
    ours = [(p, group) for group in opt.param_groups for p in group["params"]]
    for i, (p, group) in zip(saved, ours, strict=False):
        state = state_dict["state"].get(i)
        if not state:
            continue
        shapes = expected(p, group)
        missing = every and shapes.keys() - state.keys()
        if missing or not state.keys() <= shapes.keys():
            some = "" if every else "some of "
            raise ValueError(
                f"state[{i}] has keys {sorted(state)}, expected {some}{sorted(shapes)}"
            )
        for key, value in state.items():
            if key == counter:
                steps_taken(f"state[{i}][{key!r}]", value, t_start)
            elif shapes[key] is not None and tuple(getattr(value, "shape", ())) != shapes[key]:
                raise ValueError(
                    f"state[{i}][{key!r}] has shape {tuple(getattr(value, 'shape', ()))}, "
                    f"expected {shapes[key]}"
                )


def check_fused(name: str, foreach: bool | None, fused: bool | None) -> None:
    """torch.optim's rule: fused and foreach cannot both be asked for."""
    if fused and foreach:
        raise RuntimeError(f"{name}: `fused` and `foreach` cannot be `True` together.")

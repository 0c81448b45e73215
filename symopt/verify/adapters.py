"""Implementations under test, each driven through one :class:`Adapter`: a ``torch.optim``
optimizer, a class with the generated NumPy API, a step function, or an optax
``GradientTransformation`` factory (:mod:`.optax_adapter`).

An adapter drives *parameter groups*: each a list of arrays with the implementation's own keyword
arguments. It is handed fresh copies of everything (parameters, gradients) and hands back copies,
so an implementation that writes into its inputs cannot change what the reference reads.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping

import numpy as np

#: Per group, a list of arrays (parameters or gradients).
Groups = list[list[np.ndarray]]
#: Per group, per tensor, the implementation's state arrays by its own keys.
States = list[list[dict[str, np.ndarray]]]


class ImplementationError(Exception):
    """The implementation under test raised: exit status 3, never a traceback."""


class Adapter:
    """One implementation driving parameter groups: step(grads, t), params(), state().

    ``kwargs`` holds, per group, the implementation's own keyword arguments (bound from the
    spec's hyperparameters by :mod:`.binding`); ``initial_state`` per tensor the spec's initial
    state under the implementation's names (only a step function, which keeps no state of its
    own, needs it)."""

    #: Whether groups may have arguments of their own (else verify runs a single group).
    takes_groups = True
    #: Positional parameters before the hyperparameters (params; or w, g, state, t).
    leading = 0

    def __init__(
        self, target, params: Groups, kwargs: list[dict[str, object]], initial_state: States
    ) -> None:
        raise NotImplementedError

    def step(self, grads: Groups, t: int) -> None:
        raise NotImplementedError

    def params(self) -> Groups:
        raise NotImplementedError

    def state(self) -> States:
        """Every array the implementation keeps per tensor, by its own key (copies)."""
        return [[{} for _ in group] for group in self.params()]

    @staticmethod
    def signature(target) -> inspect.Signature | None:
        """The parameters the hyperparameters are bound to (None: unknown, pass by name)."""
        try:
            return inspect.signature(target)
        except (TypeError, ValueError):
            return None


class TorchAdapter(Adapter):
    """A ``torch.optim.Optimizer`` subclass, one param group per group."""

    leading = 1

    def __init__(self, target, params, kwargs, initial_state):
        import torch

        self.torch = torch
        dtype = torch.float64 if params[0][0].dtype == np.float64 else torch.float32
        self.dtype = dtype
        self.groups = [
            [torch.nn.Parameter(torch.tensor(np.array(p), dtype=dtype)) for p in group]
            for group in params
        ]
        # as users write groups: the first group's arguments to the constructor, the others'
        # differences in their dicts (torch reads some, Adagrad's initial_accumulator_value, from
        # the constructor only)
        groups = [
            {"params": list(group), **{k: v for k, v in kw.items() if kwargs[0].get(k) != v}}
            for group, kw in zip(self.groups, kwargs, strict=True)
        ]
        self.opt = _construct(target, groups, kwargs[0], dtype=dtype)

    def step(self, grads, t):
        for group, gs in zip(self.groups, grads, strict=True):
            for p, g in zip(group, gs, strict=True):
                p.grad = self.torch.tensor(np.array(g), dtype=self.dtype)
        with _default_dtype(self.torch, self.dtype):
            self.opt.step()

    def params(self):
        return [[p.detach().numpy().copy() for p in group] for group in self.groups]

    def state(self):
        out = []
        for group in self.groups:
            out.append([_arrays(self.opt.state.get(p, {})) for p in group])
        return out


class ClassAdapter(Adapter):
    """A class with the generated NumPy API, ``cls(params, **kwargs)``, ``step(grads)``,
    ``params``, ``state[i]``: one instance per group (it takes no groups of its own)."""

    leading = 1

    def __init__(self, target, params, kwargs, initial_state):
        self.opts = [
            _construct(target, [np.array(p) for p in group], kw)
            for group, kw in zip(params, kwargs, strict=True)
        ]

    def step(self, grads, t):
        for opt, gs in zip(self.opts, grads, strict=True):
            opt.step([np.array(g) for g in gs])

    def params(self):
        return [[np.array(p, copy=True) for p in opt.params] for opt in self.opts]

    def state(self):
        out = []
        for opt in self.opts:
            own = getattr(opt, "state", None) or [{} for _ in opt.params]
            out.append([_arrays(s) for s in own])
        return out


class FunctionAdapter(Adapter):
    """A step function ``f(w, g, state, t, **kwargs)`` that updates the dict ``state`` in place
    and returns the new w (or None after updating w in place); called once per tensor.

    ``state`` starts with the spec's state at its initial values; a key the function never
    writes (no assignment, no change of value) is not reported, so not compared."""

    leading = 4

    def __init__(self, target, params, kwargs, initial_state):
        self.fn, self.kwargs = target, kwargs
        self.w = [[np.array(p) for p in group] for group in params]
        self.own = [
            [_WatchedState({k: np.array(v) for k, v in s.items()}) for s in group]
            for group in initial_state
        ]

    def step(self, grads, t):
        for i, gs in enumerate(grads):
            for j, g in enumerate(gs):
                w = self.w[i][j]
                out = self.fn(w, np.array(g), self.own[i][j], t, **self.kwargs[i])
                if out is not None:
                    self.w[i][j] = np.asarray(out, dtype=w.dtype)

    def params(self):
        return [[w.copy() for w in group] for group in self.w]

    def state(self):
        return [[s.written() for s in group] for group in self.own]


class _WatchedState(dict):
    """A step function's state dict that knows which keys the function wrote."""

    def __init__(self, initial: dict[str, np.ndarray]) -> None:
        super().__init__(initial)
        self.initial = {k: v.copy() for k, v in initial.items()}
        self.assigned: set[str] = set()

    def __setitem__(self, key, value) -> None:
        self.assigned.add(key)
        super().__setitem__(key, value)

    def written(self) -> dict[str, np.ndarray]:
        out = {}
        for key, value in self.items():
            array = np.array(value)
            start = self.initial.get(key)
            untouched = (
                key not in self.assigned
                and start is not None
                and array.shape == start.shape
                and np.array_equal(array, start, equal_nan=True)
            )
            if not untouched:
                out[key] = array
        return out


class _default_dtype:
    """torch.optim keeps scalar state (NAdam's mu_product, ASGD's eta) in the default dtype:
    the run's while it steps, so a float64 run is float64 throughout."""

    def __init__(self, torch, dtype) -> None:
        self.torch, self.dtype = torch, dtype

    def __enter__(self) -> None:
        self.before = self.torch.get_default_dtype()
        self.torch.set_default_dtype(self.dtype)

    def __exit__(self, *exc) -> None:
        self.torch.set_default_dtype(self.before)


def _arrays(state: Mapping) -> dict[str, np.ndarray]:
    """The array-valued entries of a state dict, as float64-or-own-dtype NumPy copies."""
    out = {}
    for key, value in state.items():
        if hasattr(value, "detach"):
            value = value.detach().cpu().numpy()
        if isinstance(value, np.ndarray) or np.isscalar(value):
            array = np.array(value)
            if array.dtype.kind == "f":
                out[str(key)] = array
    return out


def _construct(target, params, kwargs: Mapping[str, object], dtype=None):
    """``target(params, **kwargs)``; what it raises is the implementation's error."""
    try:
        if dtype is not None:
            import torch

            with _default_dtype(torch, dtype):
                return target(params, **kwargs)
        return target(params, **kwargs)
    except Exception as exc:  # noqa: BLE001  (anything the implementation raises)
        raise ImplementationError(
            f"{_name(target)}({_kwargs(kwargs)}) raised {type(exc).__name__}: {exc}"
        ) from exc


def _name(target) -> str:
    return getattr(target, "__qualname__", None) or repr(target)


def _kwargs(kwargs: Mapping) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in kwargs.items())

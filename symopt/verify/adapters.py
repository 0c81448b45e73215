"""Implementations under test, each driven through one :class:`Adapter`: a ``torch.optim``
optimizer, a class with the generated NumPy API, or a step function."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping

import numpy as np

from symopt.errors import SpecError, Unsupported
from symopt.reference import ReferenceStepper

#: torch.optim's names for the spec hyperparameters (betas is split into beta1, beta2).
TORCH_HYPER = {"lr": "lr", "eps": "eps", "rho": "momentum", "decay": "alpha"}
#: Fixed torch options a spec implies.
TORCH_FIXED = {"nesterov": {"nesterov": True}}
#: torch.optim state names -> spec state names, by optimizer class.
TORCH_STATE = {
    "Adam": {"exp_avg": "m", "exp_avg_sq": "v"},
    "AdamW": {"exp_avg": "m", "exp_avg_sq": "v"},
    "NAdam": {"exp_avg": "m", "exp_avg_sq": "v"},
    "Adamax": {"exp_avg": "m", "exp_inf": "u"},
    "Adagrad": {"sum": "s"},
    "RMSprop": {"square_avg": "v"},
    # torch's SGD buffer is the article's velocity for plain momentum; for Nesterov it is -v/lr.
    "SGD": {"momentum_buffer": "v"},
}
TORCH_STATE_SKIP = {("SGD", "nesterov")}
#: torch options that the variant catalogue understands (read from the optimizer's param group).
TORCH_EXTRAS = ("weight_decay", "momentum_decay")


class Adapter:
    """One parameter array driven by an implementation: step(g), params(), state()."""

    def step(self, g: np.ndarray, t: int) -> None:
        raise NotImplementedError

    def params(self) -> np.ndarray:
        raise NotImplementedError

    def state(self) -> dict[str, np.ndarray]:
        return {}


class TorchAdapter(Adapter):
    def __init__(self, cls, w0, spec, hyper, extra, state_map, kwargs=None):
        """``kwargs``, when given, are the exact arguments (from the spec's ``[api]``) and
        ``state_map`` the whole map of states; else the arguments come from ``hyper`` through
        torch's usual names, and the states from :data:`TORCH_STATE`."""
        import torch

        self.torch = torch
        self.param = torch.nn.Parameter(torch.tensor(w0, dtype=_torch_dtype(torch, w0.dtype)))
        exact = kwargs is not None
        if not exact:
            kwargs = dict(TORCH_FIXED.get(spec.name, {}))
            for name, value in hyper.items():
                if name in ("beta1", "beta2"):
                    kwargs["betas"] = (hyper["beta1"], hyper["beta2"])
                elif name in TORCH_HYPER:
                    kwargs[TORCH_HYPER[name]] = value
            kwargs.update(extra)
        try:
            self.opt = cls([self.param], **kwargs)
        except TypeError as exc:
            raise SpecError(f"cannot construct {cls.__name__}({_kwargs(kwargs)}): {exc}") from None
        except ValueError as exc:
            raise Unsupported(
                f"{cls.__name__}({_kwargs(kwargs)}) refuses its arguments: {exc}", key="--hyper"
            ) from None
        names = (
            {}
            if exact or (cls.__name__, spec.name) in TORCH_STATE_SKIP
            else TORCH_STATE.get(cls.__name__, {})
        )
        self.state_map = {
            spec_name: impl for impl, spec_name in names.items() if spec_name in spec.state_names
        }
        self.state_map.update(state_map)
        group = self.opt.param_groups[0]
        self.extras = {k: group[k] for k in TORCH_EXTRAS if k in group}

    def step(self, g, t):
        self.param.grad = self.torch.tensor(g, dtype=self.param.dtype)
        # torch.optim keeps scalar state (NAdam's mu_product, ASGD's eta) in the default dtype:
        # the run's dtype, so that a float64 run is float64 throughout
        before = self.torch.get_default_dtype()
        self.torch.set_default_dtype(self.param.dtype)
        try:
            self.opt.step()
        finally:
            self.torch.set_default_dtype(before)

    def params(self):
        return self.param.detach().numpy().copy()

    def state(self):
        state = self.opt.state[self.param]
        return {
            s: state[i].detach().numpy().copy() for s, i in self.state_map.items() if i in state
        }


class ClassAdapter(Adapter):
    """A class with the generated NumPy API: cls([w], **hyper), step([g]), params, state[0]."""

    def __init__(self, cls, w0, spec, hyper, extra, state_map, kwargs=None):
        """``kwargs``, when given, are the exact arguments of a generated class with a
        library's arguments (from the spec's ``[api]``), and ``state_map`` its state keys."""
        if kwargs is not None:
            self.opt = cls([w0.copy()], **kwargs)
        else:
            self.opt = cls([w0.copy()], **hyper, **extra)
        self.state_map = {s: state_map.get(s, s) for s in spec.state_names}

    def step(self, g, t):
        self.opt.step([g])

    def params(self):
        return np.array(self.opt.params[0], copy=True)

    def state(self):
        own = self.opt.state[0] if getattr(self.opt, "state", None) else {}
        return {s: np.array(own[i]) for s, i in self.state_map.items() if i in own}


class FunctionAdapter(Adapter):
    """A step function f(w, g, state, t, **hyper) updating ``state`` in place; returns the new w
    (or None when it updated w in place). ``state`` starts with the spec's initial values."""

    def __init__(self, fn, w0, spec, hyper, extra, state_map):
        self.fn, self.hyper = fn, {**hyper, **extra}
        self.w = w0.copy()
        ref = ReferenceStepper(spec, [w0], **hyper)
        self.state_map = {s: state_map.get(s, s) for s in spec.state_names}
        self.own = {self.state_map[s]: v.copy() for s, v in ref.state[0].items()}

    def step(self, g, t):
        out = self.fn(self.w, g, self.own, t, **self.hyper)
        if out is not None:
            self.w = np.asarray(out, dtype=self.w.dtype)

    def params(self):
        return self.w.copy()

    def state(self):
        return {s: np.array(self.own[i]) for s, i in self.state_map.items() if i in self.own}


def _torch_dtype(torch, dtype):
    return torch.float64 if dtype == np.float64 else torch.float32


def _kwargs(kwargs: Mapping) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in kwargs.items())


def load_target(path: str) -> object:
    """Import ``pkg.mod.Name`` (or ``pkg.mod:Name``) without executing anything else."""
    module_name, _, attr = path.replace(":", ".").rpartition(".")
    if not module_name or not attr:
        raise SpecError(
            f"expected an import path like torch.optim.Adam, got {path!r}", key="TARGET"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SpecError(f"cannot import {module_name!r}: {exc}", key="TARGET") from None
    if not hasattr(module, attr):
        raise SpecError(f"{module_name!r} has no attribute {attr!r}", key="TARGET")
    return getattr(module, attr)


def adapter_factory(target: object) -> type[Adapter]:
    if inspect.isclass(target):
        try:
            import torch

            if issubclass(target, torch.optim.Optimizer):
                return TorchAdapter
        except ImportError:
            pass
        if hasattr(target, "step"):
            return ClassAdapter
        raise SpecError(f"{target.__name__} has no step() method", key="TARGET")
    if callable(target):
        return FunctionAdapter
    raise SpecError(f"{target!r} is neither an optimizer class nor a step function", key="TARGET")

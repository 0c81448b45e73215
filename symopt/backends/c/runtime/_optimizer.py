"""What every generated element-wise optimizer of symopt_c shares: the class API over the C
kernels (constructor, step, state_dict, load_state_dict) and the checked functional step.

A generated module binds what its spec derives: the hyperparameters with their defaults and
domains, the state with its initial values, and the kernels' name. This module is the same for
every spec (tested once, in symopt's tests/test_c_runtime.py).
"""

from __future__ import annotations

import numpy as np

from . import _arrays, _lib
from ._api import check_state_dict_keys

_kernels: dict = {}


def kernels(name: str, arrays: int, hypers: int) -> dict:
    """dtype -> (single-tensor, multi-tensor) ctypes functions of ``symopt_NAME_step``, built and
    bound on first use."""
    if name not in _kernels:
        _kernels[name] = _lib.kernels(name, arrays, hypers)
    return _kernels[name]


def step_in_place(cls, arrays: tuple, t: int, hyper: tuple) -> None:
    """The functional step of ``cls``'s algorithm: ``arrays`` in the order of ``cls.ARRAYS`` (w, g,
    then the state; a state of one value per array, in ``cls.PER_TENSOR``, 0-d), checked and
    updated in place by the single-tensor kernel (aliasing and alignment as in _arrays)."""
    w = arrays[0]
    for name, a in zip(cls.ARRAYS, arrays, strict=True):
        like = _arrays.scalar_like(w) if name in cls.PER_TENSOR else w
        _arrays.check_array(name, a, like, writeable=name != "g")
    hyper = tuple(float(h) for h in hyper)
    cls.check_hyper(*hyper)
    t = _lib.check_counter(t, cls.T_START)
    outputs = [(name, a) for name, a in zip(cls.ARRAYS, arrays, strict=True) if name != "g"]
    staging = _arrays.Staging()
    w_at, *state_at, g_at = _arrays.addresses(outputs, [("g", arrays[1])], staging)
    single = cls.kernels()[w.dtype][0]
    staging.before()
    single(w_at, g_at, *state_at, w.size, t, *hyper)
    staging.after()


class Optimizer:
    """An optimizer over a list of float32/float64 NumPy arrays, updated in place by one call into
    the C kernels per dtype and step. Hyperparameters are attributes and may be changed between
    steps (learning-rate schedules). Subclasses set NAME, T_START, DEFAULTS, STATE and ARRAYS (and
    PER_TENSOR, the state of one value per parameter array, kept as 0-d arrays) and define
    ``check_hyper`` and ``new_state``.

    The class methods (:meth:`apply`, :meth:`new_state`, :meth:`state_names_for`,
    :meth:`state_shape`, :meth:`load`) run the kernels on arrays held elsewhere: a class with a
    library's arguments (``_api.ApiOptimizer``) runs the kernels of each setting of its flags
    with them."""

    NAME: str
    T_START: int
    DEFAULTS: dict
    STATE: tuple
    ARRAYS: tuple
    PER_TENSOR: tuple = ()
    #: apply checks the gradients (and every other array) itself: _api.ApiOptimizer need not.
    checks_gradients = True

    def __init__(self, params, **hyper) -> None:
        self.params = list(params)
        for i, p in enumerate(self.params):
            _arrays.check_array(f"params[{i}]", p, p)
        for name, value in hyper.items():
            setattr(self, name, value)
        self.check_hyper(*(float(hyper[name]) for name in self.DEFAULTS))
        self._kernels = self.kernels()  # builds the library now if needed, so errors show early
        #: Steps taken so far; the next step runs with t = T_START + steps.
        self.steps = 0
        self.state = [self.initial_state(p) for p in self.params]
        self._batch = _arrays.Batch(self.STATE, self.PER_TENSOR)

    @classmethod
    def kernels(cls) -> dict:
        """dtype -> (single-tensor, multi-tensor) ctypes functions; builds the library if needed."""
        return kernels(cls.NAME, len(cls.ARRAYS), len(cls.DEFAULTS))

    @classmethod
    def load(cls) -> None:
        """Builds (if needed) and binds the library's functions of this kernel."""
        cls.kernels()

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        cls.hyperparameters = tuple(cls.DEFAULTS)
        cls.state_names = tuple(cls.STATE)
        cls.t_start = cls.T_START

    @staticmethod
    def check_hyper(*hyper: float) -> None:
        raise NotImplementedError

    def initial_state(self, p: np.ndarray) -> dict[str, np.ndarray]:
        """The state of parameter ``p`` before its first step, at the current hyperparameters."""
        return self.new_state(p, {name: float(getattr(self, name)) for name in self.DEFAULTS})

    @classmethod
    def new_state(cls, p: np.ndarray, hyper) -> dict[str, np.ndarray]:
        """The state arrays of parameter ``p`` before its first step (``hyper``: the
        hyperparameters by name, for state that starts at one of them)."""
        raise NotImplementedError

    @classmethod
    def state_names_for(cls, p: np.ndarray) -> tuple[str, ...]:
        """The state arrays parameter ``p`` has: all of them."""
        return cls.STATE

    @classmethod
    def state_shape(cls, name: str, p: np.ndarray) -> tuple[int, ...]:
        """The shape of state array ``name`` of parameter ``p``: the parameter's, or () for a
        state of one value per array."""
        return () if name in cls.PER_TENSOR else p.shape

    def step(self, grads) -> None:
        """Apply one step given one gradient array per parameter array."""
        hyper = [float(getattr(self, name)) for name in self.DEFAULTS]
        self.check_hyper(*hyper)
        t = _lib.check_counter(self.T_START + self.steps, self.T_START)
        self._batch.step(self.params, self.state, list(grads), self._kernels, t, hyper)
        self.steps += 1

    @classmethod
    def apply(cls, params, inputs, states, t: int, hyper, cache: dict | None = None) -> None:
        """One step at counter ``t`` of ``params`` in place: ``inputs[0]`` holds the gradients,
        ``states`` each parameter's state arrays by name, ``hyper`` every hyperparameter by name
        (its domain unchecked). ``cache``: a dict the caller keeps for this class between
        steps (the pointer tables live there, rebuilt when an array is replaced or changed)."""
        cache = {} if cache is None else cache
        batch = cache.get("batch")
        if batch is None:
            batch = cache["batch"] = _arrays.Batch(cls.STATE, cls.PER_TENSOR)
        values = [hyper[name] for name in cls.DEFAULTS]
        t = _lib.check_counter(t, cls.T_START)
        batch.step(list(params), states, list(inputs[0]), cls.kernels(), t, values)

    def state_dict(self) -> dict:
        """A deep copy of everything needed to resume: steps, hyperparameters and state arrays."""
        return {
            "steps": self.steps,
            "hyper": {name: getattr(self, name) for name in self.DEFAULTS},
            "state": [{k: v.copy() for k, v in s.items()} for s in self.state],
        }

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore a :meth:`state_dict`; arrays are copied into this optimizer's own buffers.
        Everything is checked before anything changes (the rules: ``_runtime`` of symopt_numpy,
        which this target follows)."""
        check_state_dict_keys(state_dict)
        steps = _lib.check_steps(state_dict["steps"], self.T_START)
        states = state_dict["state"]
        if len(states) != len(self.params):
            raise ValueError(
                f"state_dict has {len(states)} parameter states, expected {len(self.params)}"
            )
        for i, (p, s) in enumerate(zip(self.params, states, strict=True)):
            if set(s) != set(self.STATE):
                raise ValueError(f"state[{i}] has keys {sorted(s)}, expected {sorted(self.STATE)}")
            for k, v in s.items():
                if np.shape(v) != self.state_shape(k, p):
                    raise ValueError(
                        f"state[{i}][{k!r}] has shape {np.shape(v)}, "
                        f"expected {self.state_shape(k, p)}"
                    )
        for name in state_dict["hyper"]:
            if name not in self.DEFAULTS:
                raise ValueError(f"unknown hyperparameter {name!r} in state_dict")
        for own, s in zip(self.state, states, strict=True):
            for k, v in s.items():
                np.copyto(own[k], v)
        for name, value in state_dict["hyper"].items():
            setattr(self, name, value)
        self.steps = steps

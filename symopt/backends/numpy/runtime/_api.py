"""The runtime of the generated classes called like a library's (torch.optim's arguments,
defaults and validation messages, its state keys), over kernels generated for each setting of a
spec's flags. Shared verbatim by the NumPy and C targets.

A generated module binds the arguments (tuples such as ``betas`` for ``beta1`` and ``beta2``),
the check of their values, the axes that pick a kernel (flags, and hyperparameters whose 0
switches a term off), the kernel class of each setting and the state keys; this class runs
them: at each step it picks the kernel of the current setting and runs it on the parameters,
with the gradient negated for ``maximize`` and the state under the library's keys, created
when a setting first needs it.

Depends on NumPy only.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence

import numpy as np

__all__ = ["ApiOptimizer"]


def check_array(name: str, a: np.ndarray, like: np.ndarray, *, writeable: bool = True) -> None:
    """A float32/float64 C-contiguous array shaped and typed like ``like`` (and writeable)."""
    if not isinstance(a, np.ndarray) or a.dtype not in (np.float32, np.float64):
        raise TypeError(f"{name} must be a float32 or float64 numpy array")
    if a.shape != like.shape or a.dtype != like.dtype:
        raise ValueError(
            f"{name} has shape {a.shape} and dtype {a.dtype}, expected {like.shape} {like.dtype}"
        )
    if not a.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous")
    if writeable and not a.flags.writeable:
        raise ValueError(f"{name} must be writeable (it is updated in place)")


#: The largest step counter (the C target takes t as a 64-bit C long; every target refuses
#: what one refuses).
T_MAX = 2**63 - 1
#: The keys of a state_dict.
STATE_DICT_KEYS = ("steps", "hyper", "state")


def _integer(name: str, value: object) -> int:
    if isinstance(value, bool) or not hasattr(type(value), "__index__"):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    return operator.index(value)


def check_counter(t: object, t_start: int) -> int:
    """``t`` as an int, once it is a step counter of this target: from the first step's counter
    ``t_start`` (below it the bias corrections divide by zero or turn negative) to T_MAX."""
    value = _integer("the step counter t", t)
    if not t_start <= value <= T_MAX:
        raise ValueError(f"the step counter t must be in [{t_start}, {T_MAX}], got {value}")
    return value


def check_steps(steps: object, t_start: int) -> int:
    """``steps``, a count of steps taken (a state_dict's), as an int, once the next step's
    counter ``t_start + steps`` is one :func:`check_counter` accepts."""
    value = _integer("steps", steps)
    if not 0 <= value <= T_MAX - t_start:
        raise ValueError(f"steps must be in [0, {T_MAX - t_start}], got {value}")
    return value


def check_state_dict_keys(state_dict: Mapping, expected: Sequence[str] = STATE_DICT_KEYS) -> None:
    """ValueError unless ``state_dict`` has exactly the keys of this runtime's state_dicts
    (another library's, such as torch.optim's, has others)."""
    if not isinstance(state_dict, Mapping) or sorted(state_dict) != sorted(expected):
        keys = sorted(state_dict) if isinstance(state_dict, Mapping) else type(state_dict)
        raise ValueError(f"state_dict has keys {keys}, expected {sorted(expected)}")


def check_gradients(grads: list, params: list) -> None:
    """check_array on every gradient, after a test that is fast where all are fine: an array
    with the shape, strides and dtype of its (C-contiguous) parameter is C-contiguous too."""
    ndarray = np.ndarray
    for i, (g, p) in enumerate(zip(grads, params, strict=True)):
        alike = type(g) is ndarray and g.shape == p.shape and g.strides == p.strides
        if not (alike and g.dtype == p.dtype):
            check_array(f"grads[{i}]", g, p, writeable=False)


class ApiOptimizer:
    """An optimizer over a list of float32/float64 arrays, updated in place, with a library's
    arguments. The arguments are attributes and may be changed between steps (schedules):
    ``opt.lr = 1e-4``, ``opt.betas = (0.95, 0.999)``, ``opt.amsgrad = True``; they are checked,
    with the library's messages, at construction and at every step.

    A subclass sets, as class attributes:

    * ``defaults``: every argument (hyperparameters, tuples, flags, ``maximize``) -> default;
    * ``tuples``: an argument that is a tuple of hyperparameters -> their names;
    * ``axes``: ``(name, kind)`` pairs, kind ``"flag"`` (true/false) or ``"nonzero"`` (a
      hyperparameter whose 0 switches off a term), in the order of ``kernels``' keys;
    * ``kernels``: each setting of the axes (a tuple of bools) -> the kernel class that runs it
      (the target's generated optimizer class of one variant, whose class methods ``apply``,
      ``new_state``, ``state_names_for``, ``state_shape`` and ``load`` run it on arrays held
      here);
    * ``state_keys``: the spec's state names -> the keys of ``state[i]``;
    * ``fixed``: flags the class fixes (AdamW's ``decoupled_weight_decay``), not arguments;
    * ``choices``: a string argument (Muon's ``adjust_lr_fn``) -> its values (None among
      them) -> the flags each sets;
    * ``machine_epsilon``: hyperparameters that may be None, the machine epsilon of the
      parameters' dtype (Adafactor's ``eps=(None, 1e-3)``);
    * ``check_arguments(**values)``: raises ValueError, with the library's message, for values
      the library refuses (hyperparameters and flags by the spec's names).

    ``state[i]`` holds parameter i's state arrays under the library's keys (``exp_avg``), only
    those the settings run so far needed; ``steps`` counts the steps taken. A step updates them
    in place: replace them with :meth:`load_state_dict`, not by assigning new arrays.
    """

    defaults: Mapping[str, object] = {}
    tuples: Mapping[str, tuple[str, ...]] = {}
    axes: tuple[tuple[str, str], ...] = ()
    kernels: Mapping[tuple[bool, ...], type] = {}
    state_keys: Mapping[str, str] = {}
    fixed: Mapping[str, bool] = {}
    choices: Mapping[str, Mapping[str | None, Mapping[str, bool]]] = {}
    machine_epsilon: tuple[str, ...] = ()
    check_arguments: Callable[..., None]

    def __init__(self, params: Sequence[np.ndarray], **arguments: object) -> None:
        for name, value in arguments.items():
            if name not in self.defaults:
                raise TypeError(f"{type(self).__name__} takes no argument {name!r}")
            setattr(self, name, value)
        for name, value in self.defaults.items():
            if name not in arguments:
                setattr(self, name, value)
        params = list(params)
        # the library's checks first, as torch.optim's (None epsilons at the first array's)
        first = getattr(params[0], "dtype", None) if params else None
        values = self.values(np.float32 if first == np.float32 else np.float64)
        self.params = params
        for i, p in enumerate(self.params):
            check_array(f"params[{i}]", p, p)
        self.kernel(values).load()  # the C target builds its library now, so errors show early
        #: Steps taken so far; the next step runs with t = t_start + steps.
        self.steps = 0
        self.state: list[dict[str, np.ndarray]] = [{} for _ in self.params]
        self._negated: list[np.ndarray | None] = [None] * len(self.params)
        self._cache: dict = {}
        #: Counts additions and replacements of state arrays (the cached views' validity).
        self._version = 0

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        #: The arguments' names, in the constructor's order.
        cls.hyperparameters = tuple(cls.defaults)
        #: Whether every kernel class checks the gradients itself (the C target's, which
        #: revalidates its arrays between steps at a fraction of the cost of a check here).
        cls.kernels_check = bool(cls.kernels) and all(
            getattr(k, "checks_gradients", False) for k in cls.kernels.values()
        )

    def arguments(self) -> dict[str, object]:
        """The current arguments by the library's names."""
        return {name: getattr(self, name) for name in self.defaults}

    def values(self, dtype) -> dict[str, object]:
        """The current arguments and, by the spec's names, the hyperparameters and flags
        (tuples unpacked, choices turned into the flags they set, fixed flags added, None
        resolved to the machine epsilon of ``dtype``), checked with the library's messages."""
        out: dict[str, object] = {**self.arguments(), **self.fixed}
        for key, value in self.arguments().items():
            parts = self.tuples.get(key)
            if parts is not None:
                if not isinstance(value, (tuple, list)) or len(value) != len(parts):
                    raise ValueError(f"{key} must be a tuple of {len(parts)} values, got {value!r}")
                out.update(zip(parts, value, strict=True))
            options = self.choices.get(key)
            if options is not None and value in options:
                out.update(options[value])
        for name in self.machine_epsilon:
            if out.get(name) is None:
                out[name] = float(np.finfo(dtype).eps)
        type(self).check_arguments(**out)
        return out

    def kernel(self, values: Mapping[str, object]) -> type:
        """The kernel class of a setting of the axes."""
        setting = tuple(
            bool(values[name]) if kind == "flag" else float(values[name]) != 0  # type: ignore[arg-type]
            for name, kind in self.axes
        )
        return self.kernels[setting]

    def step(self, grads: Sequence[np.ndarray]) -> None:
        """Apply one step given one gradient array per parameter array (not modified, also
        with ``maximize``)."""
        grads = list(grads)
        if len(grads) != len(self.params):
            raise ValueError(f"expected {len(self.params)} gradient arrays, got {len(grads)}")
        if not self.kernels_check or getattr(self, "maximize", False):  # -g is made of checked g
            check_gradients(grads, self.params)
        if self.machine_epsilon:  # a hyperparameter may depend on the dtype: one run per dtype
            dtypes = list(dict.fromkeys(p.dtype for p in self.params))
            runs = [(d, [i for i, p in enumerate(self.params) if p.dtype == d]) for d in dtypes]
        else:
            runs = [(np.float64, list(range(len(self.params))))]
        for index, values in [(index, self.values(dtype)) for dtype, index in runs]:
            self.run(index, grads, values)
        self.steps += 1

    def run(self, index: list[int], grads: list[np.ndarray], values: Mapping) -> None:
        """One step of the parameters ``index`` (their gradients in ``grads``) with ``values``."""
        kernel = self.kernel(values)
        hyper = {name: float(values[name]) for name in kernel.hyperparameters}  # type: ignore[arg-type]
        if values.get("maximize"):
            grads = [self.negated(i, grads[i]) for i in index]
        else:
            grads = [grads[i] for i in index]
        params = [self.params[i] for i in index]
        cache = self._cache.setdefault((kernel, tuple(index)), {})
        # the state views of a kernel are kept while no state array is added or replaced
        # (load_state_dict, a flag turned on): a step rebuilds nothing
        if cache.get("api version") != self._version:
            cache["api states"] = [self.kernel_state(kernel, i, hyper) for i in index]
            cache["api version"] = self._version
        states = cache["api states"]
        kernel.apply(params, [grads], states, kernel.t_start + self.steps, hyper, cache=cache)

    def negated(self, i: int, g: np.ndarray) -> np.ndarray:
        """-g, in a buffer of this optimizer's (the caller's array is left as it is)."""
        out = self._negated[i]
        if out is None or out.shape != g.shape or out.dtype != g.dtype:
            out = self._negated[i] = np.empty_like(g)
        np.negative(g, out=out)
        return out

    def kernel_state(self, kernel: type, i: int, hyper: Mapping[str, float]) -> dict:
        """Parameter i's state arrays as ``kernel`` names them; the ones it needs that do not
        exist yet (first step, or a flag turned on) are created at their initial values."""
        p, own = self.params[i], self.state[i]
        names = kernel.state_names_for(p)
        keys = [self.state_keys.get(n, n) for n in names]
        if any(k not in own for k in keys):
            fresh = kernel.new_state(p, hyper)
            for name, key in zip(names, keys, strict=True):
                own.setdefault(key, fresh[name])
            self._version += 1
        return {name: own[key] for name, key in zip(names, keys, strict=True)}

    def state_dict(self) -> dict:
        """A deep copy of everything needed to resume: steps, arguments and state arrays."""
        return {
            "steps": self.steps,
            "hyper": self.arguments(),
            "state": [{k: v.copy() for k, v in s.items()} for s in self.state],
        }

    def load_state_dict(self, state_dict: Mapping) -> None:
        """Restore a :meth:`state_dict` (copies of its arrays, in the parameters' dtypes); the
        arguments it holds replace the current ones. Everything is checked before anything
        changes: ValueError naming an unknown key (another optimizer's state)."""
        check_state_dict_keys(state_dict)
        steps = check_steps(state_dict["steps"], next(iter(self.kernels.values())).t_start)
        states = state_dict["state"]
        if len(states) != len(self.params):
            raise ValueError(
                f"state_dict has {len(states)} parameter states, expected {len(self.params)}"
            )
        for name in state_dict["hyper"]:
            if name not in self.defaults:
                raise ValueError(f"unknown hyperparameter {name!r} in state_dict")
        names = {key: name for name, key in self.state_keys.items()}
        kernels = list(dict.fromkeys(self.kernels.values()))
        new = []
        for i, (p, s) in enumerate(zip(self.params, states, strict=True)):
            unknown = sorted(set(s) - set(names))
            if unknown:
                raise ValueError(
                    f"state[{i}] has keys {sorted(s)}, expected some of {sorted(names)}"
                )
            own = {}
            for key, value in s.items():
                shapes = {
                    k.state_shape(names[key], p) for k in kernels if names[key] in k.state_names
                }
                if np.shape(value) not in shapes:
                    expected = " or ".join(map(str, sorted(shapes)))
                    raise ValueError(
                        f"state[{i}][{key!r}] has shape {np.shape(value)}, expected {expected}"
                    )
                own[key] = np.array(value, dtype=p.dtype, order="C", copy=True)
            new.append(own)
        self.state = new
        self._version += 1
        for name, value in state_dict["hyper"].items():
            setattr(self, name, value)
        self.steps = steps

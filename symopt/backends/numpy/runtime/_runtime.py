"""The runtime of the generated NumPy optimizers: chunked, threaded element-wise updates and the
base class every generated optimizer class builds on.

A generated module binds what symopt derived from its spec (the hyperparameters' domains, the
prelude of scalars, the per-chunk update); this module runs it. Depends on NumPy only.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

#: The element-wise update runs over chunks of this many bytes per array, so that the chunks of
#: all arrays and the scratch buffers stay in one core's cache, while each NumPy call still has
#: enough work to hide its overhead (see benchmarks/ for the measurements behind the default).
CHUNK_BYTES = 1 << 17
#: Threads for large steps: NumPy releases the GIL inside ufuncs, so chunks are updated in
#: parallel. Results are bit-identical for any value; 1 keeps everything in the calling thread.
THREADS = min(2, os.cpu_count() or 1)
#: Steps over fewer elements than this, or made of arrays smaller than half a chunk on average,
#: stay in the calling thread (threads would cost more than they save).
THREAD_MIN_ELEMENTS = 1 << 19

#: A kernel's per-chunk update: ``kernel(*arrays, scalars, scratch)``, in place (the scratch
#: buffers have the chunk's size).
Kernel = Callable[..., None]
#: Flat arrays of one parameter (all the same size) and the element range to update.
Range = tuple[tuple[np.ndarray, ...], int, int]


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


def checked_hyper(check: Callable[..., None], **hyper: float) -> dict[str, float]:
    """The hyperparameters as floats, after ``check`` accepted them (else its ValueError)."""
    values = {name: float(value) for name, value in hyper.items()}
    check(**values)
    return values


def run_kernel(
    kernel: Kernel, scratch: int, ranges: list[Range], scalars: tuple[float, ...]
) -> None:
    """Update ``ranges`` (all of one dtype) chunk by chunk, in threads when large.

    ``scratch`` is how many buffers of a chunk's size the kernel needs."""
    dtype = ranges[0][0][0].dtype
    # The rounding NumPy applies anyway, done once, into 0-d arrays: a NumPy scalar operand is
    # converted into one at every ufunc call (about 0.15 us each, a dozen calls per chunk).
    scalars = tuple(np.array(s, dtype=dtype) for s in scalars)
    total = sum(stop - start for _, start, stop in ranges)
    # Threads pay off for large steps made of large arrays; many small arrays would spend the
    # time contending for the GIL between short NumPy calls.
    half_chunk = CHUNK_BYTES // dtype.itemsize // 2
    large = total >= THREAD_MIN_ELEMENTS and total >= len(ranges) * half_chunk
    parts = split(ranges, THREADS if large else 1)
    job = (kernel, scratch, scalars)
    if len(parts) == 1:
        _run_ranges(parts[0], *job)
        return
    futures = [_pool(len(parts) - 1).submit(_run_ranges, part, *job) for part in parts[1:]]
    _run_ranges(parts[0], *job)
    for future in futures:
        future.result()


def _run_ranges(ranges: list[Range], kernel: Kernel, scratch: int, scalars: tuple) -> None:
    """The kernel over each chunk, with the chunk's arrays and scratch buffers of its size
    (sliced only where the chunk is not the whole array, or the buffers' size)."""
    dtype = ranges[0][0][0].dtype
    step = max(1, CHUNK_BYTES // dtype.itemsize)
    buffers = _scratch(dtype, step, scratch)
    room = buffers[0].size if buffers else 0
    for arrays, start, stop in ranges:
        whole = arrays[0].size
        for lo in range(start, stop, step):
            hi = min(lo + step, stop)
            size = hi - lo
            chunk = arrays if size == whole else [a[lo:hi] for a in arrays]
            kernel(*chunk, scalars, buffers if size == room else [b[:size] for b in buffers])


def split(ranges: list[Range], parts: int) -> list[list[Range]]:
    """Cut the ranges into ``parts`` runs of (nearly) equal element counts."""
    total = sum(stop - start for _, start, stop in ranges)
    if parts <= 1 or total == 0:
        return [ranges]
    size = -(-total // parts)
    out: list[list[Range]] = [[]]
    room = size
    for arrays, start, stop in ranges:
        while start < stop:
            take = min(room, stop - start)
            out[-1].append((arrays, start, start + take))
            start += take
            room -= take
            if room == 0 and len(out) < parts:
                out.append([])
                room = size
    return [part for part in out if part]


_local = threading.local()
_executor: list[ThreadPoolExecutor] = []


def _scratch(dtype: np.dtype, size: int, count: int) -> list[np.ndarray]:
    """``count`` per-thread scratch buffers of at least ``size`` elements, reused across steps."""
    cache = _local.__dict__.setdefault("scratch", {})
    buffers = cache.get(dtype, [])
    if len(buffers) < count or (buffers and buffers[0].size < size):
        size = max(size, buffers[0].size if buffers else 0)
        buffers = cache[dtype] = [np.empty(size, dtype=dtype) for _ in range(count)]
    return buffers[:count]


def _pool(workers: int) -> ThreadPoolExecutor:
    if not _executor or _executor[0]._max_workers < workers:
        _executor[:] = [ThreadPoolExecutor(workers, thread_name_prefix="symopt")]
    return _executor[0]


def check_arrays(arrays: dict[str, np.ndarray], inputs: int) -> None:
    """``arrays``: ``w``, then ``inputs`` read-only arrays, then the state, each like ``w``."""
    w = arrays["w"]
    for k, (name, a) in enumerate(arrays.items()):
        check_array(name, a, w, writeable=not 0 < k <= inputs)


def step_arrays(
    kernel: Kernel, scratch: int, arrays: dict[str, np.ndarray], inputs: int, scalars: tuple
) -> None:
    """The functional step: check ``arrays`` (:func:`check_arrays`), update them in place."""
    check_arrays(arrays, inputs)
    flat = tuple(a.reshape(-1) for a in arrays.values())
    run_kernel(kernel, scratch, [(flat, 0, arrays["w"].size)], scalars)


class Optimizer:
    """An element-wise optimizer over a list of float32/float64 arrays, updated in place.

    A generated subclass sets the class attributes below: its spec's hyperparameters
    (``defaults``), state arrays (``state_names``), read-only inputs besides the gradient
    (``inputs``), first step counter (``t_start``), and the derived functions: ``check_hyper``
    (the domains), ``prelude`` (the scalars of one step), ``kernel`` (one chunk's update, which
    needs ``scratch`` buffers) and ``new_state``.

    The class methods (:meth:`apply`, :meth:`new_state`, :meth:`state_names_for`,
    :meth:`state_shape`, :meth:`load`) run the kernel on arrays held elsewhere: a class with a
    library's arguments (``_api.ApiOptimizer``) runs the kernel of each setting of its flags
    with them.
    """

    defaults: dict[str, float] = {}
    hyperparameters: tuple[str, ...] = ()
    state_names: tuple[str, ...] = ()
    #: The arrays ``step`` takes per parameter array (argument name: what one of them is).
    inputs: dict[str, str] = {"grads": "gradient"}
    t_start = 1
    scratch = 0
    check_hyper: Callable[..., None]
    prelude: Callable[..., tuple[float, ...]]
    kernel: Kernel

    def __init__(self, params: Sequence[np.ndarray], **hyper: float) -> None:
        self.params = list(params)
        for i, p in enumerate(self.params):
            check_array(f"params[{i}]", p, p)
        for name, value in hyper.items():
            setattr(self, name, value)
        checked_hyper(type(self).check_hyper, **hyper)
        #: Steps taken so far; the next step runs with t = t_start + steps.
        self.steps = 0
        self.state = [self.initial_state(p) for p in self.params]

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        #: The hyperparameters' names, in the spec's order.
        cls.hyperparameters = tuple(cls.defaults)

    def hyper(self) -> dict[str, float]:
        """The current hyperparameters as floats, checked against their domains."""
        values = {name: getattr(self, name) for name in self.defaults}
        return checked_hyper(type(self).check_hyper, **values)

    def initial_state(self, p: np.ndarray) -> dict[str, np.ndarray]:
        """The state of parameter ``p`` before its first step, at the current hyperparameters."""
        return self.new_state(p, self.hyper())

    @classmethod
    def load(cls) -> None:
        """Makes the kernel ready to run (here it always is)."""

    @classmethod
    def new_state(cls, p: np.ndarray, hyper: Mapping[str, float]) -> dict[str, np.ndarray]:
        """The state arrays of parameter ``p`` before its first step (``hyper``: the
        hyperparameters by name, for state that starts at one of them)."""
        return {}

    @classmethod
    def state_names_for(cls, p: np.ndarray) -> tuple[str, ...]:
        """The state arrays parameter ``p`` has (every parameter has all of them here)."""
        return cls.state_names

    @classmethod
    def state_shape(cls, name: str, p: np.ndarray) -> tuple[int, ...]:
        """The shape of state array ``name`` of parameter ``p``."""
        return p.shape

    def check_inputs(self, inputs: Sequence[list], hyper: dict[str, float]) -> None:
        """Every input array shaped and typed like its parameter (subclasses add conditions)."""
        for (name, what), arrays in zip(self.inputs.items(), inputs, strict=True):
            if len(arrays) != len(self.params):
                raise ValueError(f"expected {len(self.params)} {what} arrays, got {len(arrays)}")
            for i, (p, a) in enumerate(zip(self.params, arrays, strict=True)):
                check_array(f"{name}[{i}]", a, p, writeable=False)

    def step(self, grads, *inputs) -> None:
        """Apply one step given one gradient array (and one array of every other input) per
        parameter array."""
        arrays_in = [list(grads), *(list(a) for a in inputs)]
        hyper = self.hyper()
        self.check_inputs(arrays_in, hyper)
        self.apply(self.params, arrays_in, self.state, self.t_start + self.steps, hyper)
        self.steps += 1

    @classmethod
    def apply(
        cls,
        params: Sequence[np.ndarray],
        inputs: Sequence[Sequence[np.ndarray]],
        states: Sequence[Mapping[str, np.ndarray]],
        t: int,
        hyper: Mapping[str, float],
        cache: dict | None = None,
    ) -> None:
        """One step at counter ``t`` of ``params`` in place, unchecked: ``inputs`` holds the
        gradients (and any other input) per parameter, ``states`` each parameter's state
        arrays by name, ``hyper`` every hyperparameter by name. ``cache``: what the caller
        keeps for this class between steps (unused here)."""
        scalars = cls.prelude(t, **hyper)
        by_dtype: dict[np.dtype, list[Range]] = {}
        for i, p in enumerate(params):
            state = states[i]
            arrays = (p, *(a[i] for a in inputs), *(state[n] for n in cls.state_names))
            flat = tuple(a.reshape(-1) for a in arrays)
            by_dtype.setdefault(p.dtype, []).append((flat, 0, p.size))
        for ranges in by_dtype.values():
            run_kernel(cls.kernel, cls.scratch, ranges, scalars)

    def state_dict(self) -> dict:
        """A deep copy of everything needed to resume: steps, hyperparameters and state arrays."""
        return {
            "steps": self.steps,
            "hyper": {name: getattr(self, name) for name in self.defaults},
            "state": [{k: v.copy() for k, v in s.items()} for s in self.state],
        }

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore a :meth:`state_dict`; arrays are copied into this optimizer's own buffers."""
        states = state_dict.get("state", [{} for _ in self.params])
        if len(states) != len(self.params):
            raise ValueError(
                f"state_dict has {len(states)} parameter states, expected {len(self.params)}"
            )
        expected = sorted(self.state_names)
        for i, (p, s) in enumerate(zip(self.params, states, strict=True)):
            if sorted(s) != expected:
                raise ValueError(f"state[{i}] has keys {sorted(s)}, expected {expected}")
            for k, v in s.items():
                if np.shape(v) != p.shape:
                    raise ValueError(
                        f"state[{i}][{k!r}] has shape {np.shape(v)}, expected {p.shape}"
                    )
        for name in state_dict["hyper"]:
            if name not in self.defaults:
                raise ValueError(f"unknown hyperparameter {name!r} in state_dict")
        for own, s in zip(self.state, states, strict=True):
            for k, v in s.items():
                np.copyto(own[k], v)
        for name, value in state_dict["hyper"].items():
            setattr(self, name, value)
        self.steps = int(state_dict["steps"])

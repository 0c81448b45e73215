"""The runtime of the generated NumPy optimizers: chunked, threaded element-wise updates and the
base class every generated optimizer class builds on.

A generated module binds what symopt derived from its spec (the hyperparameters' domains, the
prelude of scalars, the per-chunk update); this module runs it. Depends on NumPy only.

The rules every target follows (symopt_c, symopt_torch and symopt_jax check the same things at
the same moments, with messages of the same form):

* aliasing: the arrays a step writes (parameters, state) must not share memory with each other
  (ValueError naming both, at the step); an array a step only reads (a gradient, another input)
  may share memory with anything, and the step reads its values from before the step (it gets a
  copy when it overlaps an array the step writes);
* step counters (``_api.check_counter``): t is an integer (TypeError otherwise, bools
  included) in [t_start, 2**63 - 1] (ValueError otherwise), checked at every step; a
  state_dict's ``steps`` likewise, in [0, 2**63 - 1 - t_start], checked when it is loaded;
* ``load_state_dict`` checks everything (its keys, each parameter's state keys and shapes, the
  hyperparameters' names, steps) before it changes anything: ValueError naming what is wrong.
"""

from __future__ import annotations

import os
import threading
from bisect import bisect_right
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from operator import is_

import numpy as np

from ._api import check_counter, check_state_dict_keys, check_steps

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


def span(a: np.ndarray) -> tuple[int, int]:
    """Where an array's data starts and ends (addresses; strided arrays from their lowest to
    their highest element)."""
    start = a.__array_interface__["data"][0]
    if a.flags.c_contiguous or not a.size:
        return start, start + a.nbytes
    reach = [(n - 1) * s for n, s in zip(a.shape, a.strides, strict=True)]
    low, high = sum(r for r in reach if r < 0), sum(r for r in reach if r > 0)
    return start + low, start + high + a.itemsize


def owner(a: np.ndarray) -> np.ndarray | None:
    """The array that allocated ``a``'s memory (NumPy points a view's ``base`` at it), or None
    where the memory is another object's (a buffer, another library's tensor)."""
    base = a if a.base is None else a.base
    return base if isinstance(base, np.ndarray) and base.flags.owndata else None


class Written:
    """The arrays a step writes (``names``: how errors name them), checked to share no memory;
    :meth:`overlaps` tells whether an input shares memory with one of them. Kept between steps
    while the arrays are the same objects (:meth:`same`)."""

    def __init__(self, names: list[str], arrays: list[np.ndarray]) -> None:
        self.arrays = arrays
        spans = sorted((*span(a), k) for k, a in enumerate(arrays) if a.nbytes)
        for (_, end, j), (start, _, k) in zip(spans, spans[1:], strict=False):
            if start < end:  # sorted by start: an overlap is between neighbours
                raise ValueError(
                    f"{names[j]} and {names[k]} share memory, and each is updated in place: "
                    "give every parameter and state array memory of its own"
                )
        self.starts = [start for start, _, _ in spans]
        self.ends = [end for _, end, _ in spans]
        owners = [owner(a) for a in arrays]
        #: None: some array's memory is another object's (inputs are compared by address).
        self.owners = None if any(o is None for o in owners) else set(map(id, owners))

    def same(self, arrays: list[np.ndarray]) -> bool:
        return len(arrays) == len(self.arrays) and all(map(is_, arrays, self.arrays))

    def overlaps(self, a: np.ndarray) -> bool:
        """Whether ``a`` shares memory with a written array: by address, unless ``a``'s memory
        was allocated for arrays none of the written ones views (the common case, nanoseconds)."""
        own = owner(a)
        if own is not None and self.owners is not None and id(own) not in self.owners:
            return False
        start, end = span(a)
        # the last written span that starts before a ends; the spans are disjoint and sorted, so
        # it ends last of those
        last = bisect_right(self.starts, end - 1) - 1
        return end > start and last >= 0 and self.ends[last] > start


def unaliased(written: Written, arrays: Sequence[np.ndarray]) -> tuple[np.ndarray, ...]:
    """``arrays`` (inputs of a step), each overlapping a written array replaced by a copy."""
    return tuple(a.copy() if written.overlaps(a) else a for a in arrays)


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
    """The functional step: check ``arrays`` (:func:`check_arrays`), update them in place (an
    input that shares memory with a written array read through a copy)."""
    check_arrays(arrays, inputs)
    names = list(arrays)
    values = list(arrays.values())
    written = Written([names[0], *names[inputs + 1 :]], [values[0], *values[inputs + 1 :]])
    values[1 : inputs + 1] = unaliased(written, values[1 : inputs + 1])
    flat = tuple(a.reshape(-1) for a in values)
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
        cache = self.__dict__.setdefault("_cache", {})
        self.apply(self.params, arrays_in, self.state, self.t_start + self.steps, hyper, cache)
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
        """One step at counter ``t`` of ``params`` in place: ``inputs`` holds the gradients (and
        any other input) per parameter, ``states`` each parameter's state arrays by name,
        ``hyper`` every hyperparameter by name (the arrays and the domains unchecked; the
        counter and the aliasing checked, as the module says). ``cache``: what the caller keeps
        for this class between steps (the written arrays, checked once while they stay)."""
        scalars = cls.prelude(check_counter(t, cls.t_start), **hyper)
        written = cls.written(params, states, {} if cache is None else cache)
        by_dtype: dict[np.dtype, list[Range]] = {}
        for i, p in enumerate(params):
            state = states[i]
            read = unaliased(written, [a[i] for a in inputs])
            arrays = (p, *read, *(state[n] for n in cls.state_names))
            flat = tuple(a.reshape(-1) for a in arrays)
            by_dtype.setdefault(p.dtype, []).append((flat, 0, p.size))
        for ranges in by_dtype.values():
            run_kernel(cls.kernel, cls.scratch, ranges, scalars)

    @staticmethod
    def written(params: Sequence[np.ndarray], states: Sequence[Mapping], cache: dict) -> Written:
        """The arrays a step writes (the parameters and their state arrays), checked to share
        no memory when they are not those of the last step (kept in ``cache``)."""
        outputs = [*params, *(a for state in states for a in state.values())]
        written = cache.get("written")
        if written is None or not written.same(outputs):
            labels = [f"params[{i}]" for i in range(len(params))]
            labels += [f"state[{i}][{n!r}]" for i, state in enumerate(states) for n in state]
            written = cache["written"] = Written(labels, outputs)
        return written

    def state_dict(self) -> dict:
        """A deep copy of everything needed to resume: steps, hyperparameters and state arrays."""
        return {
            "steps": self.steps,
            "hyper": {name: getattr(self, name) for name in self.defaults},
            "state": [{k: v.copy() for k, v in s.items()} for s in self.state],
        }

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore a :meth:`state_dict`; arrays are copied into this optimizer's own buffers (in
        their dtypes). Everything is checked before anything changes."""
        check_state_dict_keys(state_dict)
        steps = check_steps(state_dict["steps"], self.t_start)
        states = state_dict["state"]
        if len(states) != len(self.params):
            raise ValueError(
                f"state_dict has {len(states)} parameter states, expected {len(self.params)}"
            )
        for i, (own, s) in enumerate(zip(self.state, states, strict=True)):
            if sorted(s) != sorted(own):
                raise ValueError(f"state[{i}] has keys {sorted(s)}, expected {sorted(own)}")
            for k, v in s.items():
                if np.shape(v) != own[k].shape:
                    raise ValueError(
                        f"state[{i}][{k!r}] has shape {np.shape(v)}, expected {own[k].shape}"
                    )
        for name in state_dict["hyper"]:
            if name not in self.defaults:
                raise ValueError(f"unknown hyperparameter {name!r} in state_dict")
        for own, s in zip(self.state, states, strict=True):
            for k, v in s.items():
                np.copyto(own[k], v)
        for name, value in state_dict["hyper"].items():
            setattr(self, name, value)
        self.steps = steps

"""NumPy arrays as the C kernels take them: checked, their data addresses gathered into pointer
tables, and every array the tables were built from revalidated before each step.

The kernels get raw addresses, so an array resized in place (``resize(..., refcheck=False)``),
reallocated, retyped, reshaped or made read-only after the tables were built must never reach
them: before each step every array is checked to be the same object with the same data address,
element count, dtype, flags and shape as when its table was built (:class:`Watched`), and the
tables are rebuilt, with every check, when one is not. Reading those fields through NumPy costs
about 1 us per array (``a.ctypes.data``); the C runtime reads them from the array objects
themselves (``symopt_ndarray_changed``) in nanoseconds, once :func:`reader` has confirmed the
layout of NumPy's array object on arrays whose fields it knows (elsewhere, as on PyPy, NumPy
reads them).

Aliasing, the same rule at every entry point of symopt_c: the arrays a step writes (parameters,
state) must not share memory with each other, since each gets its own update (ValueError naming
both); an array the step only reads (a gradient, a curvature diagonal) may share memory with
anything, and the step reads its values from before the step (the kernel gets a copy when it
overlaps an array the step writes). Arrays whose data address is not a multiple of their element
size (``np.frombuffer(buffer, offset=1)``), which C may not load from, are stepped through
aligned copies, written back when the step updates them.
"""

from __future__ import annotations

import ctypes
import struct
import sys
from itertools import chain, repeat
from operator import attrgetter, is_

import numpy as np

from . import _lib

#: Words per record (SYMOPT_NDARRAY_WORDS): data address, element count, dtype address, flags,
#: number of dimensions.
WORDS = 5
#: NumPy's flag bits (numpy/ndarraytypes.h).
C_CONTIGUOUS, ALIGNED = 0x0001, 0x0100
#: The fields of NumPy's PyArrayObject_fields that the C runtime reads: data, nd, dimensions,
#: strides, base, descr, flags (native alignment, as the C compiler lays them out).
LAYOUT = struct.Struct("@PiPPPPi")


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


def check_arrays(name: str, arrays: list, likes: list, *, writeable: bool = True) -> None:
    """check_array on each pair, with a fast path for the common case where all are fine: an
    array with the shape, strides and dtype of a C-contiguous one is C-contiguous too."""
    ndarray = np.ndarray
    for i, (a, p) in enumerate(zip(arrays, likes, strict=True)):
        if (
            type(a) is not ndarray
            or a.shape != p.shape
            or a.strides != p.strides
            or (a.dtype is not p.dtype and a.dtype != p.dtype)
            or (writeable and not a.flags.writeable)
        ):
            check_array(f"{name}[{i}]", a, p, writeable=writeable)


def scalar_like(p: np.ndarray) -> np.ndarray:
    """What a state of one value per array is checked against: a 0-d array of ``p``'s dtype."""
    return np.empty((), dtype=p.dtype)


def numpy_records(arrays: list) -> np.ndarray:
    """The records of ``arrays`` (one row of WORDS each), read through NumPy."""
    rows = [
        (a.__array_interface__["data"][0], a.size, id(a.dtype), a.flags.num, a.ndim) for a in arrays
    ]
    return np.array(rows, dtype=np.uintp).reshape(len(rows), WORDS)


_reader: list = []


def reader() -> tuple | None:
    """The C runtime's (records, changed) functions where NumPy's array object has the layout
    they read, else None (NumPy reads the fields). Decided once, on arrays of every kind whose
    fields NumPy reports: the raw fields are compared with those first (so that C never follows
    a pointer of a layout it misread), then C's records with NumPy's."""
    if not _reader:
        _reader.append(_confirmed_reader())
    return _reader[0]


def _confirmed_reader() -> tuple | None:
    head = object.__basicsize__
    if sys.implementation.name != "cpython" or np.ndarray.__basicsize__ < head + LAYOUT.size:
        return None
    lib = _lib.library()
    try:
        records, changed = lib.symopt_ndarray_records, lib.symopt_ndarray_changed
    except AttributeError:  # a library built by an older symopt (SYMOPT_C_LIB)
        return None
    records.argtypes = [ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    records.restype = None
    changed.argtypes = [*records.argtypes, ctypes.c_void_p]
    changed.restype = ctypes.c_size_t
    frozen = np.arange(6.0).reshape(2, 3)
    frozen.flags.writeable = False
    samples = [np.zeros(3, np.float32), frozen, frozen.T, np.zeros(()), np.zeros((0, 4))]
    samples += [np.zeros(9)[::2], np.frombuffer(bytes(41), np.float64, 5, 1)]
    for a in samples:
        raw = ctypes.string_at(id(a) + head, LAYOUT.size)
        data, nd, _, _, base, descr, flags = LAYOUT.unpack(raw)
        expected = (a.ctypes.data, a.ndim, id(a.base) if a.base is not None else 0)
        if (data, nd, base) != expected or (descr, flags) != (id(a.dtype), a.flags.num):
            return None
    ids = np.array([id(a) for a in samples], dtype=np.uintp)
    out = np.empty((len(samples), WORDS), dtype=np.uintp)
    records(len(samples), ids.ctypes.data, head, out.ctypes.data)
    if not np.array_equal(out, numpy_records(samples)):
        return None
    return records, changed


class Watched:
    """Arrays and their records (and shapes) when they were checked: :meth:`same` tells, in a
    few nanoseconds per array, whether a list holds the same objects, none of them with another
    data address, element count, dtype, flags or shape since. The arrays are kept alive here
    (their addresses are read)."""

    def __init__(self, arrays: list) -> None:
        if not all(map(isinstance, arrays, repeat(np.ndarray))):
            raise TypeError("only numpy arrays can be watched")
        self.arrays = arrays
        self.dtypes = list(map(attrgetter("dtype"), arrays))  # their addresses stay theirs
        self.ids = np.fromiter(map(id, arrays), np.uintp, len(arrays))
        self.shapes = list(map(attrgetter("shape"), arrays))
        self.dims = np.fromiter(chain.from_iterable(self.shapes), np.intp)
        functions = reader()
        if functions is None:
            self.records = numpy_records(arrays)
        else:
            self.records = np.empty((len(arrays), WORDS), dtype=np.uintp)
            head = object.__basicsize__
            functions[0](len(arrays), self.ids.ctypes.data, head, self.records.ctypes.data)
        self.tables = (self.ids.ctypes.data, self.records.ctypes.data, self.dims.ctypes.data)

    def same(self, arrays: list) -> bool:
        """Whether ``arrays`` are the watched objects, none of them changed since."""
        if len(arrays) != len(self.arrays) or not all(map(is_, arrays, self.arrays)):
            return False
        functions = reader()
        if functions is None:
            now = [a.shape for a in arrays]
            return now == self.shapes and np.array_equal(numpy_records(arrays), self.records)
        ids, records, dims = self.tables
        count = len(arrays)
        return functions[1](count, ids, object.__basicsize__, records, dims) == count

    def spans(self, itemsize: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Where each array's data starts and ends (addresses); ``itemsize``: the arrays' element
        sizes, when the caller knows them."""
        if itemsize is None:
            itemsize = np.array([a.itemsize for a in self.arrays], dtype=np.uintp)
        start = self.records[:, 0]
        return start, start + self.records[:, 1] * itemsize

    def misaligned(self) -> np.ndarray:
        """Which arrays hold data the kernels may not load from as it is."""
        return (self.records[:, 3] & ALIGNED == 0) & (self.records[:, 1] > 0)


def disjoint(names: list[str], start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, ...]:
    """The spans [start, end) of the arrays a step writes, sorted, after checking that no two of
    them share memory (ValueError naming two that do)."""
    keep = np.flatnonzero(end > start)
    order = keep[np.argsort(start[keep], kind="stable")]
    starts, ends = start[order], end[order]
    clash = np.flatnonzero(starts[1:] < ends[:-1])  # sorted by start: an overlap is adjacent
    if clash.size:
        first, second = names[order[clash[0]]], names[order[clash[0] + 1]]
        raise ValueError(
            f"{first} and {second} share memory, and each is updated in place: "
            "give every parameter and state array memory of its own"
        )
    return starts, ends


def overlapping(starts: np.ndarray, ends: np.ndarray, start, end) -> np.ndarray:
    """Which spans [start, end) overlap one of the sorted, disjoint spans [starts, ends)."""
    if not starts.size:
        return np.zeros(len(start), dtype=bool)
    last = np.searchsorted(starts, end, side="left") - 1  # the last span that starts before end
    hit = ends[np.maximum(last, 0)] > start
    return (end > start) & (last >= 0) & hit


class Staging:
    """Aligned copies the kernels get instead of arrays they cannot take as they are: a
    misaligned array, and an input that shares memory with an array the step writes."""

    def __init__(self) -> None:
        self.copies: list[tuple[np.ndarray, np.ndarray, bool]] = []

    def add(self, a: np.ndarray, *, write_back: bool) -> int:
        """The address of a new copy of ``a``, filled before each step (and copied back into
        ``a`` after it when ``write_back``)."""
        copy = np.empty(a.shape, dtype=a.dtype)
        self.copies.append((a, copy, write_back))
        return copy.ctypes.data

    def before(self) -> None:
        for theirs, ours, _ in self.copies:
            np.copyto(ours, theirs)

    def after(self) -> None:
        for theirs, ours, write_back in self.copies:
            if write_back:
                np.copyto(theirs, ours)


def addresses(outputs: list, inputs: list, staging: Staging) -> list[int]:
    """The data addresses a kernel gets for checked arrays, (name, array) pairs of the arrays a
    step writes and of those it reads: each array's own, or that of an aligned copy in
    ``staging`` (see the module's rules)."""
    arrays = Watched([a for _, a in chain(outputs, inputs)])
    start, end = arrays.spans()
    n = len(outputs)
    starts, ends = disjoint([name for name, _ in outputs], start[:n], end[:n])
    copy = arrays.misaligned()
    copy[n:] |= overlapping(starts, ends, start[n:], end[n:])
    out = [int(x) for x in start]
    for k in np.flatnonzero(copy):
        out[k] = staging.add(arrays.arrays[k], write_back=bool(k < n))
    return out


class Batch:
    """An optimizer's arrays grouped by dtype, with the pointer tables the C kernels take.

    The tables are kept between steps while the parameter, state and gradient arrays are the
    same objects, unchanged (:class:`Watched`); anything else rebuilds them, with every check. A
    state in ``per_tensor`` holds one value per parameter array: a 0-d array (the kernels read
    and write its one element).
    """

    def __init__(self, state_names: tuple[str, ...], per_tensor: tuple[str, ...] = ()) -> None:
        self.state_names = state_names
        self.per_tensor = frozenset(per_tensor)
        self.params: list = []
        self.outputs = Watched([])
        self.grads: Watched | None = None  # None: the gradients' tables are to be built
        #: The sorted spans of the parameter and state arrays' data (disjoint).
        self.spans: tuple = (np.empty(0, np.uintp), np.empty(0, np.uintp))
        #: (dtype, parameter indices, ([w, *state] tables, sizes), their addresses)
        self.groups: list = []
        self.staged = self.staged_grads = Staging()
        self.calls: list = []  # (dtype, count, table addresses in kernel order, sizes address)
        self.grad_tables: list = []

    def step(self, params: list, states: list, grads: list, kernels: dict, t: int, hyper) -> None:
        """One step: the arrays checked for changes, then one multi-tensor kernel call per dtype
        (``kernels``: dtype -> (single, multi) functions)."""
        outputs = [*params, *chain.from_iterable([s.values() for s in states])]
        if not self.outputs.same(outputs):
            self._outputs(params, states, outputs)
        if self.grads is None or not self.grads.same(grads):
            self._grads(grads)
        self.staged.before()
        self.staged_grads.before()
        for dtype, count, tables, sizes in self.calls:
            kernels[dtype][1](count, *tables, sizes, t, *hyper)
        self.staged.after()

    def _outputs(self, params: list, states: list, outputs: list) -> None:
        if len(states) != len(params):
            raise ValueError(f"{len(states)} states for {len(params)} parameter arrays")
        names = [f"params[{i}]" for i in range(len(params))]
        where = {}  # (parameter, state name) -> position in outputs
        for i, (p, s) in enumerate(zip(params, states, strict=True)):
            check_array(names[i], p, p)
            if s.keys() != set(self.state_names):
                raise ValueError(
                    f"state[{i}] has keys {sorted(s)}, expected {sorted(self.state_names)}"
                )
            for n, a in s.items():
                where[i, n] = len(names)
                names.append(f"state[{i}][{n!r}]")
                check_array(names[-1], a, scalar_like(p) if n in self.per_tensor else p)
        watched = Watched(outputs)
        start, end = watched.spans()
        spans = disjoint(names, start, end)
        staged = Staging()
        address = start.copy()
        for k in np.flatnonzero(watched.misaligned()):
            address[k] = staged.add(outputs[k], write_back=True)
        by_dtype: dict = {}
        for i, p in enumerate(params):
            by_dtype.setdefault(p.dtype, []).append(i)
        groups = []
        for dtype, index in by_dtype.items():
            tables = [address[index]]
            tables += [address[[where[i, n] for i in index]] for n in self.state_names]
            sizes = np.array([params[i].size for i in index], dtype=np.uintp)
            at = [x.ctypes.data for x in (*tables, sizes)]
            groups.append((dtype, index, (tables, sizes), at))
        n = len(params)
        self.params, self.spans, self.staged, self.groups = list(params), spans, staged, groups
        self.shapes = watched.shapes[:n]
        self.descrs = watched.records[:n, 2]
        self.itemsize = np.array([p.itemsize for p in params], dtype=np.uintp)
        self.outputs = watched
        self.grads, self.calls = None, []

    def _grads(self, grads: list) -> None:
        if len(grads) != len(self.params):
            raise ValueError(f"expected {len(self.params)} gradient arrays, got {len(grads)}")
        try:
            watched = Watched(grads)
        except TypeError:  # not all NumPy arrays: check_arrays says which
            watched = None
        if watched is None or not (
            watched.shapes == self.shapes
            and np.array_equal(watched.records[:, 2], self.descrs)
            and np.all(watched.records[:, 3] & C_CONTIGUOUS)
        ):  # not all like their parameters: the full checks (equal dtypes may be other objects)
            check_arrays("grads", grads, self.params, writeable=False)
            watched = Watched(grads)
        start, end = watched.spans(self.itemsize)
        copy = watched.misaligned() | overlapping(*self.spans, start, end)
        staged = Staging()
        address = start.copy()
        for k in np.flatnonzero(copy):
            address[k] = staged.add(grads[k], write_back=False)
        tables, calls = [], []
        for dtype, index, _, (w, *state, sizes) in self.groups:
            g = address[index]
            tables.append(g)
            calls.append((dtype, len(index), (w, g.ctypes.data, *state), sizes))
        self.grad_tables, self.calls, self.staged_grads, self.grads = tables, calls, staged, watched

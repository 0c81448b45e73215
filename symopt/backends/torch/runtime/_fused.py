"""The fused path of the generated element-wise optimizers (``fused=True``): one pass over
memory per step for all tensors of a device and dtype.

On the CPU each kernel's C source (``_csrc/NAME.c``, generated beside its module) is compiled on
first use with the system C compiler into the user cache folder and called through ctypes on the
tensors' own memory, with ``torch.get_num_threads()`` OpenMP threads. On CUDA the kernel's Triton
module (``_triton/NAME.py``) runs, one launch per group of tensors. A group the kernels cannot take
(float16, non-contiguous tensors) runs the foreach path instead, with a warning, once.

The optimizers with per-tensor reductions (LAMB, LARS, ASGD, torch's NAdam) call ``run_stages``:
the same tables and checks, a C kernel of a few passes over each tensor (``_csrc/NAME.c``, with
t and the hyperparameters as arguments) or its Triton module; a group it cannot take, or a CUDA
kernel that cannot be imported, runs the optimizer's tensor path, with a warning, once.

Environment:
    CC                   compiler command (default: the first of cc, gcc, clang on PATH)
    SYMOPT_TORCH_CACHE   the folder of the built kernels (default: $XDG_CACHE_HOME/symopt_torch,
                         else ~/.cache/symopt_torch); it can be deleted at any time

Depends on torch only (and, for CUDA tensors, triton).
"""

from __future__ import annotations

import array
import ctypes
import hashlib
import importlib
import operator
import os
import shlex
import shutil
import subprocess
import tempfile
import threading
import warnings
from collections.abc import Collection
from pathlib import Path

import torch

__all__ = ["FusedUnavailable", "cache_folder", "library", "run", "run_stages"]

HERE = Path(__file__).resolve().parent
CFLAGS = ("-std=c99", "-O3", "-fPIC", "-fno-math-errno", "-ffp-contract=off", "-shared")
#: The storage dtypes of the C kernels, by entry-point suffix.
C_DTYPES = {torch.float32: "f32", torch.float64: "f64", torch.bfloat16: "bf16"}
#: array.array type code of a pointer-sized unsigned integer.
POINTER_CODE = next(c for c in "QLI" if array.array(c).itemsize == ctypes.sizeof(ctypes.c_void_p))
_lock = threading.Lock()
_libraries: dict[str, ctypes.CDLL] = {}
_entries: dict[tuple[str, str], ctypes._CFuncPtr] = {}
_warned: set[tuple[str, str]] = set()


class FusedUnavailable(RuntimeError):
    """The fused kernel cannot be built (no C compiler, or the compiler failed)."""


def cache_folder() -> Path:
    """Where built kernels are kept: $SYMOPT_TORCH_CACHE, else the user cache folder."""
    configured = os.environ.get("SYMOPT_TORCH_CACHE")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "symopt_torch"


def compiler() -> list[str]:
    """$CC (split like a shell would), else cc, gcc or clang on PATH."""
    cc = os.environ.get("CC", "").strip()
    candidates = [shlex.split(cc)] if cc else [[name] for name in ("cc", "gcc", "clang")]
    for command in candidates:
        if shutil.which(command[0]) is not None:
            return command
    why = f"$CC is {cc!r}, not an executable" if cc else "none of cc, gcc, clang is on PATH"
    raise FusedUnavailable(
        f"fused=True on the CPU builds its kernel with a C compiler on first use, but {why}: "
        "install one (Debian/Ubuntu: apt-get install gcc) or use foreach=True"
    )


def library(name: str) -> ctypes.CDLL:
    """The built kernel ``name``: compiled once per source, compiler and flags (with OpenMP if
    the compiler has it), kept in :func:`cache_folder`, loaded once per process."""
    with _lock:
        if name in _libraries:
            return _libraries[name]
        source = HERE / "_csrc" / f"{name}.c"
        cc = compiler()
        text = source.read_bytes()
        digest = hashlib.sha256(repr((cc, CFLAGS)).encode() + b"\0" + text).hexdigest()[:16]
        folder = cache_folder()
        path = folder / f"{name}-{digest}.so"
        if not path.exists():
            folder.mkdir(parents=True, exist_ok=True)
            _build(cc, source, path)
        _libraries[name] = ctypes.CDLL(str(path))
        return _libraries[name]


def _build(cc: list[str], source: Path, path: Path) -> None:
    """Compile ``source`` into ``path`` (atomically: concurrent builds may race); with OpenMP,
    or without it where the compiler lacks it."""
    handle, temporary = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".so", dir=path.parent)
    os.close(handle)
    try:
        failure = ""
        for extra in (("-fopenmp",), ()):
            command = [*cc, *CFLAGS, *extra, "-o", temporary, str(source), "-lm"]
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode == 0:
                os.replace(temporary, path)
                return
            failure = failure or f"{shlex.join(command)}\n{done.stderr.strip()}"
        raise FusedUnavailable(f"building the fused kernel {source.name} failed:\n{failure}")
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def _entry(name: str, dtype: torch.dtype, scalars: int):
    """The C entry point of kernel ``name`` for ``dtype``, with its argument types set."""
    symbol = f"symopt_torch_{name.lstrip('_')}_{C_DTYPES[dtype]}"
    return _function(name, symbol, [ctypes.c_double] * scalars)


def _function(name: str, symbol: str, scalars: list):
    """The function ``symbol`` of kernel ``name``: (count, tables, sizes, threads, *scalars)."""
    key = (name, symbol)
    fn = _entries.get(key)
    if fn is None:
        fn = getattr(library(name), symbol)
        fn.restype = None
        fn.argtypes = [ctypes.c_size_t, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, *scalars]
        _entries[key] = fn
    return fn


def unsupported(
    lists: list[list[torch.Tensor]],
    pointers: list[int],
    sizes: list[int],
    scalar: Collection[int] = (),
):
    """Why the fused kernels cannot take this group (the parameters' device and dtype), or None;
    fills ``pointers`` with the tensors' data pointers, array by array, and ``sizes`` with their
    lengths. RuntimeError for a gradient or state the foreach path would refuse too (another
    size, dtype or device): the kernel must never read or write outside a tensor. The lists at
    the indices ``scalar`` hold one 0-d tensor per parameter (a state of one value per tensor)."""
    params = lists[0]
    first = params[0]
    dtype, device = first.dtype, first.get_device()
    if dtype not in C_DTYPES:
        return f"dtype {dtype} (the fused kernels take float32, float64 and bfloat16)"
    sizes += [p.numel() for p in params]
    contiguous = all([p.is_contiguous() for p in params])
    pointers += [p.data_ptr() for p in params]
    for k, tensors in enumerate(lists[1:], 1):
        one = k in scalar
        for t, n in zip(tensors, sizes, strict=True):
            if (
                (t.dim() != 0 if one else t.numel() != n)
                or t.dtype is not dtype
                or t.get_device() != device
            ):
                what = "a 0-d state" if one else "a state or gradient"
                raise RuntimeError(
                    f"fused step: {what} of {tuple(t.shape)} {t.dtype} on {t.device} for a "
                    f"parameter of {n} elements, {dtype} on {first.device}"
                )
            if contiguous and not t.is_contiguous():
                contiguous = False
            pointers.append(t.data_ptr())
    return None if contiguous else "non-contiguous tensors"


def unshare(lists: list[list[torch.Tensor]], pointers: list[int], sizes: list[int]) -> None:
    """The gradients (``lists[1]``) that overlap an array the kernel writes (the parameter or a
    state of the same index) replaced by copies, in ``lists`` and ``pointers``: the kernel reads
    an element after it wrote its neighbours. From the pointers :func:`unsupported` read (the
    arrays of one index have one size: two spans of n elements overlap where they start less
    than n elements apart). A column with no gradient that close costs one ``map``."""
    count = len(sizes)
    itemsize = lists[0][0].element_size()
    grads = pointers[count : 2 * count]
    largest = max(sizes) * itemsize
    for k in (0, *range(2, len(lists))):
        column = pointers[k * count : (k + 1) * count]
        if min(map(abs, map(operator.sub, column, grads))) >= largest:
            continue
        for i, (start, grad, size) in enumerate(zip(column, grads, sizes, strict=True)):
            if abs(start - grad) < size * itemsize:
                lists[1][i] = lists[1][i].clone()
                grads[i] = pointers[count + i] = lists[1][i].data_ptr()


def _refused(name: str, why: str, path: str) -> str:
    """``why``, after a warning (once per kernel and reason) that the group runs ``path``."""
    key = (name, why)
    if key not in _warned:
        _warned.add(key)
        warnings.warn(f"fused=True: {why} run the {path} instead", stacklevel=6)
    return why


def _prepared(
    name: str, lists: list[list[torch.Tensor]], path: str, scalar: Collection[int] = ()
) -> tuple[str | None, list[int], list[int]]:
    """Why the kernels cannot take the group (warned once), or None with the pointer table and
    the sizes, the gradients that overlap a written array copied first."""
    pointers: list[int] = []
    lengths: list[int] = []
    why = unsupported(lists, pointers, lengths, scalar)
    if why is not None:
        return _refused(name, why, path), pointers, lengths
    unshare(lists, pointers, lengths)
    return None, pointers, lengths


def _call(fn, pointers: list[int], lengths: list[int], *scalars) -> None:
    """A C entry point over the tables, with torch's thread count."""
    tables = array.array(POINTER_CODE, pointers)
    sizes = array.array(POINTER_CODE, lengths)
    threads = torch.get_num_threads()
    fn(len(sizes), tables.buffer_info()[0], sizes.buffer_info()[0], threads, *scalars)


def run(name: str, lists: list[list[torch.Tensor]], scalars: tuple[float, ...]) -> str | None:
    """One fused step of kernel ``name`` over ``lists`` (the kernel's arrays in order, one list
    of tensors each, all of one device and dtype: w, g, then the state), in place; ``scalars``
    its ``_s0, _s1, ...``. Returns None, or why the group was not run (the caller runs the
    foreach path)."""
    why, pointers, lengths = _prepared(name, lists, "foreach path")
    if why is not None:
        return why
    first = lists[0][0]
    if first.is_cpu:
        _call(_entry(name, first.dtype, len(scalars)), pointers, lengths, *scalars)
    else:
        module = importlib.import_module(f"{__package__}._triton.{name}")
        module.step(lists, scalars)
    return None


def run_stages(
    name: str,
    lists: list[list[torch.Tensor]],
    t: int,
    hyper: tuple[float, ...],
    other: bool = False,
    *,
    scalar: Collection[int] = (),
) -> str | None:
    """One fused step of the kernel ``name`` with per-tensor reductions over ``lists`` (its
    arrays in order, one list of tensors each, all of one device and dtype: w, g, then the
    state; at the indices ``scalar`` a 0-d tensor per parameter, a state of one value per
    tensor), in place, at step t with the hyperparameters ``hyper`` (the spec's order).
    ``other``: the ``[otherwise]`` update (parameters of the shapes the spec's update is not
    for). Returns None, or why the group was not run (the caller runs the tensor path)."""
    why, pointers, lengths = _prepared(name, lists, "tensor path", scalar)
    if why is not None:
        return why
    first = lists[0][0]
    if first.is_cpu:
        part = "_other" if other else ""
        symbol = f"symopt_torch_{name.lstrip('_')}{part}_{C_DTYPES[first.dtype]}"
        fn = _function(name, symbol, [ctypes.c_long, *[ctypes.c_double] * len(hyper)])
        _call(fn, pointers, lengths, int(t), *map(float, hyper))
        return None
    try:
        module = importlib.import_module(f"{__package__}._triton.{name}")
    except ImportError as error:  # not generated (yet), or triton missing
        why = f"the CUDA kernel {name} cannot be imported ({error})"
        _refused(name, f"{why}, so its groups", "tensor path")
        return why
    module.step(lists, t, hyper, other=other)
    return None

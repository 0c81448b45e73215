"""What the generated Triton kernels of ``fused=True`` share: the launch over a group of tensors
and the operations whose GPU form needs care.

A generated module (``_triton/NAME.py``) holds one ``@triton.jit`` kernel that runs the foreach
path's instructions on each element in registers: one pass over memory. :func:`launch` runs it
over a group of tensors (one device and dtype) in one launch, as torch's ``multi_tensor_apply``
does: every tensor is cut into chunks of ``CHUNK`` elements and one program runs per chunk,
reading from a table (int64, a row per chunk) the chunk's length and its address in every array.

* The table is copied to the device once and cached by its contents (the addresses and sizes):
  later steps over the same tensors launch without a host-to-device copy, and a table built
  again from equal addresses and sizes would be the same table.
* The scalars are kernel arguments holding the bits of their float64 values: Triton passes a
  Python float as float32, which would round the scalars of a float64 step. The kernel converts
  them to the compute type (float32 for float32 and bfloat16 storage) as torch converts a
  Python scalar; bfloat16 is computed in float32 and rounded once, when stored (to nearest
  even, in integer arithmetic: the same bits on a GPU and in the interpreter).
* The arithmetic is the one written in the kernel (see ``OPTIONS``: no multiply-add is fused
  unless it says ``tl.fma``, as in torch's CPU kernels), with correctly rounded division and
  square root (Triton's ``/`` and ``tl.sqrt`` are approximate for float32 on NVIDIA GPUs); exp,
  log and pow are libdevice's, the functions torch's CUDA kernels call, subnormals kept.

Triton's interpreter (``TRITON_INTERPRET=1`` before the kernels are defined) runs the same
kernels on CPU tensors; it has no libdevice, so there exp and log are numpy's and a general
power is refused.
"""

from __future__ import annotations

import struct
from collections import OrderedDict
from collections.abc import Sequence
from contextlib import nullcontext

import torch
import triton
import triton.language as tl
from triton.language.extra import libdevice

__all__ = [
    "BLOCK",
    "CHUNK",
    "add",
    "address",
    "div",
    "exp",
    "launch",
    "launch_stages",
    "log",
    "maximum",
    "minimum",
    "power",
    "scalar",
    "sign",
    "sqrt",
    "to_storage",
]

#: Elements a program updates at once, and per chunk (a program's share of a tensor).
BLOCK = 1024
CHUNK = 16 * BLOCK
#: Storage dtype -> (Triton storage type, Triton compute type).
TYPES = {
    torch.float32: (tl.float32, tl.float32),
    torch.float64: (tl.float64, tl.float64),
    torch.bfloat16: (tl.bfloat16, tl.float32),
}
#: Compiler options: no contraction (a multiply-add is fused only where the kernel says
#: ``tl.fma``), and libdevice without flushing subnormals to zero, as torch's CUDA kernels are
#: built (ROCm's backend has neither libdevice nor the option).
OPTIONS = {"enable_fp_fusion": False}
if torch.version.hip is None:
    OPTIONS["enable_reflect_ftz"] = False
#: Whether kernels run in Triton's interpreter (read when this module is imported, as
#: ``triton.jit`` reads it when a kernel is defined).
INTERPRETED = tl.constexpr(triton.knobs.runtime.interpret)
#: The tables of the latest groups launched, by contents, most recent last.
_TABLES: OrderedDict[tuple, tuple[torch.Tensor, int, bool]] = OrderedDict()
#: The same for staged steps: (chunk table, tensor table, chunks, aligned).
_STAGE_TABLES: OrderedDict[tuple, tuple[torch.Tensor, torch.Tensor, int, bool]] = OrderedDict()
MAX_TABLES = 32


def _runnable(groups: Sequence[Sequence[torch.Tensor]]) -> bool:
    """Whether there is anything to step; ValueError for lists the kernels cannot take (of
    different lengths, of another dtype, on another device)."""
    if any(len(tensors) != len(groups[0]) for tensors in groups):
        raise ValueError(
            f"the fused step takes lists of equal lengths, not {[len(x) for x in groups]}"
        )
    if not groups or not groups[0]:
        return False
    first = groups[0][0]
    if first.dtype not in TYPES:
        raise ValueError(
            f"the fused Triton step takes float32, float64 or bfloat16, not {first.dtype}"
        )
    if first.device.type != "cuda" and not (INTERPRETED and first.device.type == "cpu"):
        raise ValueError(f"the fused Triton step runs on CUDA tensors, not on {first.device}")
    return True


def launch(kernel, lists: Sequence[Sequence[torch.Tensor]], scalars: Sequence[float]) -> None:
    """Run ``kernel`` over the tensors of ``lists`` (one list per array, in the kernel's order,
    all contiguous, on one device and of one dtype) with the step's ``scalars``: one launch."""
    if not _runnable(lists):
        return
    first = lists[0][0]
    table, rows, aligned = _table(lists)
    if rows == 0:
        return
    storage, compute = TYPES[first.dtype]
    bits = _bits(scalars)
    on_device = torch.cuda.device(first.device) if first.device.type == "cuda" else nullcontext()
    with on_device:
        kernel[(rows,)](
            table,
            *bits,
            BLOCK=BLOCK,
            STORAGE=storage,
            COMPUTE=compute,
            ALIGNED=aligned,
            **OPTIONS,
        )


def _table(lists: Sequence[Sequence[torch.Tensor]]) -> tuple[torch.Tensor, int, bool]:
    """The chunk table of a group (on its device), its number of rows, and whether every address
    in it is a multiple of 16 bytes; the tensors are checked on the way."""
    first = lists[0][0]
    sizes, addresses, _ = _layout(lists, ())

    def build() -> tuple[torch.Tensor, int, bool]:
        rows = []
        for size, bases in zip(sizes, addresses, strict=True):
            for start in range(0, size, CHUNK):
                offset = start * first.element_size()
                rows.append([min(CHUNK, size - start), *(base + offset for base in bases)])
        aligned = all(a % 16 == 0 for a in _flat(addresses))
        return _as_table(rows, first.device), len(rows), aligned

    key = (first.device, first.element_size(), tuple(sizes), _flat(addresses))
    return _cached(_TABLES, key, build)


def _layout(
    lists: Sequence[Sequence[torch.Tensor]], states: Sequence[Sequence[torch.Tensor]]
) -> tuple[list[int], list[list[int]], list[list[int]]]:
    """Each tensor's size, its addresses in ``lists`` and those of its states of one value per
    tensor (``states``); ValueError for tensors the kernels cannot take."""
    first = lists[0][0]
    sizes, addresses, scalar_addresses = [], [], []
    for k, tensors in enumerate(zip(*lists, strict=True)):
        size = tensors[0].numel()
        one = [s[k] for s in states]
        for t in (*tensors, *one):
            if t.dtype != first.dtype or t.device != first.device:
                raise ValueError(
                    f"the fused step takes one dtype and device, got {t.dtype} on {t.device} "
                    f"beside {first.dtype} on {first.device}"
                )
        for t in tensors:
            if not t.is_contiguous() or t.numel() != size:
                raise ValueError(f"the fused step takes contiguous tensors of {size} elements")
        if any(s.numel() != 1 for s in one):
            raise ValueError("the fused step takes states of one value per tensor as 0-d tensors")
        sizes.append(size)
        addresses.append([t.data_ptr() for t in tensors])
        scalar_addresses.append([s.data_ptr() for s in one])
    return sizes, addresses, scalar_addresses


def _cached(cache: OrderedDict, key: tuple, build):
    """``cache[key]``, built by ``build()`` when missing; the cache keeps the ``MAX_TABLES`` most
    recently used."""
    if key in cache:
        cache.move_to_end(key)
        return cache[key]
    entry = cache[key] = build()
    if len(cache) > MAX_TABLES:
        cache.popitem(last=False)
    return entry


def _as_table(rows: list[list[int]], device: torch.device) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.int64).reshape(-1).to(device)


def _bits(scalars: Sequence[float]) -> tuple[int, ...]:
    """The bits of the float64 values of ``scalars`` (ints, as the kernels take them)."""
    count = len(scalars)
    return struct.unpack(f"<{count}q", struct.pack(f"<{count}d", *map(float, scalars)))


def launch_stages(
    steps: Sequence[tuple[str, object]],
    lists: Sequence[Sequence[torch.Tensor]],
    states: Sequence[Sequence[torch.Tensor]],
    scalars: Sequence[float],
    accumulators: int,
    slots: int,
) -> None:
    """A step in passes over memory: run the kernels of ``steps`` one after another, each
    ``("chunks", kernel)`` (a program per chunk of every tensor of ``lists``) or ``("tensors",
    kernel)`` (a program per tensor). ``states`` are the lists of 0-d tensors of the states of
    one value per tensor; ``accumulators`` and ``slots`` size the buffers the kernels share: the
    chunks' partial reductions and the per-tensor scalars (float64).

    Each kernel takes the chunk table (a row per chunk: its length, its tensor, its address in
    each array of ``lists``), the tensor table (a row per tensor: its first chunk, its number of
    chunks, its size, the address of each of its ``states``), the two buffers and the bits of the
    scalars. A reduction is added in the same order whatever the launch: elements within a chunk
    by the kernel's fixed tree, chunks one after another by the tensor's program."""
    if not _runnable([*lists, *states]):
        return
    first = lists[0][0]
    chunks, tensors, rows, aligned = _stage_tables(lists, states)
    count = len(lists[0])
    buffer = dict(dtype=torch.float64, device=first.device)
    partials = torch.empty(max(rows * accumulators, 1), **buffer)
    per_tensor = torch.empty(max(count * slots, 1), **buffer)
    storage, compute = TYPES[first.dtype]
    bits = _bits(scalars)
    on_device = torch.cuda.device(first.device) if first.device.type == "cuda" else nullcontext()
    with on_device:
        for kind, kernel in steps:
            programs = rows if kind == "chunks" else count
            if programs:
                kernel[(programs,)](
                    chunks,
                    tensors,
                    partials,
                    per_tensor,
                    *bits,
                    BLOCK=BLOCK,
                    STORAGE=storage,
                    COMPUTE=compute,
                    ALIGNED=aligned,
                    **OPTIONS,
                )


def _stage_tables(
    lists: Sequence[Sequence[torch.Tensor]], states: Sequence[Sequence[torch.Tensor]]
) -> tuple[torch.Tensor, torch.Tensor, int, bool]:
    """The chunk and tensor tables of a staged step (see :func:`launch_stages`), the number of
    chunks and whether every array address is a multiple of 16 bytes; cached by contents."""
    first = lists[0][0]
    sizes, addresses, scalar_addresses = _layout(lists, states)

    def build() -> tuple[torch.Tensor, torch.Tensor, int, bool]:
        chunk_rows, tensor_rows = [], []
        for k, size in enumerate(sizes):
            tensor_rows.append([len(chunk_rows), -(-size // CHUNK), size, *scalar_addresses[k]])
            for start in range(0, size, CHUNK):
                offset = start * first.element_size()
                chunk_rows.append(
                    [min(CHUNK, size - start), k, *(a + offset for a in addresses[k])]
                )
        aligned = all(a % 16 == 0 for a in _flat(addresses))
        chunks, tensors = (_as_table(r, first.device) for r in (chunk_rows, tensor_rows))
        return chunks, tensors, len(chunk_rows), aligned

    key = (
        first.device,
        first.element_size(),
        tuple(sizes),
        *map(_flat, (addresses, scalar_addresses)),
    )
    return _cached(_STAGE_TABLES, key, build)


def _flat(rows: list[list[int]]) -> tuple[int, ...]:
    return tuple(x for row in rows for x in row)


@triton.jit
def address(entry, dtype: tl.constexpr, aligned: tl.constexpr):
    """The pointer to ``dtype`` stored (as an int64) at ``entry`` of a chunk table; ``aligned``
    says it is a multiple of 16 bytes, so that loads and stores may be vectorized."""
    pointer = tl.load(entry).to(tl.pointer_type(dtype))
    if aligned:  # on the pointer: Triton does not carry it through the int -> pointer cast
        pointer = tl.multiple_of(pointer, 16)
    return pointer


@triton.jit
def scalar(bits, dtype: tl.constexpr):
    """The float64 whose bits a kernel argument holds, in ``dtype`` (rounded to nearest).

    The interpreter passes a small integer as int32: widening it first gives the same bits."""
    return bits.to(tl.int64).to(tl.float64, bitcast=True).to(dtype)


@triton.jit
def to_storage(x, dtype: tl.constexpr):
    """A float32 or float64 result in the storage ``dtype``: bfloat16 rounded to nearest even,
    NaN as 0x7FC0, as torch rounds float32 to bfloat16. In integer arithmetic, so that the
    interpreter (whose float32 -> bfloat16 conversion truncates) rounds as a GPU does."""
    if dtype == tl.bfloat16:
        bits = x.to(tl.uint32, bitcast=True)
        bits = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
        bits = tl.where(x != x, 0x7FC0, bits)
        return bits.to(tl.uint16).to(tl.bfloat16, bitcast=True)
    else:
        return x.to(dtype)


@triton.jit
def add(a, b):
    """``a + b``: the combine function of a sum's ``tl.reduce`` (``tl.sum`` is a JIT function
    of triton.language, not run by the interpreter where triton was imported without it)."""
    return a + b


@triton.jit
def maximum(a, b):
    """The larger of ``a`` and ``b``, NaN where either is NaN (as NumPy and torch)."""
    return tl.where(a != a, a, tl.where(a >= b, a, b))


@triton.jit
def minimum(a, b):
    """The smaller of ``a`` and ``b``, NaN where either is NaN (as NumPy and torch)."""
    return tl.where(a != a, a, tl.where(a <= b, a, b))


@triton.jit
def sign(x):
    """-1, 0 or 1 in ``x``'s type (0 for NaN, as torch's sign)."""
    return (x > 0).to(x.dtype) - (x < 0).to(x.dtype)


@triton.jit
def div(a, b):
    """``a / b`` correctly rounded (``b`` is a tensor of the compute type)."""
    if b.dtype == tl.float64:
        return a / b
    else:
        return tl.div_rn(a, b)


@triton.jit
def sqrt(x):
    """The correctly rounded square root."""
    if x.dtype == tl.float64:
        return tl.sqrt(x)
    else:
        return tl.sqrt_rn(x)


@triton.jit
def exp(x):
    """e**x, as torch's CUDA exp computes it (libdevice)."""
    if INTERPRETED:
        return tl.exp(x)
    else:
        return libdevice.exp(x)


@triton.jit
def log(x):
    """The natural logarithm, as torch's CUDA log computes it (libdevice)."""
    if INTERPRETED:
        return tl.log(x)
    else:
        return libdevice.log(x)


@triton.jit
def power(x, y):
    """x**y, as torch's CUDA pow computes it (libdevice)."""
    tl.static_assert(not INTERPRETED, "Triton's interpreter has no pow (libdevice): run on a GPU")
    return libdevice.pow(x, y)

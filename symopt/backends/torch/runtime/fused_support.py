"""What the generated tests of the fused path (fused=True) share: runs of the fused and foreach
paths on the same random steps, and the foreach path with a correctly rounded square root.

torch's CPU ``sqrt`` (Intel MKL's vector square root) rounds about 1% of its results to the
neighbouring value; the fused kernels compute the correctly rounded one. With the foreach path's
square root replaced by NumPy's (correctly rounded), a fused float64 or float32 step must give its
values bit for bit.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from unittest import mock

import numpy as np
import pytest
import torch

TORCH_SQRT = torch.sqrt


def _ieee_sqrt(x, *, out=None):
    if x.dtype == torch.bfloat16:  # NumPy has none (bfloat16 steps are compared otherwise)
        return TORCH_SQRT(x, out=out)
    result = torch.from_numpy(np.sqrt(x.detach().numpy()))
    return result if out is None else out.copy_(result)


def _ieee_foreach_sqrt_(tensors):
    for x in tensors:
        _ieee_sqrt(x, out=x)


@contextlib.contextmanager
def correctly_rounded_sqrt():
    """``torch.sqrt`` and ``torch._foreach_sqrt_`` replaced by NumPy's correctly rounded square
    root: torch's CPU sqrt (Intel MKL's vector sqrt) rounds about 1% of its results to the
    neighbouring value; the fused kernels use the IEEE one."""
    with mock.patch.object(torch, "sqrt", _ieee_sqrt):
        with mock.patch.object(torch, "_foreach_sqrt_", _ieee_foreach_sqrt_):
            yield


def need_c_compiler():
    """Skip where fused=True cannot build its CPU kernel."""
    if not (os.environ.get("CC") or any(shutil.which(c) for c in ("cc", "gcc", "clang"))):
        pytest.skip("fused=True on the CPU builds its kernel with a C compiler: none found")


def fused_run(make_opt, dtype, fused, steps=10, seed=5, upcast=None):
    """Parameters and state after ``steps`` random steps of the fused or the foreach path; the
    last tensor is long enough to be split between threads. ``upcast``: run in this dtype from
    ``dtype``'s values, one step."""
    gen = torch.Generator().manual_seed(seed)
    shapes = [(4, 3), (1,), (517,), (40000,)]
    params = [torch.nn.Parameter(torch.randn(s, generator=gen).to(dtype)) for s in shapes]
    grads = [torch.randn(s, generator=gen).to(dtype) for s in shapes]
    opt = make_opt(params, **({"fused": True} if fused else {"foreach": True}))
    for k in range(steps):
        for p, g in zip(params, grads, strict=True):
            p.grad = g * 10.0 ** (k % 4 - 2) + 0.1 * torch.randn(g.shape, generator=gen).to(dtype)
        if k == steps - 1 and upcast is not None:
            state = {id(p): dict(opt.state[p]) for p in params}
            params32 = [torch.nn.Parameter(p.detach().to(upcast)) for p in params]
            opt32 = make_opt(params32, foreach=True)
            for p, q in zip(params, params32, strict=True):
                q.grad = p.grad.to(upcast)
                opt32.state[q] = {
                    n: v.to(upcast) if isinstance(v, torch.Tensor) and v.dim() else v
                    for n, v in state[id(p)].items()
                }
            opt32.step()
            return [*(q.detach().to(dtype) for q in params32), *_state(opt32, params32, dtype)]
        opt.step()
    return [*(p.detach() for p in params), *_state(opt, params, dtype)]


def _state(opt, params, dtype):
    return [
        x.to(dtype) if x.dim() else x
        for p in params
        for x in opt.state[p].values()
        if isinstance(x, torch.Tensor)
    ]


def assert_fused_matches_foreach(make_opt, dtype, bitwise=True):
    """fused=True gives the foreach path's values: bit for bit with the foreach path's square
    root correctly rounded (without: within a few ulps, torch's sqrt's rounding). A kernel with
    exp, log or pow (``bitwise=False``) agrees to 1e-12 (float64) / 1e-5 (float32) only: torch
    computes those with its own vector library."""
    need_c_compiler()
    fused = fused_run(make_opt, dtype, True)
    with correctly_rounded_sqrt():
        ieee = fused_run(make_opt, dtype, False)
    plain = fused_run(make_opt, dtype, False)
    rtol = 1e-12 if dtype == torch.float64 else 1e-5
    for a, b, c in zip(fused, ieee, plain, strict=True):
        if bitwise:
            assert torch.equal(a, b) or torch.allclose(a, b, rtol=0, atol=0, equal_nan=True)
        scale = float(c.double().abs().max()) + 1e-300
        assert torch.allclose(a.double(), c.double(), rtol=rtol, atol=rtol * scale, equal_nan=True)


def assert_fused_bfloat16_rounds_once(make_opt):
    """A fused bfloat16 step computes in float32 and rounds once: it equals the float32
    foreach step (correctly rounded sqrt) from the same bfloat16 values, rounded to bfloat16."""
    need_c_compiler()
    fused = fused_run(make_opt, torch.bfloat16, True, steps=3)
    with correctly_rounded_sqrt():
        once = fused_run(make_opt, torch.bfloat16, True, steps=3, upcast=torch.float32)
    for a, b in zip(fused, once, strict=True):
        assert a.dtype == b.dtype
        assert torch.equal(a, b) or torch.allclose(a, b, rtol=0, atol=0, equal_nan=True)


#: The parameters of the staged kernels' tests (LAMB, LARS, ...): tensors of one block and of
#: several (10100 and 40000 elements: blocks of 2048 or more), vectors and matrices (LARS's two
#: updates), and many small ones; over 32768 elements in all, so that two threads share them.
STAGE_SHAPES = [(4, 3), (1,), (517,), (3, 2, 2), (100, 101), (40000,)]
STAGE_SHAPES += [(3, 5) if k % 2 else (7,) for k in range(24)]


def _stage_params(dtype, gen):
    return [torch.nn.Parameter(torch.randn(s, generator=gen).to(dtype)) for s in STAGE_SHAPES]


def _stage_grads(params, k, gen):
    return [(torch.randn(p.shape, generator=gen) * 10.0 ** (k % 4 - 2)).to(p.dtype) for p in params]


def stages_run(make_opt, dtype, fused, steps=6, seed=5):
    """Parameters and state after ``steps`` random steps of the fused or the tensor path."""
    gen = torch.Generator().manual_seed(seed)
    params = _stage_params(dtype, gen)
    opt = make_opt(params, fused=fused)
    with _tensor_path_refused(type(opt)) if fused else contextlib.nullcontext():
        for k in range(steps):
            for p, g in zip(params, _stage_grads(params, k, gen), strict=True):
                p.grad = g
            opt.step()
    return [*(p.detach() for p in params), *_state(opt, params, dtype)]


def _tensor_path_refused(cls) -> contextlib.ExitStack:
    """The class's tensor-path updates replaced by a failure: a fused run that fell back to them
    would compare the tensor path with itself."""

    def refuse(*args):
        raise AssertionError(f"{cls.__name__}: fused=True ran the tensor path")

    stack = contextlib.ExitStack()
    for name in ("update", "update_other"):
        if getattr(cls, name, None) is not None:
            stack.enter_context(mock.patch.object(cls, name, staticmethod(refuse)))
    return stack


def assert_stages_match_tensor_path(make_opt, dtype):
    """fused=True gives the tensor path's values up to rounding: the paths differ in the order
    and precision of the per-tensor sums (here in double, block by block; there torch's, in the
    dtype) and in how each prints the element-wise arithmetic. So 1e-12 relative to each
    tensor's largest value in float64, 1e-5 in float32."""
    need_c_compiler()
    fused = stages_run(make_opt, dtype, True)
    plain = stages_run(make_opt, dtype, False)
    rtol = 1e-12 if dtype == torch.float64 else 1e-5
    for a, b in zip(fused, plain, strict=True):
        scale = float(b.double().abs().max())
        assert torch.allclose(a.double(), b.double(), rtol=rtol, atol=rtol * scale, equal_nan=True)


def assert_stages_bfloat16_rounds_once(make_opt, steps=3):
    """A fused bfloat16 step computes in float32 and rounds once: from the same bfloat16
    parameters, gradients and state, it equals the fused float32 step rounded to bfloat16, bit
    for bit (after a first step, which sets the state up in bfloat16)."""
    need_c_compiler()
    gen = torch.Generator().manual_seed(3)
    params = _stage_params(torch.bfloat16, gen)
    opt = make_opt(params, fused=True)
    for k in range(steps + 1):
        grads = _stage_grads(params, k, gen)
        wide = [torch.nn.Parameter(p.detach().float()) for p in params]
        opt32 = make_opt(wide, fused=True)
        for p, q, g in zip(params, wide, grads, strict=True):
            p.grad, q.grad = g, g.float()
            opt32.state[q] = {
                n: v.float() if isinstance(v, torch.Tensor) else v for n, v in opt.state[p].items()
            }
        opt.step()
        if k == 0:
            continue
        opt32.step()
        for a, b in zip(_stage_values(opt, params), _stage_values(opt32, wide), strict=True):
            assert torch.equal(a.view(torch.int16), b.to(torch.bfloat16).view(torch.int16))


def _stage_values(opt, params):
    return [*(p.detach() for p in params), *_state(opt, params, params[0].dtype)]


def assert_stages_threads_agree(make_opt):
    """One thread and two give the same bits (float32: sums in blocks fixed by the sizes)."""
    need_c_compiler()
    threads = torch.get_num_threads()
    try:
        results = []
        for n in (1, 2):
            torch.set_num_threads(n)
            results.append(stages_run(make_opt, torch.float32, True))
    finally:
        torch.set_num_threads(threads)
    for a, b in zip(*results, strict=True):
        assert torch.equal(a, b)

"""symopt_c's classes with torch.optim's arguments: ``symopt_c.X(params, **kwargs)`` gives the
numbers of ``torch.optim.X(params, **kwargs)``, as test_numpy_api.py checks for symopt_numpy
(same comparisons: every row of the flag matrix, float64, 100 steps, three arrays, torch's state
keys and values, torch's messages for the rows it refuses), for every drop-in the C target
generates (it refuses those with row/column state or matrix updates: Adafactor, Muon). The class
mechanics are the NumPy target's (the same ``_api.py``, tested there); here what the C binding
adds: a kernel per variant in one library, pointer tables reused across steps and settings,
float32.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "generated" / "c"))

import symopt_c  # noqa: E402
from drop_ins import drop_ins  # noqa: E402
from test_numpy_api import cases, compare_with_torch, stream  # noqa: E402

from symopt.backends.c import CBackend  # noqa: E402
from symopt.spec.family import module_name, variants  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread", "float64_default")


def c_drop_ins() -> dict:
    """The drop-ins the C target generates."""
    return {n: s for n, s in drop_ins().items() if CBackend().unsupported(s) is None}


@pytest.mark.parametrize(("name", "kwargs"), cases(c_drop_ins()))
def test_same_numbers_as_torch_optim(name, kwargs):
    spec = drop_ins()[name]
    compare_with_torch(spec, getattr(symopt_c, spec.class_name), kwargs)


def test_every_variant_is_a_kernel_of_the_library():
    """Each drop-in's class is exported under torch's class name; each of its variants is a C
    kernel of its own (``symopt_adam__amsgrad_step_f64``) bound by a private module."""
    assert c_drop_ins(), "the C target generates no drop-in"
    for name, spec in c_drop_ins().items():
        cls = getattr(symopt_c, spec.class_name)
        assert symopt_c.OPTIMIZERS[name] is cls
        kernels = set(cls.kernels.values())
        assert {k.__module__ for k in kernels} == {
            f"symopt_c.{module_name(v)}" for v in variants(spec)
        }
        for kernel in kernels:
            assert kernel.NAME == kernel.__module__.removeprefix("symopt_c._")
            assert set(kernel.kernels()) == {np.dtype(np.float32), np.dtype(np.float64)}


def test_flag_changes_between_steps_reuse_each_kernels_tables():
    """Turning amsgrad on and off between steps switches kernels; each keeps its pointer
    tables, and the state the amsgrad kernel added stays. The result equals the NumPy target's
    class driven the same way (whose kernels share no code with the C ones)."""
    import symopt_numpy

    spec = drop_ins()["adam"]
    ws, grads = stream(spec, 30)
    opts = [cls([w.copy() for w in ws], lr=0.01) for cls in (symopt_c.Adam, symopt_numpy.Adam)]
    for k, gs in enumerate(grads):
        for opt in opts:
            opt.amsgrad = k % 3 == 1
            opt.step(gs)
    for a, b in zip(opts[0].params, opts[1].params, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)
    assert set(opts[0].state[0]) == {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"}
    assert len(opts[0]._cache) == 2


def test_float32_and_float64_arrays_in_one_optimizer():
    """Arrays of both dtypes: each dtype's arrays in one call of its kernel, float32 within
    float32's rounding of the float64 run."""
    spec = drop_ins()["adam"]
    ws, grads = stream(spec, 50)
    mixed = symopt_c.Adam([ws[0].astype(np.float32), *[w.copy() for w in ws[1:]]], lr=0.01)
    double = symopt_c.Adam([w.copy() for w in ws], lr=0.01)
    for gs in grads:
        mixed.step([gs[0].astype(np.float32), *gs[1:]])
        double.step(gs)
    assert mixed.params[0].dtype == np.float32
    assert mixed.state[0]["exp_avg"].dtype == np.float32
    np.testing.assert_allclose(mixed.params[0], double.params[0], rtol=1e-4, atol=1e-5)
    for a, b in zip(mixed.params[1:], double.params[1:], strict=True):
        np.testing.assert_array_equal(a, b)


def test_state_dict_resumes_identically():
    spec = drop_ins()["adam"]
    ws, grads = stream(spec, 40)
    kwargs = {"amsgrad": True, "weight_decay": 0.1, "maximize": True}
    opt = symopt_c.Adam([w.copy() for w in ws], **kwargs)
    for gs in grads[:20]:
        opt.step(gs)
    saved = opt.state_dict()
    resumed = symopt_c.Adam([p.copy() for p in opt.params])
    for gs in grads[20:]:
        opt.step(gs)
    resumed.load_state_dict(saved)
    for gs in grads[20:]:
        resumed.step(gs)
    for a, b in zip(resumed.params, opt.params, strict=True):
        np.testing.assert_array_equal(a, b)

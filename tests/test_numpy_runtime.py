"""The runtime every generated NumPy optimizer runs on (symopt_numpy/_runtime.py), tested once:
chunking (ragged and production-sized chunks), threads, several arrays and dtypes in one step,
state_dict round trips and argument checks. The per-spec math is tested by each generated test
against the reference stepper; here the oracle is the reference too, or a run that must be
bit-identical (one chunk, one thread).

The mechanics are tested on the kernel classes, which run on this runtime: ``_adam.Adam`` is
Adam's default setting under the spec's names (``beta1``, state ``m`` and ``v``). The classes with
torch.optim's arguments (``symopt_numpy.Adam``, ``_api.py``) dispatch to them; test_numpy_api.py
tests those."""

from __future__ import annotations

import numpy as np
import pytest
import symopt_numpy  # noqa: E402  (tests/conftest.py puts generated/numpy on sys.path)
from symopt_numpy import _runtime
from symopt_numpy._adam import Adam, adam_step
from symopt_numpy._api import ApiOptimizer

from symopt.reference import ReferenceStepper
from symopt.resources import builtin_specs


def kernel_classes() -> dict[str, type]:
    """Every class that runs on this runtime, by module: the plain specs' classes and each
    distinct kernel of a family's (``_adam``, ``_adam__amsgrad``, ...)."""
    out = {}
    for cls in symopt_numpy.OPTIMIZERS.values():
        family = issubclass(cls, ApiOptimizer)  # its kernels: a setting of its flags -> class
        for kernel in dict.fromkeys(cls.kernels.values()) if family else [cls]:
            out[kernel.__module__.rpartition(".")[2]] = kernel
    return dict(sorted(out.items()))


KERNELS = kernel_classes()
DTYPES = [np.float64, np.float32]
RTOL = {np.float64: 1e-10, np.float32: 2e-4}


def assert_close(opt, ref, dtype):
    for i, p in enumerate(opt.params):
        pairs = [(p, ref.params[i])] + [(opt.state[i][n], ref.state[i][n]) for n in opt.state_names]
        for actual, expected in pairs:
            assert actual.dtype == dtype
            scale = float(np.max(np.abs(expected), initial=0.0))
            np.testing.assert_allclose(actual, expected, rtol=0, atol=RTOL[dtype] * (scale + 1e-30))


def run(cls, ws, grads, **hyper):
    opt = cls([w.copy() for w in ws], **hyper)
    for gs in grads:
        opt.step(gs)
    return opt


def arrays_of(opt):
    return [*opt.params, *(a for s in opt.state for a in s.values())]


def test_split_cuts_ranges_into_nearly_equal_runs():
    a, b = (np.zeros(10),), (np.zeros(3),)
    parts = _runtime.split([(a, 0, 10), (b, 0, 3)], 3)
    assert [[(r[0] is a, r[1], r[2]) for r in part] for part in parts] == [
        [(True, 0, 5)],
        [(True, 5, 10)],
        [(False, 0, 3)],
    ]
    assert _runtime.split([(a, 0, 10)], 1) == [[(a, 0, 10)]]
    assert _runtime.split([(a, 0, 0)], 2) == [[(a, 0, 0)]]


@pytest.mark.parametrize("dtype", DTYPES)
def test_production_chunk_size_matches_reference(dtype):
    n = 2 * (_runtime.CHUNK_BYTES // np.dtype(dtype).itemsize) + 3
    rng = np.random.default_rng(8)
    w = rng.standard_normal(n).astype(dtype)
    grads = [[rng.standard_normal(n).astype(dtype)] for _ in range(5)]
    opt = run(Adam, [w], grads)
    ref = ReferenceStepper(builtin_specs()["adam"], [w])
    for gs in grads:
        ref.step(gs)
    assert_close(opt, ref, dtype)


@pytest.mark.parametrize("chunk_bytes", [8, 8000, 1 << 17])
def test_chunk_size_does_not_change_the_bits(chunk_bytes, monkeypatch):
    rng = np.random.default_rng(2)
    ws = [rng.standard_normal(n) for n in (4099, 1, 300)]
    grads = [[rng.standard_normal(w.shape) for w in ws] for _ in range(3)]
    monkeypatch.setattr(_runtime, "CHUNK_BYTES", 1 << 30)
    whole = run(Adam, ws, grads)
    monkeypatch.setattr(_runtime, "CHUNK_BYTES", chunk_bytes)
    chunked = run(Adam, ws, grads)
    for a, b in zip(arrays_of(whole), arrays_of(chunked), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", ["_adam", "nesterov"])
def test_threads_give_bit_identical_results(name, monkeypatch):
    monkeypatch.setattr(_runtime, "THREAD_MIN_ELEMENTS", 1)
    monkeypatch.setattr(_runtime, "CHUNK_BYTES", 8000)
    rng = np.random.default_rng(9)
    ws = [rng.standard_normal(n) for n in (5000, 3, 2500)]
    grads = [[rng.standard_normal(w.shape) for w in ws] for _ in range(5)]
    runs = []
    for threads in (1, 2, 3):
        monkeypatch.setattr(_runtime, "THREADS", threads)
        runs.append(arrays_of(run(KERNELS[name], ws, grads)))
    for other in runs[1:]:
        for a, b in zip(runs[0], other, strict=True):
            np.testing.assert_array_equal(a, b)


def test_several_arrays_of_both_dtypes_in_one_step(monkeypatch):
    monkeypatch.setattr(_runtime, "CHUNK_BYTES", 8000)
    rng = np.random.default_rng(3)
    ws = [rng.standard_normal(s).astype(d) for s, d in [((4, 3), np.float32), ((1,), np.float64)]]
    ws.append(rng.standard_normal(2001).astype(np.float32))
    grads = [[rng.standard_normal(w.shape).astype(w.dtype) for w in ws] for _ in range(30)]
    together = run(Adam, ws, grads)
    for i, w in enumerate(ws):
        alone = run(Adam, [w], [[gs[i]] for gs in grads])
        np.testing.assert_array_equal(together.params[i], alone.params[0])
        ref = ReferenceStepper(builtin_specs()["adam"], [w])
        for gs in grads:
            ref.step([gs[i]])
        assert_close(alone, ref, w.dtype.type)


def test_every_class_with_a_librarys_arguments_runs_kernels_of_this_runtime():
    families = [c for c in symopt_numpy.OPTIMIZERS.values() if issubclass(c, ApiOptimizer)]
    at_defaults = symopt_numpy.Adam([np.zeros(3)])
    assert at_defaults.kernel(at_defaults.values(np.float64)) is Adam and len(families) >= 10
    for family in families:
        name = family.__module__.rpartition(".")[2]
        for kernel in family.kernels.values():
            assert issubclass(kernel, _runtime.Optimizer), kernel
            assert kernel.__module__.rpartition(".")[2].startswith(f"_{name}"), kernel


@pytest.mark.parametrize("name", KERNELS)
def test_state_dict_resume_is_identical(name):
    cls = KERNELS[name]
    rng = np.random.default_rng(5)
    w = rng.standard_normal((5, 7))
    grads = [[rng.standard_normal((5, 7))] for _ in range(40)]
    opt = run(cls, [w], grads[:20])
    saved = opt.state_dict()
    resumed = cls([opt.params[0].copy()])
    for gs in grads[20:]:
        opt.step(gs)
    resumed.load_state_dict(saved)
    for gs in grads[20:]:
        resumed.step(gs)
    for a, b in zip(arrays_of(resumed), arrays_of(opt), strict=True):
        np.testing.assert_array_equal(a, b)
    assert saved["steps"] == 20, "state_dict must be a snapshot, not a live view"
    assert resumed.hyperparameters == tuple(saved["hyper"]) == cls.hyperparameters


def test_load_state_dict_rejects_what_does_not_fit():
    opt = Adam([np.zeros(3)])
    good = opt.state_dict()
    with pytest.raises(ValueError, match="parameter states"):
        opt.load_state_dict({**good, "state": []})
    with pytest.raises(ValueError, match="keys"):
        opt.load_state_dict({**good, "state": [{"m": np.zeros(3)}]})
    with pytest.raises(ValueError, match="shape"):
        opt.load_state_dict({**good, "state": [{"m": np.zeros(4), "v": np.zeros(4)}]})
    with pytest.raises(ValueError, match="unknown hyperparameter"):
        opt.load_state_dict({**good, "hyper": {"gamma": 1.0}})
    assert opt.steps == 0


def test_arguments_are_checked():
    opt = Adam([np.zeros(3)])
    with pytest.raises(ValueError, match="grads"):
        opt.step([np.zeros(4)])
    with pytest.raises(ValueError, match="expected 1 gradient"):
        opt.step([])
    with pytest.raises(ValueError, match="grads"):
        opt.step([np.zeros(3, dtype=np.float32)])
    with pytest.raises(TypeError, match="float32 or float64"):
        Adam([np.zeros(3, dtype=np.int64)])
    with pytest.raises(ValueError, match="C-contiguous"):
        Adam([np.zeros((3, 4))[:, ::2]])
    frozen = np.zeros(3)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        Adam([frozen])
    opt.lr = -1.0
    with pytest.raises(ValueError, match="lr"):
        opt.step([np.zeros(3)])
    assert opt.steps == 0


def test_functional_step_checks_its_arrays():
    w = np.zeros(3)
    with pytest.raises(ValueError, match="g has shape"):
        adam_step(w, np.zeros(4), np.zeros(3), np.zeros(3), 1)
    g = np.zeros(3)
    g.flags.writeable = False  # inputs are read-only: that is fine
    adam_step(w, g, np.zeros(3), np.zeros(3), 1)
    m = np.zeros(3)
    m.flags.writeable = False  # state is updated in place
    with pytest.raises(ValueError, match="m must be writeable"):
        adam_step(w, g, m, np.zeros(3), 1)


def test_scratch_buffers_grow_for_a_kernel_that_needs_more():
    small = _runtime._scratch(np.dtype(np.float64), 10, 1)
    more = _runtime._scratch(np.dtype(np.float64), 20, 3)
    assert len(small) == 1 and len(more) == 3 and all(b.size >= 20 for b in more)


def test_kfac_state_dict_resume_is_identical():
    """The K-FAC runtime (_kfac.py): a resumed optimizer continues bit for bit."""
    rng = np.random.default_rng(7)
    W, b = rng.standard_normal((2, 3)), rng.standard_normal(3)
    grads = [rng.standard_normal((2, 3)), rng.standard_normal(3)]
    a, rows = rng.standard_normal((5, 2)), rng.standard_normal((15, 3))
    opt = symopt_numpy.KFAC([W, b], inverse_every=2)
    opt.step(grads, [a], [rows])
    saved = opt.state_dict()
    other = symopt_numpy.KFAC([W.copy(), b.copy()])
    other.load_state_dict(saved)
    for _ in range(3):
        opt.step(grads, [a], [rows * 2])
        other.step(grads, [a], [rows * 2])
    for p, q in zip(opt.params, other.params, strict=True):
        np.testing.assert_array_equal(p, q)
    assert saved["steps"] == 1 and other.steps == 4
    with pytest.raises(ValueError, match="unknown hyperparameter"):
        other.load_state_dict({**saved, "hyper": {"nope": 1.0}})

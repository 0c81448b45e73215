"""The fused path of the generated PyTorch optimizers (``symopt_torch/_fused.py``), tested once:
the arguments torch.optim refuses with it, groups it hands back to the foreach path (with a
warning), bad state, threads, maximize, state_dict and the build cache. Each kernel's values
(float64 and float32 against the foreach path, bfloat16) are tested by its generated tests."""

import copy
import inspect
import sys
import warnings
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "generated" / "torch"))
sys.path.insert(0, str(ROOT / "generated" / "torch" / "tests"))

import fused_support as ts  # noqa: E402
import symopt_torch  # noqa: E402
from symopt_torch import _fused  # noqa: E402
from symopt_torch._adafactor import Adafactor  # noqa: E402
from symopt_torch._adam import Adam as AdamKernel  # noqa: E402
from symopt_torch._api import ApiOptimizer  # noqa: E402


@pytest.fixture(autouse=True)
def compiler():
    ts.need_c_compiler()


def params(dtype=torch.float64, shapes=((5, 3), (40000,), (1,)), seed=0):
    gen = torch.Generator().manual_seed(seed)
    out = [torch.nn.Parameter(torch.randn(s, generator=gen, dtype=dtype)) for s in shapes]
    for p in out:
        p.grad = torch.randn(p.shape, generator=gen, dtype=dtype)
    return out


def run(make, ps, steps=3):
    opt = make(ps)
    for _ in range(steps):
        opt.step()
    return opt


def assert_same(a, b):
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x, y)


def test_fused_and_foreach_together_are_refused_as_torch_refuses_them():
    with pytest.raises(RuntimeError, match="`fused` and `foreach` cannot be `True` together"):
        torch.optim.Adam(params(), fused=True, foreach=True)
    with pytest.raises(RuntimeError, match="`fused` and `foreach` cannot be `True` together"):
        symopt_torch.Adam(params(), fused=True, foreach=True)
    with pytest.raises(RuntimeError, match="`fused` and `foreach` cannot be `True` together"):
        AdamKernel(params(), fused=True, foreach=True)


def test_a_class_whose_kernels_are_not_element_wise_refuses_fused_in_one_line():
    """No built-in drop-in is such a class (torch.optim's Adafactor, Muon, ... take no fused)."""

    class WholeTensor(ApiOptimizer):
        kernels = {(): Adafactor}  # row/column reductions: no fused kernel (LAMB has one)
        check_arguments = staticmethod(lambda **_: None)

    with pytest.raises(RuntimeError, match="WholeTensor: fused=True: fused kernels are generated"):
        WholeTensor(params(), {"lr": 1e-3, "fused": True})


def test_the_drop_in_adam_with_fused_gives_its_foreach_values_for_every_setting():
    """amsgrad and weight decay choose other kernels; the state keys and the 0-d step counter
    stay torch.optim's."""
    for kwargs in ({}, {"amsgrad": True}, {"weight_decay": 0.1}, {"maximize": True}):
        with ts.correctly_rounded_sqrt():
            a = run(lambda p, kw=kwargs: symopt_torch.Adam(p, lr=0.01, **kw), pa := params())
        b = run(
            lambda p, kw=kwargs: symopt_torch.Adam(p, lr=0.01, fused=True, **kw), pb := params()
        )
        assert_same(pa, pb)
        for x, y in zip(pa, pb, strict=True):
            assert a.state[x].keys() == b.state[y].keys()
            assert all(torch.equal(a.state[x][k], b.state[y][k]) for k in a.state[x])
            assert b.state[y]["step"].dim() == 0 and float(b.state[y]["step"]) == 3


def test_threads_follow_torch_and_change_no_result():
    threads = torch.get_num_threads()
    try:
        results = []
        for n in (1, 2):
            torch.set_num_threads(n)
            results.append(params())
            run(lambda p: AdamKernel(p, fused=True), results[-1])
    finally:
        torch.set_num_threads(threads)
    assert_same(*results)


def test_non_contiguous_and_float16_groups_run_the_foreach_path_with_a_warning():
    base = torch.randn(6, 8, dtype=torch.float64)
    for make_params in (
        lambda: [torch.nn.Parameter(base.clone().t())],  # a transposed view: not contiguous
        lambda: [torch.nn.Parameter(base.clone().half())],
    ):
        pa, pb = make_params(), make_params()
        for p in (*pa, *pb):
            p.grad = torch.ones_like(p)
        run(lambda p: AdamKernel(p, foreach=True), pa)
        _fused._warned.clear()
        with pytest.warns(UserWarning, match="run the foreach path instead"):
            run(lambda p: AdamKernel(p, fused=True), pb)
        assert_same(pa, pb)


def test_a_state_tensor_of_another_size_is_refused_before_the_kernel_runs():
    ps = params()
    opt = run(lambda p: AdamKernel(p, fused=True), ps, steps=1)
    opt.state[ps[1]]["m"] = torch.zeros(10, dtype=torch.float64)
    before = ps[1].detach().clone()
    with pytest.raises(RuntimeError, match=r"a state or gradient of \(10,\) torch.float64"):
        opt.step()
    assert torch.equal(ps[1], before)


def test_state_dict_round_trip_continues_the_same_run():
    pa, pb = params(), params()
    a = run(lambda p: AdamKernel(p, fused=True), pa, steps=2)
    b = AdamKernel(pb, fused=True)
    b.load_state_dict(copy.deepcopy(a.state_dict()))  # torch shares tensors otherwise
    with torch.no_grad():
        for x, y in zip(pa, pb, strict=True):
            y.copy_(x)
    a.step()
    b.step()
    assert_same(pa, pb)


def test_a_missing_compiler_is_one_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("CC", "no-such-compiler-symopt")
    monkeypatch.setattr(_fused, "_libraries", {})
    monkeypatch.setattr(_fused, "_entries", {})
    with pytest.raises(_fused.FusedUnavailable, match="CC is 'no-such-compiler-symopt'"):
        run(lambda p: AdamKernel(p, fused=True), params(), steps=1)


def test_kernels_are_built_once_into_the_cache_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("SYMOPT_TORCH_CACHE", str(tmp_path))
    monkeypatch.setattr(_fused, "_libraries", {})
    monkeypatch.setattr(_fused, "_entries", {})
    run(lambda p: AdamKernel(p, fused=True), params(), steps=1)
    built = sorted(p.name for p in tmp_path.iterdir())
    assert len(built) == 1 and built[0].startswith("_adam-") and built[0].endswith(".so")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        monkeypatch.setattr(_fused, "_libraries", {})
        monkeypatch.setattr(_fused, "_entries", {})
        run(lambda p: AdamKernel(p, fused=True), params(), steps=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == built


def test_the_drop_ins_that_take_fused_are_those_the_docs_name():
    names = sorted(
        name
        for name, cls in vars(symopt_torch).items()
        if isinstance(cls, type)
        and issubclass(cls, ApiOptimizer)
        and "fused" in inspect.signature(cls).parameters
    )
    assert names == ["Adagrad", "Adam", "AdamW", "SGD"]
    text = (ROOT / "docs" / "torch-parity.md").read_text(encoding="utf-8")
    assert f"`fused=True` ({', '.join(names)}: the classes" in text

"""The fused path of the generated PyTorch optimizers with per-tensor reductions (LAMB, LARS,
ASGD, torch's NAdam: ``_fused.run_stages``), tested once: the groups it hands back to the tensor
path (with a warning), the classes that refuse it, bad state refused before anything is written,
checkpoints shared with the tensor path, gradients that share memory with the parameter, LARS
against pytorch_optimizer, the kernels' sources free of compiler warnings. Each kernel's values
(float64 and float32 against the tensor path, bfloat16, threads) are tested by its generated
tests."""

import copy
import subprocess
import sys
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
from symopt_torch._asgd import ASGD  # noqa: E402
from symopt_torch._muon import Muon  # noqa: E402
from symopt_torch.lamb import Lamb  # noqa: E402
from symopt_torch.lars import Lars  # noqa: E402

#: float64 steps of the two paths differ in the order of the norms' sums only (and in how each
#: groups the element-wise arithmetic): relative to each tensor's largest value.
RTOL = 1e-12


@pytest.fixture(autouse=True)
def compiler():
    ts.need_c_compiler()


def params(dtype=torch.float64, shapes=((5, 3), (40000,), (1,), (7,)), seed=0):
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


def tensors(opt, ps):
    """The parameters and every state tensor, in order."""
    return [*ps, *(v for p in ps for v in opt.state[p].values() if isinstance(v, torch.Tensor))]


def assert_close(a, b, rtol=RTOL):
    for x, y in zip(a, b, strict=True):
        scale = float(y.detach().double().abs().max())
        assert torch.allclose(x.detach(), y.detach(), rtol=rtol, atol=rtol * scale)


def test_float16_and_non_contiguous_groups_run_the_tensor_path_with_a_warning():
    base = torch.randn(6, 8, dtype=torch.float64)
    for make_params in (
        lambda: [torch.nn.Parameter(base.clone().t())],  # a transposed view: not contiguous
        lambda: [torch.nn.Parameter(base.clone().half())],
    ):
        pa, pb = make_params(), make_params()
        for p in (*pa, *pb):
            p.grad = torch.ones_like(p)
        run(lambda p: Lamb(p, weight_decay=0.1), pa)
        _fused._warned.clear()
        with pytest.warns(UserWarning, match="run the tensor path instead"):
            run(lambda p: Lamb(p, weight_decay=0.1, fused=True), pb)
        assert all(torch.equal(a, b) for a, b in zip(pa, pb, strict=True))


@pytest.mark.parametrize(
    ("cls", "why"),
    [
        (Adafactor, "row/column reductions"),
        (Muon, "matrix products"),
    ],
)
def test_classes_without_a_fused_kernel_refuse_it_in_one_line(cls, why):
    with pytest.raises(RuntimeError, match=f"^{cls.__name__}: fused=True: .*{why}[^\n]*$"):
        cls([torch.nn.Parameter(torch.zeros(3, 4))], fused=True)
    opt = cls([torch.nn.Parameter(torch.zeros(3, 4))])
    with pytest.raises(RuntimeError, match="fused=True"):
        opt.add_param_group({"params": [torch.nn.Parameter(torch.zeros(2, 2))], "fused": True})


def test_a_state_of_another_size_is_refused_before_anything_is_written():
    ps = params()
    opt = run(lambda p: Lamb(p, fused=True), ps, steps=1)
    opt.state[ps[1]]["m"] = torch.zeros(10, dtype=torch.float64)
    before = [t.clone() for t in tensors(opt, ps)]
    with pytest.raises(RuntimeError, match="fused step: a state or gradient of \\(10,\\)"):
        opt.step()
    assert all(torch.equal(a, b) for a, b in zip(before, tensors(opt, ps), strict=True))


def test_a_per_tensor_state_that_is_not_0_d_is_refused():
    ps = params()
    opt = run(lambda p: ASGD(p, fused=True), ps, steps=1)
    opt.state[ps[0]]["eta"] = torch.full((15,), 0.01, dtype=torch.float64)  # p's size, not 0-d
    before = [t.clone() for t in tensors(opt, ps)]
    with pytest.raises(RuntimeError, match="fused step: a 0-d state of \\(15,\\)"):
        opt.step()
    assert all(torch.equal(a, b) for a, b in zip(before, tensors(opt, ps), strict=True))


@pytest.mark.parametrize("first_fused", [True, False])
def test_checkpoints_move_between_the_fused_and_the_tensor_path(first_fused):
    """Same state keys, shapes and dtypes (the per-tensor scalars 0-d), the same step counter: a
    run resumed on the other path gives the values of a run on one path."""

    def make(p, fused):
        return ASGD(p, t0=2.0, fused=fused)  # t0=2: the average starts moving at step 3

    ps, qs, straight = params(), params(), params()
    first = run(lambda p: make(p, first_fused), ps)
    other = run(lambda p: make(p, not first_fused), qs)
    for p, q in zip(ps, qs, strict=True):
        a, b = first.state[p], other.state[q]
        assert a.keys() == b.keys() and a["step"] == b["step"] == 3
        shapes = [(v.shape, v.dtype) for v in a.values() if isinstance(v, torch.Tensor)]
        assert shapes == [(v.shape, v.dtype) for v in b.values() if isinstance(v, torch.Tensor)]
        assert a["eta"].dim() == 0
    resumed = make([torch.nn.Parameter(p.detach().clone()) for p in ps], not first_fused)
    rs = resumed.param_groups[0]["params"]
    for r, p in zip(rs, ps, strict=True):
        r.grad = p.grad.clone()
    checkpoint = copy.deepcopy(first.state_dict())
    checkpoint["param_groups"][0]["fused"] = not first_fused
    resumed.load_state_dict(checkpoint)
    for _ in range(3):
        resumed.step()
    whole = run(lambda p: make(p, first_fused), straight, steps=6)
    assert_close(tensors(resumed, rs), tensors(whole, straight))


def test_a_gradient_sharing_memory_with_its_parameter_is_copied_first():
    ps, qs = params(), params()
    for p in ps:
        p.grad = p.detach()  # the parameter's own memory
    for q in qs:
        q.grad = q.detach().clone()
    a = run(lambda p: Lamb(p, weight_decay=0.1, fused=True), ps, steps=1)
    b = run(lambda p: Lamb(p, weight_decay=0.1), qs, steps=1)
    assert_close(tensors(a, ps), tensors(b, qs))


def test_the_drop_in_nadam_runs_its_kernels_fused_with_torch_optim_state_keys():
    """torch.optim.NAdam takes no fused argument; a group that asks for it runs the kernel of
    its setting fused, with torch's state keys and 0-d step counter."""
    for kwargs in (
        {},
        {"weight_decay": 0.1},
        {"weight_decay": 0.1, "decoupled_weight_decay": True},
    ):
        ps, qs = params(), params()
        a = symopt_torch.NAdam(ps, lr=0.01, **kwargs)
        b = symopt_torch.NAdam(qs, lr=0.01, **kwargs)
        b.param_groups[0]["fused"] = True
        for _ in range(3):
            a.step()
            b.step()
        assert_close(tensors(b, qs), tensors(a, ps))
        for p, q in zip(ps, qs, strict=True):
            assert (
                a.state[p].keys()
                == b.state[q].keys()
                == {"step", "exp_avg", "exp_avg_sq", "mu_product"}
            )
            assert b.state[q]["step"].dim() == 0 and float(b.state[q]["step"]) == 3


def test_lars_with_matrices_and_vectors_matches_pytorch_optimizer():
    """Both of the kernel's updates (the trust ratio for 2-D and 4-D parameters, plain momentum
    for vectors) against pytorch_optimizer's LARS, ten float64 steps, to 1e-10 as the parity
    tests (``test_parity_tensor.py``) compare it."""
    pytorch_optimizer = pytest.importorskip("pytorch_optimizer")
    hyper = {
        "lr": 0.1,
        "weight_decay": 0.01,
        "momentum": 0.7,
        "dampening": 0.2,
        "trust_coefficient": 0.02,
    }
    shapes = ((5, 13), (7,), (2, 3, 2, 2), (40000,), (64, 100))
    ps, qs = params(shapes=shapes), params(shapes=shapes)
    ours = Lars(ps, **hyper, fused=True)
    theirs = pytorch_optimizer.LARS(qs, **hyper)
    gen = torch.Generator().manual_seed(1)
    for _ in range(10):
        for p, q in zip(ps, qs, strict=True):
            p.grad = torch.randn(p.shape, generator=gen, dtype=torch.float64)
            q.grad = p.grad.clone()
        ours.step()
        theirs.step()
    assert_close(ps, qs, rtol=1e-10)
    for p, q in zip(ps, qs, strict=True):
        assert_close([ours.state[p]["b"]], [theirs.state[q]["momentum_buffer"]], rtol=1e-10)


def test_the_kernels_compile_without_warnings(tmp_path):
    """Every staged kernel's source, with and without OpenMP, under -Wall -Wextra -pedantic."""
    sources = [
        path
        for path in sorted((Path(_fused.__file__).parent / "_csrc").glob("*.c"))
        if "_whole_f32(" in path.read_text(encoding="utf-8")  # drivers of passes
    ]
    assert {"lamb.c", "lars.c", "_asgd.c", "_nadam_torch.c"} <= {p.name for p in sources}
    strict = ["-Wall", "-Wextra", "-Werror", "-pedantic"]
    for source in sources:
        for extra in (["-fopenmp"], []):
            command = [*_fused.compiler(), *_fused.CFLAGS, *strict, *extra]
            command += ["-o", str(tmp_path / "kernel.so"), str(source), "-lm"]
            done = subprocess.run(command, capture_output=True, text=True)
            assert done.returncode == 0 and not done.stderr, (source.name, done.stderr)

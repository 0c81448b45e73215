"""The PyTorch runtime shipped in the generated package (``symopt_torch/_runtime.py``), tested
once rather than per spec: param groups and schedules (against the reference stepper), closures,
parameters without gradients, rejected inputs, state initialisation, state_dict round trips and
scratch buffers. The per-spec generated tests cover what is derived from each spec."""

import copy
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from symopt.backends.torch import RUNTIME, RUNTIME_DIR
from symopt.reference import ReferenceStepper
from symopt.resources import builtin_spec

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "generated" / "torch"))

from symopt_torch import Momentum  # noqa: E402
from symopt_torch._adam import Adam  # noqa: E402
from symopt_torch._runtime import ElementwiseOptimizer, zero_dim  # noqa: E402
from symopt_torch._sgd import SGD  # noqa: E402

# The kernel classes of Adam's and SGD's default settings (symopt_torch.Adam, the class with
# torch.optim's arguments, runs them; tests/test_torch_optim_parity.py tests that class).
SPEC = builtin_spec("adam")
OPTIMIZERS = [Adam, SGD, Momentum]  # scratch and two states, no state, one state


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_runtime_files_are_self_contained():
    """Shipped verbatim into the generated package: torch only, never symopt."""
    assert sorted(p.name for p in RUNTIME_DIR.glob("*.py")) == sorted(RUNTIME)
    for name in RUNTIME:
        imports = [
            line for line in (RUNTIME_DIR / name).read_text().splitlines() if "import" in line
        ]
        assert not any("symopt" in line for line in imports), name


def as_params(arrays):
    return [torch.nn.Parameter(torch.tensor(a)) for a in arrays]


def set_grads(params, grads):
    for p, g in zip(params, grads, strict=True):
        p.grad = torch.tensor(g)


@pytest.mark.parametrize("foreach", [True, False])
def test_param_groups_with_different_learning_rates(foreach):
    rng = np.random.default_rng(6)
    ws = [rng.standard_normal(20), rng.standard_normal((3, 4))]
    params = as_params(ws)
    lrs = [1e-3, 3.5e-3]
    opt = Adam([{"params": [params[0]]}, {"params": [params[1]], "lr": lrs[1]}], foreach=foreach)
    refs = [ReferenceStepper(SPEC, [w], lr=lr) for w, lr in zip(ws, lrs, strict=True)]
    for _ in range(25):
        grads = [rng.standard_normal(w.shape) for w in ws]
        set_grads(params, grads)
        opt.step()
        for ref, g in zip(refs, grads, strict=True):
            ref.step([g])
    for p, ref in zip(params, refs, strict=True):
        np.testing.assert_allclose(p.detach().numpy(), ref.params[0], rtol=1e-10, atol=1e-12)


def test_learning_rate_schedule_is_read_every_step():
    rng = np.random.default_rng(6)
    w = rng.standard_normal(50)
    params = as_params([w])
    opt = Adam(params)
    ref = ReferenceStepper(SPEC, [w])
    scheduler = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 1.0 + 0.5 * np.cos(k))
    for _ in range(30):
        lr = opt.param_groups[0]["lr"]
        g = rng.standard_normal(50)
        set_grads(params, [g])
        opt.step()
        ref.step([g], lr=lr)
        scheduler.step()
    np.testing.assert_allclose(params[0].detach().numpy(), ref.params[0], rtol=1e-10, atol=1e-12)
    for name in ("m", "v"):
        np.testing.assert_allclose(opt.state[params[0]][name].numpy(), ref.state[0][name])


def test_parameters_stepped_different_numbers_of_times_use_their_own_t():
    """Grouped by step count: a parameter added later runs its first (bias-corrected) step."""
    rng = np.random.default_rng(3)
    ws = [rng.standard_normal(9), rng.standard_normal(9)]
    params = as_params(ws)
    opt = Adam(params)
    refs = [ReferenceStepper(SPEC, [w]) for w in ws]
    for k in range(6):
        grads = [rng.standard_normal(9), rng.standard_normal(9)]
        active = [0, 1] if k >= 3 else [0]
        for i in (0, 1):
            params[i].grad = torch.tensor(grads[i]) if i in active else None
        opt.step()
        for i in active:
            refs[i].step([grads[i]])
    assert [opt.state[p]["step"] for p in params] == [6, 3]
    for p, ref in zip(params, refs, strict=True):
        np.testing.assert_allclose(p.detach().numpy(), ref.params[0], rtol=1e-10)


@pytest.mark.parametrize("cls", OPTIMIZERS)
def test_closure_is_evaluated_with_grad_and_its_loss_returned(cls):
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0, 3.0]))
    opt = cls([p])

    def closure():
        opt.zero_grad()
        loss = (p**2).sum()
        loss.backward()
        return loss

    with torch.no_grad():
        loss = opt.step(closure)
    assert float(loss.detach()) == 14.0
    assert opt.state[p]["step"] == 1
    assert not torch.equal(p.detach(), torch.tensor([1.0, -2.0, 3.0]))
    assert opt.step() is None


def test_parameters_without_gradient_are_skipped():
    p = torch.nn.Parameter(torch.ones(3))
    q = torch.nn.Parameter(torch.ones(3))
    opt = Adam([p, q])
    p.grad = torch.ones(3)
    opt.step()
    assert torch.equal(q, torch.ones(3))
    assert len(opt.state[q]) == 0
    assert opt.state[p]["step"] == 1
    opt.zero_grad()
    assert p.grad is None


def test_sparse_gradients_and_complex_parameters_are_rejected():
    p = torch.nn.Parameter(torch.ones(3))
    p.grad = torch.ones(3).to_sparse()
    with pytest.raises(RuntimeError, match="Adam does not support sparse"):
        Adam([p]).step()
    z = torch.nn.Parameter(torch.ones(3, dtype=torch.complex128))
    z.grad = torch.ones(3, dtype=torch.complex128)
    with pytest.raises(RuntimeError, match="Momentum does not support complex"):
        Momentum([z]).step()


@pytest.mark.parametrize("cls", OPTIMIZERS)
def test_state_starts_on_the_parameter(cls):
    p = torch.nn.Parameter(torch.ones(2, 3, dtype=torch.float64))
    p.grad = torch.zeros(2, 3, dtype=torch.float64)
    opt = cls([p])
    opt.step()
    state = opt.state[p]
    assert list(state) == ["step", *type(opt).arrays[2:]]
    for name in type(opt).arrays[2:]:
        s = state[name]
        assert s.shape == p.shape and s.dtype == p.dtype and s.device == p.device


def test_hyperparameters_are_checked_in_new_groups_and_at_each_step():
    p = torch.nn.Parameter(torch.zeros(3))
    opt = Adam([p])
    with pytest.raises(ValueError, match="beta2"):
        opt.add_param_group({"params": [torch.nn.Parameter(torch.zeros(2))], "beta2": 1.0})
    opt.param_groups[0]["eps"] = -1.0
    p.grad = torch.zeros(3)
    with pytest.raises(ValueError, match="eps"):
        opt.step()


@pytest.mark.parametrize("foreach", [True, False])
@pytest.mark.parametrize("cls", OPTIMIZERS)
def test_state_dict_resume_is_identical(cls, foreach):
    gen = torch.Generator().manual_seed(5)
    w = torch.randn(5, 7, generator=gen, dtype=torch.float64)
    grads = [torch.randn(5, 7, generator=gen, dtype=torch.float64) for _ in range(40)]
    p = torch.nn.Parameter(w.clone())
    opt = cls([p], foreach=foreach)
    for g in grads[:20]:
        p.grad = g.clone()
        opt.step()
    saved = copy.deepcopy(opt.state_dict())
    q = torch.nn.Parameter(p.detach().clone())
    for g in grads[20:]:
        p.grad = g.clone()
        opt.step()
    resumed = cls([q], foreach=foreach)
    resumed.load_state_dict(saved)
    for g in grads[20:]:
        q.grad = g.clone()
        resumed.step()
    assert torch.equal(p, q)
    for name in cls.arrays[2:]:
        assert torch.equal(opt.state[p][name], resumed.state[q][name])
    assert resumed.state[q]["step"] == opt.state[p]["step"] == 40
    assert saved["state"][0]["step"] == 20
    assert saved["param_groups"][0]["foreach"] is foreach


def test_scratch_is_not_state_and_a_copied_optimizer_steps_like_the_original():
    gen = torch.Generator().manual_seed(8)
    p = torch.nn.Parameter(torch.randn(6, 5, generator=gen, dtype=torch.float64))
    grads = [torch.randn(6, 5, generator=gen, dtype=torch.float64) for _ in range(4)]
    opt = Adam([p])
    p.grad = grads[0]
    opt.step()
    assert Adam.scratch == 1 and len(opt._scratch[p]) == 1
    assert set(opt.state_dict()["state"][0]) == {"step", "m", "v"}
    twin = copy.deepcopy(opt)
    q = twin.param_groups[0]["params"][0]
    for g in grads[1:]:
        p.grad, q.grad = g.clone(), g.clone()
        opt.step()
        twin.step()
    assert torch.equal(p, q)


def test_scratch_follows_a_parameter_whose_shape_changes():
    p = torch.nn.Parameter(torch.ones(4, dtype=torch.float64))
    opt = Adam([p])
    p.grad = torch.ones(4, dtype=torch.float64)
    opt.step()
    first = opt._scratch[p][0]
    p.data = p.data.float()
    p.grad = torch.ones(4)
    opt.state[p].update({n: opt.state[p][n].float() for n in ("m", "v")})
    opt.step()
    assert opt._scratch[p][0] is not first and opt._scratch[p][0].dtype == torch.float32


def test_zero_dim_scalars_are_in_the_compute_dtype():
    like = torch.zeros(2, dtype=torch.bfloat16)
    a, b = zero_dim(like, 0.5, 3.0)
    assert a.dim() == 0 and a.dtype == torch.float32 and float(b) == 3.0
    assert zero_dim(torch.zeros(1, dtype=torch.float64), 0.1)[0].dtype == torch.float64


def test_a_minimal_subclass_runs_through_the_runtime():
    """The contract of ElementwiseOptimizer, with a hand-written w = w - lr*g."""

    class Plain(ElementwiseOptimizer):
        hyperparameters = ("lr",)

        @staticmethod
        def check_hyper(lr):
            if not lr > 0:
                raise ValueError("lr")

        @staticmethod
        def initial_state(p, group):
            return {}

        @staticmethod
        def scalars(t, lr):
            return (-lr * t,)

        @staticmethod
        def update_foreach(w, g, scalars):
            torch._foreach_add_(w, g, alpha=scalars[0])

        @staticmethod
        def update_single(w, g, scalars):
            w.add_(g, alpha=scalars[0])

        def __init__(self, params, lr=0.1, *, foreach=None):
            super().__init__(params, {"lr": lr}, foreach)

    for foreach in (True, False):
        p = torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))
        opt = Plain([p], lr=0.5, foreach=foreach)
        for _ in range(3):
            p.grad = torch.ones(3, dtype=torch.float64)
            opt.step()
        assert torch.equal(p.detach(), torch.full((3,), -0.5 * (1 + 2 + 3), dtype=torch.float64))
    with pytest.raises(ValueError):
        Plain([p], lr=-1.0)


def test_boolean_masks_and_a_state_named_step():
    """Masks (boolean scratch, after the float scratch) follow the parameter's shape; the step
    counter moves to ``step_key`` when a state is named ``step`` (w = w - step where g > 0)."""

    class Masked(ElementwiseOptimizer):
        arrays = ("w", "g", "step")
        masks = 1
        step_key = "_step"
        check_hyper = staticmethod(lambda: None)
        initial_state = staticmethod(lambda p, group: {"step": torch.full_like(p, 0.25)})
        scalars = staticmethod(lambda t: ())

        @staticmethod
        def update_single(w, g, step, mask, scalars):
            assert mask.dtype == torch.bool and mask.shape == w.shape
            torch.gt(g, 0, out=mask)
            w.sub_(torch.where(mask, step, torch.zeros((), dtype=w.dtype)))

        @staticmethod
        def update_foreach(w, g, step, mask, scalars):
            for args in zip(w, g, step, mask, strict=True):
                Masked.update_single(*args, scalars)

        def __init__(self, params, *, foreach=None):
            super().__init__(params, {}, foreach)

    for foreach in (True, False):
        p = torch.nn.Parameter(torch.zeros(4, dtype=torch.float64))
        opt = Masked([p], foreach=foreach)
        for _ in range(2):
            p.grad = torch.tensor([1.0, -1.0, 2.0, 0.0], dtype=torch.float64)
            opt.step()
        assert p.detach().tolist() == [-0.5, 0.0, -0.5, 0.0]
        assert opt.state[p]["_step"] == 2 and opt.state[p]["step"].tolist() == [0.25] * 4
        p.data, p.grad = torch.zeros(2, 3, dtype=torch.float64), torch.ones(2, 3).double()
        opt.state[p]["step"] = torch.ones(2, 3, dtype=torch.float64)
        opt.step()
        assert opt._scratch[p][0].shape == (2, 3) and float(p.detach().sum()) == -6.0


# --- the K-FAC runtime (_kfac.KFACOptimizer), once -------------------------------------------

sys.path.insert(0, str(ROOT / "generated" / "torch" / "tests"))

from symopt_torch.kfac import DEFAULT_FISHER, KFAC, LOSSES, loss_hessian_factors  # noqa: E402
from torch_support import (  # noqa: E402
    F,
    closure_for,
    exact_ggn_block,
    hessian,
    kfac_data,
    kfac_mlp,
    layer_gradients,
    linears,
    torch_loss,
)


@pytest.mark.parametrize("loss", LOSSES)
def test_kfac_the_exact_factors_square_to_the_loss_hessian(loss):
    """sum_j u_j u_j^T = d2c_n/df2 for every example, c_n the loss of a batch of one."""
    X, y = kfac_data(loss, 6, 3, 3)
    f = torch.randn(6, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    us = loss_hessian_factors(loss, f, "exact")
    assert len(us) == 3 and all(u.shape == f.shape for u in us)
    ours = sum(u[:, :, None] * u[:, None, :] for u in us)
    for n in range(6):
        c = hessian(lambda z, n=n: torch_loss(loss)(z[None], y[n : n + 1]))(f[n])
        torch.testing.assert_close(ours[n], c, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("loss", LOSSES)
def test_kfac_sampled_factors_average_to_the_loss_hessian(loss):
    """E[u u^T] = d2c/df2: the mean of 40000 samples at one output, within 4 standard errors."""
    m = 40000
    f0 = torch.tensor([0.3, -1.2, 0.8], dtype=torch.float64)
    _, y = kfac_data(loss, 1, 3, 3)
    c = hessian(lambda z: torch_loss(loss)(z[None], y))(f0)
    gen = torch.Generator().manual_seed(3)
    (u,) = loss_hessian_factors(loss, f0.expand(m, 3), "sampled", gen)
    outer = u[:, :, None] * u[:, None, :]
    mean, err = outer.mean(0), outer.std(0) / math.sqrt(m)
    assert bool(((mean - c).abs() <= 4 * err + 1e-12).all()), (mean, c)


@pytest.mark.parametrize("loss", LOSSES)
def test_kfac_for_one_data_point_the_factors_are_the_exact_ggn_block(loss):
    model = kfac_mlp([3, 4, 3])
    X, y = kfac_data(loss, 1, 3, 3)
    expected = {m: exact_ggn_block(model, m, torch_loss(loss), X, y) for m in linears(model)}
    opt = KFAC(model, loss=loss, fisher="exact")
    opt.step(closure_for(model, torch_loss(loss), X, y))
    factors = opt.kronecker_factors()
    assert set(factors) == set(linears(model))
    for layer, (A, G) in factors.items():
        torch.testing.assert_close(torch.kron(A, G), expected[layer], rtol=1e-10, atol=1e-12)


def test_kfac_for_one_data_point_the_empirical_factors_are_the_gradient_outer_product():
    model = kfac_mlp([3, 4, 2])
    X, y = kfac_data("cross_entropy", 1, 3, 2)
    grads = {m: layer_gradients(model, m, F.cross_entropy, X, y)[0] for m in linears(model)}
    opt = KFAC(model, fisher="empirical")
    opt.step(closure_for(model, F.cross_entropy, X, y))
    for layer, (A, G) in opt.kronecker_factors().items():
        g = grads[layer]
        torch.testing.assert_close(torch.kron(A, G), torch.outer(g, g), rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("bias", [True, False])
def test_kfac_for_a_deep_linear_network_with_squared_error_kfac_is_exact_over_a_batch(bias):
    """df/ds and d2c/df2 are the same for every example: G_n = G, so A (x) G is the block."""
    model = kfac_mlp([3, 4, 3, 2], activation=torch.nn.Identity, bias=bias)
    X, y = kfac_data("mse", 16, 3, 2)
    expected = {m: exact_ggn_block(model, m, F.mse_loss, X, y) for m in linears(model)}
    opt = KFAC(model, loss="mse", fisher="exact")
    opt.step(closure_for(model, F.mse_loss, X, y))
    for layer, (A, G) in opt.kronecker_factors().items():
        torch.testing.assert_close(torch.kron(A, G), expected[layer], rtol=1e-10, atol=1e-12)


def test_kfac_for_a_nonlinear_network_over_a_batch_kfac_is_only_an_approximation():
    model = kfac_mlp([3, 4, 2])
    X, y = kfac_data("mse", 16, 3, 2)
    expected = {m: exact_ggn_block(model, m, F.mse_loss, X, y) for m in linears(model)}
    opt = KFAC(model, loss="mse", fisher="exact")
    opt.step(closure_for(model, F.mse_loss, X, y))
    A, G = opt.kronecker_factors()[linears(model)[0]]
    assert float((torch.kron(A, G) - expected[linears(model)[0]]).abs().max()) > 1e-4


def test_kfac_in_place_operations_after_a_layer_leave_its_factors_alone():
    X, y = kfac_data("mse", 8, 3, 2)
    found = []
    for inplace in (False, True):
        model = kfac_mlp(
            [3, 4, 2], activation=lambda inplace=inplace: torch.nn.ReLU(inplace=inplace)
        )
        opt = KFAC(model, loss="mse", fisher="exact")
        opt.step(closure_for(model, F.mse_loss, X, y))
        factors = opt.kronecker_factors().values()
        found.append([torch.cat([A.reshape(-1), G.reshape(-1)]) for A, G in factors])
    for a, b in zip(*found, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_kfac_state_dict_round_trip_continues_identically():
    X, y = kfac_data("cross_entropy", 20, 3, 3)
    model = kfac_mlp([3, 5, 3])
    opt = KFAC(model, inverse_every=3, loss="cross_entropy")
    closure = closure_for(model, F.cross_entropy, X, y)
    for _ in range(4):
        opt.step(closure)
    saved_model = copy.deepcopy(model.state_dict())
    saved = copy.deepcopy(opt.state_dict())
    torch.manual_seed(123)  # the sampled targets
    ours = []
    for _ in range(5):
        opt.step(closure)
        ours.append([p.detach().clone() for p in model.parameters()])
    again = kfac_mlp([3, 5, 3], seed=7)
    again.load_state_dict(saved_model)
    opt2 = KFAC(again, fisher="exact", loss="mse")
    opt2.load_state_dict(saved)
    assert opt2.param_groups[0]["fisher"] == DEFAULT_FISHER
    torch.manual_seed(123)
    for expected in ours:
        opt2.step(closure_for(again, F.cross_entropy, X, y))
        for p, q in zip(again.parameters(), expected, strict=True):
            assert torch.equal(p.detach(), q)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_kfac_cuda_takes_the_steps_cpu_takes():
    X, y = kfac_data("cross_entropy", 32, 3, 3)
    found = []
    for device in ("cpu", "cuda"):
        model = kfac_mlp([3, 8, 3]).to(device)
        opt = KFAC(model, loss="cross_entropy", fisher="exact", inverse_every=2)
        Xd, yd = X.to(device), y.to(device)
        for _ in range(5):
            opt.step(closure_for(model, F.cross_entropy, Xd, yd))
        found.append([p.detach().cpu() for p in model.parameters()])
    for a, b in zip(*found, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)


def test_kfac_misuse_is_a_clear_error():
    model = kfac_mlp([3, 4, 2])
    X, y = kfac_data("mse", 5, 3, 2)
    with pytest.raises(TypeError, match="takes the model"):
        KFAC(model.parameters(), loss="mse")
    with pytest.raises(ValueError, match="loss must be one of"):
        KFAC(model)
    with pytest.raises(ValueError, match="fisher must be one of"):
        KFAC(model, loss="mse", fisher="monte_carlo")
    with pytest.raises(ValueError, match="inverse_every must be an integer"):
        KFAC(model, loss="mse", inverse_every=2.5)
    with pytest.raises(ValueError, match="decay must be in"):
        KFAC(model, loss="mse", decay=1.0)
    with pytest.raises(ValueError, match="no torch.nn.Linear"):
        KFAC(torch.nn.PReLU(), fisher="empirical")
    opt = KFAC(model, loss="mse")
    with pytest.raises(ValueError, match="closure"):
        opt.step()

    def calls_backward():
        loss = F.mse_loss(model(X), y)
        loss.backward()
        return loss

    with pytest.raises(RuntimeError, match="backward"):
        opt.step(calls_backward)
    with pytest.raises(ValueError, match="ran 2 times"):
        opt.step(lambda: F.mse_loss(model(X), y) + F.mse_loss(model(X), y))
    with pytest.raises(ValueError, match=r"\(batch, features\)"):
        opt.step(lambda: F.mse_loss(model(X[None]), y[None]))
    opt.remove_hooks()
    with pytest.raises(RuntimeError, match="remove_hooks"):
        opt.step(closure_for(model, F.mse_loss, X, y))

"""The generated PyTorch curvature optimizers (KFAC, DiagNewton, BlockNewton) against each other,
against symopt's own curvature definitions and, where it is installed, against BackPACK.

* BackPACK (``backpack-for-pytorch``, an optional test dependency: nothing requires it):
  ``DiagGGNExact`` is the diagonal DiagNewton computes by torch.func, and ``KFLR`` (K-FAC's
  factors of the exact GGN) the factors KFAC(fisher="exact") forms with its hooks.
* For one data point K-FAC's A (x) G is the layer's GGN block, which BlockNewton computes by
  torch.func over the layer's parameters [W row-major, b]: the same matrix up to the
  permutation to vec([W | b]) (column-major).
* The damped Kronecker solve of :mod:`symopt.curvature` (SymPy, on numbers) is the generated
  ``eigen_damped_step``.
* Two moons from :mod:`symopt.moons`: each optimizer reaches a training loss <= 0.1 and 95%
  accuracy in a bounded number of full-batch steps.
"""

from __future__ import annotations

import copy
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import sympy

from symopt import curvature as cv
from symopt.moons import make_moons

torch = pytest.importorskip("torch")
F = torch.nn.functional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "generated" / "torch"))

from symopt_torch.block_newton import MAX_BLOCK, BlockNewton, ggn_blocks  # noqa: E402
from symopt_torch.diag_newton import DiagNewton, NotPositiveDefiniteError, ggn_diagonal  # noqa: E402
from symopt_torch.kfac import KFAC, eigen_damped_step  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def mlp(sizes, dtype=torch.float64, seed=0):
    torch.manual_seed(seed)
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        if i:
            layers.append(torch.nn.Tanh())
        layers.append(torch.nn.Linear(n_in, n_out))
    return torch.nn.Sequential(*layers).to(dtype)


def linears(model):
    return [m for m in model if isinstance(m, torch.nn.Linear)]


#: name -> (torch loss, BackPACK module class, K-FAC's loss name, targets maker)
LOSSES = {
    "cross_entropy": (
        F.cross_entropy,
        "CrossEntropyLoss",
        lambda gen, n, k: torch.randint(0, k, (n,), generator=gen),
    ),
    "mse": (
        F.mse_loss,
        "MSELoss",
        lambda gen, n, k: torch.randn(n, k, generator=gen, dtype=torch.float64),
    ),
}


def batch(loss, n=10, n_in=3, k=3, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, n_in, generator=gen, dtype=torch.float64), LOSSES[loss][2](gen, n, k)


# --- BackPACK ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def backpack():
    return pytest.importorskip("backpack", reason="backpack-for-pytorch is not installed")


def backpack_run(model, loss, X, y, *extensions):
    """A BackPACK backward pass on an extended copy of the model (its full backward hooks would
    stop torch.func on the original); returns the copy."""
    from backpack import backpack as backpack_context
    from backpack import extend

    copied = extend(copy.deepcopy(model))
    loss_module = extend(getattr(torch.nn, LOSSES[loss][1])())
    value = loss_module(copied(X), y)
    with backpack_context(*extensions), warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Full backward hook", UserWarning)  # the inputs' hook
        value.backward()
    return copied


@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_the_diagonal_is_backpacks_diag_ggn_exact(backpack, loss):
    from backpack.extensions import DiagGGNExact

    model = mlp([3, 4, 3])
    X, y = batch(loss)
    theirs = backpack_run(model, loss, X, y, DiagGGNExact())
    ours = ggn_diagonal(model, LOSSES[loss][0], list(model.parameters()), X, y)
    for d, p in zip(ours, theirs.parameters(), strict=True):
        torch.testing.assert_close(d, p.diag_ggn_exact, rtol=1e-12, atol=1e-15)


def test_a_step_from_backpacks_diagonal_is_the_exact_step(backpack):
    from backpack.extensions import DiagGGNExact

    X, y = batch("cross_entropy")
    model = mlp([3, 4, 3])
    theirs = backpack_run(model, "cross_entropy", X, y, DiagGGNExact())
    opt = DiagNewton(theirs.parameters(), lr=0.5)
    opt.step(diag=[p.diag_ggn_exact for p in theirs.parameters()])  # .grad from BackPACK's pass
    DiagNewton(model.parameters(), lr=0.5, model=model, loss_fn=F.cross_entropy).step(
        inputs=X, targets=y
    )
    for p, q in zip(model.parameters(), theirs.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_the_exact_kfac_factors_are_backpacks_kflr(backpack, loss):
    """BackPACK keeps W (row-major) and b apart: the weight's factors are [G, A without the bias
    row and column], the bias's [G]."""
    from backpack.extensions import KFLR

    model = mlp([3, 4, 3])
    X, y = batch(loss)
    theirs = backpack_run(model, loss, X, y, KFLR())
    opt = KFAC(model, loss=loss, fisher="exact")
    opt.step(lambda: LOSSES[loss][0](model(X), y))
    factors = opt.kronecker_factors()
    for ours, layer in zip(linears(model), linears(theirs), strict=True):
        A, G = factors[ours]
        G_w, A_w = layer.weight.kflr
        torch.testing.assert_close(G, G_w, rtol=1e-12, atol=1e-15)
        torch.testing.assert_close(A[:-1, :-1], A_w, rtol=1e-12, atol=1e-15)
        torch.testing.assert_close(G, layer.bias.kflr[0], rtol=1e-12, atol=1e-15)


# --- the generated modules against each other --------------------------------------------------


def vec_order(out: int, n_in: int) -> torch.Tensor:
    """Positions in [W row-major, b] of the entries of vec([W | b]) (column-major)."""
    positions = [i * n_in + j for j in range(n_in) for i in range(out)]
    return torch.tensor(positions + [out * n_in + i for i in range(out)])


@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_for_one_example_kfac_is_block_newtons_layer_block(loss):
    model = mlp([3, 4, 3])
    X, y = batch(loss, n=1)
    blocks = ggn_blocks(
        model, LOSSES[loss][0], [list(m.parameters()) for m in linears(model)], X, y
    )
    opt = KFAC(model, loss=loss, fisher="exact")
    opt.step(lambda: LOSSES[loss][0](model(X), y))
    for layer, block in zip(linears(model), blocks, strict=True):
        A, G = opt.kronecker_factors()[layer]
        order = vec_order(*layer.weight.shape)
        torch.testing.assert_close(torch.kron(A, G), block[order][:, order], rtol=1e-10, atol=1e-14)


def test_the_diagonal_is_the_diagonal_of_the_blocks():
    model = mlp([3, 4, 3])
    X, y = batch("cross_entropy", n=16)
    params = list(model.parameters())
    diagonal = torch.cat(
        [d.reshape(-1) for d in ggn_diagonal(model, F.cross_entropy, params, X, y)]
    )
    (block,) = ggn_blocks(model, F.cross_entropy, [params], X, y)
    torch.testing.assert_close(diagonal, torch.diagonal(block), rtol=1e-12, atol=1e-15)


def test_symopts_eigen_damped_solve_is_the_generated_step():
    """symopt.curvature.eigen_damped_solve (the function the check proves equal to the dense
    solve) on numbers gives the negative of the generated eigen_damped_step."""
    rng = np.random.default_rng(0)
    a, g = rng.normal(size=(3, 3)), rng.normal(size=(2, 2))
    A, G, V, lam = a @ a.T, g @ g.T, rng.normal(size=(2, 3)), 0.25
    sA, QA = np.linalg.eigh(A)
    sG, QG = np.linalg.eigh(G)
    theirs = cv.eigen_damped_solve(
        sympy.Matrix(QA), list(sA), sympy.Matrix(QG), list(sG), sympy.Float(lam), sympy.Matrix(V)
    )
    ours = eigen_damped_step(*(torch.tensor(t) for t in (V, QA, sA, QG, sG)), lam)
    np.testing.assert_allclose(-ours.numpy(), np.array(theirs, dtype=float), rtol=1e-12)
    dense = cv.exact_damped_solve(sympy.Matrix(A), sympy.Matrix(G), lam, sympy.Matrix(V))
    np.testing.assert_allclose(-ours.numpy(), np.array(dense, dtype=float), rtol=1e-10)


# --- two moons ---------------------------------------------------------------------------------


def moons():
    X, y = make_moons(200, noise=0.2, seed=0)
    return torch.tensor(X), torch.tensor(y)


def bce(out, t):
    return F.binary_cross_entropy_with_logits(out[:, 0], t)


def train(make_opt, step, most):
    """Full-batch steps until the training loss is <= 0.1: (steps, loss, accuracy)."""
    X, y = moons()
    model = mlp([2, 16, 16, 1])
    opt = make_opt(model)
    loss, steps = float("inf"), 0
    while steps < most and loss > 0.1:
        step(opt, model, X, y)
        steps += 1
        with torch.no_grad():
            loss = float(bce(model(X), y))
    with torch.no_grad():
        accuracy = float(((model(X)[:, 0] > 0) == (y > 0.5)).double().mean())
    return steps, loss, accuracy


#: name -> (optimizer on the model, one step, most steps to loss <= 0.1). DiagNewton and
#: BlockNewton need lr < 1 (their damped Newton steps of a rough curvature model overshoot).
RUNS = {
    "KFAC": (
        lambda model: KFAC(model, loss="bce", generator=torch.Generator().manual_seed(0)),
        lambda opt, model, X, y: opt.step(lambda: bce(model(X), y)),
        40,
    ),
    "DiagNewton": (
        lambda model: DiagNewton(model.parameters(), lr=0.2, lam=0.1, model=model, loss_fn=bce),
        lambda opt, model, X, y: opt.step(inputs=X, targets=y),
        100,
    ),
    "BlockNewton": (
        lambda model: BlockNewton(model.parameters(), lr=0.2, lam=0.01, model=model, loss_fn=bce),
        lambda opt, model, X, y: opt.step(inputs=X, targets=y),
        30,
    ),
}


@pytest.mark.parametrize("name", sorted(RUNS))
def test_each_optimizer_fits_two_moons(name):
    steps, loss, accuracy = train(*RUNS[name])
    assert loss <= 0.1, f"{name}: loss {loss:.3f} after {steps} steps"
    assert accuracy >= 0.95, f"{name}: accuracy {accuracy:.3f} after {steps} steps"


# --- the damped diagonal runtime (_curvature.DiagonalOptimizer), once -------------------------


def diag_data(loss, n, n_in, n_out, dtype=torch.float64, seed=1):
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(n, n_in, generator=gen, dtype=dtype)
    if loss == "cross_entropy":
        return X, torch.randint(0, n_out, (n,), generator=gen)
    return X, torch.randn(n, n_out, generator=gen, dtype=dtype)


def test_diag_newton_a_given_diagonal_takes_the_step_the_exact_one_takes():
    X, y = diag_data("mse", 12, 3, 2)
    exact, given = mlp([3, 4, 2]), mlp([3, 4, 2])
    opt = DiagNewton(exact.parameters(), model=exact, loss_fn=F.mse_loss)
    opt.step(inputs=X, targets=y)
    diag = ggn_diagonal(given, F.mse_loss, list(given.parameters()), X, y)
    opt = DiagNewton(given.parameters())

    def closure():
        opt.zero_grad()
        loss = F.mse_loss(given(X), y)
        loss.backward()
        return loss

    loss = opt.step(closure, diag=diag)
    assert float(loss) == opt.state[next(iter(given.parameters()))]["loss"]
    for p, q in zip(exact.parameters(), given.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-14)


def test_diag_newton_a_loss_that_is_not_convex_in_the_outputs_is_refused():
    model = mlp([3, 4, 2])
    X, y = diag_data("mse", 12, 3, 2)
    before = [p.detach().clone() for p in model.parameters()]
    opt = DiagNewton(model.parameters(), model=model, loss_fn=lambda f, t: -F.mse_loss(f, t))
    with pytest.raises(NotPositiveDefiniteError, match="step 0"):
        opt.step(inputs=X, targets=y)
    assert all(torch.equal(p, b) for p, b in zip(model.parameters(), before, strict=True))


def test_diag_newton_a_loss_that_is_not_the_batch_mean_is_refused():
    model = mlp([3, 4, 2])
    X, y = diag_data("mse", 12, 3, 2)
    opt = DiagNewton(
        model.parameters(), model=model, loss_fn=lambda f, t: F.mse_loss(f, t, reduction="sum")
    )
    with pytest.raises(ValueError, match="reduction='mean'"):
        opt.step(inputs=X, targets=y)


def test_diag_newton_state_dict_round_trip_continues_identically():
    X, y = diag_data("cross_entropy", 20, 3, 3)
    model = mlp([3, 5, 3])
    opt = DiagNewton(model.parameters(), lr=0.3, model=model, loss_fn=F.cross_entropy)
    for _ in range(3):
        opt.step(inputs=X, targets=y)
    saved_model, saved = copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict())
    ours = []
    for _ in range(3):
        opt.step(inputs=X, targets=y)
        ours.append([p.detach().clone() for p in model.parameters()])
    again = mlp([3, 5, 3], seed=7)
    again.load_state_dict(saved_model)
    opt2 = DiagNewton(again.parameters(), model=again, loss_fn=F.cross_entropy)
    opt2.load_state_dict(saved)
    assert opt2.param_groups[0]["lr"] == 0.3
    for expected in ours:
        opt2.step(inputs=X, targets=y)
        for p, q in zip(again.parameters(), expected, strict=True):
            assert torch.equal(p.detach(), q)
    assert opt2.state[next(iter(again.parameters()))] == opt.state[next(iter(model.parameters()))]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_diag_newton_on_cuda_takes_the_steps_cpu_takes():
    X, y = diag_data("cross_entropy", 32, 3, 3)
    found = []
    for device in ("cpu", "cuda"):
        model = mlp([3, 8, 3]).to(device)
        opt = DiagNewton(model.parameters(), lr=0.5, model=model, loss_fn=F.cross_entropy)
        for _ in range(5):
            opt.step(inputs=X.to(device), targets=y.to(device))
        found.append([p.detach().cpu() for p in model.parameters()])
    for a, b in zip(*found, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)


def test_diag_newton_misuse_is_a_clear_error():
    model = mlp([3, 4, 2])
    X, y = diag_data("mse", 5, 3, 2)
    params = list(model.parameters())
    with pytest.raises(ValueError, match="both model and loss_fn"):
        DiagNewton(params, model=model)
    with pytest.raises(ValueError, match="not parameters of the model"):
        extra = torch.nn.Parameter(torch.ones(2, dtype=torch.float64))
        DiagNewton(params + [extra], model=model, loss_fn=F.mse_loss)
    with pytest.raises(ValueError, match="lr must be in"):
        DiagNewton(params, lr=0.0)
    with pytest.raises(ValueError, match="needs model and loss_fn"):
        DiagNewton(params).step(inputs=X, targets=y)
    opt = DiagNewton(params, model=model, loss_fn=F.mse_loss)
    with pytest.raises(ValueError, match="needs inputs and targets"):
        opt.step()
    with pytest.raises(ValueError, match="not both"):
        opt.step(inputs=X, targets=y, diag=[torch.ones_like(p) for p in params])
    with pytest.raises(ValueError, match="no closure"):
        opt.step(lambda: F.mse_loss(model(X), y), inputs=X, targets=y)
    with pytest.raises(ValueError, match="one tensor shaped like each"):
        opt.step(diag=[torch.ones(1)])


# --- the block Newton runtime (_block_newton.BlockOptimizer), once -----------------------------


def test_block_newton_given_blocks_take_the_step_the_exact_ones_take():
    X, y = diag_data("mse", 12, 3, 2)
    exact, given = mlp([3, 4, 2]), mlp([3, 4, 2])
    opt = BlockNewton(exact.parameters(), model=exact, loss_fn=F.mse_loss)
    opt.step(inputs=X, targets=y)
    curvature = ggn_blocks(given, F.mse_loss, [[p] for p in given.parameters()], X, y)
    opt = BlockNewton(given.parameters())

    def closure():
        opt.zero_grad()
        loss = F.mse_loss(given(X), y)
        loss.backward()
        return loss

    loss = opt.step(closure, curvature=curvature)
    assert float(loss) == opt.state[next(iter(given.parameters()))]["loss"]
    for p, q in zip(exact.parameters(), given.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-14)


def test_block_newton_a_loss_that_is_not_convex_in_the_outputs_is_refused():
    model = mlp([3, 4, 2])
    X, y = diag_data("mse", 12, 3, 2)
    before = [p.detach().clone() for p in model.parameters()]
    opt = BlockNewton(model.parameters(), model=model, loss_fn=lambda f, t: -F.mse_loss(f, t))
    with pytest.raises(NotPositiveDefiniteError, match="step 0"):
        opt.step(inputs=X, targets=y)
    assert all(torch.equal(p, b) for p, b in zip(model.parameters(), before, strict=True))


def test_block_newton_blocks_must_partition_the_parameters_within_groups():
    model = mlp([3, 4, 2])
    params = list(model.parameters())
    with pytest.raises(ValueError, match="partition"):
        BlockNewton(params, blocks=[params[:2]])
    with pytest.raises(ValueError, match="partition"):
        BlockNewton(params, blocks=[params, params[:1]])
    with pytest.raises(ValueError, match="spans several parameter groups"):
        BlockNewton([{"params": params[:2]}, {"params": params[2:]}], blocks=[params])
    with pytest.raises(ValueError, match=f"more than max_block = {MAX_BLOCK}"):
        BlockNewton(torch.nn.Linear(70, 60).parameters(), blocks=None)
    BlockNewton(torch.nn.Linear(70, 60).parameters(), max_block=4200)


def test_block_newton_state_dict_round_trip_continues_identically():
    X, y = diag_data("cross_entropy", 20, 3, 3)
    model = mlp([3, 5, 3])
    opt = BlockNewton(model.parameters(), lr=0.3, model=model, loss_fn=F.cross_entropy)
    for _ in range(3):
        opt.step(inputs=X, targets=y)
    saved_model, saved = copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict())
    ours = []
    for _ in range(3):
        opt.step(inputs=X, targets=y)
        ours.append([p.detach().clone() for p in model.parameters()])
    again = mlp([3, 5, 3], seed=7)
    again.load_state_dict(saved_model)
    opt2 = BlockNewton(again.parameters(), model=again, loss_fn=F.cross_entropy)
    opt2.load_state_dict(saved)
    assert opt2.param_groups[0]["lr"] == 0.3
    for expected in ours:
        opt2.step(inputs=X, targets=y)
        for p, q in zip(again.parameters(), expected, strict=True):
            assert torch.equal(p.detach(), q)
    assert opt2.state[next(iter(again.parameters()))] == opt.state[next(iter(model.parameters()))]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_block_newton_cuda_takes_the_steps_cpu_takes():
    X, y = diag_data("cross_entropy", 32, 3, 3)
    found = []
    for device in ("cpu", "cuda"):
        model = mlp([3, 8, 3]).to(device)
        opt = BlockNewton(model.parameters(), lr=0.5, model=model, loss_fn=F.cross_entropy)
        for _ in range(5):
            opt.step(inputs=X.to(device), targets=y.to(device))
        found.append([p.detach().cpu() for p in model.parameters()])
    for a, b in zip(*found, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)


def test_block_newton_misuse_is_a_clear_error():
    model = mlp([3, 4, 2])
    X, y = diag_data("mse", 5, 3, 2)
    params = list(model.parameters())
    with pytest.raises(ValueError, match="both model and loss_fn"):
        BlockNewton(params, loss_fn=F.mse_loss)
    with pytest.raises(ValueError, match="lr must be in"):
        BlockNewton(params, lr=-1.0)
    with pytest.raises(ValueError, match="need model and loss_fn"):
        BlockNewton(params).step(inputs=X, targets=y)
    opt = BlockNewton(params, model=model, loss_fn=F.mse_loss)
    with pytest.raises(ValueError, match="needs inputs and targets"):
        opt.step()
    with pytest.raises(ValueError, match="not both"):
        opt.step(inputs=X, targets=y, curvature=[])
    with pytest.raises(ValueError, match=r"one \(n_b, n_b\) matrix per block"):
        opt.step(curvature=[torch.eye(2)])
    with pytest.raises(ValueError, match="blocks are fixed"):
        opt.add_param_group({"params": [torch.nn.Parameter(torch.ones(1))]})

"""What the generated tests of the PyTorch optimizers share: tolerances, gradient streams and
the comparison with the reference stepper (passed in by each test; this file imports neither
symopt nor the optimizers); for the curvature optimizers, small models and the exact GGN and
Hessian of a whole batch by torch.func (independent of the optimizers' per-example pieces).

Tolerances as for the NumPy target: 1e-10 of each array's scale in float64, 2e-4 in float32.
"""

from __future__ import annotations

import numpy as np
import torch

F = torch.nn.functional

STEPS = 100
SHAPES = [(1,), (7,), (3, 5), (4099,)]
SEEDS = [0, 1, 2]
DTYPES = [np.float64, np.float32]
RTOL = {np.float64: 1e-10, np.float32: 2e-4}
TINY = {np.float64: 1e-300, np.float32: 1e-37}
#: Largest |g| per dtype for the edge cases: float32 cannot hold (1e30)**2, so it gets 1e15.
HUGE = {np.float64: 1e30, np.float32: 1e15}
TORCH_DTYPE = {np.float64: torch.float64, np.float32: torch.float32}
EDGES = ["zeros", "tiny", "huge", "mixed"]


def assert_close(actual, expected, dtype, what, scale=0.0):
    """|actual - expected| <= rtol * (|expected| + scale), scale >= max|expected|.

    Rounding errors are relative to the magnitudes a quantity has had, so callers pass the
    largest magnitude seen during the run (a float32 value that went to 1e13 and back keeps an
    error of about 1e13 x 6e-8, although every operation was correctly rounded).
    """
    assert actual.dtype == dtype, f"{what}: dtype {actual.dtype}, expected {np.dtype(dtype)}"
    expected = np.asarray(expected, dtype=np.float64)
    err = np.abs(actual.astype(np.float64) - expected)
    finite = np.isfinite(expected)
    scale = max(scale, float(np.max(np.abs(expected[finite]), initial=0.0)))
    bound = RTOL[dtype] * (np.abs(expected) + scale) + TINY[dtype]
    assert np.all(np.isfinite(actual) == finite), f"{what}: non-finite mismatch"
    worst = float(np.max(err[finite] - bound[finite], initial=-1.0))
    assert worst <= 0, f"{what}: max error {float(np.max(err[finite])):.3e} exceeds the tolerance"


def gradient_stream(rng, shape, dtype, steps=STEPS):
    """Random gradients at varying scales, with exact zeros mixed in."""
    for _ in range(steps):
        g = rng.standard_normal(shape) * 10.0 ** rng.uniform(-3, 1)
        g[rng.random(shape) < 0.1] = 0.0
        yield g.astype(dtype)


def edge_gradients(kind, dtype, shape=(33,), steps=20):
    """Zeros, tiny, huge or mixed gradients with alternating signs."""
    signs = np.where(np.arange(shape[0]) % 2 == 0, 1.0, -1.0)
    for k in range(steps):
        if kind == "zeros":
            g = np.zeros(shape)
        elif kind == "tiny":
            g = 1e-30 * signs
        elif kind == "huge":
            g = HUGE[dtype] * signs
        else:
            g = signs * np.array([0.0, 1e-30, 1.0, HUGE[dtype]] * 8 + [1e-3]) * (-1) ** k
        yield g.astype(dtype)


def as_params(arrays, dtype):
    return [torch.nn.Parameter(torch.tensor(a, dtype=TORCH_DTYPE[dtype])) for a in arrays]


def set_grads(params, grads):
    for p, g in zip(params, grads, strict=True):
        p.grad = torch.tensor(g, dtype=p.dtype)


def compare(opt, params, ref, dtype, what, scales):
    """Compare every parameter and state tensor; ``scales`` keeps each one's running max |value|."""
    for i, p in enumerate(params):
        state = opt.state[p]
        pairs = [(f"w[{i}]", p.detach().numpy(), ref.params[i])]
        names = [n for n in state if n != getattr(opt, "step_key", "step")]
        pairs += [(f"{n}[{i}]", state[n].numpy(), ref.state[i][n]) for n in names]
        for label, actual, expected in pairs:
            top = float(np.max(np.abs(expected[np.isfinite(expected)]), initial=0.0))
            scales[label] = max(scales.get(label, 0.0), top)
            assert_close(actual, expected, dtype, f"{what}: {label}", scales[label])


def run_against(make_opt, ref, ws, grad_steps, dtype, what):
    """Step the optimizer on both paths (foreach, then single-tensor) and the reference with
    the same gradients; compare with the reference after every step, and the two paths with
    each other bit for bit."""
    runs = []
    for foreach in (True, False):
        params = as_params(ws, dtype)
        runs.append((make_opt(params, foreach=foreach), params))
    scales: dict = {}
    for k, grads in enumerate(grad_steps):
        for opt, params in runs:
            set_grads(params, grads)
            opt.step()
        ref.step(list(grads))
        compare(runs[0][0], runs[0][1], ref, dtype, f"step {k + 1}", scales)
        (a, p), (b, q) = runs
        for x, y in zip(p, q, strict=True):
            assert torch.equal(x, y), f"step {k + 1}: foreach and single-tensor paths differ"
            key = getattr(a, "step_key", "step")
            assert a.state[x][key] == b.state[y][key]
            names = [n for n in a.state[x] if n != key]
            assert all(torch.equal(a.state[x][n], b.state[y][n]) for n in names)
    return runs


def random_run(make_opt, dtype, foreach, steps=30, seed=4):
    """Parameters and state after ``steps`` random steps."""
    gen = torch.Generator().manual_seed(seed)
    shapes = [(4, 3), (1,), (517,)]
    params = [torch.nn.Parameter(torch.randn(s, generator=gen).to(dtype)) for s in shapes]
    opt = make_opt(params, foreach=foreach)
    for _ in range(steps):
        for p in params:
            p.grad = torch.randn(p.shape, generator=gen).to(dtype)
        opt.step()
    state = [x for p in params for x in opt.state[p].values() if isinstance(x, torch.Tensor)]
    return [*(p.detach() for p in params), *state]


def assert_bfloat16_follows_float64(make_opt):
    """bfloat16 stays bfloat16 and follows the float64 run to bfloat16 precision.

    (The paths need not agree bit for bit here: torch's in-place foreach multiply by a Python
    scalar rounds the scalar to bfloat16 first, ``torch.mul`` does not.)
    """
    exact = random_run(make_opt, torch.float64, False, steps=10)
    for foreach in (True, False):
        low = random_run(make_opt, torch.bfloat16, foreach, steps=10)
        for a, b in zip(low, exact, strict=True):
            assert a.dtype == torch.bfloat16
            scale = float(b.abs().max()) + 1e-30
            assert float((a.double() - b).abs().max()) <= 0.05 * scale


def largest_allocation(make_opt, foreach):
    """The largest CPU allocation (bytes) of a second step over three 1000-element tensors."""
    from torch.profiler import ProfilerActivity, profile

    params = [torch.nn.Parameter(torch.randn(1000, dtype=torch.float64)) for _ in range(3)]
    for p in params:
        p.grad = torch.randn(1000, dtype=torch.float64)
    opt = make_opt(params, foreach=foreach)
    opt.step()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        opt.step()
    return max((e.cpu_memory_usage for e in prof.events() if e.cpu_memory_usage > 0), default=0)


# --- the curvature optimizers ----------------------------------------------------------------


def mlp(sizes, dtype=torch.float64, seed=0):
    torch.manual_seed(seed)
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        if i:
            layers.append(torch.nn.Tanh())
        layers.append(torch.nn.Linear(n_in, n_out))
    return torch.nn.Sequential(*layers).to(dtype)


def data(loss, n, n_in, n_out, dtype=torch.float64, seed=1):
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(n, n_in, generator=gen, dtype=dtype)
    if loss == "cross_entropy":
        return X, torch.randint(0, n_out, (n,), generator=gen)
    if loss == "bce":
        return X, torch.randint(0, 2, (n, n_out), generator=gen).to(dtype)
    return X, torch.randn(n, n_out, generator=gen, dtype=dtype)


def flat_function(model, X):
    """theta (all parameters, flat) -> the model's outputs on the whole batch."""
    named = list(model.named_parameters())
    sizes = [p.numel() for _, p in named]

    def f(theta):
        parts = theta.split(sizes)
        values = {n: t.view_as(p) for (n, p), t in zip(named, parts, strict=True)}
        return torch.func.functional_call(model, values, (X,))

    return f, torch.cat([p.detach().reshape(-1) for _, p in named])


def full_ggn(model, loss_fn, X, y):
    """J^T (d2L/df2) J over the batch: J (N k x P) by jacrev, d2L/df2 (N k x N k) of the batch
    loss (its 1/N included)."""
    f, theta = flat_function(model, X)
    out = f(theta).detach()
    J = torch.func.jacrev(f)(theta).reshape(out.numel(), -1)
    hess = torch.func.jacrev(torch.func.jacrev(lambda z: loss_fn(z, y)))(out)
    return (J.mT @ hess.reshape(out.numel(), out.numel()) @ J).detach()


def full_hessian(model, loss_fn, X, y):
    f, theta = flat_function(model, X)
    return torch.func.jacrev(torch.func.jacrev(lambda th: loss_fn(f(th), y)))(theta).detach()


def flat(tensors):
    return torch.cat([t.reshape(-1) for t in tensors])


def gradient(model, loss_fn, X, y):
    return flat(torch.autograd.grad(loss_fn(model(X), y), list(model.parameters())))


def two_moons(dtype, n=200, noise=0.2, seed=0):
    """Two interleaving half circles plus Gaussian noise (NumPy, no download), labels 0/1."""
    rng = np.random.default_rng(seed)
    a = np.linspace(0.0, np.pi, n // 2)
    b = np.linspace(0.0, np.pi, n - n // 2)
    outer = np.column_stack([np.cos(a), np.sin(a)])
    inner = np.column_stack([1.0 - np.cos(b), 0.5 - np.sin(b)])
    X = np.vstack([outer, inner]) + rng.normal(0.0, noise, size=(n, 2))
    y = np.concatenate([np.zeros(n // 2), np.ones(n - n // 2)])
    order = rng.permutation(n)
    return torch.tensor(X[order], dtype=dtype), torch.tensor(y[order], dtype=dtype)


# --- K-FAC -----------------------------------------------------------------------------------


def hessian(fun):
    """Reverse over reverse (torch.func.hessian's forward mode warns about TorchScript)."""
    return torch.func.jacrev(torch.func.jacrev(fun))


def vec(M):
    """Column-major vec: the columns stacked."""
    return M.mT.reshape(-1)


def unvec(v, rows, cols):
    return v.reshape(cols, rows).mT


def kfac_mlp(sizes, activation=torch.nn.Tanh, dtype=torch.float64, bias=True, seed=0):
    torch.manual_seed(seed)
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        if i:
            layers.append(activation())
        layers.append(torch.nn.Linear(n_in, n_out, bias=bias))
    return torch.nn.Sequential(*layers).to(dtype)


def linears(model):
    return [m for m in model.modules() if isinstance(m, torch.nn.Linear)]


def torch_loss(name):
    """The loss the optimizer is told, as the closure computes it (mean reduction)."""
    return {
        "cross_entropy": F.cross_entropy,
        "bce": F.binary_cross_entropy_with_logits,
        "mse": F.mse_loss,
    }[name]


def kfac_data(name, n, n_in, n_out, dtype=torch.float64, seed=1):
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(n, n_in, generator=gen, dtype=dtype)
    if name == "cross_entropy":
        return X, torch.randint(0, n_out, (n,), generator=gen)
    if name == "bce":
        return X, torch.randint(0, 2, (n, n_out), generator=gen).to(dtype)
    return X, torch.randn(n, n_out, generator=gen, dtype=dtype)


def layer_function(model, layer, X):
    """theta = vec([W | b]) of one layer -> the model's outputs on X (the others held fixed)."""
    names = {id(p): name for name, p in model.named_parameters()}
    out, n_in = layer.weight.shape
    has_bias = layer.bias is not None

    def f(theta):
        Wb = unvec(theta, out, n_in + has_bias)
        values = {names[id(layer.weight)]: Wb[:, :n_in]}
        if has_bias:
            values[names[id(layer.bias)]] = Wb[:, n_in]
        return torch.func.functional_call(model, values, (X,))

    parts = [layer.weight.detach()] + ([layer.bias.detach()[:, None]] if has_bias else [])
    return f, vec(torch.cat(parts, dim=1))


def exact_ggn_block(model, layer, loss, X, y):
    """J^T (d2L/df2) J with J = df/dtheta over the whole batch (torch.func), L the mean loss."""
    f, theta = layer_function(model, layer, X)
    out = f(theta).detach()
    J = torch.func.jacrev(f)(theta).reshape(out.numel(), -1)
    Lam = hessian(lambda z: loss(z, y))(out).reshape(out.numel(), out.numel())
    return (J.mT @ Lam @ J).detach()


def layer_gradients(model, layer, loss, X, y):
    """Per-example gradients dc_n/dtheta of one layer (torch.func.vmap over the examples)."""
    f, theta = layer_function(model, layer, X[:1])

    def one(x, t):
        g, _ = layer_function(model, layer, x[None])
        return torch.func.grad(lambda th: loss(g(th), t[None]))(theta)

    return torch.func.vmap(one)(X, y)


def closure_for(model, loss, X, y):
    return lambda: loss(model(X), y)


def spd(n, gen, dtype=torch.float64, rank=None):
    a = torch.randn(n, rank or n, generator=gen, dtype=dtype)
    return a @ a.mT / n


class Scaled(torch.nn.Module):
    """An MLP times a learnt scalar: a parameter outside the Linear layers (plain SGD)."""

    def __init__(self, net):
        super().__init__()
        self.net = net
        self.scale = torch.nn.Parameter(torch.tensor(1.5, dtype=torch.float64))

    def forward(self, x):
        return self.scale * self.net(x)


def dense_steps(model, opt, loss, X, y, lr, lam):
    """The steps K-FAC takes for (its own, checked above) factors, by dense solves, the SGD step
    of the other parameters, and lr^2 sum g.(A (x) G + lam I)^-1 g."""
    params = list(model.parameters())
    grads = dict(zip(params, torch.autograd.grad(loss(model(X), y), params), strict=True))
    steps, kl = {}, 0.0
    for layer, (A, G) in opt.kronecker_factors().items():
        V = torch.cat([grads[layer.weight], grads[layer.bias][:, None]], dim=1)
        M = torch.kron(A, G) + lam * torch.eye(A.shape[0] * G.shape[0], dtype=A.dtype)
        x = torch.linalg.solve(M, vec(V))
        kl += lr * lr * float(vec(V) @ x)
        d = -lr * unvec(x, *V.shape)
        steps[layer.weight], steps[layer.bias] = d[:, :-1], d[:, -1]
    for p in params:
        if p not in steps:
            steps[p] = -lr * grads[p]
    return steps, kl

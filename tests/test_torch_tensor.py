"""The PyTorch target past element-wise algebra (issue 15): the generated Muon and Rprop against
torch.optim (float64, 100 steps, 1e-10), specs that exercise every construct (conditions on
tensors and on Python scalars, state set from the first gradient, scalar/row/column state,
reductions, matrices only with an [otherwise] update) against the reference stepper, the
whole-tensor runtime's mechanics, and the torch printer's choices.

The optimizers are generated here, into a temporary folder, with the backend's API."""

import copy
import importlib.util
import sys

import numpy as np
import pytest
import sympy

from symopt.backends.torch import TorchBackend
from symopt.backends.torch.conditions import assign_masks
from symopt.backends.torch.elementwise import _foreach, single_lines
from symopt.backends.torch.tensor import TorchTensorPrinter
from symopt.reference import ReferenceStepper
from symopt.resources import builtin_spec
from symopt.spec import load_spec_text
from symopt.spec.tensor import ALL_FEATURES, ColMean, MatProduct, RowSum, TensorNorm, Transposed

torch = pytest.importorskip("torch")

# Conditions on tensors and on Python scalars (t), nested where, and a state set from g.
CONDITIONS = """
name = "conditions"
class_name = "Conditions"
title = "Conditions"
summary = "Exercises conditions."
reference = "none"
update = [
  "k = where(g > 0 and t > 2, 1, 0.5)",
  "j = where(not (g < 0) or t > 3, k, -1)",
  "a = where(abs(g) >= a, g**2, a)",
  "hh = where(g != 0, g, where(t == 1, 0.25, lr))",
  "w = w - lr*j*hh/sqrt(a + 1)",
]
[hyper.lr]
default = 0.1
domain = "positive"
[state.a]
init = "g**2 + lr"
"""
# Every tensor-level construct: 2-D parameters take the first update, others [otherwise].
SHAPED = """
name = "shaped"
class_name = "Shaped"
title = "Shaped"
summary = "Exercises tensor shapes."
reference = "none"
applies_to = "matrix"
update = [
  "m = beta*m + (1 - beta)*g",
  "gn = norm(g)",
  "s = where(t == 1, gn, max(s, gn))",
  "r = beta*r + (1 - beta)*row_sum(g**2)",
  "c = beta*c + (1 - beta)*col_mean(abs(g))",
  "k = max(abs(g))",
  "q = where(t > 2, 2, 1)",
  "q = q*rows/cols",
  "d = where(r > mean(r), m/sqrt(r + eps), transpose(transpose(m))*c)",
  { repeat = 2, update = ["d = d - 0.1*(d @ transpose(d)) @ d/max(norm(d)**2, eps)"] },
  "w = w - lr*q*d/max(s, eps) - lr*eps*k*sum(g)",
]
[otherwise]
update = ["m = beta*m + (1 - beta)*g", "w = w - lr*m/max(norm(m), eps)"]
[hyper.lr]
default = 0.01
domain = "positive"
[hyper.beta]
default = 0.9
domain = "unit_closed_open"
[hyper.eps]
default = 1e-8
domain = "positive"
[state.m]
init = "g"
[state.s]
init = "0"
shape = "scalar"
[state.r]
init = "1"
shape = "rows"
[state.c]
init = "0"
shape = "cols"
"""
BUILTINS = ["muon", "rprop", "lars", "adafactor", "lamb"]


def load(name, path, package=None):
    """A module (or a package, from its __init__.py) under its own name: the generated package
    in ``generated/torch`` may be imported as ``symopt_torch`` by other tests."""
    spec = importlib.util.spec_from_file_location(
        name, path, submodule_search_locations=[str(path.parent)] if package else None
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def gen(tmp_path_factory):
    """The generated package (import name ``symopt_torch_issue15``) and its test support."""
    specs = [builtin_spec(n) for n in BUILTINS]
    specs += [load_spec_text(CONDITIONS, file="conditions.toml")]
    specs += [load_spec_text(SHAPED, file="shaped.toml")]
    out = tmp_path_factory.mktemp("gen")
    for f in TorchBackend().files(specs):
        path = out / f.path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f.text)
    package = load("symopt_torch_issue15", out / "torch/symopt_torch/__init__.py", package=True)
    support = load("torch_support_issue15", out / "torch/tests/torch_support.py")
    torch.set_num_threads(1)
    return package, support, specs


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_conditions_match_the_reference_on_both_paths(gen, dtype):
    """Masks and Python-bool conditions, nested where, a state set from the first gradient;
    the foreach and single-tensor paths bit for bit."""
    package, ts, specs = gen
    rng = np.random.default_rng(0)
    shapes = [(1,), (7,), (3, 5), (300,)]
    ws = [rng.standard_normal(s).astype(dtype) for s in shapes]
    streams = [ts.gradient_stream(rng, s, dtype, steps=30) for s in shapes]
    ref = ReferenceStepper(specs[-2], ws)
    ts.run_against(package.Conditions, ref, ws, zip(*streams, strict=True), dtype, "c")
    assert ts.largest_allocation(package.Conditions, True) <= 8  # masks are kept scratch


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_shaped_state_and_otherwise_match_the_reference(gen, dtype):
    package, ts, specs = gen
    rng = np.random.default_rng(1)
    shapes = [(4, 6), (6, 4), (1, 1), (5,), (2, 3, 2)]
    ws = [rng.standard_normal(s).astype(dtype) for s in shapes]
    params = ts.as_params(ws, dtype)
    opt = package.Shaped(params)
    ref = ReferenceStepper(specs[-1], ws)
    scales = {}
    streams = [ts.gradient_stream(rng, s, dtype, 40) for s in shapes]
    for k, grads in enumerate(zip(*streams, strict=True)):
        ts.set_grads(params, grads)
        opt.step()
        ref.step(list(grads))
        ts.compare(opt, params, ref, dtype, f"step {k + 1}", scales)
    state = opt.state[params[0]]
    assert [tuple(state[n].shape) for n in "msrc"] == [(4, 6), (), (4, 1), (1, 6)]
    assert sorted(opt.state[params[3]]) == ["m", "step"]
    assert all(v.dtype == params[0].dtype for v in list(state.values())[1:])


def test_param_groups_closure_and_parameters_without_gradient(gen):
    """Each group its own hyperparameters (as two references), a closure's loss returned and
    computed with gradients on, and a parameter without a gradient left alone."""
    package, _, specs = gen
    gen_ = torch.Generator().manual_seed(2)
    w = [torch.randn(4, 3, generator=gen_, dtype=torch.float64) for _ in range(3)]
    p = [torch.nn.Parameter(x.clone()) for x in w]
    opt = package.Lamb([{"params": [p[0]], "lr": 0.1}, {"params": p[1:]}], lr=0.01)
    refs = [
        ReferenceStepper(builtin_spec("lamb"), [w[0].numpy()], lr=0.1),
        ReferenceStepper(builtin_spec("lamb"), [w[1].numpy()], lr=0.01),
    ]

    def closure():
        assert torch.is_grad_enabled()
        return (p[0] ** 2).sum() + (p[1] ** 3).sum()

    for _ in range(5):
        opt.zero_grad()
        loss = closure()
        loss.backward()
        grads = [p[0].grad.numpy().copy(), p[1].grad.numpy().copy()]
        assert opt.step(closure) == loss  # evaluated before the step
        for ref, g in zip(refs, grads, strict=True):
            ref.step([g])
    for x, ref in zip(p[:2], refs, strict=True):
        np.testing.assert_allclose(x.detach().numpy(), ref.params[0], rtol=1e-12)
    assert torch.equal(p[2].detach(), w[2]) and p[2] not in opt.state


def test_matrix_specs_refuse_other_shapes_or_take_their_otherwise_update(gen):
    package = gen[0]
    vector = torch.nn.Parameter(torch.zeros(3))
    with pytest.raises(ValueError, match="2-D parameters only"):
        package.Muon([torch.nn.Parameter(torch.zeros(2, 3)), vector])
    opt = package.Muon([torch.nn.Parameter(torch.zeros(2, 3))])
    with pytest.raises(ValueError, match="2-D parameters only"):
        opt.add_param_group({"params": [vector]})
    matrix = torch.nn.Parameter(torch.ones(2, 3))
    opt = package.Adafactor([matrix, vector])
    matrix.grad, vector.grad = torch.ones(2, 3), torch.ones(3)
    opt.step()
    assert sorted(opt.state[matrix]) == ["col_var", "row_var", "step"]  # torch's keys
    assert sorted(opt.state[vector]) == ["step", "variance"]


def test_state_dict_round_trip_and_rejected_inputs(gen):
    package = gen[0]
    p = torch.nn.Parameter(torch.randn(3, 4, dtype=torch.float32))
    opt = package.Lars([p])
    p.grad = torch.randn(3, 4)
    opt.step()
    saved = copy.deepcopy(opt.state_dict())
    assert saved["state"][0]["step"] == 1 and saved["state"][0]["b"].dtype == torch.float32
    q = torch.nn.Parameter(p.detach().clone())
    again = package.Lars([q])
    again.load_state_dict(saved)
    p.grad = q.grad = torch.randn(3, 4)
    opt.step()
    again.step()
    assert torch.equal(p, q) and p.dtype == torch.float32
    p.grad = torch.randn(3, 4).to_sparse()
    with pytest.raises(RuntimeError, match="sparse"):
        opt.step()
    with pytest.raises(ValueError, match="lr"):
        package.Lars([p], lr=-1.0)
    opt.param_groups[0]["lr"] = float("nan")
    p.grad = torch.randn(3, 4)
    with pytest.raises(ValueError, match="lr"):
        opt.step()


def test_the_backend_supports_every_feature_and_renders_every_builtin():
    from symopt.resources import elementwise_specs

    backend = TorchBackend()
    assert backend.supports == ALL_FEATURES
    specs = list(elementwise_specs().values())
    assert all(backend.unsupported(s) is None for s in specs)
    paths = {f.path for f in backend.files(specs)}
    assert all(f"torch/symopt_torch/{s.name}.py" in paths for s in specs)


def test_printer_numbers_stay_python_and_tensors_become_torch():
    x, s, lr, rows = (sympy.Symbol(n, real=True) for n in ("x", "s", "lr", "rows"))
    t = sympy.Symbol("t", real=True)
    p = TorchTensorPrinter({"s", "lr", "rows", "t"})
    assert p.doprint(sympy.sqrt(sympy.Max(1, rows))) == "math.sqrt(max(1, rows))"
    assert p.doprint(sympy.sqrt(x)) == "torch.sqrt(x)"
    assert p.doprint(sympy.Max(x, s, lr)) == "torch.clamp(x, min=max(lr, s))"
    assert p.doprint(sympy.Min(x, TensorNorm(x))) == "torch.minimum(x, torch.linalg.vector_norm(x))"
    assert p.doprint(RowSum(x)) == "torch.sum(x, dim=-1, keepdim=True)"
    assert p.doprint(ColMean(x)) == "torch.mean(x, dim=-2, keepdim=True)"
    assert p.doprint(MatProduct(x, Transposed(x))) == "(x @ x.mT)"
    assert p.doprint(sympy.sign(x)) == "torch.sign(x)"
    # a condition on numbers chooses in Python; on a tensor with torch.where, whose number
    # branches become tensors of g's dtype
    assert (
        p.doprint(sympy.Piecewise((x, t > 2), (s, True))) == "(x if (t > 2) else g.new_tensor(s))"
    )
    assert (
        p.doprint(sympy.Piecewise((1, x > 0), (lr, True)))
        == "torch.where((x > 0), g.new_tensor(1), g.new_tensor(lr))"
    )
    assert p.doprint(sympy.Piecewise((1, t > 2), (lr, True))) == "((1) if (t > 2) else (lr))"


# (op, dst, operands, NumPy reference): floats a, b, d; boolean masks m, n, k; the Python
# float c; the Python bools yes, no. Every comparison, logical and where form, in place too.
CONDITIONAL = [
    ("greater", "k", ("a", "b"), lambda e: e["a"] > e["b"]),
    ("less_equal", "k", ("c", "a"), lambda e: 0.75 <= e["a"]),
    ("equal", "k", ("a", "b"), lambda e: e["a"] == e["b"]),
    ("not_equal", "k", ("a", "c"), lambda e: e["a"] != 0.75),
    ("greater_equal", "k", ("a", "b"), lambda e: e["a"] >= e["b"]),
    ("less", "k", ("b", "a"), lambda e: e["b"] < e["a"]),
    ("logical_and", "k", ("m", "n"), lambda e: e["m"] & e["n"]),
    ("logical_or", "m", ("m", "n"), lambda e: e["m"] | e["n"]),
    ("logical_and", "k", ("m", "yes"), lambda e: e["m"]),
    ("logical_and", "m", ("m", "no"), lambda e: np.zeros_like(e["m"])),
    ("logical_or", "k", ("m", "no"), lambda e: e["m"]),
    ("logical_or", "m", ("m", "yes"), lambda e: np.ones_like(e["m"])),
    ("logical_not", "m", ("m",), lambda e: ~e["m"]),
    ("where", "d", ("m", "a", "b"), lambda e: np.where(e["m"], e["a"], e["b"])),
    ("where", "a", ("m", "a", "b"), lambda e: np.where(e["m"], e["a"], e["b"])),
    ("where", "b", ("m", "a", "b"), lambda e: np.where(e["m"], e["a"], e["b"])),
    ("where", "d", ("m", "c", "b"), lambda e: np.where(e["m"], 0.75, e["b"])),
    ("where", "b", ("m", "c", "b"), lambda e: np.where(e["m"], 0.75, e["b"])),
    ("where", "a", ("m", "a", "c"), lambda e: np.where(e["m"], e["a"], 0.75)),
    ("where", "d", ("m", "c", "0.25"), lambda e: np.where(e["m"], 0.75, 0.25)),
    ("where", "d", ("yes", "a", "c"), lambda e: e["a"]),
    ("where", "d", ("no", "a", "c"), lambda e: np.full_like(e["a"], 0.75)),
    ("where", "a", ("yes", "a", "b"), lambda e: e["a"]),
    ("where", "a", ("no", "a", "b"), lambda e: e["b"]),
]


@pytest.mark.parametrize(("op", "dst", "operands", "expected"), CONDITIONAL)
def test_conditional_instructions_run_and_agree(op, dst, operands, expected):
    """On lists and on single tensors: equal to NumPy, the two paths bit-identical."""
    args = tuple(("value" if x in "abdmnk" else "scalar", x) for x in operands)
    gen = torch.Generator().manual_seed(2)
    a0 = [torch.rand(9, generator=gen, dtype=torch.float64) + 0.5 for _ in range(3)]
    b0 = [torch.where(torch.arange(9) % 3 == 0, a, a.flip(0)) for a in a0]  # some ties
    env = {"torch": torch, "c": 0.75, "yes": True, "no": False}
    results = []
    for lists in (True, False):
        t = {"a": [x.clone() for x in a0], "b": [x.clone() for x in b0]}
        t["d"] = [torch.empty_like(x) for x in a0]
        t["m"], t["n"] = [x > 1.0 for x in t["a"]], [x > 1.0 for x in t["b"]]
        t["k"] = [torch.empty(9, dtype=torch.bool) for _ in a0]
        before = {k: [x.numpy().copy() for x in v] for k, v in t.items()}
        if lists:
            exec("\n".join(_foreach(op, dst, args)), {**env, **t})
        else:
            for i in range(3):
                exec(
                    "\n".join(single_lines(op, dst, args)),
                    {**env, **{k: v[i] for k, v in t.items()}},
                )
        for i, z in enumerate(t[dst]):
            want = expected({k: v[i] for k, v in before.items()})
            np.testing.assert_array_equal(z.numpy(), want)
        results.append(torch.cat(t[dst]))
    assert torch.equal(*results)


def test_conditions_live_in_boolean_masks_reused_by_liveness():
    """A condition written to a float buffer moves to a mask, and so does every read of it;
    a mask is free again after its last read (here before the second comparison)."""
    v, s = (lambda n: ("value", n)), (lambda n: ("scalar", n))
    program = [
        ("less", "_b0", (v("g"), s("0")), ()),
        ("where", "_b1", (v("_b0"), v("g"), s("0")), ()),
        ("greater", "_b0", (v("g"), v("_b1")), ()),
        ("logical_not", "_b2", (v("_b0"),), ()),
        ("where", "w", (v("_b2"), v("_b1"), v("w")), ()),
    ]
    out, masks = assign_masks(program)
    assert masks == ["_m0"]
    assert [dst for _, dst, _, _ in out] == ["_m0", "_b1", "_m0", "_m0", "w"]
    assert out[1][2][0] == ("value", "_m0") and out[4][2][0] == ("value", "_m0")

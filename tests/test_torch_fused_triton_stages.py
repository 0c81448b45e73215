"""The Triton kernels of the staged fused steps (symopt/backends/torch/fused_triton_stages.py:
LAMB, LARS, ASGD, torch's NAdam) step as the tensor path of the committed generated classes, run
by Triton's interpreter on CPU tensors, and on a CUDA device where there is one.

The oracle is the generated class itself (``Lamb``, ``Lars``, ``ASGD``, ``NAdam``), stepped three
times beside the fused step on a group of tensors: two small ones and one of two chunks, with
vectors and matrices for LARS (its ``[otherwise]`` update), and states of one value per tensor
for ASGD and NAdam. In float64 they agree to 1e-12 (the norms add in another order, and the
formulas are arranged differently; measured: 1.2e-15 at most, relative distance in norm); in
float32 to 1e-6 (the tensor path computes the per-tensor scalars in float32, the fused step in
float64; measured: 1.1e-7). In bfloat16 a step gives the bits of the float32
fused step from the same bfloat16 values, rounded once, except LAMB's w, whose second pass reads
the rounded m and v (there, and against the float32 tensor path, within a bfloat16 eps;
measured against the tensor path: 5.3e-3). A spec
with a max and a mean reduction checks those against torch. Without a GPU, the kernels are also
compiled for one (sm_90): correctly rounded division and square root, 16-byte loads.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import re
import shutil
import sys
import tempfile
from functools import cache
from pathlib import Path

import pytest

from symopt.backends.base import kernel_specs, split_kinds
from symopt.backends.torch.fused_stages import parts, staged
from symopt.backends.torch.fused_triton_stages import triton_stages_module
from symopt.lowering.stages import split
from symopt.resources import builtin_specs
from symopt.spec import Spec, load_spec

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "generated" / "torch"))
RUNTIME = ROOT / "symopt" / "backends" / "torch" / "runtime" / "_triton_launch.py"
PACKAGE = "symopt_triton_stages_check"
COMPILED = "symopt_triton_stages_compiled"
BF16_EPS = 2.0**-7
#: A spec with a max and a mean reduction (no built-in staged kernel has them).
MAX_MEAN = """
name = "maxmean"
class_name = "MaxMean"
title = "MaxMean"
summary = "a test spec"
reference = "none"
update = ["s = max(abs(g))", "a = mean(g)", "m = momentum*m + g - a", "w = w - lr*m/(s + eps)"]
[hyper.lr]
default = 0.1
domain = "positive"
[hyper.momentum]
default = 0.5
domain = "unit_closed_open"
[hyper.eps]
default = 1e-8
domain = "positive"
[state.m]
init = "0"
"""
#: kernel -> (module and class of the tensor path, hyperparameters other than the defaults)
CASES = {
    "lamb": ("lamb", "Lamb", {"weight_decay": 0.1, "max_norm": 3.0}),
    "lars": ("lars", "Lars", {"weight_decay": 0.01, "dampening": 0.1, "lr": 0.1}),
    # t0 = 0: mu is 1/2 in the third step (the average's other branch)
    "_asgd__weight_decay": ("_asgd__weight_decay", "ASGD", {"t0": 0.0, "lambd": 0.01}),
    "_asgd": ("_asgd", "ASGD", {"t0": 0.0, "lambd": 0.01}),
    "_nadam_torch": ("_nadam_torch", "NAdam", {}),
    "_nadam_torch__decoupled_weight_decay__weight_decay": (
        "_nadam_torch__decoupled_weight_decay__weight_decay",
        "NAdam",
        {"weight_decay": 0.01},
    ),
}
#: Shapes of a group: two small tensors and one of two chunks (CHUNK is 16384); LARS's vector
#: and the zero matrix take the update for other parameters and the ratio's "1" branch.
SHAPES = {"lars": [(3, 4), (5,), (2, 8200), "zeros"]}
DEFAULT_SHAPES = [(3, 4), (5,), (2, 8200)]
TOLERANCE = {torch.float64: 1e-12, torch.float32: 1e-6}


@cache
def kernels() -> dict[str, Spec]:
    specs, _ = split_kinds(list(builtin_specs().values()))
    found = {k.name: k for s in specs for k in kernel_specs(s) if not k.elementwise and staged(k)}
    found["maxmean"] = extra_kernel()
    return found


@cache
def extra_kernel() -> Spec:
    """The kernel of MAX_MEAN."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "maxmean.toml"
        path.write_text(MAX_MEAN, encoding="utf-8")
        (spec,) = kernel_specs(load_spec(path))
    return spec


@cache
def package(root: Path, name: str) -> Path:
    """Every staged kernel's module, with the runtime, as the package ``name`` under root."""
    folder = root / name / "_triton"
    folder.mkdir(parents=True)
    (root / name / "__init__.py").write_text("", encoding="utf-8")
    (folder / "__init__.py").write_text("", encoding="utf-8")
    shutil.copy(RUNTIME, root / name / "_triton_launch.py")
    for module, kernel in kernels().items():
        (folder / f"{module}.py").write_text(triton_stages_module(kernel), "utf-8")
    return root


@pytest.fixture
def interpreted(monkeypatch, tmp_path_factory):
    """Import a module of the rendered package, its kernels run by Triton's interpreter."""
    pytest.importorskip("triton", reason="triton is not installed (pip install triton)")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    monkeypatch.syspath_prepend(str(package(tmp_path_factory.getbasetemp(), PACKAGE)))
    return lambda name: importlib.import_module(f"{PACKAGE}.{name}")


@pytest.fixture
def compiled(monkeypatch, tmp_path_factory):
    """Import a module of the rendered package for the GPU (no interpreter)."""
    pytest.importorskip("triton", reason="triton is not installed (pip install triton)")
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    monkeypatch.setenv("TRITON_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "triton-cache"))
    monkeypatch.syspath_prepend(str(package(tmp_path_factory.getbasetemp(), COMPILED)))
    return lambda name: importlib.import_module(f"{COMPILED}.{name}")


def parameters(name: str, dtype: torch.dtype) -> list[torch.Tensor]:
    random = torch.Generator().manual_seed(len(name))
    out = []
    for shape in SHAPES.get(name, DEFAULT_SHAPES):
        if shape == "zeros":
            out.append(torch.zeros(4, 3, dtype=dtype))
        else:
            out.append(torch.randn(shape, generator=random, dtype=torch.float64).to(dtype))
    return out


def fused_lists(fused, cls, params, grads, states, other: bool) -> list[list[torch.Tensor]]:
    """The lists ``step`` takes for the parameters of one part (other: those ``update_other``
    steps), in the order of its arrays."""
    mine = [k for k, p in enumerate(params) if cls.takes_update(p) != other]
    if not mine:
        return []
    arrays = fused.OTHER_ARRAYS if other else fused.ARRAYS
    source = {"w": params, "g": grads}
    return [[source[a][k] if a in source else states[k][a] for k in mine] for a in arrays]


def fused_step(fused, cls, params, grads, states, t: int, hyper: dict, device=None) -> None:
    """One fused step of every part of the group (on ``device``, copied back, where given)."""
    values = tuple(float(hyper[h]) for h in fused.HYPERS)
    for other in (False, True):
        lists = fused_lists(fused, cls, params, grads, states, other)
        if not lists:
            continue
        if device is None:
            fused.step(lists, t, values, other)
            continue
        moved = [[x.to(device) for x in xs] for xs in lists]
        fused.step(moved, t, values, other)
        for xs, ys in zip(lists, moved, strict=True):
            for x, y in zip(xs, ys, strict=True):
                x.copy_(y.cpu())


def distance(x: torch.Tensor, y: torch.Tensor) -> float:
    """The relative distance in norm (0 between two zeros)."""
    gap = (x.double() - y.double()).norm().item()
    return gap / max(y.double().norm().item(), 1e-300) if gap else 0.0


def check(name: str, step, dtype: torch.dtype, steps: int = 3) -> None:
    """Three fused steps against the tensor path's class, step by step."""
    module, class_name, changed = CASES[name]
    generated = importlib.import_module(f"symopt_torch.{module}")
    cls = getattr(generated, class_name)
    hyper = {**generated.DEFAULTS, **changed}
    params = parameters(name, dtype)
    opt = cls([p.clone() for p in params], **hyper)
    states = [cls.initial_state(p, hyper, cls.takes_update(p)) for p in params]
    random = torch.Generator().manual_seed(7)
    for t in range(1, steps + 1):
        grads = [
            torch.randn(p.shape, generator=random, dtype=torch.float64).to(dtype) for p in params
        ]
        for p, g in zip(opt.param_groups[0]["params"], grads, strict=True):
            p.grad = g.clone()
        opt.step()
        step(cls, params, grads, states, t, hyper)
        for k, (p, mine) in enumerate(zip(opt.param_groups[0]["params"], params, strict=True)):
            pairs = [("w", mine, p), *((a, x, opt.state[p][a]) for a, x in states[k].items())]
            for array, actual, expected in pairs:
                gap = distance(actual, expected)
                what = f"{name} {dtype} step {t} tensor {k} {array}"
                assert gap <= TOLERANCE[dtype], f"{what}: {gap:.3g} from the tensor path"


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize("name", sorted(CASES))
def test_fused_step_is_the_tensor_step(name, dtype, interpreted):
    fused = interpreted(f"_triton.{name}")

    def step(cls, params, grads, states, t, hyper):
        fused_step(fused, cls, params, grads, states, t, hyper)

    check(name, step, dtype)


@pytest.mark.parametrize("name", sorted(CASES))
def test_bfloat16_is_float32_rounded_once(name, interpreted):
    """From the same bfloat16 values, a bfloat16 step gives the float32 step's values rounded
    once (every output is written by the last pass, so no pass reads a rounded value), and
    stays near the tensor path in float32."""
    fused = interpreted(f"_triton.{name}")

    def step(cls, params, grads, states, t, hyper):
        wide = [p.float() for p in params]
        wide_states = [{a: x.float() for a, x in s.items()} for s in states]
        fused_step(fused, cls, wide, [g.float() for g in grads], wide_states, t, hyper)
        fused_step(fused, cls, params, grads, states, t, hyper)
        expected = [("w", p, q) for p, q in zip(params, wide, strict=True)]
        expected += [(a, s[a], w[a]) for s, w in zip(states, wide_states, strict=True) for a in s]
        for array, actual, wider in expected:
            assert torch.equal(actual, wider.bfloat16()), f"{name} step {t} {array}"

    check_bfloat16(name, step)


def check_bfloat16(name: str, step) -> None:
    """Three bfloat16 steps near the float32 tensor path (relative distance in norm)."""
    module, class_name, changed = CASES[name]
    generated = importlib.import_module(f"symopt_torch.{module}")
    cls = getattr(generated, class_name)
    hyper = {**generated.DEFAULTS, **changed}
    params = parameters(name, torch.bfloat16)
    opt = cls([p.float() for p in params], **hyper)
    states = [cls.initial_state(p, hyper, cls.takes_update(p)) for p in params]
    random = torch.Generator().manual_seed(7)
    for t in range(1, 4):
        grads = [torch.randn(p.shape, generator=random).bfloat16() for p in params]
        for p, g in zip(opt.param_groups[0]["params"], grads, strict=True):
            p.grad = g.float()
        opt.step()
        step(cls, params, grads, states, t, hyper)
        for p, mine in zip(opt.param_groups[0]["params"], params, strict=True):
            assert distance(mine, p) <= BF16_EPS, f"{name} step {t}: w"


@pytest.mark.filterwarnings("ignore:.*encountered in:RuntimeWarning")
def test_max_and_mean(interpreted):
    """A spec reducing with max and mean, against torch in float64 (tensors of 7 elements and
    of two chunks, and an empty one, which has nothing to step)."""
    fused = interpreted("_triton.maxmean")
    random = torch.Generator().manual_seed(3)
    sizes = [7, 16384 + 9, 0]
    w = [torch.randn(n, generator=random, dtype=torch.float64) for n in sizes]
    m = [torch.randn(n, generator=random, dtype=torch.float64) for n in sizes]
    g = [torch.randn(n, generator=random, dtype=torch.float64) for n in sizes]
    lr, momentum, eps = 0.1, 0.5, 1e-8
    expected = []
    for wk, mk, gk in zip(w, m, g, strict=True):
        new_m = momentum * mk + gk - gk.mean()
        expected.append((wk - lr * new_m / (gk.abs().max() + eps) if gk.numel() else wk, new_m))
    fused.step([w, g, m], 1, (lr, momentum, eps))
    for k, (new_w, new_m) in enumerate(expected):
        assert distance(w[k], new_w) <= 1e-14, f"w {k}"
        assert distance(m[k], new_m) <= 1e-14, f"m {k}"


def test_tables(interpreted):
    """A chunk row: length, tensor, the arrays' addresses; a tensor row: its first chunk, its
    chunks, its size, its states' addresses. Cached by contents."""
    rt = interpreted("_triton_launch")
    a, b, c = torch.zeros(rt.CHUNK + 5), torch.zeros(rt.CHUNK + 5), torch.zeros(3)
    d, s, u = torch.zeros(3), torch.zeros(()), torch.zeros(())
    chunks, tensors, rows, aligned = rt._stage_tables([[a, c], [b, d]], [[s, u]])
    step = rt.CHUNK * 4
    assert chunks.tolist() == [
        rt.CHUNK, 0, a.data_ptr(), b.data_ptr(),
        5, 0, a.data_ptr() + step, b.data_ptr() + step,
        3, 1, c.data_ptr(), d.data_ptr(),
    ]  # fmt: skip
    assert tensors.tolist() == [0, 2, rt.CHUNK + 5, s.data_ptr(), 2, 1, 3, u.data_ptr()]
    assert (rows, aligned) == (3, True)
    assert rt._stage_tables([[a, c], [b, d]], [[s, u]])[0] is chunks


@pytest.mark.parametrize(
    ("name", "other", "lists", "message"),
    [
        ("lamb", True, [[torch.zeros(4)]] * 4, "LAMB has no update for other parameters"),
        ("lamb", False, [[torch.zeros(4)]] * 3 + [[]], "lists of equal lengths"),
        (
            "_asgd",
            False,
            [
                [torch.zeros(4)],
                [torch.zeros(4)],
                [torch.zeros(2)],
                [torch.zeros(())],
                [torch.zeros(4)],
            ],
            "states of one value per tensor as 0-d tensors",
        ),
        ("lamb", False, [[torch.zeros(4, dtype=torch.float16)]] * 4, "not torch.float16"),
    ],
)
def test_refused_groups(interpreted, name, other, lists, message):
    fused = interpreted(f"_triton.{name}")
    with pytest.raises(ValueError, match=message):
        fused.step(lists, 1, tuple(0.5 for _ in fused.HYPERS), other)


def test_cpu_tensors_need_the_interpreter(compiled):
    fused = compiled("_triton.lamb")
    with pytest.raises(ValueError, match="runs on CUDA tensors, not on cpu"):
        fused.step([[torch.zeros(4)]] * 4, 1, (0.1, 0.9, 0.99, 0.0, 1e-6, 10.0))


@pytest.mark.parametrize("name", sorted(CASES))
def test_fused_step_on_a_gpu(name, compiled):
    """On a CUDA device (skipped without one): as in the interpreter, and the same bits twice."""
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    fused = compiled(f"_triton.{name}")
    for dtype in (torch.float64, torch.float32):

        def step(cls, params, grads, states, t, hyper):
            again = [p.clone() for p in params]
            again_states = [{a: x.clone() for a, x in s.items()} for s in states]
            for ps, ss in ((params, states), (again, again_states)):
                fused_step(fused, cls, ps, grads, ss, t, hyper, device="cuda")
            assert all(torch.equal(p, q) for p, q in zip(params, again, strict=True))

        check(name, step, dtype)


@pytest.fixture
def cuda_ptx(compiled):
    """The PTX of a kernel compiled for an NVIDIA GPU (sm_90), which needs none."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    if "nvidia" not in triton.backends.backends:
        pytest.skip("this triton has no NVIDIA backend")
    rt = compiled("_triton_launch")

    def ptx(module: str, kernel_name: str, dtype: torch.dtype) -> str:
        kernel = getattr(compiled(f"_triton.{module}"), kernel_name)
        names = [p.name for p in kernel.params]
        kinds = {"_chunks": "*i64", "_tensors": "*i64", "_part": "*fp64", "_ts": "*fp64"}
        kinds |= {n: "i64" for n in names if n.endswith("_bits")}
        storage, compute = rt.TYPES[dtype]
        constants = {"BLOCK": rt.BLOCK, "STORAGE": storage, "COMPUTE": compute, "ALIGNED": True}
        source = ASTSource(
            kernel,
            {n: kinds.get(n, "constexpr") for n in names},
            {(names.index(n),): value for n, value in constants.items()},
        )
        return triton.compile(source, target=GPUTarget("cuda", 90, 32), options=rt.OPTIONS).asm[
            "ptx"
        ]

    return ptx


VECTOR_LOAD = re.compile(r"ld\.global(\.\w+)*\.v[24]\.")


@pytest.mark.parametrize(
    ("module", "kernel", "dtype"),
    [
        ("lamb", "_pass1_kernel", "float32"),
        ("lamb", "_pass1_kernel", "bfloat16"),
        ("lamb", "_after1_kernel", "float32"),
        ("lamb", "_pass2_kernel", "float64"),
        ("_nadam_torch", "_before_kernel", "bfloat16"),
        ("maxmean", "_pass1_kernel", "float32"),
        ("maxmean", "_after1_kernel", "float32"),
    ],
)
def test_kernels_compile_for_cuda(module, kernel, dtype, cuda_ptx):
    """Correctly rounded division and square root; a pass loads 16 bytes at once."""
    ptx = cuda_ptx(module, kernel, getattr(torch, dtype))
    assert not re.search(r"div\.(full|approx)|sqrt\.approx", ptx)
    if "pass" in kernel:
        assert VECTOR_LOAD.search(ptx)


@pytest.mark.parametrize("name", sorted(kernels()))
def test_module_source(name):
    """Without triton: the module parses, is rendered the same twice, names the arrays of each
    part and the hyperparameters in the order of their passes, and holds no float literal (Triton
    would make it a float32) in a kernel."""
    kernel = kernels()[name]
    source = triton_stages_module(kernel)
    assert source == triton_stages_module(kernel)
    tree = ast.parse(source)
    assigned = {
        node.targets[0].id: ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign)
        and node.targets[0].id.isupper()
        and "STEPS" not in node.targets[0].id
    }
    main, other = parts(kernel)
    stages = split(dataclasses.replace(main, text=""))  # not the cached passes of the other part
    assert assigned["ARRAYS"] == stages.arrays
    assert assigned["HYPERS"] == stages.hypers
    assert ("OTHER_ARRAYS" in assigned) == (other is not None)
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.decorator_list and node.name.startswith("_"):
            floats = [
                c.value
                for c in ast.walk(node)
                if isinstance(c, ast.Constant)
                and isinstance(c.value, float)
                and c.value not in (0.0, 1.0)
            ]
            jit = "triton.jit" in ast.unparse(node.decorator_list[0])
            assert not (jit and floats), f"{node.name}: {floats}"

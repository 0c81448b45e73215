"""The generated Triton kernels of ``fused=True`` (symopt/backends/torch/fused_triton.py) step as
the foreach path of the committed generated classes: every element-wise kernel of the built-in
specs, run by Triton's interpreter on CPU tensors, and on a CUDA device where there is one.

Each step (five per group) starts from the foreach path's arrays before it: in float64, groups of
1, 7 and 4099 elements and a list of three tensors (5, 2048, 300: whole blocks, a tail and a lone
tail); in float32 and bfloat16, the list. Measured here: in float64 and float32 the fused step
gives the foreach step's bits wherever torch's CPU sqrt is correctly rounded; that sqrt is not
(on an AVX-512 machine about 0.7% of float64 and float32 inputs come out 1 ulp off, which moved
some weights by up to 2.6 eps of their magnitude), so the foreach path runs here with numpy's
sqrt, which is, like the kernels' and torch's CUDA sqrt. In bfloat16 the fused step equals the
float32 foreach step rounded once (bit for bit), and is near the bfloat16 foreach step, which
rounds after every instruction (and rounds ``alpha`` of ``add`` to bfloat16): relative distance
in norm at most 0.93 bfloat16 eps. Without a GPU, kernels are also compiled for one (sm_90) to
check what the interpreter cannot: correctly rounded division and square root, 16-byte loads.
"""

from __future__ import annotations

import ast
import importlib
import math
import re
import shutil
import sys
from functools import cache
from pathlib import Path

import pytest

from symopt.backends.base import kernel_specs, split_kinds
from symopt.backends.torch.fused import FusedProgram, Statement, fused_of
from symopt.backends.torch.fused_triton import triton_module
from symopt.resources import builtin_specs
from symopt.spec import Spec

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "generated" / "torch"))
sys.path.insert(0, str(ROOT / "generated" / "torch" / "tests"))
import fused_support  # noqa: E402

RUNTIME = ROOT / "symopt" / "backends" / "torch" / "runtime" / "_triton_launch.py"
#: The package the modules are rendered into (not symopt_torch: its foreach classes are the oracle).
PACKAGE = "symopt_triton_check"
#: The same, imported without the interpreter (to be compiled for CUDA).
COMPILED = "symopt_triton_compiled"
STEPS = 5
#: dtype -> the sizes of the tensors of each group stepped
GROUPS = {
    torch.float64: [(1,), (7,), (4099,), (5, 2048, 300)],
    torch.float32: [(5, 2048, 300)],
    torch.bfloat16: [(5, 2048, 300)],
}
BF16_EPS = 2.0**-7


@cache
def kernels() -> dict[str, Spec]:
    specs, _ = split_kinds(list(builtin_specs().values()))
    return {k.name: k for s in specs for k in kernel_specs(s) if k.elementwise}


@cache
def package(root: Path, name: str) -> Path:
    """Every kernel's Triton module, and those of ``other_operations()`` and
    ``general_power()``, with the runtime, as the package ``name`` under root."""
    folder = root / name / "_triton"
    folder.mkdir(parents=True)
    (root / name / "__init__.py").write_text("", encoding="utf-8")
    (folder / "__init__.py").write_text("", encoding="utf-8")
    shutil.copy(RUNTIME, root / name / "_triton_launch.py")
    for module, kernel in kernels().items():
        (folder / f"{module}.py").write_text(triton_module(kernel, fused_of(kernel)), "utf-8")
    for extra in (other_operations, general_power):
        source = triton_module(kernels()["_sgd"], extra())
        (folder / f"{extra.__name__}.py").write_text(source, "utf-8")
    return root


@pytest.fixture
def interpreted(monkeypatch, tmp_path_factory):
    """Import a module of the rendered package, its kernels run by Triton's interpreter (which
    reads TRITON_INTERPRET when a kernel is defined)."""
    pytest.importorskip("triton", reason="triton is not installed (pip install triton)")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    monkeypatch.syspath_prepend(str(package(tmp_path_factory.getbasetemp(), PACKAGE)))
    return lambda name: importlib.import_module(f"{PACKAGE}.{name}")


@pytest.fixture
def rounded_sqrt():
    """The two forms of sqrt the foreach path prints, correctly rounded (numpy's)."""
    with fused_support.correctly_rounded_sqrt():
        yield


def foreach_steps(cls, sizes: tuple[int, ...], dtype: torch.dtype):
    """STEPS steps of the foreach path on a group of parameters of ``sizes``: for each, the
    arrays before it (copies, by name), after it, and the foreach path's scalars."""
    random = torch.Generator().manual_seed(sum(sizes) + len(sizes))
    params = [torch.randn(n, generator=random, dtype=torch.float64).to(dtype) for n in sizes]
    opt = cls(params)
    group = opt.param_groups[0]
    hyper = [float(group[h]) for h in cls.hyperparameters]

    def arrays(grads):
        out = {"w": [p.detach().clone() for p in params], "g": [g.clone() for g in grads]}
        for p in params:
            state = opt.state[p] or cls.initial_state(p, group)
            for name in cls.arrays[2:]:
                out.setdefault(name, []).append(state[name].clone())
        return out

    for _ in range(STEPS):
        grads = [torch.randn(n, generator=random, dtype=torch.float64).to(dtype) for n in sizes]
        taken = int(opt.state[params[0]].get(cls.step_key, 0))
        before = arrays(grads)
        for p, g in zip(params, grads, strict=True):
            p.grad = g.clone()
        opt.step()
        yield before, arrays(grads), cls.scalars(cls.t_start + taken, *hyper)


def foreach_update(cls, lists: list[list[torch.Tensor]], values: tuple) -> None:
    """The foreach update of ``lists`` (the kernel's arrays), in place, with scratch space."""
    scratch = [[torch.empty_like(x) for x in lists[0]] for _ in range(cls.scratch)]
    masks = [[torch.empty_like(x, dtype=torch.bool) for x in lists[0]] for _ in range(cls.masks)]
    cls.update_foreach(*lists, *scratch, *masks, values)


def float32_step(cls, before: dict, values: tuple) -> dict:
    """The foreach update of ``before``'s arrays in float32 (bfloat16 computed as the fused
    kernel computes it), rounded to bfloat16."""
    lists = [[x.float() for x in before[a]] for a in cls.arrays]
    foreach_update(cls, lists, values)
    return {a: [x.bfloat16() for x in xs] for a, xs in zip(cls.arrays, lists, strict=True)}


def assert_same(actual, expected, what: str) -> None:
    for x, y in zip(actual, expected, strict=True):
        differ = int((x != y).sum())
        gap = (x.double() - y.double()).abs().max().item() if differ else 0.0
        assert differ == 0, f"{what}: {differ} of {x.numel()} elements differ (up to {gap:.3g})"


def assert_near(actual, expected, what: str) -> None:
    """Within BF16_EPS in relative distance (in norm)."""
    for x, y in zip(actual, expected, strict=True):
        distance = ((x.double() - y.double()).norm() / y.double().norm()).item()
        assert distance <= BF16_EPS, f"{what}: {distance:.3g} from the foreach path"


def check_kernel(name: str, step) -> None:
    """``step(lists, scalars)`` (a fused step, in place) against the foreach path, in each dtype
    and group: float64 and float32, the foreach step's bits; bfloat16, those of the float32
    step rounded once, and near the bfloat16 step."""
    kernel = kernels()[name]
    program = fused_of(kernel)
    generated = importlib.import_module(f"symopt_torch.{name}")
    cls = getattr(generated, kernel.class_name)
    assert cls.arrays == program.arrays
    for dtype, groups in GROUPS.items():
        for sizes in groups:
            for number, (before, after, values) in enumerate(foreach_steps(cls, sizes, dtype)):
                bfloat16 = dtype == torch.bfloat16
                expected = float32_step(cls, before, values) if bfloat16 else after
                step([before[a] for a in program.arrays], generated._fused_scalars(values))
                what = f"{name} {dtype} {sizes} step {number}"
                for a, _ in program.stores:  # the fused step wrote over ``before``
                    assert_same(before[a], expected[a], f"{what}: {a}")
                    if bfloat16:
                        assert_near(before[a], after[a], f"{what}: {a}")


@pytest.mark.parametrize("name", sorted(kernels()))
def test_fused_step_is_the_foreach_step(name, interpreted, rounded_sqrt):
    fused = interpreted(f"_triton.{name}")
    assert fused.ARRAYS == fused_of(kernels()[name]).arrays
    check_kernel(name, fused.step)


@pytest.mark.parametrize("name", sorted(kernels()))
def test_fused_step_on_a_gpu(name, compiled, rounded_sqrt):
    """On a CUDA device (skipped without one), the same bits as the interpreter."""
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    fused = compiled(f"_triton.{name}")

    def step(lists, scalars):
        on_device = [[x.cuda() for x in tensors] for tensors in lists]
        fused.step(on_device, scalars)
        for tensors, results in zip(lists, on_device, strict=True):
            for x, y in zip(tensors, results, strict=True):
                x.copy_(y)

    check_kernel(name, step)


def test_a_tensor_of_several_chunks(interpreted):
    """Momentum on tensors longer than a chunk (two programs) at unaligned addresses."""
    rt = interpreted("_triton_launch")
    fused = interpreted("_triton._sgd__momentum")
    generated = importlib.import_module("symopt_torch._sgd__momentum")
    cls = generated.SGD
    random = torch.Generator().manual_seed(1)
    lists = [[torch.randn(rt.CHUNK + 6, generator=random)[1:]] for _ in cls.arrays]
    assert lists[0][0].data_ptr() % 16 != 0
    expected = [[x.clone() for x in xs] for xs in lists]
    values = cls.scalars(cls.t_start, *generated.DEFAULTS.values())
    foreach_update(cls, expected, values)
    fused.step(lists, generated._fused_scalars(values))
    for xs, ys, a in zip(lists, expected, cls.arrays, strict=True):
        assert_same(xs, ys, a)


def test_chunk_table(interpreted):
    """A row per chunk: its length, then its address in each array; cached by contents."""
    rt = interpreted("_triton_launch")
    a, b = torch.zeros(rt.CHUNK + 5), torch.zeros(rt.CHUNK + 5)
    table, rows, aligned = rt._table([[a], [b]])
    step = rt.CHUNK * 4
    assert table.tolist() == [
        rt.CHUNK, a.data_ptr(), b.data_ptr(), 5, a.data_ptr() + step, b.data_ptr() + step
    ]  # fmt: skip
    assert (rows, aligned) == (2, True)
    assert rt._table([[a], [b]])[0] is table


@pytest.mark.parametrize(
    ("lists", "message"),
    [
        ([[torch.zeros(4)], [torch.zeros(4), torch.zeros(4)]], "lists of equal lengths"),
        ([[torch.zeros(4)], [torch.zeros(4, dtype=torch.float64)]], "one dtype and device"),
        ([[torch.zeros(4, 2).t()], [torch.zeros(2, 4)]], "contiguous tensors of 8 elements"),
        ([[torch.zeros(4, dtype=torch.float16)], [torch.zeros(4)]], "not torch.float16"),
    ],
)
def test_refused_groups(interpreted, lists, message):
    fused = interpreted("_triton._sgd")
    with pytest.raises(ValueError, match=message):
        fused.step(lists, (-0.1,))


def test_cpu_tensors_need_the_interpreter(compiled):
    fused = compiled("_triton._sgd")
    with pytest.raises(ValueError, match="runs on CUDA tensors, not on cpu"):
        fused.step([[torch.zeros(4)], [torch.zeros(4)]], (-0.1,))


def _statement(name: str, op: str, *args: str, boolean: bool = False) -> Statement:
    operands = tuple(("scalar" if a.startswith("_s") else "value", a) for a in args)
    return Statement(name, op, operands, boolean, ())


#: The scalars of the program below, as printed (their values are float(text)).
TEXTS = ("0.75", "0", "1", "2", "3", "0.5", "-0.5", "-1", "-2")
#: Instructions no built-in spec uses (and some that one does, with NaN), with torch's result
#: in float64 (w, g random, g with a NaN and a tie with w; p positive; c = w > g).
OPERATIONS = [
    (("negative", "w_0"), lambda w, g, p, c: -w),
    (("add", "w_0", "g_0"), lambda w, g, p, c: w + g),
    (("subtract", "w_0", "g_0"), lambda w, g, p, c: w - g),
    (("subtract", "_s0", "w_0"), lambda w, g, p, c: 0.75 - w),
    (("subtract", "w_0", "_s0"), lambda w, g, p, c: w - 0.75),
    (("divide", "w_0", "p_0"), lambda w, g, p, c: w / p),
    (("divide", "w_0", "_s0"), lambda w, g, p, c: w / 0.75),
    (("exp", "w_0"), lambda w, g, p, c: torch.exp(w)),
    (("log", "p_0"), lambda w, g, p, c: torch.log(p)),
    *(
        (("power", "p_0", f"_s{k}"), lambda w, g, p, c, e=float(TEXTS[k]): torch.pow(p, e))
        for k in range(3, 9)
    ),
    (("minimum", "w_0", "g_0"), lambda w, g, p, c: torch.minimum(w, g)),
    (("maximum", "g_0", "w_0"), lambda w, g, p, c: torch.maximum(g, w)),
    (("maximum", "_s0", "g_0"), lambda w, g, p, c: torch.clamp(g, min=0.75)),
    (("minimum", "g_0", "_s0"), lambda w, g, p, c: torch.clamp(g, max=0.75)),
    (("sign", "g_0"), lambda w, g, p, c: torch.sign(g)),
    (("greater_equal", "w_0", "g_0"), lambda w, g, p, c: w >= g),
    (("less_equal", "w_0", "g_0"), lambda w, g, p, c: w <= g),
    (("equal", "w_0", "g_0"), lambda w, g, p, c: w == g),
    (("not_equal", "w_0", "g_0"), lambda w, g, p, c: w != g),
    (("less", "_s0", "w_0"), lambda w, g, p, c: 0.75 < w),
    (("logical_not", "c_1"), lambda w, g, p, c: ~c),
    (("logical_and", "c_1", "d_1"), lambda w, g, p, c: c & (g < 0.75)),
    (("logical_or", "c_1", "_s1"), lambda w, g, p, c: c),
    (("logical_and", "c_1", "_s2"), lambda w, g, p, c: c),
    (("where", "c_1", "w_0", "g_0"), lambda w, g, p, c: torch.where(c, w, g)),
    (("where", "_s2", "w_0", "g_0"), lambda w, g, p, c: w),
    (("where", "_s1", "w_0", "_s0"), lambda w, g, p, c: torch.full_like(w, 0.75)),
    (("fill", "_s0"), lambda w, g, p, c: torch.full_like(w, 0.75)),
    (("copy", "c_1"), lambda w, g, p, c: c),
]
TRUTH = {"greater_equal", "less_equal", "equal", "not_equal", "less", "logical_not"}
TRUTH |= {"logical_and", "logical_or"}


def other_operations() -> FusedProgram:
    """OPERATIONS, each stored in its own array ``o0, o1, ...``."""
    statements = [
        _statement("c_1", "greater", "w_0", "g_0", boolean=True),
        _statement("d_1", "less", "g_0", "_s0", boolean=True),
    ]
    for k, ((op, *args), _) in enumerate(OPERATIONS):
        boolean = op in TRUTH or (op == "copy" and args[0] == "c_1")
        statements.append(_statement(f"o{k}_1", op, *args, boolean=boolean))
    return FusedProgram(
        arrays=("w", "g", "p", *(f"o{k}" for k in range(len(OPERATIONS)))),
        loads=(("w", "w_0"), ("g", "g_0"), ("p", "p_0")),
        statements=tuple(statements),
        stores=tuple((f"o{k}", f"o{k}_1") for k in range(len(OPERATIONS))),
        scalars=TEXTS,
    )


# numpy warns of log(0) and 0/0 on the masked-off lanes of the last block (loaded as zeros)
@pytest.mark.filterwarnings("ignore:.*encountered in:RuntimeWarning")
def test_other_operations(interpreted):
    """Each operation stored in its own array, against torch in float64 (exp, log and pow to 2
    ulps: the interpreter's are numpy's, a GPU's libdevice's)."""
    other = interpreted("_triton.other_operations")
    random = torch.Generator().manual_seed(2)
    w, g = (torch.randn(41, generator=random, dtype=torch.float64) for _ in range(2))
    g[3], g[5] = math.nan, w[5]
    p = torch.rand(41, generator=random, dtype=torch.float64) + 0.5
    outputs = [torch.full_like(w, -7.0) for _ in OPERATIONS]
    other.step([[w], [g], [p], *([o] for o in outputs)], tuple(float(t) for t in TEXTS))
    c = w > g
    for ((op, *args), oracle), out in zip(OPERATIONS, outputs, strict=True):
        expected = oracle(w, g, p, c).to(torch.float64)
        tolerance = 2 * 2.0**-52 if op in ("exp", "log", "power") else 0.0
        message = f"{op}{tuple(args)}"
        torch.testing.assert_close(
            out,
            expected,
            rtol=tolerance,
            atol=0.0,
            equal_nan=True,
            msg=lambda m, at=message: f"{at}: {m}",
        )


def general_power() -> FusedProgram:
    """w**beta, beta not an exponent torch computes without pow()."""
    return FusedProgram(
        arrays=("w",),
        loads=(("w", "w_0"),),
        statements=(_statement("w_1", "power", "w_0", "_s0"),),
        stores=(("w", "w_1"),),
        scalars=("beta",),
    )


def test_a_general_power_needs_a_gpu(interpreted):
    """libdevice's pow has no interpreter form: the kernel says so."""
    module = interpreted("_triton.general_power")
    with pytest.raises(Exception, match="no pow"):
        module.step([[torch.ones(3)]], (0.3,))


@pytest.fixture
def compiled(monkeypatch, tmp_path_factory):
    """Import a module of the rendered package for the GPU: a package of its own, imported
    without the interpreter, with Triton's cache in a temporary folder."""
    pytest.importorskip("triton", reason="triton is not installed (pip install triton)")
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    monkeypatch.setenv("TRITON_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "triton-cache"))
    monkeypatch.syspath_prepend(str(package(tmp_path_factory.getbasetemp(), COMPILED)))
    return lambda name: importlib.import_module(f"{COMPILED}.{name}")


@pytest.fixture
def cuda_ptx(compiled):
    """The PTX of a module's kernel compiled for an NVIDIA GPU (sm_90), which needs none."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    if "nvidia" not in triton.backends.backends:
        pytest.skip("this triton has no NVIDIA backend")
    rt = compiled("_triton_launch")

    def ptx(name: str, dtype: torch.dtype, aligned: bool = True) -> str:
        kernel = compiled(f"_triton.{name}")._kernel
        names = [p.name for p in kernel.params]
        kinds = {"table": "*i64", **{n: "i64" for n in names if n.endswith("_bits")}}
        storage, compute = rt.TYPES[dtype]
        constants = {"BLOCK": rt.BLOCK, "STORAGE": storage, "COMPUTE": compute, "ALIGNED": aligned}
        source = ASTSource(
            kernel,
            {n: kinds.get(n, "constexpr") for n in names},
            {(names.index(n),): value for n, value in constants.items()},
        )
        target = GPUTarget("cuda", 90, 32)
        return triton.compile(source, target=target, options=rt.OPTIONS).asm["ptx"]

    return ptx


VECTOR_LOAD = re.compile(r"ld\.global(\.\w+)*\.v[24]\.")


@pytest.mark.parametrize(
    ("name", "dtype"),
    [
        ("_adam", "float32"),
        ("_adam", "float64"),
        ("_adam", "bfloat16"),
        ("_rprop", "bfloat16"),
        ("other_operations", "float64"),
        ("general_power", "float32"),
    ],
)
def test_kernels_compile_for_cuda(name, dtype, cuda_ptx):
    """With correctly rounded division and square root (no div.full or sqrt.approx) and
    16-byte loads where every address allows them."""
    ptx = cuda_ptx(name, getattr(torch, dtype))
    assert not re.search(r"div\.(full|approx)|sqrt\.approx", ptx)
    assert VECTOR_LOAD.search(ptx)


def test_unaligned_addresses_are_loaded_one_by_one(cuda_ptx):
    assert not VECTOR_LOAD.search(cuda_ptx("_adam", torch.float32, aligned=False))


@pytest.mark.parametrize("name", sorted(kernels()))
def test_module_source(name):
    """Without triton: the module parses, is rendered the same twice, names its arrays in the
    kernel's order and carries every spec line of the program as a comment."""
    kernel = kernels()[name]
    program = fused_of(kernel)
    source = triton_module(kernel, program)
    assert source == triton_module(kernel, fused_of(kernel))
    tree = ast.parse(source)
    arrays = next(
        node.value
        for node in tree.body
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "ARRAYS"
    )
    assert ast.literal_eval(arrays) == program.arrays
    comments = [line.strip() for line in source.splitlines() if line.strip().startswith("# ")]
    expected = [f"# {c}" for st in program.statements for c in st.comments]
    assert comments[: len(expected)] == expected

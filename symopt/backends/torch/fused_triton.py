"""The fused CUDA kernel of a PyTorch element-wise optimizer: a Triton module printed from the
per-element program (:mod:`symopt.backends.torch.fused`).

Each instruction is printed with the arithmetic of PyTorch's CPU kernel for it, the formulas of
the fused C kernel (:mod:`symopt.backends.torch.fused_c`): ``lerp``, ``add`` with ``alpha`` and
``addcmul`` are one ``tl.fma``, ``addcdiv`` is ``a + (c*y)/z``, ``sign(NaN)`` is 0 and
``maximum``/``clamp`` propagate NaN. Division and square root are the correctly rounded ones of
the shipped runtime (``runtime/_triton_launch.py``), and the kernel is compiled without
contraction: every operation is IEEE's, so a GPU computes what Triton's interpreter computes
on the CPU (exp, log and pow aside: libdevice's there, numpy's here), and in float64 and
float32 that is the foreach path's result wherever torch's CPU square root is correctly rounded
(tests/test_torch_fused_triton.py).

The module is thin: one ``@triton.jit`` kernel (a program per chunk of a tensor, reading its
addresses from a table) and ``step(lists, scalars)``, which hands both to the runtime's
``launch``: one launch for all the tensors of a dtype and device.
"""

from __future__ import annotations

from symopt import __version__
from symopt.backends.render import render
from symopt.backends.torch.fused import (
    COMPARISON,
    SPECIAL_POWERS,
    FusedProgram,
    Statement,
    exponent,
    truth,
)
from symopt.spec import Spec

#: The runtime module as generated kernels name it (``from .. import _triton_launch as rt``).
RUNTIME = "rt"
#: How the exponents of ``SPECIAL_POWERS`` (2, 3, 0.5, -0.5, -1, -2) are computed.
POWERS = dict(
    zip(
        SPECIAL_POWERS,
        (
            "{a} * {a}",
            "{a} * {a} * {a}",
            "{rt}.sqrt({a})",
            "{rt}.div(1.0, {rt}.sqrt({a}))",
            "{rt}.div(1.0, {a})",
            "{rt}.div(1.0, {a} * {a})",
        ),
        strict=True,
    )
)
ARITHMETIC = {"add": "+", "subtract": "-", "multiply": "*"}


def expression(st: Statement, scalars: tuple[str, ...]) -> str:
    """The Triton expression of one statement (operands of the compute type; ``scalars`` are
    the program's printed scalars, for the exponent of a power)."""
    names = [name for _, name in st.args]
    kinds = [kind for kind, _ in st.args]
    op = st.op
    if op == "copy" or op == "fill":
        return names[0]
    if op == "lerp":
        x, y, w = names
        return (
            f"tl.where(tl.abs({w}) < 0.5, tl.fma({w}, {y} - {x}, {x}),"
            f" tl.fma({w} - 1.0, {y} - {x}, {y}))"
        )
    if op == "axpy":
        a, y, c = names
        return f"tl.fma({y}, {c}, {a})"
    if op == "addcmul":
        a, y, z, c = names
        return f"tl.fma({c} * {y}, {z}, {a})"
    if op == "addcdiv":
        a, y, z, c = names
        return f"{a} + {RUNTIME}.div({c} * {y}, {z})"
    if op == "square":
        return f"{names[0]} * {names[0]}"
    if op == "negative":
        return f"-{names[0]}"
    if op in ("sqrt", "exp", "log"):
        return f"{RUNTIME}.{op}({names[0]})"
    if op == "absolute":
        return f"tl.abs({names[0]})"
    if op == "sign":
        x = names[0]
        return f"({x} > 0).to(COMPUTE) - ({x} < 0).to(COMPUTE)"
    if op in ("maximum", "minimum"):
        a, b = names
        keep = ">=" if op == "maximum" else "<="
        if kinds == ["scalar", "value"]:
            a, b = b, a
        return f"tl.where(({a} != {a}) | ({a} {keep} {b}), {a}, {b})"
    if op == "power":
        a, b = names
        text = exponent(st, scalars)
        if text in POWERS:
            return POWERS[text].format(a=a, rt=RUNTIME)
        return f"{RUNTIME}.power({a}, {b})"
    if op == "divide":
        return f"{RUNTIME}.div({names[0]}, {names[1]})"
    if op in ARITHMETIC:
        a, b = names
        if op == "subtract" and kinds == ["scalar", "value"]:
            return f"-({b} - {a})"  # as torch computes s - x: -(x - s)
        return f"{a} {ARITHMETIC[op]} {b}"
    if op in COMPARISON:
        return f"{names[0]} {COMPARISON[op]} {names[1]}"
    if op == "logical_not":
        return f"~{truth(st.args[0])}"
    if op in ("logical_and", "logical_or"):
        if kinds == ["value", "value"]:
            return f"{names[0]} {'&' if op == 'logical_and' else '|'} {names[1]}"
        # a scalar decides (a block | a 0-d truth fails in the interpreter)
        flag, other = sorted(st.args, key=lambda a: a[0] == "value")
        other_truth = truth(other)
        if op == "logical_and":
            return f"tl.where({truth(flag)}, {other_truth}, False)"
        return f"tl.where({truth(flag)}, True, {other_truth})"
    if op == "where":
        return f"tl.where({truth(st.args[0])}, {names[1]}, {names[2]})"
    raise NotImplementedError(f"no fused Triton form of the instruction {op!r}")


def triton_module(spec: Spec, program: FusedProgram) -> str:
    """The source of the Triton module of ``spec``'s fused step (``_triton/NAME.py``)."""
    stored = {a for a, _ in program.stores}
    loads = dict(program.loads)
    truths = {st.name for st in program.statements if st.boolean}
    arrays = [
        {"name": a, "pointer": f"{a}_ptr", "column": k + 1}
        for k, a in enumerate(program.arrays)
        if a in loads or a in stored
    ]
    return render(
        "torch/fused_triton.py.jinja",
        spec=spec,
        version=__version__,
        rt=RUNTIME,
        all_arrays=list(program.arrays),
        width=len(program.arrays) + 1,
        arrays=arrays,
        pointers=[a["pointer"] for a in arrays],
        loads=[{"local": local, "pointer": f"{a}_ptr"} for a, local in program.loads],
        stores=[
            {"value": f"{local}.to(COMPUTE)" if local in truths else local, "pointer": f"{a}_ptr"}
            for a, local in program.stores
        ],
        body=[
            {
                "comments": list(st.comments),
                "name": st.name,
                "code": expression(st, program.scalars),
            }
            for st in program.statements
        ],
        scalars=[
            {"name": s, "bits": f"{s}_bits", "python": text}
            for s, text in zip(program.scalar_names, program.scalars, strict=True)
        ],
    )

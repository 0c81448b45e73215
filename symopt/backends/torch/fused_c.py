"""The fused CPU kernel of a PyTorch element-wise optimizer: C99 source printed from the
per-element program (:mod:`symopt.backends.torch.fused`).

Each instruction is printed with the arithmetic of PyTorch's CPU kernel for it, measured
against torch in float64 (every element, vector body and tail): ``lerp``, ``add`` with
``alpha`` and ``addcmul`` are one fused multiply-add there, ``addcdiv`` is ``a + (c*y)/z``,
``sign(NaN)`` is 0 and ``maximum``/``clamp`` propagate NaN. The source is compiled without
contraction (``-ffp-contract=off``), so every other operation rounds separately, as torch's do.
One C file per kernel: float32, float64 and bfloat16 (loaded to float32, computed in float32 and
rounded once when stored, as torch rounds float32 to bfloat16) entry points over pointer
tables, split between ``threads`` OpenMP threads.
"""

from __future__ import annotations

from symopt import __version__
from symopt.backends.c.elementwise import comment_block, wrap_call
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

#: Storage precisions: (suffix, storage type, compute type).
PRECISIONS = (("f32", "float", "float"), ("f64", "double", "double"), ("bf16", "uint16_t", "float"))
#: How the exponents of ``SPECIAL_POWERS`` (2, 3, 0.5, -0.5, -1, -2) are computed.
POWERS = dict(
    zip(
        SPECIAL_POWERS,
        (
            "{a} * {a}",
            "{a} * {a} * {a}",
            "{sqrt}({a})",
            "1 / {sqrt}({a})",
            "1 / {a}",
            "1 / ({a} * {a})",
        ),
        strict=True,
    )
)
ARITHMETIC = {"add": "+", "subtract": "-", "multiply": "*", "divide": "/"}


class _Printer:
    """C expressions of the statements in one compute type (``float`` or ``double``)."""

    def __init__(self, ctype: str, scalars: tuple[str, ...]):
        self.f = "f" if ctype == "float" else ""
        self.scalars = scalars

    def fn(self, name: str) -> str:
        return f"{name}{self.f}"

    def expression(self, st: Statement) -> str:
        names = [name for _, name in st.args]
        kinds = [kind for kind, _ in st.args]
        op, fma, sqrt = st.op, self.fn("fma"), self.fn("sqrt")
        if op == "copy" or op == "fill":
            return names[0]
        if op == "lerp":
            x, y, w = names
            half = f"0.5{self.f}"
            return (
                f"{self.fn('fabs')}({w}) < {half} ? {fma}({w}, {y} - {x}, {x})"
                f" : {fma}({w} - 1, {y} - {x}, {y})"
            )
        if op == "axpy":
            a, y, c = names
            return f"{fma}({y}, {c}, {a})"
        if op == "addcmul":
            a, y, z, c = names
            return f"{fma}({c} * {y}, {z}, {a})"
        if op == "addcdiv":
            a, y, z, c = names
            return f"{a} + {c} * {y} / {z}"
        if op == "square":
            return f"{names[0]} * {names[0]}"
        if op == "negative":
            return f"-{names[0]}"
        if op in ("sqrt", "exp", "log"):
            return f"{self.fn(op)}({names[0]})"
        if op == "absolute":
            return f"{self.fn('fabs')}({names[0]})"
        if op == "sign":
            return f"({names[0]} > 0) - ({names[0]} < 0)"
        if op in ("maximum", "minimum"):
            a, b = names
            keep = ">=" if op == "maximum" else "<="
            if kinds == ["scalar", "value"]:
                a, b = b, a
            return f"({a} != {a} || {a} {keep} {b}) ? {a} : {b}"
        if op == "power":
            a, b = names
            text = exponent(st, self.scalars)
            if text in POWERS:
                return POWERS[text].format(a=a, sqrt=sqrt)
            return f"{self.fn('pow')}({a}, {b})"
        if op in ARITHMETIC:
            a, b = names
            if op == "subtract" and kinds == ["scalar", "value"]:
                return f"-({b} - {a})"  # as torch computes s - x: -(x - s)
            return f"{a} {ARITHMETIC[op]} {b}"
        if op in COMPARISON:
            return f"{names[0]} {COMPARISON[op]} {names[1]}"
        if op == "logical_not":
            return f"!{truth(st.args[0])}"
        if op in ("logical_and", "logical_or"):
            joiner = " && " if op == "logical_and" else " || "
            return joiner.join(truth(a) for a in st.args)
        if op == "where":
            return f"{truth(st.args[0])} ? {names[1]} : {names[2]}"
        raise NotImplementedError(f"no fused C form of the instruction {op!r}")


def source(spec: Spec, program: FusedProgram) -> str:
    """The C source of the fused kernel of ``spec``."""
    name = spec.name
    arrays = [
        {
            "name": a,
            "ptr": f"_p_{a}",
            "output": any(a == s for s, _ in program.stores),
        }
        for a in program.arrays
    ]
    loads = dict(program.loads)
    scalars = program.scalar_names
    precisions = []
    for suffix, storage, ctype in PRECISIONS:
        printer = _Printer(ctype, program.scalars)
        load = "symopt_bf16_load({})" if storage == "uint16_t" else "{}"
        store = "symopt_bf16_store({})" if storage == "uint16_t" else "{}"
        body = [
            {
                "comments": list(st.comments),
                "ctype": "int" if st.boolean else ctype,
                "name": st.name,
                "code": printer.expression(st),
            }
            for st in program.statements
        ]
        const = {a["name"]: "" if a["output"] else "const " for a in arrays}
        precisions.append(
            {
                "suffix": suffix,
                "storage": storage,
                "ctype": ctype,
                "loads": [
                    {"local": loads[a["name"]], "value": load.format(f"{a['ptr']}[_i]")}
                    for a in arrays
                    if a["name"] in loads
                ],
                "stores": [
                    {"ptr": f"_p_{a}", "value": store.format(local)} for a, local in program.stores
                ],
                "body": body,
                "update_params": [
                    "size_t _n",
                    *(f"{const[a['name']]}{storage} *restrict {a['ptr']}" for a in arrays),
                    *(f"const {ctype} {s}" for s in scalars),
                ],
                "update_args": [
                    "_b - _a",
                    *(
                        f"({const[a['name']]}{storage} *)_tables[{j} * _count + _k] + _a"
                        for j, a in enumerate(arrays)
                    ),
                    *scalars,
                ],
                "range_params": [
                    "size_t _lo",
                    "size_t _hi",
                    "size_t _count",
                    "void *const *_tables",
                    "const size_t *_sizes",
                    *(f"const {ctype} {s}" for s in scalars),
                ],
                "range_args": ["_count", "_tables", "_sizes", *(f"({ctype}){s}" for s in scalars)],
                "entry_params": [
                    "size_t _count",
                    "void *const *_tables",
                    "const size_t *_sizes",
                    "int _threads",
                    *(f"double {s}" for s in scalars),
                ],
            }
        )
    return render(
        "torch/fused.c.jinja",
        spec=spec,
        name=name,
        fn=f"symopt_torch_{name.lstrip('_')}",
        version=__version__,
        arrays=arrays,
        scalars=[
            {"name": s, "python": text} for s, text in zip(scalars, program.scalars, strict=True)
        ],
        precisions=precisions,
        unused=[a["ptr"] for a in arrays if a["name"] not in loads and not a["output"]],
        call=wrap_call,
        comment=comment_block,
    )

"""PyTorch target: one ``torch.optim.Optimizer`` subclass per spec, foreach and single-tensor paths.

Both paths run the same three-address program (:mod:`symopt.tac`): the foreach path applies each
instruction to lists of tensors (grouped by device, dtype and step count) with ``torch._foreach_*``
ops in place, the single-tensor path applies it to one tensor at a time with ``out=`` ops. Every
operation rounds the same way in both, so their results are bit-identical.
"""

from __future__ import annotations

from collections.abc import Sequence

import sympy

from symopt import __version__
from symopt.kernel import Kernel, lower
from symopt.render import render
from symopt.spec import Spec
from symopt.tac import compile_kernel
from symopt.targets.base import Target, generated, hyper_rows, isort_key
from symopt.targets.numpy import ScalarPrinter
from symopt.writer import GeneratedFile

PACKAGE = "symopt_torch"
#: TAC op -> (torch function with out=, torch._foreach_ in-place suffix)
UNARY = {
    "negative": ("neg", "neg"),
    "sqrt": ("sqrt", "sqrt"),
    "absolute": ("abs", "abs"),
    "exp": ("exp", "exp"),
    "log": ("log", "log"),
    "sign": ("sign", "sign"),
}
BINARY = {
    "add": ("add", "add"),
    "subtract": ("sub", "sub"),
    "multiply": ("mul", "mul"),
    "divide": ("div", "div"),
    "maximum": ("maximum", "maximum"),
    "minimum": ("minimum", "minimum"),
    "power": ("pow", "pow"),
}
COMMUTATIVE = {"add", "multiply", "maximum", "minimum"}


def expression_printer():
    """SymPy's TorchPrinter, with element-wise ``Max``/``Min`` (SymPy 1.14 prints ``torch.max``,
    a reduction). Used for the element-wise expressions quoted in the generated modules.
    Imported here, so that the other targets work with SymPy versions that lack the printer."""
    from sympy.printing.pytorch import TorchPrinter

    class ElementwisePrinter(TorchPrinter):
        def _print_Max(self, expr) -> str:
            return self._nested("torch.maximum", expr.args)

        def _print_Min(self, expr) -> str:
            return self._nested("torch.minimum", expr.args)

        def _nested(self, fn: str, args) -> str:
            out = self._print(args[0])
            for a in args[1:]:
                out = f"{fn}({out}, {self._print(a)})"
            return out

    return ElementwisePrinter()


def _single(op: str, dst: str, args) -> str:
    """One instruction on single tensors (scalar operands are Python floats)."""
    kinds = [k for k, _ in args]
    names = [a for _, a in args]
    if op == "copy":
        return f"{dst}.copy_({names[0]})"
    if op == "fill":
        return f"{dst}.fill_({names[0]})"
    if op == "square":
        return f"torch.mul({names[0]}, {names[0]}, out={dst})"
    if op in UNARY:
        return f"torch.{UNARY[op][0]}({names[0]}, out={dst})"
    fn = BINARY[op][0]
    a, b = names
    if kinds == ["value", "value"]:
        return f"torch.{fn}({a}, {b}, out={dst})"
    if kinds == ["value", "scalar"]:
        if op in ("maximum", "minimum"):
            bound = "min" if op == "maximum" else "max"
            return f"torch.clamp({a}, {bound}={b}, out={dst})"
        return f"torch.{fn}({a}, {b}, out={dst})"
    # scalar first
    if op in COMMUTATIVE:
        return _single(op, dst, (args[1], args[0]))
    if op == "subtract":  # s - x == -(x - s) exactly
        return f"torch.sub({b}, {a}, out={dst}).neg_()"
    if op == "power":
        return f"torch.pow({a}, {b}, out={dst})"
    return f"torch.div(torch.full((), {a}, dtype={b}.dtype, device={b}.device), {b}, out={dst})"


def _foreach(op: str, dst: str, args, scratch: Sequence[str]) -> list[str]:
    """One instruction on lists of tensors, with torch._foreach_* ops.

    In place where the destination is an operand; a scratch destination whose old content is
    dead is rebound to the result of the out-of-place op (one pass, no copy); an output array
    that is not an operand gets a copy first.
    """
    kinds = [k for k, _ in args]
    names = [a for _, a in args]
    fresh = dst in scratch and dst not in names
    if op == "copy":
        return [f"torch._foreach_copy_({dst}, {names[0]})"]
    if op == "square":
        if fresh:
            return [f"{dst} = torch._foreach_mul({names[0]}, {names[0]})"]
        if names[0] == dst:
            return [f"torch._foreach_mul_({dst}, {dst})"]
        return [
            f"torch._foreach_copy_({dst}, {names[0]})",
            f"torch._foreach_mul_({dst}, {names[0]})",
        ]
    if op in UNARY:
        fn = UNARY[op][1]
        if fresh:
            return [f"{dst} = torch._foreach_{fn}({names[0]})"]
        pre = [] if names[0] == dst else [f"torch._foreach_copy_({dst}, {names[0]})"]
        return [*pre, f"torch._foreach_{fn}_({dst})"]
    if op in BINARY:
        fn = BINARY[op][1]
        a, b = names
        if kinds[0] == "value" and a == dst:
            return [f"torch._foreach_{fn}_({dst}, {b})"]
        if op in COMMUTATIVE and kinds[1] == "value" and b == dst:
            return [f"torch._foreach_{fn}_({dst}, {a})"]
        if kinds[0] == "value" and fresh:
            return [f"{dst} = torch._foreach_{fn}({a}, {b})"]
        if op in COMMUTATIVE and kinds[1] == "value" and fresh:
            return [f"{dst} = torch._foreach_{fn}({b}, {a})"]
        if kinds[0] == "value" and b != dst:
            return [f"torch._foreach_copy_({dst}, {a})", f"torch._foreach_{fn}_({dst}, {b})"]
        if op in COMMUTATIVE and kinds[1] == "value":  # scalar first, dst elsewhere
            return [f"torch._foreach_copy_({dst}, {b})", f"torch._foreach_{fn}_({dst}, {a})"]
    # Anything else (fill, and the rare aliasing cases): per tensor.
    pre = [f"{dst} = [torch.empty_like(x) for x in w]"] if fresh else []
    lists = list(dict.fromkeys([dst] + [n for k, n in args if k == "value"]))
    loop_vars = {n: f"_{n.lstrip('_')}_i" for n in lists}
    single_args = tuple((k, loop_vars[n]) if k == "value" else (k, n) for k, n in args)
    code = _single(op, loop_vars[dst], single_args)
    targets = ", ".join(loop_vars[n] for n in lists)
    if len(lists) == 1:
        return [*pre, f"for {targets} in {dst}:", f"    {code}"]
    return [*pre, f"for {targets} in zip({', '.join(lists)}, strict=True):", f"    {code}"]


def template_data(spec: Spec, kernel: Kernel) -> dict:
    printer = ScalarPrinter()
    program = compile_kernel(kernel, printer.doprint)
    expr_printer = expression_printer()
    exprs = {st.array: expr_printer.doprint(st.expr) for st in kernel.body if st.array}
    foreach_body: list[dict] = []
    single_body: list[dict] = []
    for op, dst, args, comments in program.instructions:
        foreach_body.append(
            {"comments": list(comments), "lines": _foreach(op, dst, args, program.scratch)}
        )
        single_body.append({"comments": list(comments), "lines": [_single(op, dst, args)]})
    used = {s.name for st in kernel.body for s in st.expr.free_symbols}
    direct = [h for h in (*kernel.hypers, "t") if h in used]
    init_names = {s.name for st in spec.states for s in st.init.free_symbols}
    hypers = hyper_rows(spec)
    states = []
    for s in spec.states:
        init = printer.doprint(s.init)
        if s.init == 0:
            create = "torch.zeros_like(p, memory_format=torch.preserve_format)"
        else:
            create = f"torch.full_like(p, {init}, memory_format=torch.preserve_format)"
        states.append({"name": s.name, "init": init, "create": create, "doc": s.doc})
    return {
        "spec": spec,
        "version": __version__,
        "hypers": hypers,
        "hyper_names": list(spec.hyper_names),
        "states": states,
        "state_names": list(spec.state_names),
        "prelude": [
            {"name": s.name, "code": printer.doprint(e), "math": sympy.sstr(e)}
            for s, e in kernel.prelude
        ],
        "direct": direct,
        "scalar_args": direct + [s.name for s in kernel.scalars],
        "init_hypers": [h for h in spec.hyper_names if h in init_names],
        "arrays": list(kernel.arrays),
        "scratch": program.scratch,
        "foreach_body": foreach_body,
        "single_body": single_body,
        "exprs": exprs,
        "equations": [a.text for a in spec.update],
        "executed": [a.text for a in spec.executable_update],
        "lookahead": spec.lookahead_free,
        "test_imports": sorted(["DEFAULTS", "STATE", spec.class_name], key=isort_key),
    }


class TorchTarget(Target):
    name = "torch"

    def files(self, specs: Sequence[Spec]) -> list[GeneratedFile]:
        out = []
        for spec in specs:
            data = template_data(spec, lower(spec))
            for template, path in (
                ("torch/optimizer.py.jinja", f"torch/{PACKAGE}/{spec.name}.py"),
                ("torch/test_optimizer.py.jinja", f"torch/tests/test_{spec.name}.py"),
            ):
                out.append(generated(path, render(template, **data), spec=spec))
        names = [{"module": s.name, "class_name": s.class_name} for s in specs]
        for template, path in (
            ("torch/__init__.py.jinja", f"torch/{PACKAGE}/__init__.py"),
            ("torch/conftest.py.jinja", "torch/tests/conftest.py"),
        ):
            out.append(generated(path, render(template, specs=names, version=__version__)))
        return out

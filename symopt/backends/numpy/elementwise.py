"""NumPy target: one self-contained module per spec, in-place ufuncs over cache-sized chunks."""

from __future__ import annotations

import sympy
from sympy.printing.pycode import PythonCodePrinter

from symopt import __version__
from symopt.backends.base import hyper_rows, isort_key
from symopt.lowering.kernel import Kernel
from symopt.lowering.tac import compile_kernel
from symopt.spec import Spec, StateVar

PACKAGE = "symopt_numpy"
UFUNC = {
    "add": "np.add",
    "subtract": "np.subtract",
    "multiply": "np.multiply",
    "divide": "np.divide",
    "negative": "np.negative",
    "square": "np.square",
    "sqrt": "np.sqrt",
    "absolute": "np.absolute",
    "maximum": "np.maximum",
    "minimum": "np.minimum",
    "exp": "np.exp",
    "log": "np.log",
    "sign": "np.sign",
    "power": "np.power",
    "greater": "np.greater",
    "greater_equal": "np.greater_equal",
    "less": "np.less",
    "less_equal": "np.less_equal",
    "equal": "np.equal",
    "not_equal": "np.not_equal",
    "logical_and": "np.logical_and",
    "logical_or": "np.logical_or",
    "logical_not": "np.logical_not",
}


def number_literal(expr: sympy.Rational) -> str:
    """A rational constant as Python code: an integer as itself while a double holds it exactly
    (2**53), any other as the nearest double, which NumPy, torch and JAX all take (a 309-digit
    integer literal overflows their integer conversions)."""
    if expr.q == 1 and abs(expr.p) <= 2**53:
        return str(expr.p)
    return repr(float(expr))


class ScalarPrinter(PythonCodePrinter):
    """Host scalars in plain Python: ``math.sqrt``, and decimal literals instead of ``1/10``."""

    def __init__(self) -> None:
        super().__init__({"standard": "python3", "fully_qualified_modules": True})

    def _print_Rational(self, expr: sympy.Rational) -> str:
        return number_literal(expr)

    def _print_Integer(self, expr: sympy.Integer) -> str:
        return number_literal(expr)

    def _print_Half(self, expr) -> str:
        return "0.5"


def _instruction(op: str, dst: str, args) -> str:
    names = [a for _, a in args]
    if op == "copy":
        return f"np.copyto({dst}, {names[0]})"
    if op == "fill":
        return f"{dst}.fill({names[0]})"
    if op == "where":  # np.where has no out=: the choice is made, then copied
        return f"np.copyto({dst}, np.where({', '.join(names)}))"
    return f"{UFUNC[op]}({', '.join(names)}, out={dst})"


def state_row(state: StateVar, start: sympy.Expr, printer: ScalarPrinter) -> dict:
    """A state's template data: ``init``, the array's value before the first step (0 for a state
    the first step sets from the gradient, as the lowered kernel does), and ``starts``, its doc."""
    init = printer.doprint(start)
    starts = init
    if start != state.init:
        starts += f" (the first step sets it to {sympy.sstr(state.init)})"
    return {"name": state.name, "init": init, "starts": starts, "doc": state.doc}


def template_data(spec: Spec, kernel: Kernel) -> dict:
    printer = ScalarPrinter()
    program = compile_kernel(kernel, printer.doprint)
    body: list[dict] = []
    for op, dst, args, comments in program.instructions:
        body.append({"comments": list(comments), "code": _instruction(op, dst, args)})
    used = {s.name for st in kernel.body for s in st.expr.free_symbols}
    direct = [h for h in (*kernel.hypers, "t") if h in used]
    init_names = {s.name for e in kernel.init.values() for s in e.free_symbols}
    state_names = [s.name for s in spec.states]
    hypers = hyper_rows(spec)
    return {
        "spec": spec,
        "version": __version__,
        "fn": f"{spec.name}_step",
        "hypers": hypers,
        "hyper_names": list(spec.hyper_names),
        "states": [state_row(s, kernel.init[s.name], printer) for s in spec.states],
        "prelude": [
            {"name": s.name, "code": printer.doprint(e), "math": sympy.sstr(e)}
            for s, e in kernel.prelude
        ],
        "direct": direct,
        "scalar_args": direct + [s.name for s in kernel.scalars],
        # the read-only arrays after the gradient (a curvature), then the state
        "inputs": [a for a in kernel.arrays[1:] if a not in state_names],
        "init_hypers": [h for h in spec.hyper_names if h in init_names],
        "arrays": list(kernel.arrays),
        "scratch": program.scratch,
        "body": body,
        "quiet": any(op == "where" for op, *_ in program.instructions),
        "equations": [a.text for a in spec.update],
        "executed": [a.text for a in spec.executable_update],
        "lookahead": spec.lookahead_free,
        "test_imports": sorted(
            ["DEFAULTS", "STATE", spec.class_name, f"{spec.name}_step"], key=isort_key
        ),
    }

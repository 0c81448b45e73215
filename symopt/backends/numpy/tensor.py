"""NumPy code for tensor-level specs: the spec's lines as whole-array statements.

The printer is SymPy's ``NumPyPrinter`` with the spec language's own functions: reductions as
``np.sum``/``np.mean``/``np.linalg.norm``/``np.max`` (with ``axis=..., keepdims=True`` for rows and
columns, so they broadcast back), ``@`` and ``.T``, ``np.where`` for element-wise conditions and
a Python conditional for a condition on the prelude's scalars (the branch not taken is never
evaluated).
"""

from __future__ import annotations

import sympy
from sympy.printing.numpy import NumPyPrinter

from symopt import __version__
from symopt.backends.base import hyper_rows
from symopt.backends.numpy.elementwise import ScalarPrinter, number_literal
from symopt.lowering.program import Line, Loop, TensorProgram, Update, spec_lines
from symopt.spec import Spec
from symopt.spec.common import COLS, ROWS
from symopt.spec.tensor import MatProduct, ReductionBase, Transposed

#: The parameters a generated test steps together, by (applies_to, has an [otherwise] update).
TEST_SHAPES = {
    ("any", False): [(1,), (7,), (3, 5), (2, 3, 4)],
    ("matrix", False): [(3, 5), (6, 2), (1, 4)],
    ("matrix", True): [(7,), (3, 5), (6, 2), (2, 3, 2)],
    ("multidim", False): [(3, 5), (2, 3, 4)],
    ("multidim", True): [(7,), (3, 5), (2, 3, 4), (2, 1, 3, 3)],
}
AXIS = {None: "", "rows": ", axis=-1, keepdims=True", "cols": ", axis=-2, keepdims=True"}
FUNCTION = {"sum": "np.sum", "mean": "np.mean", "max": "np.max"}


class TensorPrinter(NumPyPrinter):
    """Whole-array NumPy expressions; ``scalars`` are the prelude's names (Python floats)."""

    def __init__(self, scalars: set[str]) -> None:
        super().__init__({"fully_qualified_modules": True})
        self.scalars = scalars

    def doprint(self, expr, assign_to=None) -> str:  # type: ignore[override]
        return super().doprint(expr, assign_to).replace("numpy.", "np.")

    def _print_Rational(self, expr: sympy.Rational) -> str:
        return number_literal(expr)

    def _print_Integer(self, expr: sympy.Integer) -> str:
        return number_literal(expr)

    def _print_Half(self, expr) -> str:
        return "0.5"

    def _print_ReductionBase(self, expr: ReductionBase) -> str:
        arg = self._print(expr.args[0])
        if expr.op == "norm":
            return f"np.linalg.norm({arg})"
        return f"{FUNCTION[expr.op]}({arg}{AXIS[expr.axis]})"

    def _print_MatProduct(self, expr: MatProduct) -> str:
        a, b = (self._print(x) for x in expr.args)
        return f"({a} @ {b})"

    def _print_Transposed(self, expr: Transposed) -> str:
        arg = expr.args[0]
        return f"{self._print(arg)}.T" if arg.is_Symbol else f"({self._print(arg)}).T"

    def _pairwise(self, fn: str, expr: sympy.Expr) -> str:
        args = [self._print(a) for a in expr.args]
        out = args[0]
        for a in args[1:]:
            out = f"{fn}({out}, {a})"
        return out

    def _print_Max(self, expr: sympy.Max) -> str:
        return self._pairwise("np.maximum", expr)

    def _print_Min(self, expr: sympy.Min) -> str:
        return self._pairwise("np.minimum", expr)

    def _print_Piecewise(self, expr: sympy.Piecewise) -> str:
        *branches, (otherwise, _) = expr.args
        out = self._print(otherwise)
        for value, cond in reversed(branches):
            c, v = self._print(cond), self._print(value)
            if {s.name for s in cond.free_symbols} <= self.scalars:
                out = f"({v} if {c} else {out})"
            else:
                out = f"np.where({c}, {v}, {out})"
        return out

    def _print_Relational(self, expr) -> str:
        lhs, rhs = (self.parenthesize(x, 40) for x in expr.args)
        return f"({lhs} {expr.rel_op} {rhs})"

    def _print_And(self, expr) -> str:
        return self._pairwise("np.logical_and", expr)

    def _print_Or(self, expr) -> str:
        return self._pairwise("np.logical_or", expr)

    def _print_Not(self, expr) -> str:
        return f"np.logical_not({self._print(expr.args[0])})"


def _statements(update: Update, printer: TensorPrinter) -> list[dict]:
    out: list[dict] = []
    for item in update.lines:
        if isinstance(item, Loop):
            body = [_line(x, printer) for x in item.body]
            out.append({"loop": item.count, "body": body})
        else:
            out.append(_line(item, printer))
    return out


def _line(line: Line, printer: TensorPrinter) -> dict:
    code = f"{line.target} = {printer.doprint(line.expr)}"
    return {"loop": 0, "comment": line.text, "code": code}


def _update_data(update: Update | None, printer: TensorPrinter) -> dict | None:
    if update is None:
        return None
    return {
        "states": list(update.states),
        "statements": _statements(update, printer),
        "shape": update.uses(ROWS) or update.uses(COLS),
    }


def template_data(spec: Spec, program: TensorProgram) -> dict:
    scalar = ScalarPrinter()
    printer = TensorPrinter({*program.scalars, *spec.hyper_names, "t"})
    used = set().union(*(u.symbols() for u in program.updates))
    direct = [h for h in (*spec.hyper_names, "t") if h in used]
    main = _update_data(program.main, printer)
    other = _update_data(program.updates[1], printer) if len(program.updates) > 1 else None
    return {
        "test_shapes": repr(TEST_SHAPES[spec.applies_to, bool(spec.otherwise)]),
        "spec": spec,
        "version": __version__,
        "fn": f"{spec.name}_step",
        "hypers": hyper_rows(spec),
        "hyper_names": list(spec.hyper_names),
        "states": [
            {
                "name": s.name,
                "init": scalar.doprint(program.init[s.name]),
                "doc": s.doc,
                "shape": s.shape,
            }
            for s in spec.states
        ],
        "prelude": [{"name": s.name, "code": scalar.doprint(e)} for s, e in program.prelude],
        "scalar_names": direct + list(program.scalars),
        "main": main,
        "other": other,
        "matrix": spec.applies_to != "any",
        "shape_word": spec.shapes_taken,
        "equations": spec_lines(spec.update),
        "other_equations": spec_lines(spec.otherwise),
        "init_hypers": sorted(
            {s.name for e in program.init.values() for s in e.free_symbols} & set(spec.hyper_names)
        ),
    }

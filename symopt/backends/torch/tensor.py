"""PyTorch code for tensor-level specs: the spec's lines as whole-tensor statements.

A tensor-level update (norms, row or column statistics, matrix products, repeat blocks) runs one
statement per spec line over whole tensors, as in the NumPy target
(:mod:`symopt.backends.numpy.tensor`). PyTorch adds one distinction NumPy does not need: a value
is either a **Python number** (the prelude's scalars, hyperparameters, ``t``, ``rows``, ``cols``
and intermediates computed from them only) or a **tensor** (anything touching the parameter,
its gradient or its state; reductions are 0-d tensors). Python numbers print as Python
(``math.sqrt``, ``max``, a conditional expression), tensors as torch calls:
``torch.linalg.vector_norm``, ``torch.sum/mean(..., dim=..., keepdim=True)``, ``torch.amax``,
``@`` and ``.mT``, ``torch.where``, and ``torch.maximum``, or ``torch.clamp`` against a Python
number, for the element-wise ``max``/``min``.
"""

from __future__ import annotations

from collections.abc import Callable

import sympy

from symopt import __version__
from symopt.backends.base import hyper_rows
from symopt.backends.numpy.elementwise import ScalarPrinter
from symopt.backends.numpy.tensor import TEST_SHAPES
from symopt.backends.torch.elementwise import step_key
from symopt.lowering.program import Line, Loop, TensorProgram, Update, spec_lines
from symopt.spec import Spec
from symopt.spec.common import COLS, ROWS
from symopt.spec.tensor import MatProduct, ReductionBase, Transposed

DIM = {None: "", "rows": ", dim=-1, keepdim=True", "cols": ", dim=-2, keepdim=True"}
FUNCTION = {"sum": "torch.sum", "mean": "torch.mean", "max": "torch.amax"}
#: A Python number made a tensor of the gradient's dtype and device (``g`` is in every update).
AS_TENSOR = "g.new_tensor({})"


class TorchTensorPrinter(ScalarPrinter):
    """Whole-tensor torch expressions; ``scalars`` are the names holding Python numbers."""

    def __init__(self, scalars: set[str]) -> None:
        super().__init__()
        self.scalars = scalars

    def is_number(self, e: sympy.Basic) -> bool:
        """Whether ``e`` is a Python number (or bool) at run time, not a tensor."""
        return all(s.name in self.scalars for s in e.free_symbols)

    def _print_Pow(self, expr, rational=False):
        if self.is_number(expr):
            return super()._print_Pow(expr, rational=rational)
        return self._hprint_Pow(expr, rational=rational, sqrt="torch.sqrt")

    def _torch_call(self, fn: str, expr) -> str | None:
        """``torch.fn(arg)`` for a tensor argument; None for a Python number."""
        if self.is_number(expr):
            return None
        return f"torch.{fn}({self._print(expr.args[0])})"

    def _print_exp(self, expr) -> str:
        return self._torch_call("exp", expr) or super()._print_exp(expr)

    def _print_log(self, expr) -> str:
        return self._torch_call("log", expr) or super()._print_log(expr)

    def _print_sign(self, expr) -> str:
        return self._torch_call("sign", expr) or super()._print_sign(expr)

    def _print_Abs(self, expr) -> str:
        return self._torch_call("abs", expr) or super()._print_Abs(expr)

    def _extremum(self, expr, pairwise: str, python: Callable[[sympy.Basic], str], bound: str):
        """Max/Min: Python's over numbers; torch's pairwise over tensors; clamp between them."""
        numbers = [a for a in expr.args if self.is_number(a)]
        tensors = [self._print(a) for a in expr.args if not self.is_number(a)]
        if not tensors:
            return python(expr)
        out = tensors[0]
        for a in tensors[1:]:
            out = f"{pairwise}({out}, {a})"
        if numbers:
            limit = self._print(type(expr)(*numbers))
            out = f"torch.clamp({out}, {bound}={limit})"
        return out

    def _print_Max(self, expr) -> str:
        return self._extremum(expr, "torch.maximum", super()._print_Max, "min")

    def _print_Min(self, expr) -> str:
        return self._extremum(expr, "torch.minimum", super()._print_Min, "max")

    def _print_ReductionBase(self, expr: ReductionBase) -> str:
        arg = expr.args[0]
        if self.is_number(arg):  # the reduction of a number is the number (|x| for the norm)
            return f"abs({self._print(arg)})" if expr.op == "norm" else self._print(arg)
        if expr.op == "norm":
            return f"torch.linalg.vector_norm({self._print(arg)})"
        return f"{FUNCTION[expr.op]}({self._print(arg)}{DIM[expr.axis]})"

    def _print_MatProduct(self, expr: MatProduct) -> str:
        a, b = (self._print(x) for x in expr.args)
        return f"({a} @ {b})"

    def _print_Transposed(self, expr: Transposed) -> str:
        arg = expr.args[0]
        if self.is_number(arg):
            return self._print(arg)
        return f"{self._print(arg)}.mT" if arg.is_Symbol else f"({self._print(arg)}).mT"

    def _print_Piecewise(self, expr: sympy.Piecewise) -> str:
        if self.is_number(expr):
            return super()._print_Piecewise(expr)
        *branches, (otherwise, _) = expr.args
        out = self._tensor(otherwise)
        for value, cond in reversed(branches):
            c, v = self._print(cond), self._tensor(value)
            if self.is_number(cond):  # the branch not taken is never computed
                out = f"({v} if {c} else {out})"
            else:
                out = f"torch.where({c}, {v}, {out})"
        return out

    def _tensor(self, e: sympy.Basic) -> str:
        """``e`` as a tensor: a branch of a tensor-valued choice is one whichever is taken (and
        a number keeps the parameter's dtype, not torch's default)."""
        return AS_TENSOR.format(self._print(e)) if self.is_number(e) else self._print(e)

    def _logical(self, expr, fn: str) -> str | None:
        if self.is_number(expr):
            return None
        args = [
            self._print(a) if not self.is_number(a) else AS_TENSOR.format(self._print(a))
            for a in expr.args
        ]
        out = args[0]
        for a in args[1:]:
            out = f"torch.{fn}({out}, {a})"
        return out

    def _print_And(self, expr) -> str:
        return self._logical(expr, "logical_and") or super()._print_And(expr)

    def _print_Or(self, expr) -> str:
        return self._logical(expr, "logical_or") or super()._print_Or(expr)

    def _print_Not(self, expr) -> str:
        if self.is_number(expr):
            return super()._print_Not(expr)
        return f"torch.logical_not({self._print(expr.args[0])})"


def _flat(update: Update) -> list[Line]:
    """The lines in the order they run (a loop's body twice: its second run sees its first)."""
    out: list[Line] = []
    for item in update.lines:
        out += [*item.body, *item.body] if isinstance(item, Loop) else [item]
    return out


def tensor_names(update: Update, numbers: set[str]) -> set[str]:
    """The names an update assigns a tensor anywhere (every other target holds a number)."""
    tensors: set[str] = set()
    while True:
        known = numbers - tensors
        found = {
            x.target for x in _flat(update) if not {s.name for s in x.expr.free_symbols} <= known
        }
        if found <= tensors:
            return tensors
        tensors |= found


def _update_data(update: Update | None, base: set[str], arrays: set[str]) -> dict | None:
    if update is None:
        return None
    tensors = tensor_names(update, base | {x.target for x in _flat(update)} - arrays) | arrays
    targets = {x.target for x in _flat(update)}
    printer = TorchTensorPrinter((base | targets) - tensors)

    def line(x: Line) -> dict:
        code = printer.doprint(x.expr)
        if x.target in tensors and printer.is_number(x.expr):  # a tensor name keeps a tensor
            code = AS_TENSOR.format(code)
        return {"loop": 0, "comment": x.text, "code": f"{x.target} = {code}"}

    statements: list[dict] = []
    for item in update.lines:
        if isinstance(item, Loop):
            statements.append({"loop": item.count, "body": [line(x) for x in item.body]})
        else:
            statements.append(line(item))
    return {
        "states": list(update.states),
        "statements": statements,
        "shape": update.uses(ROWS) or update.uses(COLS),
    }


def template_data(spec: Spec, program: TensorProgram) -> dict:
    scalar = ScalarPrinter()
    base = {*program.scalars, *spec.hyper_names, "t", ROWS, COLS}
    arrays = {"w", "g", *spec.state_names}
    used = set().union(*(u.symbols() for u in program.updates))
    direct = [h for h in (*spec.hyper_names, "t") if h in used]
    main = _update_data(program.main, base, arrays)
    other = len(program.updates) > 1  # an [otherwise] update
    other_data = _update_data(program.updates[1], base, arrays) if other else None
    states = []
    for s in spec.states:
        init = scalar.doprint(program.init[s.name])
        doc_init = init
        if program.init[s.name] != s.init:
            doc_init = f"{init}, set to {sympy.sstr(s.init)} at the first step"
        states.append(
            {"name": s.name, "init": init, "doc_init": doc_init, "doc": s.doc, "shape": s.shape}
        )
    return {
        "test_shapes": repr(TEST_SHAPES[spec.applies_to, bool(spec.otherwise)]),
        "spec": spec,
        "version": __version__,
        "hypers": hyper_rows(spec),
        "hyper_names": list(spec.hyper_names),
        "states": states,
        "prelude": [{"name": s.name, "code": scalar.doprint(e)} for s, e in program.prelude],
        "scalar_names": direct + list(program.scalars),
        "main": main,
        "other": other_data,
        "matrix": spec.applies_to != "any",
        "shape_word": spec.shapes_taken,
        "step_key": step_key(spec),
        "equations": spec_lines(spec.update),
        "other_equations": spec_lines(spec.otherwise),
        "init_hypers": sorted(
            {s.name for e in program.init.values() for s in e.free_symbols} & set(spec.hyper_names)
        ),
    }

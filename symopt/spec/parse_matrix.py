"""Matrix expressions of second-order specs (``-inv(H + lam*I) @ g``): the expression parser's
checked tree, built into SymPy matrix expressions."""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping

import sympy

from symopt.errors import SpecError
from symopt.spec.parse import MAX_DEPTH, _Builder, _describe, _parse_tree


def inverse(x: sympy.Basic) -> sympy.Basic:
    """An explicit matrix's inverse as adjugate/determinant (fast and compact for symbolic
    entries); a matrix symbol's stays an unevaluated ``Inverse``."""
    if isinstance(x, sympy.MatrixBase):
        if x.shape[0] != x.shape[1]:
            raise SpecError(f"inv() of a {x.shape[0]} x {x.shape[1]} matrix")
        det = x.det(method="berkowitz")
        return (x.adjugate(method="berkowitz") / det).applyfunc(sympy.cancel)
    return sympy.Inverse(x)


class _MatrixBuilder(_Builder):
    """Builds a SymPy matrix expression: ``*`` and ``@`` multiply, ``inv``/``transpose`` only."""

    MATRIX_FUNCTIONS: Mapping[str, Callable] = {
        "inv": lambda x: inverse(x),
        "transpose": lambda x: sympy.Transpose(x),
    }

    def _binop(self, node: ast.BinOp, d: int) -> sympy.Expr:
        op = node.op
        if isinstance(op, (ast.Mult, ast.MatMult)):
            return self.build(node.left, d) * self.build(node.right, d)
        if isinstance(op, ast.Div):
            right = self.build(node.right, d)
            if getattr(right, "is_Matrix", False) or isinstance(right, sympy.MatrixExpr):
                raise SpecError("division by a matrix; write inv(...) instead")
            if right == 0:
                raise SpecError("division by the constant 0")
            return self.build(node.left, d) / right
        if isinstance(op, (ast.Add, ast.Sub)):
            return super()._binop(node, d)
        raise SpecError(f"operator {type(op).__name__} is not allowed (use + - * @ / and inv())")

    def _call(self, node: ast.Call, d: int) -> sympy.Expr:
        name = node.func.id if isinstance(node.func, ast.Name) else ""
        if name not in self.MATRIX_FUNCTIONS:
            allowed = ", ".join(self.MATRIX_FUNCTIONS)
            raise SpecError(
                f"unknown function {name or _describe(node.func)!r}; allowed: {allowed}"
            )
        if node.keywords or len(node.args) != 1 or isinstance(node.args[0], ast.Starred):
            raise SpecError(f"{name}() takes exactly one argument")
        return self.MATRIX_FUNCTIONS[name](self.build(node.args[0], d + 1))


def parse_matrix_expr(text: object, symbols: Mapping[str, sympy.Basic]) -> sympy.Basic:
    """Parse a matrix expression such as ``-inv(H + lam*I) @ g`` over declared matrix symbols."""
    tree = _parse_tree(text, "eval")
    source = str(text).strip()
    try:
        return _MatrixBuilder(symbols, False, frozenset(), source).build(tree.body)  # type: ignore[attr-defined]
    except RecursionError:
        raise SpecError(f"expression nested deeper than {MAX_DEPTH} levels") from None
    except SpecError:
        raise
    except (TypeError, ValueError, AttributeError, sympy.ShapeError) as exc:
        raise SpecError(f"invalid matrix expression {source!r}: {exc}") from None

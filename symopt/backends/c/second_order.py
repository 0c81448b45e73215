"""C for second-order specs: a dense Cholesky solve of the derived system, the step, a driver;
and the element-wise kernels of diagonal Newton.

For every dense second-order spec (Newton, trust region) it renders
``c/include/symopt/NAME.h`` and ``c/src/NAME.c`` (double precision, C99, no library beyond
libm), a sanitizer driver ``c/tests/driver_NAME.c``, a ctypes module ``c/symopt_c/NAME.py``
with a ``minimize`` that lines up with the NumPy version, and ``c/tests/test_NAME.py``; once per
run ``c/symopt_c/_second_order.py`` (the Result, the callback bridge and the status messages the
modules share). The shared files of the C target (Makefile, umbrella header, package
``__init__``) list these modules through :func:`shared_data`.

What comes from the derivation (:func:`symopt.backends.second_order.derived_pieces`) is printed,
not written in the templates: the entries of the system matrix (``H + lam I``, or ``H`` for
Newton) that the Cholesky factorisation reads, the right-hand side (``-g``) the triangular solves
start from, and the predicted decrease, as a combination of dot products. So the C code solves
exactly the system the checks proved.

Diagonal Newton is element-wise, so its five files hold float and double kernels like the
element-wise specs' (one fused loop, a multi-tensor entry point, OpenMP, target clones) and a
ctypes module with the NumPy version's class API: the update ``w + lr d`` with ``d`` the
derivation at ``n = 1`` (``H = diag(c)`` separates the model), printed per precision.
Block-diagonal Newton and K-FAC need a framework's notion of parameter tensors and layers, so C
does not generate them.

Memory: the dense step functions take a caller's workspace (``SYMOPT_NAME_STEP_WORK(n)``
doubles, a macro in the header) and never allocate, so they suit embedded use and any n the
caller can hold; ``minimize`` allocates its workspace once when the caller passes none.
"""

from __future__ import annotations

from collections.abc import Sequence

import sympy
from sympy.printing.str import StrPrinter

from symopt import __version__
from symopt.backends.base import generated, isort_key
from symopt.backends.c.elementwise import (
    PACKAGE,
    PARALLEL_MIN,
    CPrinter,
    _comment,
    comment_block,
    wrap_call,
)
from symopt.backends.c.elementwise import template_data as elementwise_data
from symopt.backends.c.scalar_pieces import c_scalar_functions
from symopt.backends.render import render
from symopt.backends.second_order import derived_pieces, kind, supported, template_data
from symopt.errors import SpecError
from symopt.files.writer import GeneratedFile
from symopt.lowering.diagonal import entry_step, entry_update, lower_diagonal
from symopt.spec.model import RULES, ModelSpec

#: The shared Python module of the second-order bindings (spec names cannot start with "_").
SHARED_MODULE = "_second_order"
#: The C name of the damping variable, whatever the spec calls it.
LAM = "lam"


class EntryPrinter(CPrinter):
    """Double-precision C for one entry of a derived matrix or vector: ``H[i, j]`` of the n x n
    row-major ``H`` is ``H[i * n + j]``, ``g[i, 0]`` is ``g[i]``, and the Kronecker delta of the
    identity is the comparison of its indices."""

    def __init__(self, names: dict[str, str]):
        super().__init__("f64", names, set())

    def _print_MatrixElement(self, expr) -> str:
        parent = self._print(expr.parent)
        i, j = (self._print(k) for k in (expr.i, expr.j))
        if expr.parent.shape[1] == 1:
            return f"{parent}[{i}]"
        return f"{parent}[{i} * n + {j}]"

    def _print_KroneckerDelta(self, expr) -> str:
        i, j = (self._print(k) for k in expr.args[:2])
        return f"(double)({i} == {j})"


class EntryMathPrinter(StrPrinter):
    """An entry as comments write it: ``g[i]`` for a vector, ``delta_ij`` for the identity's."""

    def _print_MatrixElement(self, expr) -> str:
        if expr.parent.shape[1] == 1:
            return f"{self._print(expr.parent)}[{self._print(expr.i)}]"
        return super()._print_MatrixElement(expr)

    def _print_KroneckerDelta(self, expr) -> str:
        return f"delta_{self._print(expr.args[0])}{self._print(expr.args[1])}"


def _dot_name(left: sympy.Basic, right: sympy.Basic) -> str:
    return f"{left.name}{right.name}"


def _dot_products(spec: ModelSpec, what: str, expr: sympy.Basic) -> tuple[list, sympy.Expr]:
    """A scalar matrix expression as a combination of named dot products ``u^T v`` of two
    n-vectors: the products, and the combination over their names."""
    dots, scalar = [], sympy.Integer(0)
    terms = expr.args if isinstance(expr, sympy.MatAdd) else []
    for term in terms or (expr,):
        coeff, product = term.as_coeff_mmul()
        left, right = product.args
        left = left.arg if isinstance(left, sympy.Transpose) else left
        if left.shape[1] != 1 or right.shape[1] != 1:
            raise SpecError(f"{spec.name}: the {what} is not a sum of dot products")
        name = _dot_name(left, right)
        dots.append({"name": name, "left": left.name, "right": right.name})
        scalar += coeff * sympy.Symbol(name)
    return sorted(dots, key=lambda d: d["name"]), scalar


def c_pieces(spec: ModelSpec) -> dict:
    """The derived pieces as C: the system entry A_ij, the right-hand side b_i, and the predicted
    decrease and the slope as combinations of named dot products (each ``u^T v`` of two
    n-vectors)."""
    pieces = derived_pieces(spec)
    i, j = sympy.symbols("i j", integer=True, nonnegative=True)
    names = {spec.damping: LAM} if spec.damping else {}
    printer = EntryPrinter(names)
    entry = pieces["matrix"][i, j]
    rhs = pieces["rhs"][i, 0]
    dots, predicted = _dot_products(spec, "predicted decrease", pieces["predicted"])
    slope_dots, slope = _dot_products(spec, "slope", pieces["slope"])
    return {
        "entry": printer.doprint(entry),
        "entry_math": _comment(EntryMathPrinter().doprint(entry)),
        "rhs": printer.doprint(rhs),
        "rhs_math": _comment(EntryMathPrinter().doprint(rhs)),
        "dots": dots,
        "predicted": printer.doprint(predicted),
        "slope_dots": slope_dots,
        "slope": printer.doprint(slope),
        "slope_math": _comment(sympy.sstr(pieces["slope"])),
    }


def diagonal_data(spec: ModelSpec) -> dict:
    """Diagonal Newton as an element-wise kernel (symopt.lowering.diagonal.lower_diagonal, the
    kernel path of the element-wise specs, without a step counter), and what its header, driver,
    module and tests add: the names of its arrays and hyperparameters in C."""
    kernel = lower_diagonal(spec)
    data = elementwise_data(kernel.spec, kernel, counter=False)
    names = {a["name"]: a["c"] for a in data["arrays"]}
    hypers = [h["c"] for h in data["hypers"]]
    return {
        "kernel": data,
        "precisions": data["precisions"],
        "names": names,
        "lam": hypers[list(spec.hyper_names).index(spec.damping)],
        "hyper_c": hypers,
        "driver_hypers": [f"h[{i}]" for i in range(len(hypers))],
        "lam_index": list(spec.hyper_names).index(spec.damping),
        "test_imports": sorted(
            [
                "DEFAULTS",
                spec.class_name,
                "NotPositiveDefiniteError",
                "minimize",
                f"{spec.name}_step",
            ],
            key=isort_key,
        ),
        "step_math": _comment(sympy.sstr(entry_step(spec))),
        "update_math": _comment(sympy.sstr(entry_update(spec))),
    }


def spec_data(spec: ModelSpec) -> dict:
    base = template_data(spec)
    if spec.rule in ("radius", "line_search"):
        # the runtime's symopt_runtime_radius_hyper (_line_search_hyper) has the rule's order
        order = list(RULES[spec.rule])
        base["hypers"] = sorted(base["hypers"], key=lambda row: order.index(row["name"]))
    upper = spec.name.upper()
    hypers = [
        {**row, "macro": f"SYMOPT_{upper}_{row['name'].upper()}", "c_doc": _comment(row["doc"])}
        for row in base["hypers"]
    ]
    return {
        **base,
        "version": __version__,
        "name": spec.name,
        "upper": upper,
        "prefix": f"symopt_{spec.name}",
        "fn": f"{spec.name}_step",
        "c_title": _comment(spec.title),
        "c_equations": {k: _comment(v) for k, v in base["equations"].items()},
        "hypers": hypers,
        "hyper_names": [h["name"] for h in hypers],
        "lam": LAM,
        "c": c_pieces(spec),
        "call": wrap_call,
        "comment": comment_block,
        "parallel_min": PARALLEL_MIN,
        "diagonal": diagonal_data(spec) if kind(spec) == "diagonal" else None,
        # the trust region's scalar formulas (Newton's step on the secular equation, the roots
        # of ||p + tau d|| = r, the Cauchy length), printed from their derivation
        "scalar_pieces": (
            c_scalar_functions(spec, spec.name) if kind(spec) == "trust_region" else None
        ),
    }


#: Kind of method -> template stem (templates/c/second_order/STEM.c.jinja, ...).
TEMPLATES = {"trust_region": "radius", "newton": "newton", "diagonal": "diagonal"}


def files(specs: Sequence[ModelSpec]) -> list[GeneratedFile]:
    """Every per-spec file (from the templates of the spec's kind), and the shared Python module
    when there is a spec."""
    out = []
    specs = supported(specs, TEMPLATES)
    for spec in specs:
        data = spec_data(spec)
        rule = TEMPLATES[kind(spec)]
        # diagonal Newton's loop is the element-wise kernel's, plus a check of c + lam > 0
        source = (
            render(
                "c/kernel.c.jinja",
                **data["diagonal"]["kernel"],
                extra=render("c/second_order/diagonal.c.jinja", **data),
            )
            if rule == "diagonal"
            else render(f"c/second_order/{rule}.c.jinja", **data)
        )
        out.append(generated(f"c/src/{spec.name}.c", source, spec=spec, comment="//"))
        for template, path, comment in (
            (f"c/second_order/{rule}.h.jinja", f"c/include/symopt/{spec.name}.h", "//"),
            (f"c/second_order/driver_{rule}.c.jinja", f"c/tests/driver_{spec.name}.c", "//"),
            (f"c/second_order/{rule}.py.jinja", f"c/{PACKAGE}/{spec.name}.py", "#"),
            (f"c/second_order/test_{rule}.py.jinja", f"c/tests/test_{spec.name}.py", "#"),
        ):
            out.append(generated(path, render(template, **data), spec=spec, comment=comment))
    return out


#: Kind of method -> how its C code finds the step (the package docstring says it per module).
SOLVERS = {
    "newton": "solves H d = -g by a dense Cholesky factorisation, which is also the test of "
    "definiteness (Gaussian elimination where on_indefinite is 'solve')",
    "trust_region": "solves the subproblem on the dense H exactly (Cholesky factorisations of "
    "H + lam I, More-Sorensen) or by Steihaug's truncated conjugate gradient",
    "diagonal": "a fused element-wise kernel over float and double arrays, each coordinate's own "
    "Newton step from the diagonal of the curvature (no matrix, no factorisation)",
    # Newton's templates with the "line_search" rule
    "line_search": "shifts H by the smallest multiple of I that makes it positive definite (a "
    "Cholesky factorisation per shift tried), then backtracks along the step (Armijo)",
}


def shared_data(specs: Sequence[ModelSpec]) -> list[dict]:
    """What the C target's shared files list for each second-order spec: its module (header,
    source, Python module), its class and step function, which ``__init__`` exports, and how
    it solves for the step."""
    return [
        {
            "module": s.name,
            "class_name": s.class_name,
            "fn": f"{s.name}_step",
            "imports": f"{s.class_name}, {s.name}_step",
            "solver": SOLVERS["line_search" if s.rule == "line_search" else kind(s)],
        }
        for s in supported(specs, TEMPLATES)
    ]

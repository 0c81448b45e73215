"""Second-order specs in every target: what the templates get from the derivation.

The step of a second-order spec is not element-wise, so it does not go through the kernel: each
target renders its own solver templates (``templates/TARGET/second_order/``), and this module
hands them the constants and the code printed from :func:`symopt.lowering.derive.derive`
(the damped system matrix, its right-hand side and the predicted decrease), so the generated
code solves exactly the system the checks proved. One module per target next to this one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import sympy
from sympy.printing.numpy import NumPyPrinter

from symopt.backends.base import generated, hyper_rows
from symopt.backends.render import render
from symopt.files.writer import GeneratedFile
from symopt.lowering.derive import damping_symbol, derive
from symopt.lowering.line_search import slope
from symopt.spec.model import ModelSpec

#: The solvers' constants, the same in every target (as source text, so that every target
#: prints them alike): the exact trust-region subproblem's tolerances (More & Sorensen 1983;
#: k_easy, k_hard and 25 factorisations are scipy's too), the largest n that subproblem="auto"
#: solves exactly when Hessian-vector products are given too (n^3 / 3 <= 1e9 flops), Steihaug's
#: forcing constant, the radius floor, the tolerance of the final check that H is positive
#: semidefinite, and the factor of rho's rounding guard (delta = rounding eps |f|); Newton's:
#: that tolerance and the Armijo backtracking of its steepest-descent fallback.
TRUST_REGION = {
    "k_easy": "0.1",
    "k_hard": "0.2",
    "max_factorisations": "25",
    "max_n": "1442",
    "cg_forcing": "0.5",
    "min_radius": "1e-14",
    "psd_tol": "1e-8",
    "rounding": "10.0",
}
NEWTON = {
    "psd_tol": "1e-8",
    "armijo": "1e-4",
    "backtrack": "0.5",
    "max_backtracks": "60",
    # the line-search rule's shift tau of an indefinite H (Nocedal & Wright, Algorithm 3.3)
    # doubles at most this many times: enough to take the smallest positive double past the
    # largest; and its line search takes a step whose predicted change |g^T d| is below
    # rounding eps max(1, |f|) once f is finite there (f cannot measure it; the trust region's
    # guard, Conn, Gould & Toint 2000, 17.4.2)
    "max_shifts": "2100",
    "rounding": "10.0",
}

#: The Hessian-vector product H d, as generated code names it.
HD = "Hd"


class MatrixCodePrinter(NumPyPrinter):
    """Matrix expressions over 1-D vectors: ``@`` for products, no ``.T`` on a vector, and the
    identity of the symbolic size ``n`` as ``MODULE.eye(n)``."""

    def __init__(self, module: str = "np", eye_args: str = "") -> None:
        super().__init__({"fully_qualified_modules": False})
        self.module, self.eye_args = module, eye_args

    def _print_Identity(self, expr) -> str:
        return f"{self.module}.eye({self._print(expr.rows)}{self.eye_args})"

    def _print_MatMul(self, expr) -> str:
        coeff, matrices = expr.as_coeff_mmul()
        product = " @ ".join(self.parenthesize(a, 60) for a in matrices.args)
        if coeff == 1:
            return product
        if coeff == -1:
            return f"-{product}"
        return f"{self._print(coeff)}*{product}"

    def _print_Transpose(self, expr) -> str:
        if expr.arg.shape[1] == 1:  # a vector: 1-D arrays need no transpose
            return self._print(expr.arg)
        return super()._print_Transpose(expr)

    def _print_Rational(self, expr) -> str:
        return repr(float(expr))

    def _print_Half(self, expr) -> str:
        return "0.5"


def derived_pieces(spec: ModelSpec) -> dict[str, sympy.Basic]:
    """The derivation's matrix, right-hand side and the predicted decrease of the (undamped)
    model, ``m(0) - m(d)``, with ``H d`` as a vector ``Hd`` so it works with Hessian-vector
    products too; and the model's slope along d, ``d/dt m(t d)`` at ``t = 0`` (``g^T d``), which
    a line search's Armijo test needs."""
    d = derive(spec, None)
    s = d.symbols
    undamped = d.model.xreplace({damping_symbol(spec.damping): 0}).doit()
    hd = sympy.MatrixSymbol(HD, *s["d"].shape)
    predicted = (-undamped).subs(s["H"] * s["d"], hd)
    return {"matrix": d.matrix, "rhs": d.rhs, "predicted": predicted, "slope": slope(spec)}


def equations(spec: ModelSpec) -> dict[str, str]:
    """The derivation as plain-text lines for comments and docstrings."""
    d = derive(spec, None)
    pieces = derived_pieces(spec)
    return {
        "model": f"m(d) = L + {sympy.sstr(d.model)}",
        "system": f"{_factor(d.matrix)}*d = {sympy.sstr(d.rhs)}",
        "step": f"d = {sympy.sstr(d.step)}",
        "predicted": f"m(0) - m(d) = {sympy.sstr(pieces['predicted'])} (undamped model)",
    }


def _factor(matrix: sympy.Basic) -> str:
    text = sympy.sstr(matrix)
    return text if isinstance(matrix, sympy.MatrixSymbol) else f"({text})"


def python_code(spec: ModelSpec, printer: MatrixCodePrinter) -> dict[str, str]:
    """The derived pieces printed for a Python target (NumPy or PyTorch)."""
    return {k: printer.doprint(v) for k, v in derived_pieces(spec).items()}


def template_data(spec: ModelSpec) -> dict:
    """What every target's second-order templates get."""
    return {
        "spec": spec,
        "hypers": hyper_rows(spec),
        "defaults": spec.defaults,
        "equations": equations(spec),
        "damping": spec.damping or "",
        "trust_region": TRUST_REGION,
        "newton": NEWTON,
    }


#: The kind of method a spec describes, from its control rule and curvature structure; each
#: target's module renders the kinds it has templates for (K-FAC and block-diagonal Newton need a
#: framework's notion of layers and parameter tensors, so C does not generate them).
KINDS = {
    ("newton", "dense"): "newton",
    ("line_search", "dense"): "newton",  # Newton's templates, with the line search
    ("radius", "dense"): "trust_region",
    ("damped", "diagonal"): "diagonal",
    ("damped", "block_diagonal"): "block_diagonal",
    ("damped", "kronecker"): "kfac",
}


def kind(spec: ModelSpec) -> str:
    return KINDS[spec.rule, spec.structure]


def supported(specs: Sequence[ModelSpec], templates: Mapping[str, str]) -> list[ModelSpec]:
    """The specs whose kind a target has templates for (``templates``: kind -> template stem)."""
    return [s for s in specs if kind(s) in templates]


def module_files(
    target: str, package: str, specs: Sequence[ModelSpec], templates: Mapping[str, str], data
) -> list[GeneratedFile]:
    """A Python target's module and test for every spec it has templates for:
    ``TARGET/second_order/STEM.py.jinja`` and ``test_STEM.py.jinja``, with ``data(spec)``."""
    out = []
    for spec in supported(specs, templates):
        stem, context = templates[kind(spec)], data(spec)
        for template, path in (
            (f"{target}/second_order/{stem}.py.jinja", f"{target}/{package}/{spec.name}.py"),
            (f"{target}/second_order/test_{stem}.py.jinja", f"{target}/tests/test_{spec.name}.py"),
        ):
            out.append(generated(path, render(template, **context), spec=spec))
    return out

"""PyTorch target for second-order specs: a ``torch.optim.Optimizer`` that takes a closure.

The kind of the spec (its control rule and curvature structure) picks the templates
(``templates/torch/second_order/``): the trust-region rule ("radius") gets the NumPy target's
solvers (Moré-Sorensen on the dense Hessian from autograd, Steihaug's truncated conjugate
gradients on Hessian-vector products by double backward), the Newton rule a dense Hessian and a
Cholesky solve. The "damped" rule's structured curvatures need the model, not only its
parameters: the diagonal and block-diagonal GGN come from per-example Jacobians by
``torch.func`` (or from the user), K-FAC hooks the model's ``torch.nn.Linear`` layers. All print
the derived system (and the predicted decrease) from
:func:`symopt.backends.second_order.python_code`, and each module stands alone (torch only).
Tests are generated next to them, as for the element-wise specs.
"""

from __future__ import annotations

from collections.abc import Sequence

from symopt import __version__
from symopt.backends.base import isort_key
from symopt.backends.numpy.elementwise import ScalarPrinter
from symopt.backends.scalar_pieces import python_scalar_functions
from symopt.backends.second_order import (
    MatrixCodePrinter,
    kind,
    module_files,
    python_code,
    template_data,
)
from symopt.backends.torch.elementwise import _FusingCompiler, _single, inline_scaled_temporaries
from symopt.files.writer import GeneratedFile
from symopt.lowering.diagonal import lower_diagonal
from symopt.lowering.tac import compile_kernel
from symopt.spec.model import ModelSpec

PACKAGE = "symopt_torch"
#: the spec's kind -> the templates' stem (``STEM.py.jinja`` and ``test_STEM.py.jinja``)
TEMPLATES = {
    "trust_region": "trust_region",
    "newton": "newton",
    "diagonal": "diagonal",
    "block_diagonal": "block_diagonal",
    "kfac": "kfac",
}
#: Kinds whose code solves the derived system with a diagonal H held as its diagonal (K-FAC's is
#: diagonal in the eigenbases of its factors).
DIAGONAL_KINDS = ("diagonal", "kfac")


def printer() -> MatrixCodePrinter:
    """Matrices as torch code: the identity in the dtype and on the device of H."""
    return MatrixCodePrinter("torch", ", dtype=H.dtype, device=H.device")


class DiagonalCodePrinter(MatrixCodePrinter):
    """Diagonal matrices as tensors of their diagonals: the identity is ``torch.ones_like(H)``
    (H's diagonal), so ``lam*I + H`` is the diagonal of the damped matrix and the solve is an
    element-wise division."""

    def __init__(self) -> None:
        super().__init__("torch")

    def _print_Identity(self, expr) -> str:
        return "torch.ones_like(H)"


def sorted_imports(names: Sequence[str]) -> list[str]:
    """Imported names in ruff's isort order: by type (CONSTANTS, Classes, functions), then
    case-insensitively (the class name may look like a constant: "KFAC")."""
    return sorted(names, key=lambda name: (isort_key(name)[0], name.lower()))


def elementwise_update(spec: ModelSpec) -> dict:
    """Diagonal Newton's ``w <- w + lr d`` lowered like a first-order update
    (:func:`symopt.lowering.diagonal.lower_diagonal`) and printed as the single-tensor body of
    the element-wise optimizers: arrays ``w, g, c`` (``c`` the curvature, read only)."""
    scalar = ScalarPrinter()
    kernel = inline_scaled_temporaries(lower_diagonal(spec))
    program = compile_kernel(kernel, scalar.doprint, compiler_class=_FusingCompiler)
    used = {s.name for st in kernel.body for s in st.expr.free_symbols}
    direct = [h for h in kernel.hypers if h in used]
    return {
        "arrays": list(kernel.arrays),
        "scratch": program.scratch,
        "prelude": [{"name": s.name, "code": scalar.doprint(e)} for s, e in kernel.prelude],
        "scalar_args": direct + [s.name for s in kernel.scalars],
        "body": [
            {"comments": list(comments), "line": _single(op, dst, args)}
            for op, dst, args, comments in program.instructions
        ],
    }


def module_data(spec: ModelSpec) -> dict:
    """What the module and test templates of one spec get."""
    code_printer = DiagonalCodePrinter() if kind(spec) in DIAGONAL_KINDS else printer()
    data = template_data(spec) | {
        "code": python_code(spec, code_printer),
        "sorted_imports": sorted_imports,
        "version": __version__,
        "package": PACKAGE,
    }
    if kind(spec) == "diagonal":
        data["update"] = elementwise_update(spec)
    if kind(spec) == "trust_region":
        # the scalar formulas of the subproblem solvers (Python floats, as NumPy's): the NumPy
        # target's hand-written text until the printed derivation replaces it there
        data["scalar_pieces"] = python_scalar_functions(spec)
    return data


def files(specs: Sequence[ModelSpec]) -> list[GeneratedFile]:
    """The optimizer module and its tests for every spec, paths relative to the output folder."""
    return module_files("torch", PACKAGE, specs, TEMPLATES, module_data)

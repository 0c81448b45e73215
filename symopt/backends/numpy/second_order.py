"""Second-order specs in the NumPy target: a module per spec, and its tests.

Dense methods (Newton, trust region) are ``minimize`` drivers. The solvers (Cholesky,
More-Sorensen, Steihaug-CG, the drivers and line search, the block solve, K-FAC's bookkeeping)
are static runtime modules shipped in the package (``runtime/_dense.py``, ``_trust_region.py``,
``_newton.py``, ``_block_newton.py``, ``_kfac.py``); a generated module binds what is derived
(the damped system, its right-hand side, the predicted decrease, the per-entry step, printed
from the derivation) and the spec's constants and hyperparameters, and calls the runtime.

Structured curvature ("damped" rule) gets optimizer classes over lists of arrays, like the
element-wise optimizers, each with a ``minimize`` for a dense curvature too:

* diagonal: ``DiagNewton(params).step(grads, diagonals)``. With ``H = diag(c)`` the model
  separates into one-dimensional models: the update is element-wise, lowered by
  :func:`symopt.lowering.diagonal.lower_diagonal` and rendered like Adam's (the template extends
  the element-wise one);
* block_diagonal: ``BlockNewton(params, blocks=...).step(grads, curvature_blocks)``, the printed
  damped system per block, factorised by LAPACK's Cholesky;
* kfac: ``KFAC(params).step(grads, inputs, output_grads)``; in the eigenbases of the Kronecker
  factors the damped system is diagonal, so the step is again the ``n = 1`` derivation, with
  ``c`` the products of the factors' eigenvalues.
"""

from __future__ import annotations

from collections.abc import Sequence

import sympy

from symopt.backends.numpy import elementwise
from symopt.backends.numpy.elementwise import ScalarPrinter
from symopt.backends.scalar_pieces import python_scalar_functions
from symopt.backends.second_order import (
    MatrixCodePrinter,
    kind,
    module_files,
    python_code,
    template_data,
)
from symopt.files.writer import GeneratedFile
from symopt.lowering.diagonal import elementwise_spec, entry_step, entry_update, lower_diagonal
from symopt.spec.model import ModelSpec

PACKAGE = "symopt_numpy"
#: Kind of method -> template stem (templates/numpy/second_order/STEM.py.jinja, test_STEM...).
TEMPLATES = {
    "trust_region": "trust_region",
    "newton": "newton",
    "diagonal": "diagonal",
    "block_diagonal": "block_diagonal",
    "kfac": "kfac",
}


def data(spec: ModelSpec) -> dict:
    out = template_data(spec)
    out["hyper_names"] = list(spec.hyper_names)
    # the damped rule's block solve keeps the block's dtype: the identity is made in it
    eye_args = ", dtype=H.dtype" if spec.rule == "damped" else ""
    out["code"] = python_code(spec, MatrixCodePrinter("np", eye_args))
    if spec.rule == "radius":
        out["scalar_pieces"] = python_scalar_functions(spec)
    if spec.rule == "damped":
        printer = ScalarPrinter()
        out["entry"] = {
            "step_code": printer.doprint(entry_step(spec)),
            "update_code": printer.doprint(entry_update(spec)),
            "step_math": sympy.sstr(entry_step(spec)),
            "update_math": sympy.sstr(entry_update(spec)),
        }
    if kind(spec) == "diagonal":
        # element-wise: the kernel of lowering.diagonal, rendered like Adam's
        kernel = lower_diagonal(spec)
        lowered = elementwise.template_data(elementwise_spec(spec), kernel)
        out = {**out, **lowered, "equations": out["equations"]}
    return out


def files(specs: Sequence[ModelSpec]) -> list[GeneratedFile]:
    return module_files("numpy", PACKAGE, specs, TEMPLATES, data)

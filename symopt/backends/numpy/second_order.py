"""Second-order specs in the NumPy target: a module per spec, and its tests.

Dense methods (Newton, trust region) are ``minimize`` drivers; the solvers (Cholesky,
More-Sorensen, Steihaug-CG) are the templates' own code; the damped system, its right-hand side
and the predicted decrease are printed from the derivation, and the rule's constants are the
spec's hyperparameters.

Structured curvature ("damped" rule) gets optimizer classes over lists of arrays, like the
element-wise optimizers, each with a ``minimize`` for a dense curvature too:

* diagonal: ``DiagNewton(params).step(grads, diagonals)``. With ``H = diag(c)`` the model
  separates into one-dimensional models, so the per-coordinate step is the ``n = 1`` derivation,
  printed here as an expression over arrays (:func:`entry_step`);
* block_diagonal: ``BlockNewton(params, blocks=...).step(grads, curvature_blocks)``, the printed
  damped system per block, factorised by LAPACK's Cholesky;
* kfac: ``KFAC(params).step(grads, inputs, output_grads)``; in the eigenbases of the Kronecker
  factors the damped system is diagonal, so the step is again the ``n = 1`` derivation, with
  ``c`` the products of the factors' eigenvalues.
"""

from __future__ import annotations

from collections.abc import Sequence

import sympy

from symopt.backends.numpy.elementwise import ScalarPrinter
from symopt.backends.second_order import MatrixCodePrinter, module_files, python_code, template_data
from symopt.errors import SpecError
from symopt.files.writer import GeneratedFile
from symopt.lowering.derive import derive
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
#: Names the damped rule's templates give their own variables: the damping may not take them.
RESERVED = {"A", "D", "G", "H", "R", "V", "W", "a", "b", "c", "d", "f", "g", "h", "k", "n", "np"}
RESERVED |= {"math", "nu", "s", "u", "w", "x", "lr", "layer", "one"}
#: The names of the per-coordinate step's inputs: the gradient, the curvature (a diagonal entry
#: or an eigenvalue product) and the parameter.
G, C, W, LR = (sympy.Symbol(n, real=True) for n in ("g", "c", "w", "lr"))


def entry_step(spec: ModelSpec) -> sympy.Expr:
    """The step of the one-dimensional model ``g d + (c + lam) d^2 / 2``: the ``n = 1``
    derivation with ``h_11 = c``, over the scalars (or arrays) ``g`` and ``c``."""
    d = derive(spec, 1)
    s = d.symbols
    return d.step[0].xreplace({s["g"][0]: G, s["H"][0, 0]: C})


def entry_update(spec: ModelSpec) -> sympy.Expr:
    """``w + lr d``: the damped rule's update of one coordinate."""
    return W + LR * entry_step(spec)


def data(spec: ModelSpec) -> dict:
    out = template_data(spec)
    out["hyper_names"] = list(spec.hyper_names)
    # the damped rule's block solve keeps the block's dtype: the identity is made in it
    eye_args = ", dtype=H.dtype" if spec.rule == "damped" else ""
    out["code"] = python_code(spec, MatrixCodePrinter("np", eye_args))
    if spec.rule == "damped":
        if spec.damping in RESERVED:
            raise SpecError(
                f"the NumPy target names its own variables {', '.join(sorted(RESERVED))}: "
                f"call the damping something else than {spec.damping!r}",
                key="model.damping",
            )
        printer = ScalarPrinter()
        out["entry"] = {
            "step_code": printer.doprint(entry_step(spec)),
            "update_code": printer.doprint(entry_update(spec)),
            "step_math": sympy.sstr(entry_step(spec)),
            "update_math": sympy.sstr(entry_update(spec)),
        }
    return out


def files(specs: Sequence[ModelSpec]) -> list[GeneratedFile]:
    return module_files("numpy", PACKAGE, specs, TEMPLATES, data)

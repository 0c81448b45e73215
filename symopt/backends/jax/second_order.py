"""Second-order specs in the JAX target: the trust-region minimiser, with every derivative from
JAX.

Only the trust region is generated for JAX: it is the method whose subproblem needs Hessian-vector
products, which JAX gives as ``jax.jvp`` of ``jax.grad`` without a hand-written Hessian; the
user passes only f. The generated module (``templates/jax/second_order/trust_region.py.jinja``)
binds what is derived (the damped system, its right-hand side, the predicted decrease and the
solver's scalar formulas, printed from the derivation with ``jnp``) and the spec's constants;
the solvers and the driver are static runtime modules, the NumPy runtime's algorithm with
jit-compiled kernels: ``_dense.py`` (Cholesky with its failing pivot, triangular solves, the
LINPACK estimate), ``_subproblem.py`` (Moré-Sorensen, CG as a ``lax.while_loop``) and
``_trust_region.py`` (the driver). The generated tests run on the Moré-Garbow-Hillstrom
problems written in ``jax.numpy`` (``_jax_problems.py``, shipped beside them).
"""

from __future__ import annotations

from collections.abc import Sequence

from symopt.backends.scalar_pieces import jax_scalar_functions
from symopt.backends.second_order import MatrixCodePrinter, module_files, python_code, template_data
from symopt.files.writer import GeneratedFile
from symopt.spec.model import ModelSpec

PACKAGE = "symopt_jax"
#: Kind of method -> template stem (templates/jax/second_order/STEM.py.jinja, test_STEM...).
TEMPLATES = {"trust_region": "trust_region"}
#: Static runtime files (``runtime/NAME``) shipped verbatim into ``jax/symopt_jax/``.
RUNTIME = ["_dense.py", "_subproblem.py", "_trust_region.py"]
#: Static test-support files (``runtime/NAME``) -> where they are shipped.
TEST_RUNTIME = {"_jax_problems.py": "jax/tests/_jax_problems.py"}


def data(spec: ModelSpec) -> dict:
    out = template_data(spec)
    out["hyper_names"] = list(spec.hyper_names)
    out["code"] = python_code(spec, MatrixCodePrinter("jnp"))
    # the solver's scalar formulas (the Newton step on the secular equation, the boundary roots,
    # the Cauchy length) in traceable jnp: they run inside the compiled kernels
    out["scalar_pieces"] = jax_scalar_functions(spec)
    return out


def files(specs: Sequence[ModelSpec]) -> list[GeneratedFile]:
    return module_files("jax", PACKAGE, specs, TEMPLATES, data)

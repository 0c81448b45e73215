"""PyTorch target for second-order specs: a ``torch.optim.Optimizer`` that takes a closure.

The control rule picks the templates (``templates/torch/second_order/``): the trust-region
rule ("radius") gets Steihaug's truncated conjugate gradients with Hessian-vector products from
autograd (double backward, no dense Hessian), the Newton rule a dense Hessian and a Cholesky
solve. Both print the derived system and the predicted decrease of the model from
:func:`symopt.targets.second_order.python_code`, and each module stands alone (torch only).
Tests are generated next to them, as for the element-wise specs.
"""

from __future__ import annotations

from collections.abc import Sequence

from symopt import __version__
from symopt.model_spec import ModelSpec
from symopt.render import render
from symopt.targets.base import generated
from symopt.targets.second_order import (
    MatrixCodePrinter,
    kind,
    python_code,
    supported,
    template_data,
)
from symopt.writer import GeneratedFile

PACKAGE = "symopt_torch"
#: control rule -> the templates' stem (``STEM.py.jinja`` and ``test_STEM.py.jinja``)
TEMPLATES = {"trust_region": "trust_region", "newton": "newton"}


def printer() -> MatrixCodePrinter:
    """Matrices as torch code: the identity in the dtype and on the device of H."""
    return MatrixCodePrinter("torch", ", dtype=H.dtype, device=H.device")


def module_data(spec: ModelSpec) -> dict:
    """What the module and test templates of one spec get."""
    return template_data(spec) | {
        "code": python_code(spec, printer()),
        "version": __version__,
        "package": PACKAGE,
    }


def files(specs: Sequence[ModelSpec]) -> list[GeneratedFile]:
    """The optimizer module and its tests for every spec, paths relative to the output folder."""
    out = []
    for spec in supported(specs, TEMPLATES):
        stem = TEMPLATES[kind(spec)]
        data = module_data(spec)
        for template, path in (
            (f"torch/second_order/{stem}.py.jinja", f"torch/{PACKAGE}/{spec.name}.py"),
            (f"torch/second_order/test_{stem}.py.jinja", f"torch/tests/test_{spec.name}.py"),
        ):
            out.append(generated(path, render(template, **data), spec=spec))
    return out

"""Second-order specs in the NumPy target: a ``minimize`` driver per spec, and its tests.

The solvers (Cholesky, More-Sorensen, Steihaug-CG) are the templates' own code; the damped
system, its right-hand side and the predicted decrease are printed from the derivation, and the
rule's constants are the spec's hyperparameters.
"""

from __future__ import annotations

from collections.abc import Sequence

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

PACKAGE = "symopt_numpy"
#: Kind of method -> template stem (templates/numpy/second_order/STEM.py.jinja, test_STEM...).
TEMPLATES = {"trust_region": "trust_region", "newton": "newton"}


def data(spec: ModelSpec) -> dict:
    out = template_data(spec)
    out["code"] = python_code(spec, MatrixCodePrinter("np"))
    out["hyper_names"] = list(spec.hyper_names)
    return out


def files(specs: Sequence[ModelSpec]) -> list[GeneratedFile]:
    out = []
    for spec in supported(specs, TEMPLATES):
        stem = TEMPLATES[kind(spec)]
        context = data(spec)
        for template, path in (
            (f"numpy/second_order/{stem}.py.jinja", f"numpy/{PACKAGE}/{spec.name}.py"),
            (f"numpy/second_order/test_{stem}.py.jinja", f"numpy/tests/test_{spec.name}.py"),
        ):
            out.append(generated(path, render(template, **context), spec=spec))
    return out

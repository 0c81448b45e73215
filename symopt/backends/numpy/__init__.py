"""The NumPy backend: a module per spec (class + functional step) and its tests.

A spec with flags (a family, :mod:`symopt.spec.family`) gets a private module per variant
(``_adam``, ``_adam__amsgrad``, ...: a class and functional step each, with its tests) and a
module ``NAME.py`` with the class that takes the library's arguments (``[api]``) and runs the
variant of the current setting (``runtime/_api.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from symopt import __version__
from symopt.backends.api import api_data
from symopt.backends.base import (
    Backend,
    generated,
    isort_key,
    kernel_specs,
    spec_data_file,
    split_kinds,
    static_files,
)
from symopt.backends.numpy import second_order, tensor
from symopt.backends.numpy.elementwise import PACKAGE, template_data
from symopt.backends.render import render
from symopt.backends.second_order import supported
from symopt.files.writer import GeneratedFile
from symopt.lowering.kernel import lower
from symopt.lowering.program import lower_tensor
from symopt.spec import Spec
from symopt.spec import tensor as features
from symopt.spec.api import MATH_FRAMEWORK_ARGUMENTS
from symopt.spec.family import module_name, variant_label, variants

#: Static files shipped verbatim (with a header) beside the generated code: the runtime that
#: every generated module calls, and what the generated tests share.
RUNTIME = Path(__file__).resolve().parent / "runtime"
STATIC = {
    "_runtime.py": f"numpy/{PACKAGE}/_runtime.py",
    "_second_order.py": f"numpy/{PACKAGE}/_second_order.py",
    "_dense.py": f"numpy/{PACKAGE}/_dense.py",
    "_trust_region.py": f"numpy/{PACKAGE}/_trust_region.py",
    "_subproblem.py": f"numpy/{PACKAGE}/_subproblem.py",
    "_newton.py": f"numpy/{PACKAGE}/_newton.py",
    "_block_newton.py": f"numpy/{PACKAGE}/_block_newton.py",
    "_kfac.py": f"numpy/{PACKAGE}/_kfac.py",
    "_tensor.py": f"numpy/{PACKAGE}/_tensor.py",
    "_api.py": f"numpy/{PACKAGE}/_api.py",
    "_numpy_support.py": "numpy/tests/_numpy_support.py",
}


def spec_file(spec) -> GeneratedFile:
    return spec_data_file("numpy", spec)


def public_name(kernel: Spec) -> str:
    """A kernel module's name without the leading underscore of a variant's (``_adam__amsgrad``
    -> ``adam__amsgrad``): what its functional step is called after."""
    return kernel.name.lstrip("_")


def variant_data(kernel: Spec, package: str) -> dict:
    """What a variant's module says about itself: its setting in words, and the class that
    runs it."""
    label = variant_label(kernel) or "its defaults"
    return {
        "variant": label,
        "api_class": f"``{package}.{kernel.family_name}.{kernel.class_name}``",
    }


def default_step(spec: Spec) -> str:
    """The functional step a spec's module exports: a family's is its default variant's
    (``adam_step``, from ``_adam``)."""
    if spec.family is None:
        return f"{spec.name}_step"
    return f"{module_name(variants(spec)[0]).lstrip('_')}_step"


def api_files(spec: Spec, target: str, package: str, kind: str, note: str) -> list[GeneratedFile]:
    """The module of a family's class with the library's arguments (``NAME.py``) and its
    tests, for the NumPy target or the C binding (``target``: "numpy" or "c", the folder;
    ``package``: the Python package there): ``kind`` says what the kernels are ("a NumPy
    optimizer"), ``note`` what the module depends on."""
    default = module_name(variants(spec)[0])
    only_matrices = spec.applies_to == "matrix" and not spec.otherwise
    data = {
        **api_data(spec, MATH_FRAMEWORK_ARGUMENTS),
        "default_module": default,
        "fn": default_step(spec),
        "kind": kind,
        "target_note": note,
        "target": {"numpy": "NumPy", "c": "C"}[target],
        "package": package,
        "only_matrices": only_matrices,
        "shape_word": spec.shapes_taken,
        "test_shapes": repr(
            [(5, 3), (4, 4), (3, 6)] if only_matrices else [(5, 3), (7,), (2, 3, 4)]
        ),
    }
    return [
        generated(path, render(template, **data), spec=spec)
        for template, path in (
            ("numpy/api.py.jinja", f"{target}/{package}/{spec.name}.py"),
            ("numpy/test_api.py.jinja", f"{target}/tests/test_{spec.name}.py"),
        )
    ]


#: What the class modules of families say about this target.
NOTE = (
    "Depends on NumPy only. Argument checks, kernel choice, maximize, the state keys and the "
    "step counter are in ``_api.ApiOptimizer``."
)


class NumpyBackend(Backend):
    name = "numpy"
    supports = features.ALL_FEATURES

    def kernel_files(self, spec: Spec) -> list[GeneratedFile]:
        """The module of one kernel (a spec, or one variant of a spec with flags) and its tests."""
        if spec.elementwise:  # one fused kernel over chunks
            data = template_data(spec, lower(spec))
            kind = ""
        else:  # whole-tensor statements
            data = tensor.template_data(spec, lower_tensor(spec))
            kind = "tensor_"
        if spec.family is not None:  # a variant's functional step: adam__amsgrad_step
            data["fn"] = f"{public_name(spec)}_step"
            data.update(variant_data(spec, PACKAGE))
        names = [*(["STATE"] if spec.elementwise else []), "DEFAULTS", spec.class_name, data["fn"]]
        data["test_imports"] = sorted(names, key=isort_key)
        return [
            generated(path, render(template, **data), spec=spec)
            for template, path in (
                (f"numpy/{kind}optimizer.py.jinja", f"numpy/{PACKAGE}/{spec.name}.py"),
                (f"numpy/test_{kind}optimizer.py.jinja", f"numpy/tests/test_{spec.name}.py"),
            )
        ]

    def files(self, specs: Sequence[Spec]) -> list[GeneratedFile]:
        specs, models = split_kinds(specs)
        out = static_files(RUNTIME, STATIC.items())
        for spec in specs:
            out.append(spec_file(spec))
            for kernel in kernel_specs(spec):
                out += self.kernel_files(kernel)
            if spec.family is not None:
                out += api_files(spec, "numpy", PACKAGE, "a NumPy optimizer", NOTE)
        names = [
            {"module": s.name, "class_name": s.class_name, "fn": default_step(s)} for s in specs
        ]
        out += second_order.files(models)
        minimizers = [
            {"module": s.name, "class_name": s.class_name}
            for s in supported(models, second_order.TEMPLATES)
        ]
        imports = sorted(
            [(s["module"], f"{s['class_name']}, {s['fn']}") for s in names]
            + [(s["module"], s["class_name"]) for s in minimizers]
        )
        for template, path in (
            ("numpy/__init__.py.jinja", f"numpy/{PACKAGE}/__init__.py"),
            ("numpy/conftest.py.jinja", "numpy/tests/conftest.py"),
        ):
            body = render(
                template,
                specs=names,
                minimizers=minimizers,
                imports=imports,
                version=__version__,
            )
            out.append(generated(path, body))
        return out

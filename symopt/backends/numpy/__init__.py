"""The NumPy backend: a module per spec (class + functional step) and its tests."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from symopt import __version__
from symopt.backends.base import Backend, generated, spec_data_file, split_kinds, static_files
from symopt.backends.numpy import second_order, tensor
from symopt.backends.numpy.elementwise import PACKAGE, template_data
from symopt.backends.render import render
from symopt.backends.second_order import supported
from symopt.files.writer import GeneratedFile
from symopt.lowering.kernel import lower
from symopt.lowering.program import lower_tensor
from symopt.spec import Spec
from symopt.spec import tensor as features

#: Static files shipped verbatim (with a header) beside the generated code: the runtime that
#: every generated module calls, and what the generated tests share.
RUNTIME = Path(__file__).resolve().parent / "runtime"
STATIC = {
    "_runtime.py": f"numpy/{PACKAGE}/_runtime.py",
    "_second_order.py": f"numpy/{PACKAGE}/_second_order.py",
    "_dense.py": f"numpy/{PACKAGE}/_dense.py",
    "_trust_region.py": f"numpy/{PACKAGE}/_trust_region.py",
    "_newton.py": f"numpy/{PACKAGE}/_newton.py",
    "_block_newton.py": f"numpy/{PACKAGE}/_block_newton.py",
    "_kfac.py": f"numpy/{PACKAGE}/_kfac.py",
    "_tensor.py": f"numpy/{PACKAGE}/_tensor.py",
    "_numpy_support.py": "numpy/tests/_numpy_support.py",
}


def spec_file(spec) -> GeneratedFile:
    return spec_data_file("numpy", spec)


class NumpyBackend(Backend):
    name = "numpy"
    supports = features.ALL_FEATURES

    def files(self, specs: Sequence[Spec]) -> list[GeneratedFile]:
        specs, models = split_kinds(specs)
        out = static_files(RUNTIME, STATIC.items())
        for spec in specs:
            out.append(spec_file(spec))
            if spec.elementwise:  # one fused kernel over chunks
                data = template_data(spec, lower(spec))
                kind = ""
            else:  # whole-tensor statements
                data = tensor.template_data(spec, lower_tensor(spec))
                kind = "tensor_"
            for template, path in (
                (f"numpy/{kind}optimizer.py.jinja", f"numpy/{PACKAGE}/{spec.name}.py"),
                (f"numpy/test_{kind}optimizer.py.jinja", f"numpy/tests/test_{spec.name}.py"),
            ):
                out.append(generated(path, render(template, **data), spec=spec))
        names = [
            {"module": s.name, "class_name": s.class_name, "fn": f"{s.name}_step"} for s in specs
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

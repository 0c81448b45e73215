"""The PyTorch backend: a ``torch.optim.Optimizer`` subclass per spec and its tests."""

from __future__ import annotations

from collections.abc import Sequence

from symopt import __version__
from symopt.backends.base import Backend, generated, split_kinds
from symopt.backends.render import render
from symopt.backends.second_order import supported
from symopt.backends.torch import second_order
from symopt.backends.torch.elementwise import PACKAGE, template_data
from symopt.files.writer import GeneratedFile
from symopt.lowering.kernel import lower
from symopt.spec import Spec


class TorchBackend(Backend):
    name = "torch"

    def files(self, specs: Sequence[Spec]) -> list[GeneratedFile]:
        specs, models = split_kinds(specs)
        out = []
        for spec in specs:
            data = template_data(spec, lower(spec))
            for template, path in (
                ("torch/optimizer.py.jinja", f"torch/{PACKAGE}/{spec.name}.py"),
                ("torch/test_optimizer.py.jinja", f"torch/tests/test_{spec.name}.py"),
            ):
                out.append(generated(path, render(template, **data), spec=spec))
        out += second_order.files(models)
        names = [{"module": s.name, "class_name": s.class_name} for s in specs]
        closures = [
            {"module": s.name, "class_name": s.class_name}
            for s in supported(models, second_order.TEMPLATES)
        ]
        imports = sorted((s["module"], s["class_name"]) for s in names + closures)
        for template, path in (
            ("torch/__init__.py.jinja", f"torch/{PACKAGE}/__init__.py"),
            ("torch/conftest.py.jinja", "torch/tests/conftest.py"),
        ):
            body = render(
                template, specs=names, closures=closures, imports=imports, version=__version__
            )
            out.append(generated(path, body))
        return out

"""The PyTorch backend: a ``torch.optim.Optimizer`` subclass per spec and its tests.

Generated modules are thin: they bind what is derived from a spec and call the static runtime
(``runtime/``, copied verbatim into the generated package and tests, tested once by
``tests/test_torch_runtime.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from symopt import __version__
from symopt.backends.api import api_data
from symopt.backends.base import (
    Backend,
    generated,
    kernel_specs,
    spec_data_file,
    split_kinds,
    static_files,
)
from symopt.backends.render import render
from symopt.backends.second_order import supported
from symopt.backends.torch import fused_c, fused_stages, fused_stages_c, second_order, tensor
from symopt.backends.torch.elementwise import PACKAGE, template_data
from symopt.backends.torch.fused import bitwise, fused_program
from symopt.backends.torch.fused_triton import triton_module
from symopt.backends.torch.fused_triton_stages import triton_stages_module
from symopt.files.writer import GeneratedFile
from symopt.lowering.kernel import lower
from symopt.lowering.program import lower_tensor
from symopt.spec import Spec
from symopt.spec import tensor as features

#: The static runtime files (``runtime/NAME``) -> the folder they are shipped to.
RUNTIME = {
    "_runtime.py": f"torch/{PACKAGE}",
    "_stepping.py": f"torch/{PACKAGE}",
    "_second_order.py": f"torch/{PACKAGE}",
    "_trust_region.py": f"torch/{PACKAGE}",
    "_subproblem.py": f"torch/{PACKAGE}",
    "_dense.py": f"torch/{PACKAGE}",
    "_newton.py": f"torch/{PACKAGE}",
    "_kfac.py": f"torch/{PACKAGE}",
    "_curvature.py": f"torch/{PACKAGE}",
    "_block_newton.py": f"torch/{PACKAGE}",
    "_tensor.py": f"torch/{PACKAGE}",
    "_api.py": f"torch/{PACKAGE}",
    "_fused.py": f"torch/{PACKAGE}",
    "_triton_launch.py": f"torch/{PACKAGE}",
    "torch_support.py": "torch/tests",
    "fused_support.py": "torch/tests",
}
RUNTIME_DIR = Path(__file__).with_name("runtime")


def runtime_files() -> list[GeneratedFile]:
    """The static runtime, verbatim (with the do-not-edit header)."""
    return static_files(RUNTIME_DIR, ((n, f"{folder}/{n}") for n, folder in RUNTIME.items()))


def spec_file(spec) -> GeneratedFile:
    return spec_data_file("torch", spec)


#: The framework arguments of torch.optim the generated classes take.
FRAMEWORK = ("foreach", "maximize", "capturable", "differentiable", "fused")


class TorchBackend(Backend):
    name = "torch"
    supports = features.ALL_FEATURES

    def kernel_files(self, spec: Spec) -> list[GeneratedFile]:
        """The module of one kernel (a spec, or one variant of a spec with flags) and its tests;
        for an element-wise kernel or one with per-tensor reductions only, its fused CPU
        kernel's C source too."""
        out = []
        if spec.elementwise:  # one fused kernel: foreach and single-tensor paths
            data = template_data(spec, lower(spec))
            program = fused_program(tuple(data["arrays"]), data["instructions"])
            data["fused_scalars"] = program.scalars
            data["fused_bitwise"] = bitwise(program)
            c_source = fused_c.source(spec, program)
            out.append(
                generated(f"torch/{PACKAGE}/_csrc/{spec.name}.c", c_source, spec=spec, comment="//")
            )
            triton_source = triton_module(spec, program)
            out.append(
                generated(f"torch/{PACKAGE}/_triton/{spec.name}.py", triton_source, spec=spec)
            )
            kind = ""
        else:  # whole-tensor statements, parameter by parameter; fused: passes (if it can)
            data = tensor.template_data(spec, lower_tensor(spec))
            data.update(fused_stages.template_data(spec))
            if fused_stages.staged(spec):
                c_source = fused_stages_c.source(spec)
                path = f"torch/{PACKAGE}/_csrc/{spec.name}.c"
                out.append(generated(path, c_source, spec=spec, comment="//"))
                path = f"torch/{PACKAGE}/_triton/{spec.name}.py"
                out.append(generated(path, triton_stages_module(spec), spec=spec))
            kind = "tensor_"
        return out + [
            generated(path, render(template, **data), spec=spec)
            for template, path in (
                (f"torch/{kind}optimizer.py.jinja", f"torch/{PACKAGE}/{spec.name}.py"),
                (f"torch/test_{kind}optimizer.py.jinja", f"torch/tests/test_{spec.name}.py"),
            )
        ]

    def files(self, specs: Sequence[Spec]) -> list[GeneratedFile]:
        specs, models = split_kinds(specs)
        out = runtime_files()
        for spec in specs:
            for kernel in kernel_specs(spec):
                out += self.kernel_files(kernel)
            if spec.family is not None:
                data = api_data(spec, FRAMEWORK)
                body = render("torch/api.py.jinja", **data)
                out.append(generated(f"torch/{PACKAGE}/{spec.name}.py", body, spec=spec))
            out.append(spec_file(spec))
        out += second_order.files(models)
        names = [{"module": s.name, "class_name": s.class_name} for s in specs]
        closures = [
            {"module": s.name, "class_name": s.class_name}
            for s in supported(models, second_order.TEMPLATES)
        ]
        imports = sorted((s["module"], s["class_name"]) for s in names + closures)
        triton_package = '"""The fused kernels of the generated optimizers for CUDA (Triton)."""\n'
        out.append(generated(f"torch/{PACKAGE}/_triton/__init__.py", triton_package))
        for template, path in (
            ("torch/__init__.py.jinja", f"torch/{PACKAGE}/__init__.py"),
            ("torch/conftest.py.jinja", "torch/tests/conftest.py"),
        ):
            body = render(
                template, specs=names, closures=closures, imports=imports, version=__version__
            )
            out.append(generated(path, body))
        return out

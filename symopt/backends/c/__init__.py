"""The C backend: C99 kernels and solvers, a Makefile, the ctypes package ``symopt_c``, tests.

A spec with flags (a family, :mod:`symopt.spec.family`) gets a kernel per variant, each its
own C source named without the Python module's leading underscore (``src/adam__amsgrad.c``,
``symopt_adam__amsgrad_step_f64``; the default variant's is ``adam``), bound by a private module
(``symopt_c/_adam__amsgrad.py``), and a module ``NAME.py`` with the class that takes the
library's arguments and runs the variant of the current setting (the NumPy runtime's
``_api.py``, shipped here too).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from symopt import __version__
from symopt.backends.base import Backend, generated, kernel_specs, spec_data_file, split_kinds
from symopt.backends.base import static_files as shipped_files
from symopt.backends.c import second_order as second_order_c
from symopt.backends.c.elementwise import (
    CFLAGS,
    PACKAGE,
    PARALLEL_MIN,
    RUNTIME,
    comment_block,
    template_data,
)
from symopt.backends.c.stages import stages_data
from symopt.backends.numpy import api_files, default_step, public_name, variant_data
from symopt.backends.render import render
from symopt.backends.second_order import kind
from symopt.files.writer import GeneratedFile
from symopt.lowering.kernel import lower
from symopt.lowering.stages import split
from symopt.spec import AnySpec, Spec
from symopt.spec.tensor import CONDITIONAL, FIRST_GRADIENT, SCALAR_STATE, WHOLE_REDUCTION

#: Static sources copied verbatim into the generated folder: (file here, path there).
STATIC = (
    ("runtime.h", "c/include/symopt/runtime.h", "//"),
    ("runtime.c", "c/src/runtime.c", "//"),
    ("runtime_internal.h", "c/src/runtime_internal.h", "//"),
    ("runtime_dense.c", "c/src/runtime_dense.c", "//"),
    ("runtime_newton.c", "c/src/runtime_newton.c", "//"),
    ("runtime_radius.c", "c/src/runtime_radius.c", "//"),
    ("_lib.py", f"c/{PACKAGE}/_lib.py", "#"),
    ("_arrays.py", f"c/{PACKAGE}/_arrays.py", "#"),
    ("_optimizer.py", f"c/{PACKAGE}/_optimizer.py", "#"),
    ("_second_order.py", f"c/{PACKAGE}/_second_order.py", "#"),
    ("_dense.py", f"c/{PACKAGE}/_dense.py", "#"),
    ("_diagonal.py", f"c/{PACKAGE}/_diagonal.py", "#"),
    # the classes with a library's arguments run on the same runtime as the NumPy target's
    ("../../numpy/runtime/_api.py", f"c/{PACKAGE}/_api.py", "#"),
    ("_c_support.py", "c/tests/_c_support.py", "#"),
)
STATIC_DIR = Path(__file__).resolve().parent / "runtime"


def static_files() -> list[GeneratedFile]:
    """The runtime: the same files for every set of specs, tested once (tests/test_c_runtime.py)."""
    return shipped_files(STATIC_DIR, ((source, path) for source, path, _ in STATIC))


class CBackend(Backend):
    name = "c"
    #: Conditionals print as ternaries, first-gradient state is the first step's conditional,
    #: and per-tensor reductions split the update into passes (symopt.lowering.stages), which
    #: also read and write state of one value per tensor.
    supports = frozenset({CONDITIONAL, FIRST_GRADIENT, WHOLE_REDUCTION, SCALAR_STATE})

    def unsupported(self, spec: AnySpec) -> str | None:
        if spec.kind == "second_order" and kind(spec) not in second_order_c.TEMPLATES:
            return f"{spec.structure.replace('_', '-')} curvature (needs a framework's layers)"
        return super().unsupported(spec)

    def kernel_files(self, kernel: Spec) -> list[GeneratedFile]:
        """The C sources, Python binding and tests of one kernel: a spec, or one variant of a
        spec with flags (``kernel.name`` its Python module, ``_adam__amsgrad``)."""
        module = kernel.name
        spec = dataclasses.replace(kernel, name=public_name(kernel))  # C names: adam__amsgrad
        if spec.elementwise:
            data, source = template_data(spec, lower(spec)), "c/kernel.c.jinja"
        else:
            data, source = stages_data(spec, split(spec)), "c/stages.c.jinja"
        data["module"] = module
        if spec.family is not None:
            data.update(variant_data(spec, PACKAGE))
        return [
            generated(path, render(template, **data), spec=spec, comment=comment)
            for template, path, comment in (
                ("c/kernel.h.jinja", f"c/include/symopt/{spec.name}.h", "//"),
                (source, f"c/src/{spec.name}.c", "//"),
                ("c/driver.c.jinja", f"c/tests/driver_{spec.name}.c", "//"),
                ("c/optimizer.py.jinja", f"c/{PACKAGE}/{module}.py", "#"),
                ("c/test_optimizer.py.jinja", f"c/tests/test_{module}.py", "#"),
            )
        ]

    def files(self, specs: Sequence[Spec]) -> list[GeneratedFile]:
        """Kernels of the element-wise specs (one per variant of a family, and the family's
        class), the second-order specs' solvers (symopt.backends.c.second_order), and the
        shared files that list both."""
        specs, models = split_kinds(specs)
        out = []
        c_names = []
        for spec in specs:
            for kernel in kernel_specs(spec):
                out += self.kernel_files(kernel)
                c_names.append({"module": public_name(kernel)})
            if spec.family is not None:
                out += api_files(spec, "c", PACKAGE, "C kernels called through ctypes", NOTE)
            # the tests load the spec from here (symopt.spec.load_variant)
            out.append(spec_data_file("c", spec))
        out += second_order_c.files(models)
        names = [
            {
                "module": s.name,
                "class_name": s.class_name,
                "fn": default_step(s),
                "imports": f"{s.class_name}, {default_step(s)}",
            }
            for s in specs
        ]
        shared = {
            "specs": names,
            "kernels": c_names,
            "models": second_order_c.shared_data(models),
            "version": __version__,
            "cflags": list(CFLAGS),
            "parallel_min": PARALLEL_MIN,
            "runtime": RUNTIME,
            "comment": comment_block,
        }
        for template, path, comment in (
            ("c/symopt.h.jinja", f"c/include/symopt/{RUNTIME}.h", "//"),
            ("c/Makefile.jinja", "c/Makefile", "#"),
            ("c/symopt.pc.in.jinja", "c/symopt.pc.in", "#"),
            ("c/__init__.py.jinja", f"c/{PACKAGE}/__init__.py", "#"),
            ("c/conftest.py.jinja", "c/tests/conftest.py", "#"),
        ):
            out.append(generated(path, render(template, **shared), comment=comment))
        return out + static_files()


#: What the class modules of families say about this target.
NOTE = (
    "Needs NumPy and a C compiler (the library is built on first use, see ``_lib``). Argument "
    "checks, kernel choice, maximize, the state keys and the step counter are in "
    "``_api.ApiOptimizer``, the NumPy target's runtime."
)

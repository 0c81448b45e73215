"""The C backend: C99 kernels and solvers, a Makefile, the ctypes package ``symopt_c``, tests."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from symopt import __version__
from symopt.backends.base import Backend, generated, spec_data_file, split_kinds
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
from symopt.backends.render import render
from symopt.backends.second_order import kind
from symopt.files.writer import GeneratedFile
from symopt.lowering.kernel import lower
from symopt.lowering.stages import split
from symopt.spec import AnySpec, Spec
from symopt.spec.tensor import CONDITIONAL, FIRST_GRADIENT, WHOLE_REDUCTION

#: Static sources copied verbatim into the generated folder: (file here, path there).
STATIC = (
    ("runtime.h", "c/include/symopt/runtime.h", "//"),
    ("runtime.c", "c/src/runtime.c", "//"),
    ("_lib.py", f"c/{PACKAGE}/_lib.py", "#"),
    ("_optimizer.py", f"c/{PACKAGE}/_optimizer.py", "#"),
    ("_second_order.py", f"c/{PACKAGE}/_second_order.py", "#"),
    ("_dense.py", f"c/{PACKAGE}/_dense.py", "#"),
    ("_diagonal.py", f"c/{PACKAGE}/_diagonal.py", "#"),
    ("_c_support.py", "c/tests/_c_support.py", "#"),
)
STATIC_DIR = Path(__file__).resolve().parent / "runtime"


def static_files() -> list[GeneratedFile]:
    """The runtime: the same files for every set of specs, tested once (tests/test_c_runtime.py)."""
    return shipped_files(STATIC_DIR, ((source, path) for source, path, _ in STATIC))


class CBackend(Backend):
    name = "c"
    #: Conditionals print as ternaries, first-gradient state is the first step's conditional,
    #: and per-tensor reductions split the update into passes (symopt.lowering.stages).
    supports = frozenset({CONDITIONAL, FIRST_GRADIENT, WHOLE_REDUCTION})

    def unsupported(self, spec: AnySpec) -> str | None:
        if spec.kind == "second_order" and kind(spec) not in second_order_c.TEMPLATES:
            return f"{spec.structure.replace('_', '-')} curvature (needs a framework's layers)"
        return super().unsupported(spec)

    def files(self, specs: Sequence[Spec]) -> list[GeneratedFile]:
        """Kernels of the element-wise specs, the second-order specs' solvers
        (symopt.backends.c.second_order), and the shared files that list both."""
        specs, models = split_kinds(specs)
        out = []
        for spec in specs:
            if spec.elementwise:
                data, source = template_data(spec, lower(spec)), "c/kernel.c.jinja"
            else:
                data, source = stages_data(spec, split(spec)), "c/stages.c.jinja"
            for template, path, comment in (
                ("c/kernel.h.jinja", f"c/include/symopt/{spec.name}.h", "//"),
                (source, f"c/src/{spec.name}.c", "//"),
                ("c/driver.c.jinja", f"c/tests/driver_{spec.name}.c", "//"),
                ("c/optimizer.py.jinja", f"c/{PACKAGE}/{spec.name}.py", "#"),
                ("c/test_optimizer.py.jinja", f"c/tests/test_{spec.name}.py", "#"),
            ):
                out.append(generated(path, render(template, **data), spec=spec, comment=comment))
            # the tests load the spec from here (symopt.spec.load_spec)
            out.append(spec_data_file("c", spec))
        out += second_order_c.files(models)
        names = [
            {
                "module": s.name,
                "class_name": s.class_name,
                "fn": f"{s.name}_step",
                "imports": f"{s.class_name}, {s.name}_step",
            }
            for s in specs
        ]
        shared = {
            "specs": names,
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
            ("c/__init__.py.jinja", f"c/{PACKAGE}/__init__.py", "#"),
            ("c/conftest.py.jinja", "c/tests/conftest.py", "#"),
        ):
            out.append(generated(path, render(template, **shared), comment=comment))
        return out + static_files()

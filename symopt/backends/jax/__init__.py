"""The JAX backend: an optax ``GradientTransformation`` factory per spec, and its tests.

A module per spec (``symopt_jax/adam.py``) holds the factory (``adam(learning_rate=..., b1=...)``),
its state ``NamedTuple`` and one printed step per setting of the spec's flags
(:mod:`symopt.backends.jax.optimizers`); the static runtime (``runtime/``, copied verbatim) makes
the transformation around a step. Second-order specs: the trust-region minimiser, with
derivatives from JAX (:mod:`symopt.backends.jax.second_order`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from symopt import __version__
from symopt.backends.base import Backend, generated, spec_data_file, split_kinds, static_files
from symopt.backends.jax import second_order
from symopt.backends.jax.optimizers import MODULE_NAMES, family_data, spec_names, variant_tests
from symopt.backends.render import render
from symopt.backends.second_order import supported
from symopt.files.writer import GeneratedFile
from symopt.spec import AnySpec, Spec
from symopt.spec import tensor as features

PACKAGE = "symopt_jax"
RUNTIME_DIR = Path(__file__).with_name("runtime")
#: Static files (``runtime/NAME``) -> where they are shipped.
RUNTIME = {
    "_runtime.py": f"jax/{PACKAGE}/_runtime.py",
    "jax_support.py": "jax/tests/jax_support.py",
    **{name: f"jax/{PACKAGE}/{name}" for name in second_order.RUNTIME},
    **second_order.TEST_RUNTIME,
}


class JaxBackend(Backend):
    name = "jax"
    supports = features.ALL_FEATURES

    def unsupported(self, spec: AnySpec) -> str | None:
        clash = sorted(MODULE_NAMES & spec_names(spec)) if spec.kind == "elementwise" else []
        if clash:
            return f"the name {clash[0]!r}, which the generated module imports"
        return super().unsupported(spec)

    def spec_files(self, spec: Spec) -> list[GeneratedFile]:
        """The module of a spec (every setting of its flags), its tests and the spec's text."""
        data = family_data(spec)
        tests = {**data, "cases": variant_tests(spec)}
        module = render("jax/optimizer.py.jinja", **data)
        test = render("jax/test_optimizer.py.jinja", **tests)
        return [
            generated(f"jax/{PACKAGE}/{spec.name}.py", module, spec=spec),
            generated(f"jax/tests/test_{spec.name}.py", test, spec=spec),
            spec_data_file("jax", spec),
        ]

    def files(self, specs: Sequence[AnySpec]) -> list[GeneratedFile]:
        elementwise, models = split_kinds(specs)
        out = static_files(RUNTIME_DIR, RUNTIME.items())
        for spec in elementwise:
            out += self.spec_files(spec)
        out += second_order.files(models)
        minimizers = [s.name for s in supported(models, second_order.TEMPLATES)]
        names = [s.name for s in elementwise]
        for template, path in (
            ("jax/__init__.py.jinja", f"jax/{PACKAGE}/__init__.py"),
            ("jax/conftest.py.jinja", "jax/tests/conftest.py"),
        ):
            body = render(template, names=names, minimizers=minimizers, version=__version__)
            out.append(generated(path, body))
        return out

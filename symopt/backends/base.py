"""What every backend provides (a name, what it supports, the files it renders for a list of
specs), and the helpers the backends share."""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from pathlib import Path

from symopt.files.writer import GeneratedFile, with_header
from symopt.spec import AnySpec, Spec
from symopt.spec.domains import DOMAINS
from symopt.spec.family import module_name, variants


class Backend(ABC):
    name: str
    #: Whether the pipeline refuses specs whose checks fail (code is; documents show failures).
    gated: bool = True
    #: The tensor-level features of element-wise specs this backend generates
    #: (:mod:`symopt.spec.tensor`); a spec using any other is refused by name.
    supports: frozenset[str] = frozenset()

    def unsupported(self, spec: AnySpec) -> str | None:
        """Why this backend cannot generate ``spec`` (the feature, in a few words), or None.

        ``symopt generate`` names every refused spec instead of skipping it silently; a spec
        with flags is refused when any of its variants (each a kernel) is."""
        if spec.kind == "elementwise":
            for variant in variants(spec):
                missing = sorted(variant.features - self.supports)
                if missing:
                    return ", ".join(missing)
        return None

    @abstractmethod
    def files(self, specs: Sequence[Spec]) -> list[GeneratedFile]:
        """Every file this target generates for ``specs``, paths relative to the output folder."""

    def folders(self) -> list[str]:
        """Folders this target owns: files there that a full run does not produce are stale."""
        return [self.name]

    def owns(self, path: str) -> bool:
        """Whether a file found in those folders is this target's (not a build output there)."""
        return True


def generated(
    path: str, body: str, *, spec: Spec | None = None, comment: str = "#", end: str = ""
) -> GeneratedFile:
    """A generated file with its do-not-edit header: from a spec, or shared by all of them."""
    source, digest = (spec.source, spec.digest) if spec is not None else ("symopt", None)
    return GeneratedFile(
        path, with_header(body, comment=comment, source=source, spec_digest=digest, end=end)
    )


def static_files(folder: Path, shipped: Iterable[tuple[str, str]]) -> list[GeneratedFile]:
    """Runtime sources copied verbatim, with the do-not-edit header: (file in ``folder``, path
    in the output). C sources get ``//`` headers, everything else ``#``."""
    return [
        generated(
            path,
            (folder / name).read_text(encoding="utf-8"),
            comment="//" if name.endswith((".c", ".h")) else "#",
        )
        for name, path in shipped
    ]


def spec_data_file(target: str, spec: AnySpec) -> GeneratedFile:
    """The spec's text beside the generated tests, which load it for the reference stepper."""
    return generated(f"{target}/tests/specs/{spec.name}.toml", spec.text, spec=spec)


def kernel_specs(spec: Spec) -> list[Spec]:
    """What a backend renders a module (and tests) for: each variant of a spec with flags or an
    ``[api]``, named by its module (``_adam__amsgrad``); a plain spec is its own."""
    if spec.family is None:
        return [spec]
    return [dataclasses.replace(v, name=module_name(v)) for v in variants(spec)]


def split_kinds(specs: Sequence) -> tuple[list[Spec], list]:
    """The element-wise specs (kernels) and the second-order ones (model specs), in order."""
    return (
        [s for s in specs if s.kind == "elementwise"],
        [s for s in specs if s.kind == "second_order"],
    )


def hyper_rows(spec: Spec) -> list[dict]:
    """Each hyperparameter as templates show and validate it."""
    return [
        {
            "name": h.name,
            "default": repr(h.default),
            "condition": DOMAINS[h.domain].condition.format(x=h.name),
            "interval": DOMAINS[h.domain].interval,
            "doc": h.doc,
        }
        for h in spec.hypers
    ]


def isort_key(name: str) -> tuple[int, str]:
    """isort's order-by-type for generated imports: CONSTANTS, then Classes, then functions."""
    return (0 if name.isupper() else 1 if name[:1].isupper() else 2, name)

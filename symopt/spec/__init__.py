"""Specs of both kinds, loaded into one tagged type (``spec.kind``): the pipeline's front end.

``load_spec`` reads a TOML file into an :class:`ElementwiseSpec` (an update of w and per-coordinate
state) or a :class:`ModelSpec` (a step derived from a Taylor model); every problem is a one-line
:class:`~symopt.errors.SpecError` naming the file and key.
"""

from __future__ import annotations

from pathlib import Path

from symopt.errors import SpecError
from symopt.spec.common import G, Hyper, HyperparameterOwner, T, W, make_symbol
from symopt.spec.elementwise import (
    Assignment,
    LookaheadFree,
    Property,
    Relation,
    Spec,
    StateVar,
    symbol_table,
)
from symopt.spec.elementwise_loader import ElementwiseLoader
from symopt.spec.family import module_name, variants
from symopt.spec.model import ModelSpec, is_model_table, load_model_spec
from symopt.spec.numbers import checked_toml
from symopt.spec.text import MAX_SPEC_CHARS, check_size, check_text

#: Either kind of spec.
AnySpec = Spec | ModelSpec

__all__ = [
    "AnySpec",
    "Assignment",
    "G",
    "Hyper",
    "HyperparameterOwner",
    "LookaheadFree",
    "ModelSpec",
    "Property",
    "Relation",
    "Spec",
    "StateVar",
    "T",
    "W",
    "load_spec",
    "load_spec_text",
    "load_variant",
    "make_symbol",
    "symbol_table",
]


def load_spec_text(text: str, file: str = "<string>") -> AnySpec:
    """Parse and validate a spec from TOML text; every problem is a one-line :class:`SpecError`."""
    check_size(text, file)
    data = checked_toml(text, file)
    check_text(data, file)
    if is_model_table(data):
        return load_model_spec(data, file, text)  # type: ignore[return-value]
    return ElementwiseLoader(data, file, text).load()


def load_spec(path: str | Path) -> AnySpec:
    path = Path(path)
    try:
        with path.open("rb") as handle:  # one byte past the limit at most, whatever the file
            data = handle.read(MAX_SPEC_CHARS + 1)
        if len(data) > MAX_SPEC_CHARS:
            raise SpecError(f"larger than {MAX_SPEC_CHARS} bytes", file=str(path))
        text = data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
    except FileNotFoundError:
        raise SpecError("no such file", file=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read: {exc}", file=str(path)) from None
    return load_spec_text(text, file=str(path))


def load_variant(path: str | Path, module: str) -> Spec:
    """The variant a generated module was made from (by its module name, ``_adam__amsgrad``):
    what generated tests load; a spec without flags is its own only variant."""
    spec = load_spec(path)
    found = (
        [v for v in variants(spec) if module_name(v) == module]
        if spec.kind == "elementwise"
        else [spec]
    )
    if not found:
        raise SpecError(f"no variant {module!r}", file=str(path))
    return found[0]

"""Where the built-in specs and templates live, in a source checkout and after ``pip install .``."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from symopt.errors import SpecError
from symopt.spec import Spec, load_spec_text

PACKAGE = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """``specs`` or ``templates``: shipped inside the wheel as ``symopt/_data/NAME``."""
    for candidate in (PACKAGE / "_data" / name, PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"symopt's {name}/ folder is missing from the installation")


@cache
def builtin_specs() -> dict[str, Spec]:
    """All built-in specs by name, in file-name order."""
    specs: dict[str, Spec] = {}
    for path in sorted(data_dir("specs").glob("*.toml")):
        # named by a path relative to the checkout, wherever it is installed: generated files
        # record it (a spec with flags, in its family's spec too)
        spec = load_spec_text(path.read_text(encoding="utf-8"), file=f"specs/{path.name}")
        specs[spec.name] = spec
    return specs


def builtin_spec(name: str) -> Spec:
    specs = builtin_specs()
    if name not in specs:
        import difflib

        hint = difflib.get_close_matches(name, list(specs), n=1)
        extra = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise SpecError(f"no built-in algorithm {name!r}{extra}; see 'symopt list'")
    return specs[name]


def elementwise_specs() -> dict[str, Spec]:
    """The built-ins with an element-wise update (what the first-order targets generate)."""
    return {n: s for n, s in builtin_specs().items() if s.kind == "elementwise"}


def second_order_specs() -> dict[str, Spec]:
    """The built-ins with a model instead of an update (Newton, trust region)."""
    return {n: s for n, s in builtin_specs().items() if s.kind == "second_order"}

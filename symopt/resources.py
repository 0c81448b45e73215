"""Where the built-in specs and templates live, in a source checkout and after ``pip install .``."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
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
        hint = closest(name, specs)
        extra = f" (did you mean {hint!r}?)" if hint else ""
        raise SpecError(f"no built-in algorithm {name!r}{extra}; see 'symopt list'")
    return specs[name]


def elementwise_specs() -> dict[str, Spec]:
    """The built-ins with an element-wise update (what the first-order targets generate)."""
    return {n: s for n, s in builtin_specs().items() if s.kind == "elementwise"}


def second_order_specs() -> dict[str, Spec]:
    """The built-ins with a model instead of an update (Newton, trust region)."""
    return {n: s for n, s in builtin_specs().items() if s.kind == "second_order"}


def closest(word: str, choices: Iterable[str]) -> str | None:
    """The choice a typo most likely meant, or None: fewest edits first (a swap of neighbours is
    one, so ``adma`` is ``adam``, not ``adamax``), then difflib's similarity, then the name."""
    names = list(choices)
    typed = word.lower()
    limit = max(1, len(typed) // 3)
    pool = set(difflib.get_close_matches(typed, names, n=5)) | {
        n for n in names if edit_distance(typed, n.lower()) <= limit
    }
    rank = lambda n: (  # noqa: E731
        edit_distance(typed, n.lower()),
        -difflib.SequenceMatcher(None, typed, n.lower()).ratio(),
        n,
    )
    return min(pool, key=rank, default=None)


def edit_distance(a: str, b: str) -> int:
    """Damerau-Levenshtein distance (optimal string alignment): insertions, deletions,
    substitutions and swaps of two neighbouring letters each count 1."""
    rows = [list(range(len(b) + 1))]
    for i in range(1, len(a) + 1):
        row = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = a[i - 1] != b[j - 1]
            row[j] = min(rows[-1][j] + 1, row[j - 1] + 1, rows[-1][j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                row[j] = min(row[j], rows[-2][j - 2] + 1)
        rows.append(row)
    return rows[-1][-1]

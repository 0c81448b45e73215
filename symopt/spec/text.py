"""What the strings of a spec may contain: spec files are untrusted, and their text reaches
generated Python (docstrings, comments), C comments, LaTeX and Markdown.

Every string and key of a spec is checked once, after the TOML is read, so no backend has to
trust its templates to escape everything: no control or invisible formatting character (a NUL
breaks every Python file, U+2028 ends a line for some readers and not others, bidirectional
overrides hide code), no backslash (an escape sequence in a docstring, a line splice in a C
comment; prose is plain text and symopt typesets its formulas itself), no three double quotes in
a row (the end of a docstring), and a bounded size. ``latex`` keys are LaTeX, which
:mod:`symopt.spec.symbol_latex` vets instead.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator

from symopt.errors import SpecError

#: The most characters a spec file may have (the built-in ones have at most 9,000).
MAX_SPEC_CHARS = 1_000_000
#: The most characters of one string (the longest built-in notes have 1,300).
MAX_TEXT = 20_000
#: Unicode categories refused: control, format (bidirectional overrides, zero-width
#: characters), surrogate, private-use and unassigned characters, line and paragraph separators.
REFUSED_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}
#: The only control characters prose may hold.
ALLOWED_CONTROLS = {"\n", "\t"}
#: Keys whose values are LaTeX, checked by symopt.spec.symbol_latex (backslashes allowed).
LATEX_KEYS = {"latex"}


def text_problem(text: str, *, latex: bool = False) -> str | None:
    """Why ``text`` may not appear in a spec, or None."""
    if len(text) > MAX_TEXT:
        return f"longer than {MAX_TEXT} characters ({len(text)})"
    for ch in text:
        if ch not in ALLOWED_CONTROLS and unicodedata.category(ch) in REFUSED_CATEGORIES:
            name = unicodedata.name(ch, "a control or invisible character")
            return f"character U+{ord(ch):04X} ({name.lower()}) is not allowed; use printable text"
    if latex:
        return None
    if "\\" in text:
        return (
            "a backslash is not allowed in spec text: prose is plain text, and symopt typesets "
            "its formulas (write beta1^t, not \\beta_1^t)"
        )
    if '"""' in text:
        return "three double quotes in a row are not allowed in spec text (they end a docstring)"
    return None


def check_text(data: object, file: str) -> None:
    """Raise a :class:`SpecError` naming the key of the first string (or key) a spec may not
    hold."""
    for where, text, kind in _strings(data, ""):
        problem = text_problem(text, latex=kind == "latex")
        if problem:
            raise SpecError(f"a key: {problem}" if kind == "key" else problem, file=file, key=where)


def check_size(text: str, file: str) -> None:
    if len(text) > MAX_SPEC_CHARS:
        raise SpecError(
            f"the spec is {len(text)} characters long; the limit is {MAX_SPEC_CHARS}", file=file
        )


def _strings(value: object, where: str) -> Iterator[tuple[str, str, str]]:
    """(where, string, kind) for every key and string of a TOML document, kind "key", "latex"
    or "text"; a key is given at its table's place, before anything under it is named by it."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield where or "(top level)", str(key), "key"
            yield from _strings(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _strings(item, f"{where}[{i}]")
    elif isinstance(value, str):
        yield where, value, "latex" if where.rpartition(".")[2] in LATEX_KEYS else "text"

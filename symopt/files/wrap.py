"""Long comment and docstring lines of generated Python, wrapped to the line length.

Spec text reaches generated code as comments (each statement's spec line) and docstrings
(hyperparameter docs); ruff format leaves both alone. A line over the limit is broken at spaces,
its continuation indented four more columns, so the output passes ``ruff check`` (E501).
"""

from __future__ import annotations

import io
import re
import textwrap
import tokenize

LIMIT = 100


def wrap_long_lines(source: str, limit: int = LIMIT) -> str:
    """``source`` with over-long ``#`` comment lines and docstring lines wrapped."""
    docstring_lines = _docstring_lines(source)
    out: list[str] = []
    for number, line in enumerate(source.split("\n"), start=1):
        if len(line) <= limit:
            out.append(line)
            continue
        comment = re.match(r"(\s*)# (.*)", line)
        if comment:
            indent = comment.group(1)
            out += _wrap(comment.group(2), limit, f"{indent}# ", f"{indent}#     ")
        elif number in docstring_lines:
            indent = line[: len(line) - len(line.lstrip())]
            out += _wrap(line.strip(), limit, indent, indent + "    ")
        else:
            out.append(line)
    return "\n".join(out)


def _wrap(text: str, limit: int, first: str, rest: str) -> list[str]:
    wrapper = textwrap.TextWrapper(
        width=limit,
        initial_indent=first,
        subsequent_indent=rest,
        break_long_words=False,
        break_on_hyphens=False,
    )
    return wrapper.wrap(text) or [first.rstrip()]


def _docstring_lines(source: str) -> set[int]:
    """Line numbers strictly inside multi-line string literals (not their quote lines)."""
    inside: set[int] = set()
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type == tokenize.STRING and token.end[0] > token.start[0]:
                inside.update(range(token.start[0] + 1, token.end[0]))
    except (tokenize.TokenError, SyntaxError):
        return set()
    return inside

"""The Jinja2 environment shared by every target."""

from __future__ import annotations

import json
import textwrap
from functools import cache

import jinja2

from symopt.backends.base import isort_key
from symopt.resources import data_dir


def _docstring(text: str) -> str:
    """Text that is safe inside a triple-quoted Python docstring: no escape sequence, no end of
    the docstring, and no quote that would run into its closing quotes."""
    text = text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    return text[:-1] + '\\"' if text.endswith('"') else text


def _dquote(text: str) -> str:
    """A double-quoted string literal, the same in Python and JSON (names, in practice)."""
    return json.dumps(text, ensure_ascii=False)


def _wrap(text: str, width: int = 96, indent: str = "") -> str:
    return "\n".join(
        textwrap.wrap(
            " ".join(text.split()), width, initial_indent=indent, subsequent_indent=indent
        )
    )


def _pychunks(text: str, width: int = 80) -> list[str]:
    """Python string literals, one per line of ``text`` (long lines split), adding up to it."""
    out = []
    for line in text.splitlines(keepends=True):
        while len(line) > width:
            cut = line.rfind(" ", 0, width) + 1 or width
            out.append(repr(line[:cut]))
            line = line[cut:]
        out.append(repr(line))
    return out


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(data_dir("templates"))),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["docstring"] = _docstring
    env.filters["wrap"] = _wrap
    env.filters["pyrepr"] = repr
    env.filters["isorted"] = lambda names: sorted(names, key=isort_key)
    env.filters["dquote"] = _dquote
    env.filters["pychunks"] = _pychunks
    return env


def render(template: str, **data) -> str:
    return environment().get_template(template).render(**data)


@cache
def latex_environment() -> jinja2.Environment:
    """For LaTeX (and Markdown with LaTeX math): delimiters that do not fight with braces.

    ``\\VAR{x}`` prints, ``\\BLOCK{for ...}`` is a statement (alone on its line, it takes the line
    with it), and ``\\#{...}`` is a template comment that never reaches the output.
    """
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(data_dir("templates"))),
        undefined=jinja2.StrictUndefined,
        block_start_string=r"\BLOCK{",
        block_end_string="}",
        variable_start_string=r"\VAR{",
        variable_end_string="}",
        comment_start_string=r"\#{",
        comment_end_string="}",
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    return env


def render_latex(template: str, **data) -> str:
    return latex_environment().get_template(template).render(**data)

"""Formatting: generated Python goes through ``ruff format`` before it is hashed and written.

Templates then say what the code is and leave the layout (line breaks, trailing commas) to the
formatter users run on their own code. ruff is pinned to one minor version in pyproject.toml, so
generating twice, on any machine, gives the same bytes; all files are formatted in one call.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from symopt.errors import Failed
from symopt.files.wrap import wrap_long_lines
from symopt.files.writer import GeneratedFile, body_of, rehash

#: The settings of the generated code, whatever a user's project configures.
RUFF_ARGS = ["--isolated", "--line-length", "100", "--target-version", "py311"]


def ruff_binary() -> str:
    """The ruff installed with symopt (its Python package knows where), else one on PATH."""
    try:
        from ruff.__main__ import find_ruff_bin

        return str(find_ruff_bin())
    except (ImportError, FileNotFoundError):
        found = shutil.which("ruff")
    if found is None:
        raise Failed(
            "ruff is not installed (pip install 'ruff>=0.17,<0.18'); it formats generated Python",
            key="generate",
        )
    return found


def format_python(files: Sequence[GeneratedFile]) -> list[GeneratedFile]:
    """Every ``.py`` file's body formatted (its header re-hashed); other files as they are."""
    python = [i for i, f in enumerate(files) if f.path.endswith(".py")]
    if not python:
        return list(files)
    with tempfile.TemporaryDirectory(prefix="symopt-format-") as tmp:
        paths = []
        for n, i in enumerate(python):
            path = Path(tmp) / f"f{n}.py"
            path.write_text(body_of(files[i].text), encoding="utf-8")
            paths.append(path)
        done = subprocess.run(
            [ruff_binary(), "format", "--quiet", *RUFF_ARGS, tmp],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            first = (done.stderr or done.stdout).strip().splitlines()[:1]
            raise Failed(f"ruff format failed on generated code: {' '.join(first)}")
        out = list(files)
        for i, path in zip(python, paths, strict=True):
            out[i] = rehash(files[i], wrap_long_lines(path.read_text(encoding="utf-8")))
    return out

"""The worked example of docs/spec-format.md, run: the spec it saves, the output it shows for
``check`` and ``generate --no-builtins`` (times masked), and the counts it gives for a generation
with the built-ins. A change to the tool that makes the transcript false fails here."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from symopt.backends import BACKENDS
from symopt.resources import builtin_specs
from symopt.spec import load_spec

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "spec-format.md"
SAVED = "/tmp/sd/ex/adam_eps_inside.toml"  # the path the document uses
TIME = re.compile(r"in \d+(\.\d+)? s$", re.M)


def doc_text() -> str:
    return DOC.read_text(encoding="utf-8")


def block_after(marker: str, fence: str) -> str:
    """The fenced block (```fence) that follows ``marker`` in the document."""
    rest = doc_text().split(marker, 1)[1]
    return rest.split(f"```{fence}\n", 1)[1].split("```", 1)[0]


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    """The example spec, saved where the document saves it (under a temporary folder)."""
    path = tmp_path_factory.mktemp("sd") / "adam_eps_inside.toml"
    path.write_text(block_after(f"Saved as `{SAVED}`:", "toml"), encoding="utf-8")
    return path


def run(*args: str, stderr=subprocess.DEVNULL) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "symopt", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )
    return done.stdout


def normal(text: str, path: Path, folder: str = "") -> str:
    """Times masked, the temporary paths written as the document writes them."""
    text = text.replace(str(path), SAVED)
    if folder:
        text = text.replace(folder, "/tmp/sd/gen2")
    return TIME.sub("in T s", text).strip("\n")


def test_check_prints_what_the_document_shows(saved):
    shown = block_after("Checking it (run from the repository root):", "console")
    command, expected = shown.split("\n", 1)
    assert command == f"$ python3 -m symopt check --spec {SAVED}"
    assert normal(run("check", "--spec", str(saved)), saved) == normal(expected, saved)


def test_generate_without_builtins_prints_what_the_document_shows(saved, tmp_path):
    expected = block_after("writes only the spec's files", "text")
    out = tmp_path / "gen2"
    printed = run(
        "generate",
        "--target",
        "numpy",
        "--no-builtins",
        "--spec",
        str(saved),
        "--out",
        str(out),
        stderr=subprocess.STDOUT,
    )
    assert normal(printed, saved, str(out)) == normal(expected, saved)


def test_the_counts_of_a_generation_with_the_builtins(saved):
    """The files NumPy renders for the built-ins and the example, counted without writing."""
    specs = [*builtin_specs().values(), load_spec(saved)]
    files = BACKENDS["numpy"].files(specs)
    python = sum(f.path.endswith(".py") for f in files)
    shown = block_after("the first ones and the last ones being:", "text")
    text = " ".join(doc_text().split())
    assert f"The {len(builtin_specs())} built-in specs" in text
    assert f"checks and writes the {len(builtin_specs())} built-ins" in text
    assert f"It prints {len(files) + 4} lines" in text  # checks, rendering, formatting, summary
    assert f"checks: running on {len(specs)} spec(s), 0 cached" in shown
    assert f"numpy: rendering {len(specs)} spec(s)" in shown
    assert f"formatting {python} Python file(s)" in shown
    assert re.search(rf"^{len(files)} written, 0 unchanged, 0 removed", shown, re.M)

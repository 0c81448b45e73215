"""The transcripts of docs/spec-format.md, run: every ``symopt check`` it shows (on a built-in, on
the specs it saves under /tmp/sd/ex, on its minimal spec and the variants of it the text
describes), the ``generate --no-builtins`` listing (times masked), and the counts it gives for a
generation with the built-ins. A change to the tool that makes a transcript false fails here."""

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


def minimal_spec() -> str:
    return block_after("## A minimal spec", "toml")


#: The specs of the transcripts that are not saved under /tmp/sd/ex: (the text that introduces
#: the transcript, the spec's text).
DESCRIBED = {
    "## A minimal spec": minimal_spec,
    "Here is the minimal spec above with the sign of the step": lambda: minimal_spec().replace(
        '"w = w - lr*g"', '"w = w + lr*g"'
    ),
    "`w = w - lr*g/abs(g)` divides by zero at `g = 0`": lambda: minimal_spec().replace(
        '"w = w - lr*g"', '"w = w - lr*g/abs(g)"'
    ),
    "## Validation errors": lambda: minimal_spec().replace("default = 0.01", "default = -0.01"),
}


def check_transcripts() -> list[tuple[int, str, str]]:
    """Every ``$ python3 -m symopt check ...`` console block: (where it starts, its command
    line, the rest)."""
    pattern = re.compile(r"```console\n(\$ python3 -m symopt check [^\n]*)\n(.*?)```", re.S)
    blocks = [(m.start(), m.group(1), m.group(2)) for m in pattern.finditer(doc_text())]
    assert len(blocks) >= 8, "the spec format's check transcripts were not found"
    return blocks


def spec_for(start: int, command: str, tmp_path: Path) -> tuple[list[str], str]:
    """The arguments that run ``command`` here, and the path the document names: a saved spec,
    or the one the text just before the block describes."""
    args = command.split("symopt ", 1)[1].split()
    if "--spec" not in args:
        return args, ""
    shown = args[args.index("--spec") + 1]
    if shown.startswith("/tmp/sd/ex/"):
        text = block_after(f"Saved as `{shown}`:", "toml")
    else:
        marker = max(DESCRIBED, key=lambda m: doc_text().rfind(m, 0, start))
        text = DESCRIBED[marker]()
    path = tmp_path / Path(shown).name
    path.write_text(text, encoding="utf-8")
    args[args.index("--spec") + 1] = str(path)
    return args, shown


@pytest.mark.parametrize(
    ("start", "command", "expected"), check_transcripts(), ids=lambda x: str(x)[:50]
)
def test_check_prints_what_the_document_shows(start, command, expected, tmp_path):
    """Line for line (standard output and error), but the time; a block that elides lines
    (``...``) is compared before and after the elision."""
    args, shown = spec_for(start, command, tmp_path)
    printed = run(*args, stderr=subprocess.STDOUT)
    if shown:
        printed = printed.replace(str(tmp_path / Path(shown).name), shown)
    printed, expected = (TIME.sub("in T s", t).strip("\n") for t in (printed, expected))
    if "\n  ...\n" in expected:
        head, tail = expected.split("\n  ...\n")
        assert printed.startswith(head) and printed.endswith(tail)
    else:
        assert printed == expected


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

"""Compile the generated LaTeX document to PDF with pdflatex, in a temporary folder.

The documents hold spec text, so pdflatex runs locked down whatever the TeX installation allows:
no shell escape (``-no-shell-escape``, and ``shell_escape=f`` for kpathsea), and no file read or
written by an absolute path, a dot file or a path through ``..`` (``openin_any=p`` and
``openout_any=p``, TeX Live's paranoid setting): only the copy of the folder and TeX's own files.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from symopt.errors import SpecError

#: The Debian/Ubuntu package with pdflatex and every LaTeX package the document uses.
TEX_PACKAGES = "texlive-latex-base"
INSTALL_HINT = (
    f"pdflatex is not installed: on Debian or Ubuntu run 'apt-get install {TEX_PACKAGES}' "
    "(as root; the document needs nothing more), or install any TeX Live with pdflatex, "
    "then run 'symopt docs --pdf' again"
)
MAX_RUNS = 3
TIMEOUT_S = 300
_WARNING = re.compile(r"^(LaTeX|Package \w+) Warning: (.*)$")
#: kpathsea reads these from the environment before texmf.cnf.
LOCKED_DOWN = {"shell_escape": "f", "openin_any": "p", "openout_any": "p"}


@dataclass
class Build:
    pdf: Path
    runs: int
    warnings: list[str] = field(default_factory=list)  # LaTeX warnings of the last run
    log: str = ""


def pdflatex() -> str:
    """The pdflatex executable, or a one-line error that says how to install it."""
    exe = shutil.which("pdflatex")
    if exe is None:
        raise SpecError(INSTALL_HINT, key="--pdf")
    return exe


def compile_pdf(folder: Path, document: str = "symopt") -> Build:
    """Compile ``folder/DOCUMENT.tex`` (with the .tex files it inputs) into ``folder/DOCUMENT.pdf``.

    pdflatex runs in a temporary copy of the folder, twice (a third time if LaTeX asks for it) so
    that the contents and the equation references resolve. On an error, the log is kept as
    ``folder/DOCUMENT.log`` and the first error is reported in one line.
    """
    exe = pdflatex()
    source = folder / f"{document}.tex"
    if not source.is_file():
        raise SpecError("no such file; run 'symopt docs' first", file=str(source))
    with tempfile.TemporaryDirectory(prefix="symopt-docs-") as tmp:
        work = Path(tmp)
        for tex in folder.glob("*.tex"):
            shutil.copyfile(tex, work / tex.name)
        log = ""
        runs = 0
        for runs in range(1, MAX_RUNS + 1):
            log = _run(exe, work, document, folder)
            if runs >= 2 and "Rerun to get" not in log and "Label(s) may have changed" not in log:
                break
        target = folder / f"{document}.pdf"
        partial = folder / f".{document}.pdf.tmp"
        shutil.copyfile(work / f"{document}.pdf", partial)
        partial.replace(target)
    warnings = [m.group(0) for line in log.splitlines() if (m := _WARNING.match(line))]
    return Build(target, runs, warnings, log)


def _run(exe: str, work: Path, document: str, folder: Path) -> str:
    command = [exe, "-no-shell-escape", "-interaction=nonstopmode", "-halt-on-error"]
    command += ["-file-line-error", document]
    try:
        done = subprocess.run(
            command,
            cwd=work,
            env={**os.environ, **LOCKED_DOWN},
            capture_output=True,
            text=True,
            errors="replace",
            timeout=TIMEOUT_S,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise SpecError(f"pdflatex took more than {TIMEOUT_S} s", key="--pdf") from None
    log_file = work / f"{document}.log"
    log = log_file.read_text(errors="replace") if log_file.is_file() else done.stdout
    if done.returncode != 0 or not (work / f"{document}.pdf").is_file():
        kept = folder / f"{document}.log"
        kept.write_text(log)
        raise SpecError(f"pdflatex failed: {_first_error(log)} (full log: {kept})", key="--pdf")
    return log


def _first_error(log: str) -> str:
    lines = log.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("!") or re.match(r"^[^:\s]+\.tex:\d+: ", line):
            context = " ".join(x.strip() for x in lines[i : i + 3] if x.strip())
            return context[:300]
    return "no error message in the log"

"""Regression tests of the hardening issue's findings, one per finding fixed so far (issue 22).

Item 4: a spec with no hyperparameters generated code that did not import in NumPy and PyTorch,
while ``generate`` exited 0 for C's binding; ``sqrt(2)`` printed as C's undeclared ``M_SQRT2``
and ``abs(sign(g))`` as C's integer ``abs``. Item 1: a spec's file name, prose and LaTeX reached
generated files unescaped (a newline in the file name put code into generated tests). Item 5
(generation all or nothing) is tested in test_transaction.py."""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import sympy
from click.testing import CliRunner

from symopt.backends.c.printer import CPrinter
from symopt.backends.render import environment
from symopt.cli import main
from symopt.errors import SpecError
from symopt.files.writer import shown_source, with_header
from symopt.pdf import compile_pdf
from symopt.spec import load_spec_text

ROOT = Path(__file__).resolve().parents[1]
NO_HYPERPARAMETERS = """\
name = "plain"
class_name = "Plain"
title = "Plain"
summary = "w minus g."
reference = "none"
update = ["w = w - g"]
"""


#: Named constants (C's M_SQRT2, M_LN2 and M_E are POSIX, undeclared under -std=c99) and an abs
#: of an integer-valued expression (SymPy prints C's integer abs for it; a NaN gradient then
#: made the step undefined behaviour).
CONSTANTS = """\
name = "consts"
class_name = "Consts"
title = "Constants"
summary = "Named constants and an abs of a sign."
reference = "none"
update = ["v = abs(sign(g))*sqrt(2) + log(2)*exp(1)", "w = w - lr*v*g"]
[hyper.lr]
default = 0.01
domain = "positive"
[state.v]
init = "0"
"""


@pytest.mark.parametrize("target", ["numpy", "torch", "c", "jax"])
@pytest.mark.parametrize("text", [NO_HYPERPARAMETERS, CONSTANTS], ids=["no hyper", "constants"])
def test_generated_code_of_specs_that_broke_a_target_passes_its_tests(target, text, tmp_path):
    pytest.importorskip({"numpy": "numpy", "torch": "torch", "c": "numpy", "jax": "jax"}[target])
    spec = tmp_path / "spec.toml"
    spec.write_text(text)
    out = tmp_path / "gen"
    command = ["generate", "--target", target, "--no-builtins", "--spec", str(spec)]
    done = subprocess.run(
        [sys.executable, "-m", "symopt", *command, "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist"]
        + [str(out / target / "tests")],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert tests.returncode == 0, tests.stdout[-2000:]
    assert " passed" in tests.stdout and "skipped" not in tests.stdout


def test_the_c_printer_writes_no_posix_macro_and_no_integer_abs():
    g = sympy.Symbol("g", real=True)
    for precision, fabs in (("f32", "fabsf"), ("f64", "fabs")):
        printer = CPrinter(precision, {}, set())
        text = printer.doprint(sympy.Abs(sympy.sign(g)) * sympy.sqrt(2) + sympy.log(2) * sympy.E)
        assert "M_" not in text and f"{fabs}(symopt_sign_{precision}(g))" in text
        assert "2.718281" in text
        # 1/10**309 is a double (a subnormal); 1.0/1e309 divided by an infinity (fuzz run)
        assert printer.doprint(sympy.Rational(1, 10**309)) == "1e-309"


# -- issue 22, item 1: nothing a spec holds reaches generated files unescaped ----------------------

#: File names that would end a comment, a docstring or a line (the first put Python code into
#: every generated test file, which pytest then ran), and one that is not ASCII.
HOSTILE_NAMES = [
    'a\nimport os; open("PWNED", "w")\n#.toml',
    'q"""x.toml',
    "star*/x.toml",
    "back\\slash.toml",
    "arrow-->.toml",
    "per%cent$.toml",
    "üñí.toml",
]


def symopt(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "symopt", *map(str, args)], capture_output=True, text=True, cwd=ROOT
    )


def renamed(i: int) -> str:
    return NO_HYPERPARAMETERS.replace('"plain"', f'"plain{i}"').replace("Plain", f"Plain{i}")


def compiles_cleanly(folder: Path) -> None:
    """Every generated Python file compiles, with warnings (invalid escapes) as errors."""
    for path in folder.rglob("*.py"):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            compile(path.read_text(encoding="utf-8"), str(path), "exec")


@pytest.mark.parametrize("target", ["numpy", "c", "jax", "docs"])
def test_a_spec_file_name_never_reaches_generated_files(target, tmp_path):
    pytest.importorskip("jax" if target == "jax" else "numpy")
    args = []
    for i, name in enumerate(HOSTILE_NAMES):
        folder = tmp_path / f"s{i}"
        (folder / name).parent.mkdir(parents=True)
        (folder / name).write_text(renamed(i))
        args += ["--spec", str(folder / name)]
    plain = tmp_path / "plain.toml"  # an absolute path is shown as its base name
    plain.write_text(NO_HYPERPARAMETERS)
    out = tmp_path / "gen"
    done = symopt(
        "generate", "--target", target, "--no-builtins", *args, "--spec", str(plain), "--out", out
    )
    assert done.returncode == 0, done.stderr[-2000:]
    for path in out.rglob("*"):
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            assert not any(name in text for name in ["PWNED", *HOSTILE_NAMES]), path
            first = text.splitlines()[0]
            if "(spec sha256:" in first:
                assert re.search(r" from (a spec file|x\.toml|plain\.toml) \(spec sha256:", first)
    compiles_cleanly(out)
    if target == "docs":
        md = (out / "docs/plain0.md").read_text()
        assert "Generated by symopt 0.1.0 from a spec file (sha256:" in md
        header = [line for line in md.splitlines() if line.startswith("<!--")]
        assert len(header) == 3 and all(line.count("-->") == 1 for line in header)
        assert "from `plain.toml`, the spec" in (out / "docs/plain.md").read_text()
    if target == "numpy":  # the generated tests run, and run only what they should
        tests = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist"]
            + [str(out / "numpy/tests")],
            capture_output=True,
            text=True,
            cwd=tmp_path,
        )
        assert tests.returncode == 0, tests.stdout[-2000:]
        assert not (tmp_path / "PWNED").exists()


WITH_LR = NO_HYPERPARAMETERS.replace('"w = w - g"', '"w = w - lr*g"') + (
    '[hyper.lr]\ndefault = 0.1\ndomain = "positive"\nlatex = "\\\\eta"\n'
)


@pytest.mark.parametrize(
    "old, new, key, reason",
    [
        ('title = "Plain"', 'title = "Pl\\u0000ain"', "title", "U+0000"),
        ('summary = "w minus g."', 'summary = "w\\u0000"', "summary", "U+0000"),
        ('summary = "w minus g."', 'summary = "a\\u2028import os"', "summary", "U+2028"),
        ('reference = "none"', 'reference = "\\u202enone"', "reference", "U+202E"),
        ('summary = "w minus g."', 'summary = "a \\\\x b"', "summary", "a backslash"),
        ('summary = "w minus g."', 'summary = \'a """ b\'', "summary", "three double quotes"),
        ('title = "Plain"', 'title = "a\\nb"', "title", "one line"),
        ('title = "Plain"', 'title = "' + "x" * 201 + '"', "title", "at most 200"),
        ('summary = "w minus g."', 'summary = "' + "x" * 20_001 + '"', "summary", "longer than"),
        ('latex = "\\\\eta"', 'latex = "\\\\input{/etc/passwd}"', "hyper.lr.latex", "\\input"),
        ('latex = "\\\\eta"', 'latex = "^^5cinput{/etc/passwd}"', "hyper.lr.latex", "'^'"),
        ('latex = "\\\\eta"', 'latex = "\\\\catcode`\\\\@=11"', "hyper.lr.latex", "\\catcode"),
        ('latex = "\\\\eta"', 'latex = "\\\\eta & 100%"', "hyper.lr.latex", "'&'"),
        ("[hyper.lr]", '[hyper."l\\u0000r"]', "hyper", "a key: character U+0000"),
    ],
)
def test_hostile_spec_text_is_a_one_line_usage_error(old, new, key, reason, tmp_path):
    assert old in WITH_LR
    spec = tmp_path / "bad.toml"
    spec.write_text(WITH_LR.replace(old, new, 1))
    out = tmp_path / "gen"
    result = CliRunner().invoke(
        main, ["generate", "--no-builtins", "--spec", str(spec), "--target", "docs", "--out", out]
    )
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"error: {spec}: {key}: ") and reason in result.output
    assert result.output.count("\n") == 1 and not out.exists()


def test_a_huge_spec_is_refused_before_it_is_read(tmp_path):
    spec = tmp_path / "huge.toml"
    spec.write_text(NO_HYPERPARAMETERS.replace("w minus g.", "x" * 50_000_000))
    start = time.perf_counter()
    result = CliRunner().invoke(main, ["check", "--spec", str(spec)])
    assert time.perf_counter() - start < 5
    assert result.exit_code == 2 and f"error: {spec}: larger than 1000000 bytes" in result.output


@pytest.mark.parametrize(
    "source, shown",
    [
        ("specs/adam.toml", "specs/adam.toml"),
        ("/home/me/my specs/adam.toml", "adam.toml"),
        ("my specs/ad am.toml", None),
        ('a\n"""x.toml', None),
        ("x-->.toml", None),
        ("/tmp/..", None),
    ],
)
def test_generated_files_show_a_spec_path_only_when_it_is_plain(source, shown):
    assert shown_source(source) == shown
    header = with_header("x = 1\n", comment="#", source=source, spec_digest="0123456789abcdef")
    assert header.startswith(f"# Generated by symopt 0.1.0 from {shown or 'a spec file'} (spec")


def test_api_matches_is_a_dotted_name():
    text = (ROOT / "specs/sgd.toml").read_text()
    assert 'matches = "torch.optim.SGD"' in text
    with pytest.raises(SpecError, match=r"api\.matches: 'torch\.optim\.SGD\(\); x' is not a"):
        load_spec_text(text.replace("torch.optim.SGD", "torch.optim.SGD(); x"), "sgd.toml")


#: Text every target must carry safely: quotes at either end, a C comment's end, a trigraph
#: that is a backslash in C99, an HTML comment's end, LaTeX and Markdown specials, non-ASCII.
TRICKY_TITLE = "Tricky \"quoted\" */ ??/ --> %$#&_{}~^ ü '''\""
TRICKY_PROSE = "\"Quoted\" first. */ and ??/ and --> and 50% of $x & #1 {y} ~ ^ |a| ü''' \""


@pytest.mark.parametrize("name", ["plain", "newton"])
def test_tricky_but_allowed_prose_generates_code_that_compiles(name, tmp_path):
    pytest.importorskip("jax")
    text = NO_HYPERPARAMETERS if name == "plain" else (ROOT / "specs/newton.toml").read_text()
    for key in ("summary", "notes"):
        text = re.sub(rf'(?ms)^{key} = (""".*?"""|".*?")$', "", text)
    prose = {"title": TRICKY_TITLE, "summary": TRICKY_PROSE, "notes": "- a list? 1. no"}
    lines = "\n".join(f"{key} = {json.dumps(value)}" for key, value in prose.items())
    text = re.sub(r'(?m)^title = ".*"$', lambda _: lines, text)
    spec = tmp_path / f"{name}.toml"
    spec.write_text(text)
    assert load_spec_text(text).title == TRICKY_TITLE
    out = tmp_path / "gen"
    for target in ("numpy", "c", "jax", "docs"):
        done = symopt(
            "generate", "--target", target, "--no-builtins", "--spec", str(spec), "--out", out
        )
        assert done.returncode == 0, done.stderr[-2000:]
    compiles_cleanly(out)
    module = out / "numpy/symopt_numpy" / f"{name}.py"
    docstring = ast.get_docstring(ast.parse(module.read_text()))
    assert docstring.startswith(TRICKY_TITLE), docstring[:200]
    for path in [*out.rglob("*.c"), *out.rglob("*.h")]:
        source = path.read_text()
        assert "??/" not in source and not re.search(r"//.*\\$", source, re.M), path
    md = (out / f"docs/{name}.md").read_text()
    assert "\n\\- a list? 1. no" in md  # a paragraph, not a list
    if shutil.which("pdflatex"):
        assert (
            symopt("docs", "--no-builtins", "--spec", str(spec), "--out", out, "--pdf").returncode
            == 0
        )


@pytest.mark.parametrize("text", ['ends in a quote"', '""', 'a"""b', 'a""""', "a\\d \\N{x}", "ok"])
def test_docstring_and_dquote_filters_round_trip(text):
    filters = environment().filters
    assert ast.literal_eval(f'"""{filters["docstring"](text)}"""') == text
    assert ast.literal_eval(filters["dquote"](text + "\n")) == text + "\n"


LOCKED = r"""\documentclass{article}
\begin{document}
\immediate\write18{touch shell-ran}
Some text. %s
\end{document}
"""


@pytest.mark.parametrize(
    "line, refused",
    [
        ("", False),
        (r"\input{SECRET}", True),
        (r"\input{../secret.tex}", True),
        (r"\immediate\openout5=../escaped.tex \immediate\closeout5", True),
    ],
)
def test_pdflatex_runs_without_shell_escape_or_files_outside_its_folder(line, refused, tmp_path):
    if shutil.which("pdflatex") is None:
        pytest.skip("pdflatex is not installed")
    secret = tmp_path / "secret.tex"
    secret.write_text("THE-SECRET\n")
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "doc.tex").write_text(LOCKED % line.replace("SECRET", str(secret)))
    if not refused:
        build = compile_pdf(folder, "doc")
        assert "runsystem(touch shell-ran)...disabled." in build.log
    else:
        with pytest.raises(SpecError, match="pdflatex failed"):
            compile_pdf(folder, "doc")
        assert "THE-SECRET" not in (folder / "doc.log").read_text()
    assert not list(tmp_path.rglob("shell-ran")) and not (tmp_path / "escaped.tex").exists()

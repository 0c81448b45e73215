"""One command line: the same exit code for the same situation in every command, suggestions
that name the obvious algorithm, messages that say what is wrong, progress on stderr only, and
``generate --check`` that judges only the tool's own files and names a command that fixes them."""

import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from symopt.backends.base import generated
from symopt.cli import main
from symopt.files import sync
from symopt.resources import builtin_specs, closest, edit_distance

OK, FAILED, USAGE, RAISED = 0, 1, 2, 3
QUICK = ["--steps", "5", "--long", "0"]


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def boom(w, g, state, t, lr, beta1, beta2, eps):
    """An implementation that raises: verify's exit 3."""
    raise RuntimeError("kaboom")


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    """Spec files: a valid copy of sgd, one whose checks fail (ascent), one that does not parse."""
    folder = tmp_path_factory.mktemp("specs")
    text = builtin_specs()["sgd"].text
    up = text.replace('name = "sgd"', 'name = "sgd_up"').replace('"SGD"', '"SGDUp"')
    specs = {
        "good": text,
        "failing": up.replace('"w = w - lr*gw"', '"w = w + lr*gw"'),
        "invalid": text.replace('"w = w - lr*gw"', '"w = w - lr*__import__(gw)"'),
    }
    for name, body in specs.items():
        (folder / f"{name}.toml").write_text(body)
    return {name: str(folder / f"{name}.toml") for name in specs} | {"dir": str(folder)}


# (command, situation, arguments with {good}, {failing}, {invalid}, {dir} filled in, exit code)
TABLE = [
    ("list", "ok", "list", OK),
    ("list", "unknown option", "list --nope", USAGE),
    ("show", "ok", "show adam", OK),
    ("show", "unknown name", "show adma", USAGE),
    ("show", "NAME and --spec", "show adam --spec {good}", USAGE),
    ("show", "neither", "show", USAGE),
    ("show", "missing file", "show --spec {dir}/none.toml", USAGE),
    ("show", "invalid spec", "show --spec {invalid}", USAGE),
    ("show", "--kernel of a second-order spec", "show newton --kernel", USAGE),
    ("check", "ok", "check sgd", OK),
    ("check", "a check fails", "check --spec {failing}", FAILED),
    ("check", "unknown name", "check adma", USAGE),
    ("check", "missing file", "check --spec {dir}/none.toml", USAGE),
    ("check", "invalid spec", "check --spec {invalid}", USAGE),
    ("generate", "unknown name", "generate --algorithm adma --out {dir}/g", USAGE),
    ("generate", "unknown target", "generate --target fortran --out {dir}/g", USAGE),
    ("generate", "missing file", "generate --spec {dir}/none.toml --out {dir}/g", USAGE),
    ("generate", "invalid spec", "generate --spec {invalid} --out {dir}/g", USAGE),
    (
        "generate",
        "--algorithm, --no-builtins",
        "generate --algorithm sgd --no-builtins --out {dir}/g",
        USAGE,
    ),
    (
        "generate",
        "a target refuses a name",
        "generate --target c --algorithm kfac --out {dir}/g",
        USAGE,
    ),
    (
        "generate",
        "a check fails",
        "generate --no-builtins --spec {failing} --target numpy --out {dir}/g",
        FAILED,
    ),
    ("generate", "stale (--check)", "generate --algorithm sgd --out {dir}/g --check", FAILED),
    ("docs", "unknown name", "docs --algorithm adma --out {dir}/g", USAGE),
    ("docs", "stale (--check)", "docs --algorithm sgd --out {dir}/g --check", FAILED),
    ("verify", "agrees", "verify handwritten.adam --against adam", OK),
    ("verify", "differs", "verify handwritten.adam_eps_inside_sqrt --against adam", FAILED),
    ("verify", "unknown name", "verify handwritten.adam --against adma", USAGE),
    ("verify", "unknown target", "verify handwritten.nope --against adam", USAGE),
    (
        "verify",
        "--against and --spec",
        "verify handwritten.adam --against sgd --spec {good}",
        USAGE,
    ),
    ("verify", "neither", "verify handwritten.adam", USAGE),
    ("verify", "missing file", "verify handwritten.adam --spec {dir}/none.toml", USAGE),
    ("verify", "implementation raises", "verify test_cli_consistency.boom --against adam", RAISED),
]


@pytest.mark.parametrize(
    ("command", "situation", "args", "code"), TABLE, ids=[f"{r[0]}: {r[1]}" for r in TABLE]
)
def test_exit_codes(files, command, situation, args, code):
    words = shlex.split(args.format(**files))
    result = run(*words, *(QUICK if command == "verify" else []))
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    if code == USAGE:  # one line that says what is wrong, after click's usage lines if any
        last = result.stderr.strip().splitlines()[-1]
        assert last.lower().startswith("error: "), result.stderr
        assert sum(line.lower().startswith("error") for line in result.stderr.splitlines()) == 1


def test_plot_exit_codes_match(tmp_path):
    pytest.importorskip("matplotlib")
    out = str(tmp_path / "x.png")
    assert run("plot", "landscape", "--algorithm", "adma", "--out", out).exit_code == USAGE
    assert run("plot", "landscape", "--function", "banana", "--out", out).exit_code == USAGE
    assert not Path(out).exists()


def test_docs_without_pdflatex_is_work_that_failed(tmp_path, monkeypatch):
    monkeypatch.setattr("symopt.pdf.shutil.which", lambda name: None)
    result = run("docs", "--algorithm", "sgd", "--out", str(tmp_path), "--pdf")
    assert result.exit_code == FAILED
    assert result.stderr.startswith("error: --pdf: ") and result.stderr.count("\n") == 1


def test_an_edited_file_is_refused_with_exit_1(tmp_path):
    args = ["generate", "--target", "numpy", "--algorithm", "sgd", "--out", str(tmp_path)]
    assert run(*args).exit_code == OK
    module = tmp_path / "numpy/symopt_numpy/sgd.py"
    module.write_text(module.read_text().replace("lr: float = 0.001", "lr: float = 0.01"))
    result = run(*args)
    assert result.exit_code == FAILED
    assert "numpy/symopt_numpy/sgd.py: edited by hand" in result.stderr


# -- suggestions -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        ("adma", "adam"),
        ("nadma", "nadam"),
        ("sdg", "sgd"),
        ("rmsporp", "rmsprop"),
        ("adamm", "adam"),
        ("Adam", "adam"),
        ("adagard", "adagrad"),
        ("adabeleif", "adabelief"),
        ("nesterv", "nesterov"),
        ("trustregion", "trust_region"),
        ("kfca", "kfac"),
        ("lamb", "lamb"),
        ("xyz", None),
    ],
)
def test_the_suggestion_is_the_obvious_name(typed, meant):
    assert closest(typed, builtin_specs()) == meant


def test_edit_distance_counts_a_swap_once():
    assert edit_distance("adma", "adam") == 1
    assert edit_distance("adma", "adamax") == 2
    assert edit_distance("sdg", "sgd") == 1
    assert edit_distance("", "abc") == 3 and edit_distance("kitten", "sitting") == 3


def test_show_suggests_adam_for_adma():
    result = run("show", "adma")
    assert result.exit_code == USAGE
    hint = "error: no built-in algorithm 'adma' (did you mean 'adam'?); see 'symopt list'"
    assert result.stderr == hint + "\n"


def test_show_says_both_were_given(files):
    both = run("show", "adam", "--spec", files["good"])
    expected = "Error: NAME and --spec FILE were both given; give one of them"
    assert both.stderr.splitlines()[-1] == expected
    assert run("show").stderr.splitlines()[-1] == "Error: give NAME or --spec FILE"


# -- generate --check --out ------------------------------------------------------------------------


def test_check_suggests_a_command_that_clears_it(files, tmp_path):
    out = tmp_path / "my project"
    given = ["--target", "numpy", "--algorithm", "momentum", "--spec", files["good"]]
    result = run("generate", *given, "--out", str(out), "--check")
    assert result.exit_code == FAILED
    again = shlex.join(["symopt", "generate", *given, "--out", str(out)])
    assert result.stderr.splitlines()[-1].endswith(
        f"out of date in {out}/; to update them: {again}"
    )
    assert "missing: numpy/symopt_numpy/sgd.py" in result.stdout
    assert run(*shlex.split(again)[1:]).exit_code == OK
    assert run("generate", *given, "--out", str(out), "--check").exit_code == OK


def test_check_judges_only_the_tools_files(tmp_path):
    """A full run owns its target folders, but only the files with its header: a user's own
    file there is neither stale nor removed; a header file no longer generated is both."""
    ours = generated("numpy/symopt_numpy/sgd.py", "x = 1\n")
    old = generated("numpy/symopt_numpy/old.py", "y = 2\n")
    for f in (ours, old):
        (tmp_path / f.path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / f.path).write_text(f.text)
    mine = {"numpy/notes.txt": "my notes\n", "numpy/symopt_numpy/extra.py": "z = 3\n"}
    for rel, text in mine.items():
        (tmp_path / rel).write_text(text)
    (tmp_path / "numpy/picture.png").write_bytes(bytes(range(256)))
    report = sync.check(tmp_path, [ours], ["numpy"], full=True)
    assert report.problems == ["not generated by this run: numpy/symopt_numpy/old.py"]
    written = sync.write(tmp_path, [ours], ["numpy"], full=True)
    assert written.removed == ["numpy/symopt_numpy/old.py"] and written.written == []
    assert all((tmp_path / rel).read_text() == text for rel, text in mine.items())
    assert sync.check(tmp_path, [ours], ["numpy"], full=True).problems == []


def test_an_edited_file_no_longer_generated_needs_force(tmp_path):
    old = generated("numpy/symopt_numpy/old.py", "y = 2\n")
    (tmp_path / "numpy/symopt_numpy").mkdir(parents=True)
    (tmp_path / old.path).write_text(old.text + "# edited\n")
    report = sync.check(tmp_path, [], ["numpy"], full=True)
    assert report.problems == [
        "not generated by this run (edited by hand; --force removes it): numpy/symopt_numpy/old.py"
    ]
    assert sync.write(tmp_path, [], ["numpy"], full=True).kept == [old.path]
    assert (tmp_path / old.path).exists()
    assert sync.write(tmp_path, [], ["numpy"], full=True, force=True).removed == [old.path]
    assert not (tmp_path / old.path).exists()


# -- progress --------------------------------------------------------------------------------------


def test_check_shows_progress_on_stderr_only():
    result = run("check", "sgd", "momentum")
    assert result.exit_code == OK
    assert result.stderr.splitlines() == ["checking sgd (1/2)", "checking momentum (2/2)"]
    assert "checking" not in result.stdout and result.stdout.startswith("\nsgd (specs/sgd.toml)")
    alone = run("check", "sgd")  # one spec takes a second: nothing to follow
    assert alone.exit_code == OK and alone.stderr == ""

"""Generation is all or nothing (issue 22, item 5): a run killed at any moment leaves the tree as
it was or one the next run finishes; no temporary file outlives it; an edit anywhere in a
generated file, header included, is detected; an error names the real file."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from symopt.cli import main
from symopt.files import transaction
from symopt.files.writer import content_hash, edited

ROOT = Path(__file__).resolve().parents[1]
SPEC = """\
name = "plain"
class_name = "Plain"
title = "Plain"
summary = "w minus lr times g."
reference = "none"
update = ["w = w - lr*g"]

[hyper.lr]
default = 0.1
domain = "positive"
"""
#: Runs the command line, killed (SIGKILL) at the N-th rename out of the staging folder.
KILLED_AT = """
import os, signal, sys
from symopt.cli import main
real, calls, kill_at = os.replace, [], int(sys.argv[1])
def replace(src, dst):
    if ".symopt-staging" in str(src):
        calls.append(src)
        if len(calls) == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
    real(src, dst)
os.replace = replace
sys.argv = ["symopt", *sys.argv[2:]]
main()
"""


def tree(folder: Path) -> dict[str, bytes]:
    """The files of an output folder, but a staging folder's."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not {"__pycache__", transaction.STAGING} & set(p.parts)
    }


def args(spec: Path, out: Path) -> list[str]:
    return [
        "generate",
        "--target",
        "numpy",
        "--no-builtins",
        "--spec",
        str(spec),
        "--out",
        str(out),
    ]


def run(*arguments: str):
    return CliRunner().invoke(main, list(arguments))


@pytest.fixture(scope="module")
def trees(tmp_path_factory) -> dict[str, object]:
    """The tree from the spec (old) and from the spec with another default (new)."""
    base = tmp_path_factory.mktemp("trees")
    old, new = base / "old.toml", base / "new.toml"
    old.write_text(SPEC)
    new.write_text(SPEC.replace("default = 0.1", "default = 0.2"))
    for name in ("old", "new"):
        assert run(*args(base / f"{name}.toml", base / name)).exit_code == 0
    return {"old": tree(base / "old"), "new": tree(base / "new"), "spec": new, "base": base}


def setup(trees, tmp_path: Path) -> Path:
    """An output folder holding the old tree, to be updated from the new spec."""
    out = tmp_path / "gen"
    shutil.copytree(trees["base"] / "old", out)
    return out


def finished(trees, out: Path) -> None:
    """The next run finishes the job: the new tree, nothing left behind, --check passes."""
    assert run(*args(trees["spec"], out)).exit_code == 0
    assert tree(out) == trees["new"]
    assert not (out / transaction.STAGING).exists() and not list(out.rglob("*.tmp"))
    assert run(*args(trees["spec"], out), "--check").exit_code == 0


def test_the_trees_differ_in_several_files(trees):
    changed = [p for p in trees["new"] if trees["new"][p] != trees["old"].get(p)]
    assert len(changed) >= 3 and trees["old"].keys() == trees["new"].keys()


@pytest.mark.parametrize("kill_at", [1, 2, 3, 4])
def test_a_run_killed_mid_write_is_finished_by_the_next(kill_at, trees, tmp_path):
    """The first rename is the manifest's: killed before it, nothing changed; after it, the
    tree is part old, part new, and --check says so until the next run finishes it."""
    out = setup(trees, tmp_path)
    command = [sys.executable, "-c", KILLED_AT, str(kill_at), *args(trees["spec"], out)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    assert (out / transaction.STAGING).is_dir()
    check = run(*args(trees["spec"], out), "--check")
    assert check.exit_code == 1
    if kill_at == 1:
        assert tree(out) == trees["old"] and "unfinished" not in check.output
    else:
        assert transaction.pending(out) and "unfinished: .symopt-staging/" in check.output
        moved = [p for p in trees["new"] if tree(out)[p] != trees["old"][p]]
        assert len(moved) == kill_at - 2
    finished(trees, out)


def test_a_run_killed_at_any_moment_leaves_the_old_tree_or_a_finishable_one(trees, tmp_path):
    for delay in (0.5, 1.0, 1.5, 2.0, 2.5):
        out = setup(trees, tmp_path / str(delay))
        command = [sys.executable, "-m", "symopt", *args(trees["spec"], out)]
        process = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.wait()
        now = tree(out)
        if not transaction.pending(out):  # undecided, or finished
            assert now in (trees["old"], trees["new"])
        finished(trees, out)


def test_temporary_files_of_older_versions_are_removed_and_not_counted(trees, tmp_path):
    out = setup(trees, tmp_path)
    module = out / "numpy/symopt_numpy/plain.py"
    left = module.with_name(".plain.py.k3j_x9a2.tmp")
    left.write_text(module.read_text()[:200])  # half a file, header and all
    check = run(*args(trees["spec"], out), "--check")
    assert ".tmp" not in check.output
    result = run(*args(trees["spec"], out))
    assert result.exit_code == 0 and not left.exists()
    assert f"removed {out}/numpy/symopt_numpy/.plain.py.k3j_x9a2.tmp (a temporary" in result.output
    finished(trees, out)


@pytest.mark.parametrize("where", ["above", "inside", "hash"])
def test_an_edit_to_the_header_is_detected_and_not_overwritten(where, trees, tmp_path):
    out = setup(trees, tmp_path)
    module = out / "numpy/symopt_numpy/plain.py"
    lines = module.read_text().splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if "content sha256:" in line)
    if where == "above":
        lines.insert(0, "# my note\n")
    elif where == "inside":
        lines[0] = lines[0].replace("Do not edit", "Please edit")
    else:
        lines[at] = lines[at][:-4] + "000\n"
    assert "".join(lines) != module.read_text()
    module.write_text("".join(lines))
    assert edited(module.read_text())
    before = tree(out)
    result = run(*args(trees["spec"], out))
    assert result.exit_code == 1 and "numpy/symopt_numpy/plain.py: edited by hand" in result.output
    assert tree(out) == before  # all or nothing: no other file changed either
    assert run(*args(trees["spec"], out), "--force").exit_code == 0
    assert tree(out) == trees["new"]


def test_a_file_hashed_by_an_older_version_is_still_ours(trees, tmp_path):
    """Before the hash covered the header, it covered the body alone."""
    out = setup(trees, tmp_path)
    module = out / "numpy/symopt_numpy/plain.py"
    text = module.read_text()
    lines = text.splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if "content sha256:" in line)
    recorded = lines[at].split("sha256:")[1].strip()
    module.write_text(text.replace(recorded, content_hash("".join(lines[at + 1 :]))))
    assert not edited(module.read_text())
    finished(trees, out)


def test_a_read_only_file_is_named_and_nothing_is_written(trees, tmp_path):
    out = setup(trees, tmp_path)
    module = out / "numpy/symopt_numpy/plain.py"
    module.chmod(0o444)
    result = run(*args(trees["spec"], out))
    assert result.exit_code == 2
    error = f"error: {module}: cannot write: the file is read-only (make it writable)"
    assert result.output.splitlines()[-1] == error
    assert tree(out) == trees["old"] and not (out / transaction.STAGING).exists()
    module.chmod(0o644)
    finished(trees, out)


def test_a_failed_write_names_the_real_file_and_changes_nothing(trees, tmp_path, monkeypatch):
    out = setup(trees, tmp_path)
    real = open

    def full_disk(path, *a, **k):
        if transaction.STAGING in str(path) and str(path).endswith("plain.py"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real(path, *a, **k)

    monkeypatch.setattr(transaction, "open", full_disk, raising=False)
    result = run(*args(trees["spec"], out))
    assert result.exit_code == 1
    assert result.output.splitlines()[-1] == (
        f"error: {out}/numpy/symopt_numpy/plain.py: cannot write: No space left on device; "
        "nothing was changed"
    )
    assert tree(out) == trees["old"] and not (out / transaction.STAGING).exists()
    monkeypatch.undo()
    finished(trees, out)


def test_an_output_folder_that_cannot_be_made_is_a_usage_error(trees, tmp_path):
    (tmp_path / "a-file").write_text("")
    out = tmp_path / "a-file/gen"
    result = run(*args(trees["spec"], out))
    assert result.exit_code == 2
    assert (
        result.output.splitlines()[-1] == f"error: {out}: cannot create the folder: Not a directory"
    )

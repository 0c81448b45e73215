"""Regression tests of the hardening issue's findings, one per finding fixed so far (issue 22,
item 4: a spec with no hyperparameters generated code that did not import in NumPy and PyTorch,
while ``generate`` exited 0 for C's binding)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NO_HYPERPARAMETERS = """\
name = "plain"
class_name = "Plain"
title = "Plain"
summary = "w minus g."
reference = "none"
update = ["w = w - g"]
"""


@pytest.mark.parametrize("target", ["numpy", "torch", "c", "jax"])
def test_a_spec_without_hyperparameters_generates_code_whose_tests_pass(target, tmp_path):
    pytest.importorskip({"numpy": "numpy", "torch": "torch", "c": "numpy", "jax": "jax"}[target])
    spec = tmp_path / "plain.toml"
    spec.write_text(NO_HYPERPARAMETERS)
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

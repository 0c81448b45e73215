"""A plain (non-editable) install finds its specs and templates: it works outside the checkout."""

import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh virtual environment with symopt installed from a wheel built from this checkout."""
    pytest.importorskip("hatchling", reason="building the wheel needs hatchling (the dev extra)")
    tmp = tmp_path_factory.mktemp("install")
    wheels = tmp / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(wheels),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    env_dir = tmp / "venv"
    # System site-packages supply sympy, numpy, jinja2 and click without a download.
    venv.EnvBuilder(system_site_packages=True, with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    wheel = next(wheels.glob("symopt-*.whl"))
    subprocess.run(
        [str(python), "-m", "pip", "install", "--no-deps", "-q", str(wheel)],
        check=True,
        capture_output=True,
    )
    return env_dir


def run(env_dir: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(env_dir / "bin" / "symopt"), *args], capture_output=True, text=True, cwd=cwd
    )


def test_installed_package_is_not_the_checkout(installed, tmp_path):
    where = subprocess.run(
        [
            str(installed / "bin" / "python"),
            "-c",
            "import symopt, symopt.resources as r; print(symopt.__file__);"
            "print(r.data_dir('specs')); print(r.data_dir('templates'))",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=True,
    )
    module, specs, templates = where.stdout.split()
    assert str(ROOT) not in module
    assert specs.endswith("symopt/_data/specs") and templates.endswith("symopt/_data/templates")


def test_installed_cli_lists_and_generates(installed, tmp_path):
    listed = run(installed, "list", cwd=tmp_path)
    assert listed.returncode == 0 and "adabelief" in listed.stdout
    made = run(installed, "generate", "--target", "numpy", "--out", "out", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "out/numpy/symopt_numpy/adam.py").is_file()
    # What the installed copy generates is what the repository holds.
    ours = (ROOT / "generated/numpy/symopt_numpy/adam.py").read_text()
    assert (tmp_path / "out/numpy/symopt_numpy/adam.py").read_text() == ours

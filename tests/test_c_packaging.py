"""The C library as a user installs and links it, and symopt_c as a read-only install.

``make`` writes build/symopt.pc and ``make install`` PREFIX/lib/pkgconfig/symopt.pc, whose flags
link a program against the library: ``-lsymopt -lm``, and ``-fopenmp`` exactly when the library
was built with OpenMP (without it a static link fails on libgomp's symbols). symopt_c builds its
library in the user cache folder, one folder per sources' key, when its own folder is read-only.
The package exports every second-order class and says how each module solves for its step.
"""

import ast
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from symopt.backends.c import CBackend
from symopt.cli import main
from symopt.resources import builtin_spec

ROOT = Path(__file__).resolve().parents[1]
CC = shutil.which("cc") or shutil.which("gcc")
needs_toolchain = pytest.mark.skipif(
    CC is None or shutil.which("make") is None, reason="needs a C compiler and make"
)

#: One SGD step on three doubles, through the library's header.
APP = """
#include <stdio.h>
#include "symopt/sgd.h"
int main(void) {
    double w[3] = {1.0, 2.0, 3.0}, g[3] = {1.0, 1.0, 1.0};
    symopt_sgd_step_f64(w, g, 3, 1, 0.5);
    printf("%.17g %.17g %.17g\\n", w[0], w[1], w[2]);
    return 0;
}
"""
APP_OUTPUT = "0.5 1.5 2.5"


@pytest.fixture(scope="module")
def generated_c(tmp_path_factory) -> Path:
    """The C target of SGD and diagonal Newton, generated from the current templates."""
    out = tmp_path_factory.mktemp("generated")
    args = ["generate", "--target", "c", "--algorithm", "sgd", "--algorithm", "diag_newton"]
    result = CliRunner().invoke(main, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out / "c"


@pytest.fixture(scope="module")
def built(generated_c, tmp_path_factory) -> Path:
    """A copy of the generated folder after `make`."""
    folder = tmp_path_factory.mktemp("built") / "c"
    shutil.copytree(generated_c, folder)
    make(folder, "-j2", "all")
    return folder


def make(folder: Path, *args: str) -> str:
    done = subprocess.run(["make", "-C", str(folder), *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done.stdout


def has_openmp(tmp_path: Path) -> bool:
    """Whether the compiler links an OpenMP program (what the Makefile tests too)."""
    source = tmp_path / "omp.c"
    source.write_text("int main(void) { return 0; }\n")
    done = subprocess.run([CC, "-fopenmp", str(source), "-o", str(tmp_path / "omp")])
    return done.returncode == 0


def pc_flags(pc_dir: Path, *which: str) -> list[str]:
    """The flags of symopt.pc in pc_dir: from pkg-config when installed, else parsed."""
    if shutil.which("pkg-config"):
        env = {**os.environ, "PKG_CONFIG_PATH": str(pc_dir)}
        done = subprocess.run(
            ["pkg-config", *which, "symopt"], capture_output=True, text=True, env=env
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.split()
    return [flag for w in which for flag in parse_pc(pc_dir / "symopt.pc")[w].split()]


def parse_pc(path: Path) -> dict[str, str]:
    """``--cflags`` and ``--libs`` of a .pc file, its ``${variables}`` expanded."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        match = re.match(r"(\w[\w.]*)\s*([=:])\s*(.*)", line)
        if match:
            name, _, value = match.groups()
            values[name] = re.sub(r"\$\{(\w+)\}", lambda m: values[m.group(1)], value)
    return {"--cflags": values["Cflags"], "--libs": values["Libs"]}


def link_and_run(tmp_path: Path, flags: list[str]) -> subprocess.CompletedProcess:
    """APP compiled and linked with ``flags``; the program's run when the link worked."""
    source = tmp_path / "app.c"
    source.write_text(APP)
    program = tmp_path / "app"
    done = subprocess.run([CC, str(source), *flags, "-o", str(program)], capture_output=True)
    if done.returncode != 0:
        return subprocess.CompletedProcess(done.args, done.returncode, "", done.stderr.decode())
    return subprocess.run([str(program)], capture_output=True, text=True)


@needs_toolchain
def test_pc_file_in_the_build_folder_links_a_program(built, tmp_path):
    env_line = make(built, "-s", "env").strip()
    assert env_line.startswith(f"export PKG_CONFIG_PATH={built / 'build'}"), env_line
    flags = pc_flags(built / "build", "--cflags", "--libs")
    assert f"-I{built / 'include'}" in flags and {"-lsymopt", "-lm"} <= set(flags)
    assert ("-fopenmp" in flags) == has_openmp(tmp_path)
    parsed = parse_pc(built / "build" / "symopt.pc")  # what pc_flags reads without pkg-config
    assert flags == [*parsed["--cflags"].split(), *parsed["--libs"].split()]
    run = link_and_run(tmp_path, flags)
    assert run.returncode == 0 and run.stdout.strip() == APP_OUTPUT, run.stderr


@needs_toolchain
def test_static_link_needs_the_openmp_flag_the_pc_file_carries(built, tmp_path):
    if not has_openmp(tmp_path):
        pytest.skip("the compiler has no OpenMP")
    include = f"-I{built / 'include'}"
    archive = str(built / "build" / "libsymopt.a")
    bare = link_and_run(tmp_path, [include, archive, "-lm"])
    assert bare.returncode != 0 and "undefined reference" in bare.stderr
    assert re.search(r"\b(GOMP_|omp_)\w+", bare.stderr), bare.stderr[-1000:]
    libs = [f for f in pc_flags(built / "build", "--libs") if not f.startswith(("-L", "-l"))]
    assert "-fopenmp" in libs
    run = link_and_run(tmp_path, [include, archive, *libs, "-lm"])
    assert run.returncode == 0 and run.stdout.strip() == APP_OUTPUT, run.stderr


@needs_toolchain
def test_without_openmp_the_library_and_pc_file_need_no_openmp(generated_c, tmp_path):
    folder = tmp_path / "c"
    shutil.copytree(generated_c, folder)
    make(folder, "-j2", "OPENMP=", "all")
    flags = pc_flags(folder / "build", "--cflags", "--libs")
    assert "-fopenmp" not in flags and "-lsymopt" in flags
    archive = str(folder / "build" / "libsymopt.a")
    run = link_and_run(tmp_path, [f"-I{folder / 'include'}", archive, "-lm"])
    assert run.returncode == 0 and run.stdout.strip() == APP_OUTPUT, run.stderr
    # building with OpenMP after that rebuilds every object and says so in the .pc file
    if has_openmp(tmp_path):
        assert "-fopenmp" in make(folder, "-j2", "all")
        assert "-fopenmp" in pc_flags(folder / "build", "--libs")


@needs_toolchain
def test_make_install_gives_headers_libraries_and_pc_file(built, tmp_path):
    prefix = tmp_path / "prefix"
    make(built, f"PREFIX={prefix}", "install")
    assert (prefix / "include/symopt/sgd.h").is_file()
    assert (prefix / "include/symopt/symopt.h").is_file()
    assert (prefix / "lib/libsymopt.a").is_file() and (prefix / "lib/libsymopt.so").is_file()
    flags = pc_flags(prefix / "lib/pkgconfig", "--cflags", "--libs")
    assert f"-I{prefix / 'include'}" in flags and f"-L{prefix / 'lib'}" in flags
    run = link_and_run(tmp_path, flags)
    assert run.returncode == 0 and run.stdout.strip() == APP_OUTPUT, run.stderr


STEP = """
import numpy as np
import symopt_c
w = np.ones(5)
symopt_c.SGD([w], lr=0.5).step([np.ones(5)])
d = np.ones(5)
symopt_c.DiagNewton([d], lr=0.5, lam=0.1).step([np.ones(5)], [np.full(5, 0.9)])
print(symopt_c.library_path(), w.tolist() == [0.5] * 5, d.tolist() == [0.5] * 5)
"""


def read_only_run(package: Path, env: dict) -> subprocess.CompletedProcess:
    """STEP with ``package`` (a generated C folder) on the path. As root, which writes to any
    folder, the run drops the capability to override file permissions (setpriv)."""
    command = [sys.executable, "-c", STEP]
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: a read-only folder is writable")
        command = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", *command]
    env = {**env, "PYTHONPATH": str(package)}
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)


def make_read_only(folder: Path, request) -> None:
    """Every file and folder under ``folder`` read-only, made writable again at teardown."""
    paths = [folder, *folder.rglob("*")]
    for p in paths:
        p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    request.addfinalizer(lambda: [p.chmod(p.stat().st_mode | stat.S_IWUSR) for p in paths])


@needs_toolchain
def test_read_only_package_builds_its_library_in_the_user_cache(generated_c, tmp_path, request):
    copies = [tmp_path / "one" / "c", tmp_path / "two" / "c"]
    for copy in copies:
        shutil.copytree(generated_c, copy, ignore=shutil.ignore_patterns("build", "__pycache__"))
    with open(copies[1] / "src" / "sgd.c", "a") as handle:
        handle.write("// other sources: another key\n")
    for copy in copies:
        make_read_only(copy, request)
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("SYMOPT_C_LIB", "SYMOPT_C_CACHE")}
    env.update(HOME=str(home), XDG_CACHE_HOME=str(home / "cache"))
    libraries = []
    for copy in copies:
        done = read_only_run(copy, env)
        assert done.returncode == 0, done.stderr[-3000:]
        path, sgd_ok, diag_ok = done.stdout.split()
        assert sgd_ok == diag_ok == "True"
        library = Path(path)
        key = library.parent.name
        assert library.parent.parent == home / "cache" / "symopt_c" and re.fullmatch(
            "[0-9a-f]{16}", key
        )
        assert library.name.startswith(f"libsymopt-{key}.")
        assert not (copy / "build").exists()
        libraries.append(library)
    # different sources, different keys: neither build removes the other's library
    assert libraries[0].parent != libraries[1].parent
    assert all(library.is_file() for library in libraries)
    # SYMOPT_C_CACHE moves the cache folder
    done = read_only_run(copies[0], {**env, "SYMOPT_C_CACHE": str(tmp_path / "elsewhere")})
    assert done.returncode == 0, done.stderr[-3000:]
    assert Path(done.stdout.split()[0]).parent.parent == tmp_path / "elsewhere"


def test_package_exports_every_second_order_class_and_says_how_each_solves():
    names = ["sgd", "diag_newton", "newton", "trust_region"]
    files = CBackend().files([builtin_spec(n) for n in names])
    init = next(f for f in files if f.path == "c/symopt_c/__init__.py")
    module = ast.parse(init.text)
    exported = next(
        ast.literal_eval(node.value)
        for node in module.body
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "__all__"
    )
    assert {"DiagNewton", "Newton", "TrustRegion", "SGD"} <= set(exported)
    imports = {
        alias.name: node.module
        for node in module.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    assert imports["DiagNewton"] == "diag_newton" and imports["TrustRegion"] == "trust_region"
    paragraphs = {
        p.split("``")[1]: " ".join(p.split())
        for p in ast.get_docstring(module).split("\n\n")
        if p.strip().startswith("``")
    }
    assert set(paragraphs) == {"diag_newton", "newton", "trust_region"}
    assert "Cholesky" not in paragraphs["diag_newton"]
    assert "no factorisation" in paragraphs["diag_newton"]
    assert "dense Cholesky factorisation" in paragraphs["newton"]
    assert "Steihaug" in paragraphs["trust_region"] and "H + lam I" in paragraphs["trust_region"]

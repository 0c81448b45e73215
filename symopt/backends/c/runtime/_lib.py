"""The shared library behind symopt_c: found or built on first use, and called through ctypes.

On first use the generated C sources (``../src``, ``../include``) are compiled with the system C
compiler into ``../build/libsymopt-HASH.so``, or, when that folder is not writable (a read-only
install), into the user cache folder ``CACHE/HASH/``; HASH covers the sources, the compiler command
and the flags, so editing or regenerating the sources rebuilds the library, a stale one is never
loaded, and copies with different sources never share one. Object files are kept in
``CACHE/objects/`` (else ``../build/objects/``), named by their content. Flags:
``-std=c99 -O3 -fPIC -fno-math-errno -ffp-contract=off``, plus ``-fopenmp`` when the compiler
supports it (without, the library runs one thread; results are bit-identical either way).

Environment:
    CC                 compiler command (default: the first of cc, gcc, clang on PATH)
    SYMOPT_C_LIB       load this library instead of building one (for example build/libsymopt.so,
                       made by ``make`` in the generated C folder)
    SYMOPT_C_OPENMP    0 builds without OpenMP
    SYMOPT_C_CFLAGS    extra compiler flags, after the defaults
    SYMOPT_C_CACHE     the user cache folder CACHE (default: $XDG_CACHE_HOME/symopt_c, else
                       ~/.cache/symopt_c); it can be deleted at any time
"""

from __future__ import annotations

import ctypes
import hashlib
import operator
import os
import shlex
import shutil
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

#: The generated C folder: src/, include/, build/.
ROOT = Path(__file__).resolve().parents[1]
CFLAGS = ("-std=c99", "-O3", "-fPIC", "-fno-math-errno", "-ffp-contract=off")
OPENMP_FLAGS = ("-fopenmp",)
#: Flags of the sanitizer build in the generated tests.
SANITIZE_FLAGS = (
    "-fsanitize=address,undefined",
    "-fno-sanitize-recover=all",
    "-fno-omit-frame-pointer",
    "-g",
)
#: Steps over fewer elements run in the calling thread (SYMOPT_PARALLEL_MIN in the C sources).
PARALLEL_MIN = 32768
SHARED_SUFFIX = ".dylib" if sys.platform == "darwin" else ".so"
NO_COMPILER = (
    "symopt_c builds its C library on first use and needs a C compiler for that, but {why}. "
    "Install one (Debian/Ubuntu: apt-get install gcc; Fedora: dnf install gcc; macOS: "
    "xcode-select --install) or set CC to one; or build the library with `make` in {root} and "
    "set SYMOPT_C_LIB to {root}/build/libsymopt.so."
)


class CompilerNotFoundError(RuntimeError):
    """No C compiler to build the library with."""


class BuildError(RuntimeError):
    """The compiler failed; the message holds its command and output."""


def compiler() -> list[str]:
    """The compiler command: $CC (split like a shell would), else cc, gcc or clang on PATH."""
    cc = os.environ.get("CC", "").strip()
    if cc:
        command = shlex.split(cc)
        if shutil.which(command[0]) is None:
            why = f"$CC is {cc!r} and {command[0]!r} is not an executable on PATH"
            raise CompilerNotFoundError(NO_COMPILER.format(why=why, root=ROOT))
        return command
    for name in ("cc", "gcc", "clang"):
        path = shutil.which(name)
        if path is not None:
            return [path]
    why = "$CC is not set and none of cc, gcc, clang is on PATH"
    raise CompilerNotFoundError(NO_COMPILER.format(why=why, root=ROOT))


def sources() -> list[Path]:
    """The C sources of the library: every src/*.c, in name order."""
    return sorted((ROOT / "src").glob("*.c"))


def compile_c(
    output: Path,
    files: list[Path],
    *,
    flags: tuple[str, ...] = (),
    shared: bool = True,
    cc: list[str] | None = None,
) -> None:
    """Compile ``files`` into ``output``, a shared library or an executable; BuildError if that
    fails."""
    command = [*(cc or compiler()), *CFLAGS, *flags, f"-I{ROOT / 'include'}"]
    command += ["-shared"] if shared else []
    command += ["-o", str(output), *map(str, files), "-lm"]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise BuildError(
            f"building {output.name} failed (exit {done.returncode}):\n{shlex.join(command)}\n"
            f"{done.stdout}{done.stderr}"
        )


def objects(flags: tuple[str, ...], cc: list[str]) -> list[Path]:
    """Every source compiled to an object file, in parallel, once per content, headers, compiler
    and flags (kept in the user's cache folder, else build/): regenerating or editing one
    kernel recompiles that kernel only, and copies of the package share the objects."""
    headers = b"".join(
        p.name.encode() + b"\0" + p.read_bytes()
        for p in sorted([*(ROOT / "include").rglob("*.h"), *(ROOT / "src").glob("*.h")])
    )
    key = repr((cc, CFLAGS, flags, sys.platform)).encode() + headers
    candidates = (cache_folder() / "objects", ROOT / "build" / "objects")
    folder = next((f for f in candidates if _writable(f)), None)
    if folder is None:
        return sources()  # nowhere to keep objects: compile the sources in one go

    def build(source: Path) -> Path:
        digest = hashlib.sha256(key + source.read_bytes()).hexdigest()[:20]
        target = folder / f"{source.stem}-{digest}.o"
        if not target.is_file():
            partial = folder / f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp"
            command = [*cc, *CFLAGS, *flags, f"-I{ROOT / 'include'}", "-c", str(source)]
            done = subprocess.run([*command, "-o", str(partial)], capture_output=True, text=True)
            if done.returncode != 0:
                partial.unlink(missing_ok=True)
                raise BuildError(
                    f"compiling {source.name} failed (exit {done.returncode}):\n"
                    f"{shlex.join(command)}\n{done.stdout}{done.stderr}"
                )
            os.replace(partial, target)
        return target

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return list(pool.map(build, sources()))


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(folder, os.W_OK)


def cache_folder() -> Path:
    """The user cache folder: $SYMOPT_C_CACHE, else $XDG_CACHE_HOME/symopt_c, else
    ~/.cache/symopt_c (where a read-only install builds its library)."""
    override = os.environ.get("SYMOPT_C_CACHE", "").strip()
    if override:
        return Path(override).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME", "").strip() or str(Path.home() / ".cache")
    return Path(cache) / "symopt_c"


def _library_path() -> Path:
    """The library for the current sources and flags, built now if it does not exist yet: in
    the package's build/ (where older builds are removed), else in the cache under its key."""
    cc = compiler()
    extra = tuple(shlex.split(os.environ.get("SYMOPT_C_CFLAGS", "")))
    openmp = os.environ.get("SYMOPT_C_OPENMP", "1").strip() != "0"
    digest = hashlib.sha256(repr((cc, CFLAGS, extra, openmp, sys.platform)).encode())
    for path in [*sources(), *sorted((ROOT / "include" / "symopt").glob("*.h"))]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    key = digest.hexdigest()[:16]
    name = f"libsymopt-{key}{SHARED_SUFFIX}"
    own, cached = ROOT / "build", cache_folder() / key
    for folder in (own, cached):
        if (folder / name).is_file():
            return folder / name
    if not sources():
        raise BuildError(f"no C sources in {ROOT / 'src'}: run `symopt generate --target c`")
    folder = next((f for f in (own, cached) if _writable(f)), None)
    if folder is None:
        raise BuildError(
            f"no writable folder to build the library in: tried {own} and {cached}; set "
            "SYMOPT_C_CACHE to a writable folder, or SYMOPT_C_LIB to a library built by `make`"
        )
    target = folder / name
    partial = folder / f".{name}.{os.getpid()}.tmp"
    try:
        try:
            flags = (*OPENMP_FLAGS, *extra) if openmp else extra
            compile_c(partial, objects(flags, cc), flags=flags, cc=cc)
        except BuildError:
            if not openmp:
                raise
            compile_c(partial, objects(extra, cc), flags=extra, cc=cc)  # no OpenMP
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    if folder == own:
        for old in folder.glob(f"libsymopt-*{SHARED_SUFFIX}"):
            if old != target:
                old.unlink(missing_ok=True)  # built from older sources of this copy
    return target


_lock = threading.Lock()
_library: list[ctypes.CDLL] = []


def library() -> ctypes.CDLL:
    """The loaded library (built first if needed; $SYMOPT_C_LIB if set)."""
    with _lock:
        if not _library:
            path = os.environ.get("SYMOPT_C_LIB") or str(_library_path())
            lib = ctypes.CDLL(path)
            lib.symopt_openmp.restype = ctypes.c_long
            lib.symopt_openmp.argtypes = []
            lib.symopt_set_num_threads.restype = ctypes.c_int
            lib.symopt_set_num_threads.argtypes = [ctypes.c_int]
            lib.symopt_get_num_threads.restype = ctypes.c_int
            lib.symopt_get_num_threads.argtypes = []
            _library.append(lib)
        return _library[0]


def library_path() -> str:
    """Where the loaded library is."""
    return library()._name


def openmp() -> int:
    """The _OPENMP date the library was compiled with (such as 201511), or 0 without OpenMP."""
    return int(library().symopt_openmp())


def set_num_threads(n: int) -> int:
    """Threads for later steps called from this Python thread; returns the count in effect."""
    return int(library().symopt_set_num_threads(int(n)))


def get_num_threads() -> int:
    """Threads later steps called from this Python thread may use (1 without OpenMP)."""
    return int(library().symopt_get_num_threads())


def kernels(name: str, arrays: int, hypers: int) -> dict:
    """dtype -> (single-tensor, multi-tensor) entry points of ``symopt_NAME_step``."""
    lib = library()
    out = {}
    for dtype, suffix in ((np.dtype(np.float32), "f32"), (np.dtype(np.float64), "f64")):
        single = getattr(lib, f"symopt_{name}_step_{suffix}")
        single.argtypes = [ctypes.c_void_p] * arrays + [ctypes.c_size_t, ctypes.c_long]
        single.argtypes += [ctypes.c_double] * hypers
        single.restype = None
        multi = getattr(lib, f"symopt_{name}_step_multi_{suffix}")
        multi.argtypes = [ctypes.c_size_t] + [ctypes.c_void_p] * (arrays + 1) + [ctypes.c_long]
        multi.argtypes += [ctypes.c_double] * hypers
        multi.restype = None
        out[dtype] = (single, multi)
    return out


#: The largest step counter the kernels take: they take t as a C long, which ctypes would wrap.
T_MAX = 2 ** (8 * ctypes.sizeof(ctypes.c_long) - 1) - 1


def _integer(name: str, value: object) -> int:
    if isinstance(value, bool) or not hasattr(type(value), "__index__"):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    return operator.index(value)


def check_counter(t: object, t_start: int) -> int:
    """``t`` as an int, once it is a step counter the kernels can run: from the first step's
    counter ``t_start`` to T_MAX (below t_start the bias corrections divide by zero or turn
    negative, so the step would be NaN; above T_MAX the C long would wrap)."""
    value = _integer("the step counter t", t)
    if not t_start <= value <= T_MAX:
        raise ValueError(f"the step counter t must be in [{t_start}, {T_MAX}], got {value}")
    return value


def check_steps(steps: object, t_start: int) -> int:
    """``steps``, a count of steps taken (a state_dict's), as an int, once the next step's
    counter ``t_start + steps`` is one the kernels can run."""
    value = _integer("steps", steps)
    if not 0 <= value <= T_MAX - t_start:
        raise ValueError(f"steps must be in [0, {T_MAX - t_start}], got {value}")
    return value

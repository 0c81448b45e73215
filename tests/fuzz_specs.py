"""Spec fuzzing: mutate the built-in specs and push each through the whole pipeline.

Spec files are untrusted input. Every mutated spec goes load -> checks -> generate (all targets,
through the CLI's own helpers) -> compile every generated Python file, import the packages, build
the C library -> two steps on a small random problem, every target against the reference stepper.
Clean outcomes: a one-line ``SpecError`` naming the file (``rejected``), checks that fail
(``refused``) or run past their budget (``timeout``), or code that agrees (``ok``). Anything else is
a failure: an exception of another type (``foreign exception``; in a check, where the check runner
reports it as "could not run", ``check crashed``), a hang, generated code that does not compile or
import, or a target that disagrees with the reference.

Used by ``tests/test_fuzz_specs.py`` (a short hypothesis run in CI) and by
``benchmarks/fuzz_specs.py`` (the long run); the mutations are ``fuzz_mutate``, the comparisons
``fuzz_compare``. Each spec runs in a worker process (``fuzz_pool.Pool``) with a hard wall-clock
limit: a hang is killed and reported, and the generated packages of one spec never meet
another's.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from fuzz_compare import Disagreement, compare_model, compare_steps, line

CLEAN = ("rejected", "refused", "timeout", "ok")
FAILURES = ("foreign exception", "check crashed", "hang", "does not compile/import", "disagreement")
#: The generated packages, by target, purged from ``sys.modules`` between specs.
PACKAGES = {"numpy": "symopt_numpy", "c": "symopt_c", "torch": "symopt_torch", "jax": "symopt_jax"}
#: A fuzz run's environment: a small per-claim check budget, no disk cache of check results, an
#: unoptimised one-thread C build, float64 JAX on the CPU.
ENVIRONMENT = {
    "SYMOPT_CHECK_SECONDS": "5",
    "SYMOPT_CACHE_DIR": "",
    "SYMOPT_C_CFLAGS": "-O0",
    "SYMOPT_C_OPENMP": "0",
    "JAX_ENABLE_X64": "1",
    "JAX_PLATFORMS": "cpu",
    "OMP_NUM_THREADS": "1",
}


#: A traceback's line naming the exception (``module.TypeError: message``).
EXCEPTION_LINE = re.compile(r"^([\w.]*\.)?(\w+(Error|Exception|Exit|Interrupt|Warning))(?=: |$)")


@dataclass
class Outcome:
    """What one spec did: ``kind`` (one of CLEAN or FAILURES), the stage it ended in, and why."""

    kind: str
    stage: str
    detail: str = ""
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return self.kind in FAILURES

    def signature(self) -> str:
        """What makes two failures the same bug: stage, kind and the exception's line of the
        message (else its last line), with modules, numbers, quoted text and paths blanked."""
        lines = [s for s in self.detail.strip().splitlines() if s.strip()]
        raised = [s for s in lines if EXCEPTION_LINE.match(s)]
        head = EXCEPTION_LINE.sub(r"\2", raised[-1]) if raised else lines[-1] if lines else ""
        if self.kind == "disagreement":
            head = self.detail.split(":")[0]
        elif self.kind == "hang":  # the stacks follow
            head = self.detail.split(";")[0]
        head = re.sub(r"'[^']*'|\"[^\"]*\"|/\S+|-?\d+(\.\d+)?(e[-+]?\d+)?", "_", head)
        return f"{self.stage} | {self.kind} | {head[:120]}"


def setup_environment() -> None:
    """Set :data:`ENVIRONMENT` (before symopt, JAX or the C build first read it)."""
    os.environ.update(ENVIRONMENT)
    os.environ.setdefault("SYMOPT_C_CACHE", str(Path(tempfile.gettempdir()) / "symopt_fuzz_c"))
    os.environ.setdefault("SYMOPT_TORCH_CACHE", str(Path(tempfile.gettempdir()) / "symopt_fuzz_t"))


def _foreign(stage: str, exc: BaseException) -> Outcome:
    return Outcome("foreign exception", stage, "".join(traceback.format_exception(exc))[-4000:])


def _rejected(stage: str, exc: Exception, spec_file: Path) -> Outcome:
    """A SpecError is a clean answer only as one line that names the file."""
    message = str(exc)
    if "\n" in message or not message.startswith(str(spec_file)):
        return Outcome(
            "foreign exception", stage, f"SpecError not one line naming the file: {message!r}"
        )
    return Outcome("rejected", stage, message[:400])


#: Exceptions a check may honestly meet on a strange spec and report as "could not run".
HONEST_CHECK_ERRORS = ("SpecError", "Unsupported", "Failed")


def crash(detail: str) -> bool:
    """Whether a check's "could not run: TYPE: ..." row hides an exception of a foreign type
    (the check runner turns every exception into such a row, so ``symopt check`` never crashes;
    a check that says why it cannot apply, or a NaN met in a comparison, is no crash)."""
    found = re.match(r"could not run: (\w+): ", detail)
    return bool(found) and found.group(1) not in HONEST_CHECK_ERRORS


def _generate(spec_file: Path, out: Path) -> tuple[Outcome | None, list[str]]:
    """``symopt generate --no-builtins --spec FILE --out DIR``, in process, through the CLI's own
    helpers: an outcome when it ends early, else the targets that refused the spec."""
    from symopt import pipeline
    from symopt.checks import check_specs
    from symopt.cli_support import generation_specs
    from symopt.errors import Failed, SpecError
    from symopt.files import sync
    from symopt.resources import builtin_specs

    try:
        specs = generation_specs((), (str(spec_file),), False)
    except SpecError as exc:
        return _rejected("load", exc, spec_file), []
    except Exception as exc:  # noqa: BLE001 - the point: anything else is a finding
        return _foreign("load", exc), []
    targets = pipeline.resolve_targets("all")
    try:
        known = {**builtin_specs(), **{s.name: s for s in specs}}  # as plan() has them: one run
        results = [r for rs in check_specs(specs, known).values() for r in rs]
    except SpecError as exc:
        return _rejected("check", exc, spec_file), []
    except Exception as exc:  # noqa: BLE001
        return _foreign("check", exc), []
    crashed = [r for r in results if r.failed and r.method == "-" and crash(r.detail)]
    if crashed:
        return Outcome("check crashed", "check", f"{crashed[0].name}: {crashed[0].detail}"), []
    try:
        planned = pipeline.plan(targets, specs, builtin_specs(), explicit=())
    except Failed as exc:
        timeout = any(r.over_budget for r in results)  # a time or memory budget
        return Outcome("timeout" if timeout else "refused", "check", str(exc)[:400]), []
    except SpecError as exc:
        return _rejected("generate", exc, spec_file), []
    except Exception as exc:  # noqa: BLE001
        return _foreign("generate", exc), []
    try:
        sync.write(out, planned.files, targets, False, False)
    except Exception as exc:  # noqa: BLE001
        return _foreign("write", exc), []
    return None, planned.refused


def _purge_generated() -> None:
    for name in list(sys.modules):
        if name.split(".")[0] in PACKAGES.values():
            del sys.modules[name]


def _compile_all(out: Path) -> str | None:
    """The first generated Python or C file that does not compile, with why; None if all do. C
    compiles with warnings as errors (every built-in does; a warning such as "integer constant
    is too large" is a wrong value)."""
    import subprocess

    for path in sorted(out.rglob("*.py")):
        try:
            compile(path.read_bytes(), str(path), "exec")
        except (SyntaxError, ValueError) as exc:
            return f"{path.relative_to(out)}: {exc}"
    sources = sorted(out.rglob("*.c"))
    for path in sources:  # the C target's and the torch target's fused kernels
        include = path.parents[1] / "include"
        cmd = ["cc", "-std=c99", "-O0", "-fsyntax-only", "-Werror"]
        cmd += [f"-I{include}"] if include.is_dir() else []
        done = subprocess.run([*cmd, str(path)], capture_output=True, text=True, timeout=120)
        if done.returncode:
            return f"{path.relative_to(out)}: {done.stderr.strip()[-1500:]}"
    return None


def run_spec(text: str, work: Path, seed: int = 0) -> Outcome:
    """The whole pipeline for one spec text, in this process; ``work`` is an empty folder."""
    start = time.perf_counter()
    try:
        outcome = _run(text, work, seed)
    except Exception as exc:  # noqa: BLE001 - a bug of the harness or of symopt: report it
        outcome = _foreign("harness", exc)
    outcome.seconds = round(time.perf_counter() - start, 3)
    return outcome


def _run(text: str, work: Path, seed: int) -> Outcome:
    spec_file = work / "fuzzed.toml"
    spec_file.write_text(text, encoding="utf-8", errors="surrogateescape")
    out = work / "out"
    early, refused = _generate(spec_file, out)
    if early is not None:
        return early
    bad = _compile_all(out)
    if bad:
        return Outcome("does not compile/import", "compile", bad)
    from symopt.spec import load_spec

    spec = load_spec(spec_file)
    skip = {r.split(":")[0] for r in refused}
    _purge_generated()
    packages = {}
    try:
        for target, package in PACKAGES.items():
            if target in skip or not (out / target / package).is_dir():
                continue
            sys.path.insert(0, str(out / target))
            try:
                packages[target] = importlib.import_module(package)
            except Exception as exc:  # noqa: BLE001
                return Outcome("does not compile/import", "import", f"{target}: {line(exc)}")
            finally:
                sys.path.remove(str(out / target))
        compare = compare_steps if spec.kind == "elementwise" else compare_model
        try:
            notes = compare(spec, packages, seed)
        except Disagreement as exc:
            return Outcome("disagreement", "step", str(exc), notes=refused)
        except Exception as exc:  # noqa: BLE001
            if type(exc).__name__ in ("BuildError", "CompilerNotFoundError"):
                return Outcome("does not compile/import", "build", line(exc))
            return _foreign("step", exc)
    finally:
        _purge_generated()
    return Outcome("ok", "step", notes=[*refused, *notes])

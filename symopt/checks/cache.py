"""Check results remembered by digest, in memory and on disk, and computed in parallel.

A digest covers the spec's text and source, the texts of the specs its relations name, and the
source code of symopt itself, so an edit to a spec, to a spec it relates to, or to the checks
invalidates it. The disk cache lives in ``$SYMOPT_CACHE_DIR`` (default ``~/.cache/symopt``);
``SYMOPT_CACHE_DIR=`` (empty) turns it off. Python-built specs without text are never cached.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import multiprocessing
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from functools import cache
from pathlib import Path

from symopt.checks.result import CheckResult
from symopt.spec import AnySpec, load_spec_text

Runner = Callable[[AnySpec, Mapping[str, AnySpec]], list[CheckResult]]


@cache
def code_digest() -> str:
    """A hash of symopt's own source: results from another version are not reused."""
    root = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(path.relative_to(root).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def related(spec: AnySpec, known: Mapping[str, AnySpec]) -> dict[str, AnySpec]:
    """The specs a spec's relations compare it with (the only others its checks read)."""
    names = {r.other for r in getattr(spec, "relations", ()) if r.other}
    return {n: known[n] for n in sorted(names) if n in known}


def digest(spec: AnySpec, known: Mapping[str, AnySpec]) -> str | None:
    if not spec.text:
        return None
    parts = [code_digest(), spec.source, spec.text]
    for name, other in related(spec, known).items():
        if not other.text:
            return None
        parts += [name, other.text]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def cache_dir() -> Path | None:
    configured = os.environ.get("SYMOPT_CACHE_DIR")
    if configured is not None:
        return Path(configured) / "checks" if configured else None
    return Path.home() / ".cache" / "symopt" / "checks"


class CheckCache:
    """``run(spec, known)`` once per digest; ``job(text, source, others)`` is the same as a
    module-level function, which a worker process can be handed."""

    def __init__(self, run: Runner, job: Callable[..., list[CheckResult]]) -> None:
        self.run, self.job = run, job
        self.memory: dict[str, list[CheckResult]] = {}

    def results(
        self,
        specs: Sequence[AnySpec],
        known: Mapping[str, AnySpec],
        progress: Callable[[str], None],
    ) -> dict[str, list[CheckResult]]:
        out: dict[str, list[CheckResult]] = {}
        missing: list[tuple[AnySpec, str | None]] = []
        for spec in specs:
            key = digest(spec, known)
            found = self.memory.get(key) if key else None
            if found is None and key:
                found = _read(key)
            if found is None:
                missing.append((spec, key))
            else:
                self.memory[key] = out[spec.name] = found
        if missing:
            progress(f"checks: running on {len(missing)} spec(s), {len(out)} cached")
        for (spec, key), results in zip(missing, self.compute(missing, known), strict=True):
            out[spec.name] = results
            if key and not any(r.over_budget for r in results):  # another try may finish
                self.memory[key] = results
                _write(key, results)
        return {s.name: out[s.name] for s in specs}

    def compute(self, missing, known) -> list[list[CheckResult]]:
        """The checks of several specs in parallel processes, the slowest kind first."""
        workers = min(len(missing), os.cpu_count() or 1)
        portable = all(s.text and digest(s, known) for s, _ in missing)
        if workers <= 1 or not portable:
            return [self.run(spec, known) for spec, _ in missing]
        jobs = [(s.text, s.source, _portable(related(s, known))) for s, _ in missing]
        order = sorted(range(len(jobs)), key=lambda i: missing[i][0].kind != "second_order")
        context = multiprocessing.get_context("fork" if os.name == "posix" else "spawn")
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            futures = {i: pool.submit(self.job, *jobs[i]) for i in order}
            return [futures[i].result() for i in range(len(jobs))]


def _portable(specs: Mapping[str, AnySpec]) -> dict[str, tuple[str, str]]:
    return {n: (s.text, s.source) for n, s in specs.items()}


def _load(text: str, source: str) -> AnySpec:
    return dataclasses.replace(load_spec_text(text, source), source=source)


def run_portable(
    run: Runner, text: str, source: str, others: dict[str, tuple[str, str]]
) -> list[CheckResult]:
    """``run`` on a spec given as text (what a worker process receives)."""
    return run(_load(text, source), {n: _load(*v) for n, v in others.items()})


def _read(key: str) -> list[CheckResult] | None:
    folder = cache_dir()
    if folder is None:
        return None
    try:
        rows = json.loads((folder / f"{key}.json").read_text(encoding="utf-8"))
        return [CheckResult(**row) for row in rows]
    except (OSError, ValueError, TypeError):
        return None


def _write(key: str, results: list[CheckResult]) -> None:
    folder = cache_dir()
    if folder is None:
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=folder, suffix=".tmp", delete=False) as f:
            json.dump([dataclasses.asdict(r) for r in results], f)
        os.replace(f.name, folder / f"{key}.json")
    except OSError:
        pass

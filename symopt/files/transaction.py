"""Writing generated files all or nothing, even when the process is killed.

Every changed file is first written under ``OUT/.symopt-staging/``; nothing in the tree has
changed until a manifest (``COMMIT``: the files to move into place and those to remove) is
renamed into that folder, which decides the run. The files are then moved into place (renames
within one file system) and the folder removed. A run killed before the manifest leaves the tree
as it was, and the next run removes the staging folder; one killed after it is finished by the
next run, before anything else. Runs into one folder take turns (a lock on the folder).

Problems are found before anything is written: a read-only file or folder is an error that names
the real file, never a temporary one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path, PurePosixPath

from symopt.errors import Failed, SpecError

STAGING = ".symopt-staging"
MANIFEST = "COMMIT"


@contextlib.contextmanager
def locked(out: Path) -> Iterator[None]:
    """Hold an exclusive lock on the folder ``out`` (where the platform has ``flock``)."""
    try:
        import fcntl
    except ImportError:  # Windows: no concurrent runs are expected there
        yield
        return
    fd = os.open(out, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def pending(out: Path) -> bool:
    """Whether a killed run left a decided (committed) set of files not yet moved into place."""
    return (out / STAGING / MANIFEST).is_file()


def recover(out: Path) -> None:
    """Finish a killed run that had committed, or discard one that had not."""
    staging = out / STAGING
    if pending(out):
        _apply(out, _read_manifest(out))
    if staging.exists():
        shutil.rmtree(staging)


def commit(out: Path, writes: Mapping[str, str], removals: Sequence[str]) -> None:
    """Write ``writes`` (path relative to ``out`` -> text) and remove ``removals``, all or
    nothing. Call with the folder locked and after :func:`recover`."""
    for rel in writes:
        _check_writable(out, rel, replace=True)
    for rel in removals:
        _check_writable(out, rel, replace=False)
    if not writes and not removals:
        return
    staging = where = out / STAGING
    manifest = {"write": list(writes), "remove": list(removals)}
    try:
        staging.mkdir()
        for rel, text in writes.items():
            where = out / rel  # what the error names: the file, not its staged copy
            (staging / rel).parent.mkdir(parents=True, exist_ok=True)
            with open(staging / rel, "w", encoding="utf-8", newline="\n") as handle:
                handle.write(text)
        where = staging
        (staging / f"{MANIFEST}.tmp").write_text(json.dumps(manifest), encoding="utf-8")
        os.replace(staging / f"{MANIFEST}.tmp", staging / MANIFEST)  # the run is decided here
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        reason = f"cannot write: {exc.strerror or exc}; nothing was changed"
        raise Failed(reason, file=str(where)) from None
    _apply(out, manifest)
    shutil.rmtree(staging)


def _apply(out: Path, manifest: Mapping[str, list[str]]) -> None:
    """Move the staged files into place and remove the files to remove: safe to repeat."""
    staging = out / STAGING
    for rel in manifest["write"]:
        staged = staging / rel
        if staged.is_file():  # else moved already, by a run killed after it
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            os.replace(staged, out / rel)
    for rel in manifest["remove"]:
        (out / rel).unlink(missing_ok=True)


def _read_manifest(out: Path) -> dict[str, list[str]]:
    """The manifest, its paths checked to stay inside ``out``."""
    path = out / STAGING / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        paths = [*manifest["write"], *manifest["remove"]]
    except (ValueError, KeyError, TypeError):
        reason = "not a manifest symopt wrote; remove the folder"
        raise Failed(reason, file=str(path.parent)) from None
    for rel in paths:
        parts = PurePosixPath(rel).parts if isinstance(rel, str) else ("..",)
        if not parts or ".." in parts or PurePosixPath(rel).is_absolute():
            raise Failed(f"the manifest names {rel!r}, outside the folder", file=str(path))
    return manifest


def _check_writable(out: Path, rel: str, *, replace: bool) -> None:
    """A usage error naming the file when it, or the folder it goes in, cannot be written."""
    path = out / rel
    if replace and path.exists() and not stat.S_IMODE(path.stat().st_mode) & 0o222:
        raise SpecError("cannot write: the file is read-only (make it writable)", file=str(path))
    folder = path.parent
    while not folder.exists() and not folder.is_symlink():
        folder = folder.parent
    if not folder.is_dir():
        raise SpecError(f"cannot write: {folder} is not a folder", file=str(path))
    if not os.access(folder, os.W_OK | os.X_OK):
        raise SpecError(f"cannot write: permission denied on the folder {folder}", file=str(path))
    if folder.stat().st_dev != out.stat().st_dev:  # files are moved into place by renaming
        raise SpecError(
            f"cannot write: {folder} is on another file system than {out}", file=str(path)
        )

"""Worker processes for the spec fuzz run: each runs one spec at a time (``fuzz_specs.run_spec``)
under a hard wall-clock limit, so a hang is killed (with its compilers) and reported, and the
generated packages of one spec never meet another's."""

from __future__ import annotations

import faulthandler
import multiprocessing
import os
import signal
import tempfile
import time
from dataclasses import asdict
from multiprocessing.connection import Connection, wait
from pathlib import Path

from fuzz_specs import Outcome, run_spec, setup_environment


def stack_file(pid: int) -> Path:
    """Where worker ``pid`` writes its threads' stacks on SIGUSR1 (what a hang was doing)."""
    return Path(tempfile.gettempdir()) / f"symopt_fuzz_stacks_{pid}.txt"


def _worker(conn: Connection) -> None:
    """Run specs sent over ``conn`` until it closes; its own process group, so a hang is killed
    with its compilers. SIGUSR1 dumps every thread's stack to :func:`stack_file`."""
    os.setpgrp()
    setup_environment()
    stacks = stack_file(os.getpid()).open("w")
    faulthandler.register(signal.SIGUSR1, stacks, all_threads=True)
    import jax  # noqa: F401 - imported once, not per spec
    import optax  # noqa: F401
    import torch

    import symopt.pipeline  # noqa: F401

    torch.set_num_threads(1)
    while True:
        try:
            seed, text = conn.recv()
        except EOFError:
            return
        with tempfile.TemporaryDirectory(prefix="symopt_fuzz_") as work:
            outcome = run_spec(text, Path(work), seed)
        conn.send(asdict(outcome))


class Pool:
    """Worker processes that run one spec each at a time under a hard wall-clock limit: a spec
    past it is a ``hang``, its worker killed and replaced. Workers are replaced after
    ``recycle`` specs, so what a spec leaks (JAX caches, loaded C libraries) stays bounded. The
    workers live until :meth:`close` (a context manager), so several runs share them."""

    def __init__(self, jobs: int = 1, limit: float = 180.0, recycle: int = 50) -> None:
        self.context = multiprocessing.get_context("spawn")
        self.jobs, self.limit, self.recycle = jobs, limit, recycle
        self.workers: list[dict] = []

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *_) -> None:
        self.close()

    def close(self) -> None:
        for w in self.workers:
            self._stop(w)
        self.workers = []

    def _start(self) -> dict:
        parent, child = self.context.Pipe()
        process = self.context.Process(target=_worker, args=(child,), daemon=True)
        process.start()
        child.close()
        return {"process": process, "conn": parent, "done": 0, "task": None, "since": 0.0}

    @staticmethod
    def _stop(worker: dict) -> None:
        """Kill the worker's process group (its compilers too)."""
        worker["conn"].close()
        try:
            os.killpg(worker["process"].pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            worker["process"].kill()
        worker["process"].join(timeout=30)
        stack_file(worker["process"].pid).unlink(missing_ok=True)

    def _result(self, w: dict, ready: list) -> Outcome | None:
        """The worker's outcome if it has one (or ran past the limit), else None."""
        if w["conn"] in ready:
            try:
                return Outcome(**w["conn"].recv())
            except (EOFError, OSError):
                return Outcome("foreign exception", "worker", "the worker process died")
        if time.monotonic() - w["since"] > self.limit:
            why = f"no result within {self.limit:g} s; the worker's stacks:\n{self._stacks(w)}"
            return Outcome("hang", "running", why, self.limit)
        return None

    @staticmethod
    def _stacks(worker: dict) -> str:
        """What a hung worker is doing: its threads' stacks (faulthandler, on SIGUSR1)."""
        path = stack_file(worker["process"].pid)
        try:
            os.kill(worker["process"].pid, signal.SIGUSR1)
            time.sleep(2.0)
            return path.read_text(errors="replace")[-6000:]
        except OSError as exc:
            return f"(none: {exc})"

    def run(self, tasks):
        """Yield (task, Outcome) for each ``task = (key, seed, text)``, in completion order."""
        pending = iter(tasks)
        while len(self.workers) < self.jobs:
            self.workers.append(self._start())
        busy = 0
        try:
            while True:
                for w in self.workers:
                    task = next(pending, None) if w["task"] is None else None
                    if task is not None:
                        w["task"], w["since"] = task, time.monotonic()
                        w["conn"].send((task[1], task[2]))
                        busy += 1
                if not busy:
                    return
                ready = wait([w["conn"] for w in self.workers if w["task"] is not None], 1.0)
                for i, w in enumerate(self.workers):
                    outcome = self._result(w, ready) if w["task"] is not None else None
                    if outcome is None:
                        continue
                    task, w["task"], busy = w["task"], None, busy - 1
                    w["done"] += 1
                    if outcome.stage in ("running", "worker") or w["done"] >= self.recycle:
                        self._stop(w)
                        self.workers[i] = self._start()
                    yield task, outcome
        finally:  # abandoned with specs in flight: those workers cannot be reused
            for i, w in enumerate(self.workers):
                if w["task"] is not None:
                    self._stop(w)
                    self.workers[i] = self._start()

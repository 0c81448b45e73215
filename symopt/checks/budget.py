"""A time and memory budget for each check: a spec can make SymPy compute for hours (a deep
``exp`` tower) or grow a number until memory runs out (``exp(exp(exp(g)))`` evaluated at a
point), and a check that does not finish must say so, not hang or crash the run.

The budget is a ``SIGALRM`` timer that ticks every :data:`TICK` seconds: each tick compares the
clock with the deadline and the process's resident memory with the ceiling, so the normal path
costs a few system calls a second and no process. It raises :class:`CheckTimeout` or
:class:`CheckOutOfMemory`, both :class:`OverBudget`, a ``BaseException``: no ``except Exception``
inside a check (or SymPy) can swallow it. One huge allocation fails at once with a
``MemoryError``, which the check runner reports the same way. The timer needs the main thread
of a POSIX process (the CLI, a check worker process, pytest); elsewhere checks run without a
budget. A tick that lands inside a garbage collection waits for the next one: an exception
raised there (in a finaliser or another library's gc callback, such as JAX's) cannot reach the
check and would only be printed as "ignored".
"""

from __future__ import annotations

import gc
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")

#: Seconds one claim of a check may take; ``SYMOPT_CHECK_SECONDS`` overrides it (0: no budget).
#: The slowest built-in claim takes about 7 s (block_newton, on a 2-core machine).
DEFAULT_SECONDS = 60.0
ENVIRONMENT = "SYMOPT_CHECK_SECONDS"
#: Megabytes of memory one claim may add to the process; ``SYMOPT_CHECK_MEMORY_MB`` overrides
#: it (0: no limit). The built-in claims add at most a few tens of megabytes.
DEFAULT_MEGABYTES = 2048.0
MEMORY_ENVIRONMENT = "SYMOPT_CHECK_MEMORY_MB"
#: Seconds between two looks at the clock and the memory.
TICK = 0.1
_STATM = "/proc/self/statm"


class OverBudget(BaseException):
    """A check ran past its budget (a signal, like ``KeyboardInterrupt``)."""


class CheckTimeout(OverBudget):
    """A check ran past its time budget."""


class CheckOutOfMemory(OverBudget):
    """A check grew the process past its memory budget."""


class _Expired(BaseException):  # noqa: N818 - a signal, like KeyboardInterrupt
    """An :func:`attempt` ran past its own limit."""


#: How many :func:`budget` bodies are running (0 or 1: the check runner does not nest them).
_active = 0
#: Whether a garbage collection runs: set by the first gc callback, cleared by the last.
_collecting = False


def _collection_starts(phase: str, _info: dict) -> None:
    global _collecting
    if phase == "start":
        _collecting = True


def _collection_stops(phase: str, _info: dict) -> None:
    global _collecting
    if phase == "stop":
        _collecting = False


def _watch_collections() -> None:
    """Put the callbacks that tell whether a collection runs first and last among the gc
    callbacks (libraries add theirs when imported); called where no collection runs."""
    for callback in (_collection_starts, _collection_stops):
        while callback in gc.callbacks:
            gc.callbacks.remove(callback)
    gc.callbacks.insert(0, _collection_starts)
    gc.callbacks.append(_collection_stops)


def _setting(name: str, default: float) -> float:
    text = os.environ.get(name, "").strip()
    try:
        value = float(text) if text else default
    except ValueError:
        return default
    return value if value > 0 and math.isfinite(value) else 0.0


def seconds() -> float:
    """The time budget in seconds (0: none), from ``SYMOPT_CHECK_SECONDS`` if set."""
    return _setting(ENVIRONMENT, DEFAULT_SECONDS)


def megabytes() -> float:
    """The memory budget in megabytes (0: none), from ``SYMOPT_CHECK_MEMORY_MB`` if set."""
    return _setting(MEMORY_ENVIRONMENT, DEFAULT_MEGABYTES)


def resident_bytes() -> int | None:
    """The process's resident memory now (None where ``/proc`` does not say)."""
    try:
        with open(_STATM, "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _can_alarm() -> bool:
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


@contextmanager
def budget(limit: float, memory_mb: float | None = None) -> Iterator[None]:
    """Raise :class:`CheckTimeout` in the body after ``limit`` seconds, and
    :class:`CheckOutOfMemory` once it has added more than ``memory_mb`` megabytes (default
    :func:`megabytes`) to the resident memory. An outer timer (one of pytest's, say) is put back
    afterwards with what was left of it."""
    memory_mb = megabytes() if memory_mb is None else memory_mb
    start_bytes = resident_bytes() if memory_mb > 0 else None
    if (limit <= 0 and start_bytes is None) or not _can_alarm():
        yield
        return
    start = time.monotonic()
    deadline = start + limit if limit > 0 else math.inf
    ceiling = math.inf if start_bytes is None else start_bytes + memory_mb * 2**20

    _watch_collections()

    def tick(_signum: int, _frame: object) -> None:
        if _collecting:
            return  # the next tick raises
        if time.monotonic() >= deadline:
            raise CheckTimeout
        if (resident_bytes() or 0) > ceiling:
            raise CheckOutOfMemory

    global _active
    previous = signal.signal(signal.SIGALRM, tick)
    first = min(limit, TICK) if limit > 0 else TICK
    outer, _ = signal.setitimer(signal.ITIMER_REAL, first, TICK)
    _active += 1
    try:
        yield
    finally:
        _active -= 1
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer > 0:
            signal.setitimer(signal.ITIMER_REAL, max(outer - (time.monotonic() - start), 1e-3))


def attempt(limit: float, work: Callable[[], T], default: T) -> T:
    """``work()``, or ``default`` once it has run ``limit`` seconds: for work a check can do
    without (a simpler form for a message, one more way to a proof) that SymPy may spend hours
    on. Inside a :func:`budget` it rides on that budget's ticks, and the budget still stops the
    claim; elsewhere (no timer, or not the main thread) ``work`` runs unbounded."""
    if limit <= 0 or not _active or not _can_alarm():
        return work()
    deadline = time.monotonic() + limit
    outer = signal.getsignal(signal.SIGALRM)
    _watch_collections()
    running = [True]

    def tick(signum: int, frame: object) -> None:
        if callable(outer):
            outer(signum, frame)  # the claim's own budget comes first
        if running[0] and not _collecting and time.monotonic() >= deadline:
            raise _Expired

    signal.signal(signal.SIGALRM, tick)
    try:
        try:
            return work()
        finally:
            running[0] = False  # from here on no tick raises _Expired
    except _Expired:
        return default
    finally:
        signal.signal(signal.SIGALRM, outer)

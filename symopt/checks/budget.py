"""A wall-clock budget for each check: a spec can make SymPy compute for hours (``t_start``
large, a deep ``exp`` tower), and a check that does not finish must say so, not hang the run.

The budget is a ``SIGALRM`` timer, so the normal path costs two system calls and no process.
It raises :class:`CheckTimeout`, a ``BaseException``: no ``except Exception`` inside a check
(or SymPy) can swallow it. It needs the main thread of a POSIX process (the CLI, a check worker
process, pytest); elsewhere checks run without a budget.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

#: Seconds one claim of a check may take; ``SYMOPT_CHECK_SECONDS`` overrides it (0: no budget).
#: Built-in claims take from milliseconds to about a minute.
DEFAULT_SECONDS = 300.0
ENVIRONMENT = "SYMOPT_CHECK_SECONDS"


class CheckTimeout(BaseException):  # noqa: N818 - a signal, like KeyboardInterrupt
    """A check ran past its budget."""


def seconds() -> float:
    """The budget in seconds (0: none), from ``SYMOPT_CHECK_SECONDS`` if set."""
    text = os.environ.get(ENVIRONMENT, "").strip()
    try:
        value = float(text) if text else DEFAULT_SECONDS
    except ValueError:
        return DEFAULT_SECONDS
    return value if value > 0 and value == value else 0.0


def _can_alarm() -> bool:
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


@contextmanager
def budget(limit: float) -> Iterator[None]:
    """Raise :class:`CheckTimeout` in the body after ``limit`` seconds; an outer timer (one of
    pytest's, say) is put back afterwards with what was left of it."""
    if limit <= 0 or not _can_alarm():
        yield
        return

    def expire(_signum: int, _frame: object) -> None:
        raise CheckTimeout

    previous = signal.signal(signal.SIGALRM, expire)
    outer, _ = signal.setitimer(signal.ITIMER_REAL, limit)
    start = time.monotonic()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer > 0:
            signal.setitimer(signal.ITIMER_REAL, max(outer - (time.monotonic() - start), 1e-3))

"""The error types for bad input (usage errors, exit 2) and for work that failed on valid input
(exit 1): each always names where the problem is."""

from __future__ import annotations


class SpecError(ValueError):
    """A problem in a spec (or other user input), located by file and key.

    The message is one line, ``FILE: KEY: REASON``, so the CLI can print it as is.
    """

    def __init__(self, reason: str, *, file: str | None = None, key: str | None = None):
        self.reason = reason
        self.file = file
        self.key = key
        super().__init__(self._message())

    def _message(self) -> str:
        parts = [p for p in (self.file, self.key) if p]
        return ": ".join([*parts, " ".join(self.reason.split())])

    def located(self, *, file: str | None = None, key: str | None = None) -> SpecError:
        """The same error with a file/key filled in where it was missing."""
        return SpecError(self.reason, file=self.file or file, key=self.key or key)


class Unsupported(SpecError):
    """A request the tool cannot serve as asked (a target that cannot generate a spec, an
    unknown target): a usage error, exit 2."""


class Failed(SpecError):
    """Valid input whose work failed (a check fails, a file was edited by hand, a tool is
    missing): exit 1, where a usage error (any other ``SpecError``) exits 2."""

"""One check's verdict and how it was shown."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    method: str  # "symbolic", "sampled", or "-" when the check could not run
    detail: str = ""
    seconds: float = 0.0

    @property
    def status(self) -> str:
        return "pass" if self.passed else "FAIL"

"""One check's verdict and how it was shown."""

from __future__ import annotations

from dataclasses import dataclass

from symopt.checks.prove import NOT_SHOWN

#: The method of a claim that ran past its time budget (:mod:`symopt.checks.budget`): a failure.
TIMEOUT = "timeout"


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    method: str  # "symbolic", "sampled", "not shown", "timeout", or "-" when it could not run
    detail: str = ""  # for a failure, what failed; for "not shown", the one-line reason
    seconds: float = 0.0
    #: The variant of a spec with flags it was run on, in words ("amsgrad"); its name starts
    #: with it in brackets. "" for the default variant and for a spec without flags.
    variant: str = ""

    @property
    def claim(self) -> str:
        """The name without the variant: what was checked."""
        return self.name.removeprefix(f"[{self.variant}] ") if self.variant else self.name

    @property
    def not_shown(self) -> bool:
        """Neither shown nor refuted: does not fail ``symopt check``, and is never a pass."""
        return self.method == NOT_SHOWN

    @property
    def failed(self) -> bool:
        return not self.passed and not self.not_shown

    @property
    def status(self) -> str:
        if self.not_shown:
            return "----"
        return "pass" if self.passed else "FAIL"

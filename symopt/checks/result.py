"""One check's verdict and how it was shown."""

from __future__ import annotations

from dataclasses import dataclass

from symopt.checks import budget
from symopt.checks.prove import NOT_SHOWN

#: The method of a claim that ran past its time budget (:mod:`symopt.checks.budget`): a failure.
TIMEOUT = "timeout"
#: The method of a claim that ran out of memory, or past its memory budget: a failure.
OUT_OF_MEMORY = "memory"
#: Claims that did not finish: another run, with a larger budget, may decide them.
OVER_BUDGET = (TIMEOUT, OUT_OF_MEMORY)
#: SymPy's messages for a comparison of a value that is no real number (``zoo > 0``, NaN).
NOT_ORDERED = ("Invalid comparison of non-real", "is not comparable", "Invalid NaN comparison")
UNDECIDED = "cannot determine truth value of Relational"


class UndefinedValue(ArithmeticError):
    """A step compares (in ``where``, ``max``, ...) a value that is no real number: infinite
    (a division by 0), NaN or complex. Exact arithmetic cannot order it where floats would."""


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    #: "symbolic", "sampled", "not shown", "timeout", "memory", or "-" when it could not run
    method: str
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

    @property
    def over_budget(self) -> bool:
        """Stopped by its time or memory budget: no verdict to remember."""
        return self.method in OVER_BUDGET


def unfinished(name: str, exc: BaseException, later: str = "") -> CheckResult:
    """The honest row for a claim that raised instead of answering: over its time or memory
    budget, a question SymPy cannot decide ("not shown", with the reason), or, for an error of
    symopt itself, "could not run". ``later`` is added to a budget's message (the claims after
    it did not run either)."""
    text = str(exc)
    if isinstance(exc, budget.CheckTimeout):
        limit = f"{budget.seconds():g} s"
        detail = f"did not finish within {limit}{later}; {budget.ENVIRONMENT} sets the budget"
        return CheckResult(name, False, TIMEOUT, detail)
    if isinstance(exc, budget.CheckOutOfMemory):
        size = f"{budget.megabytes():g} MB"
        detail = (
            f"used more than {size} of memory{later}; {budget.MEMORY_ENVIRONMENT} sets the budget"
        )
        return CheckResult(name, False, OUT_OF_MEMORY, detail)
    if isinstance(exc, MemoryError):  # one allocation too large for the machine
        detail = f"ran out of memory: a value grew too large to hold{later}"
        return CheckResult(name, False, OUT_OF_MEMORY, detail)
    if isinstance(exc, UndefinedValue):
        return CheckResult(name, False, NOT_SHOWN, text)
    if isinstance(exc, (TypeError, ValueError)) and any(m in text for m in NOT_ORDERED):
        why = "a value came out infinite, NaN or complex where the step compares it"
        return CheckResult(name, False, NOT_SHOWN, f"{why}, which exact arithmetic cannot order")
    if isinstance(exc, TypeError) and UNDECIDED in text:
        condition = text.split(":", 1)[1].strip()
        return CheckResult(name, False, NOT_SHOWN, f"SymPy cannot decide {_short(condition)}")
    if isinstance(exc, RecursionError):
        return CheckResult(name, False, NOT_SHOWN, "an expression too deeply nested for SymPy")
    return CheckResult(name, False, "-", f"could not run: {type(exc).__name__}: {text}")


def _short(text: str, limit: int = 200) -> str:
    """A condition as a one-line message shows it: long ones cut."""
    return text if len(text) <= limit else text[: limit - 3] + "..."

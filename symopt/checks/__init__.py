"""Checks: each is ``Spec -> list[CheckResult]`` and says how it was shown (symbolic or sampled)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping

from symopt.checks import generic, properties, relations, second_order
from symopt.checks.result import CheckResult
from symopt.spec import Spec

Check = Callable[[Spec, Mapping[str, Spec]], Iterable[CheckResult]]


def all_checks(spec: Spec) -> list[Check]:
    if getattr(spec, "kind", None) == "second_order":
        return list(second_order.CHECKS)
    return [*generic.CHECKS, *relations.CHECKS, *properties.CHECKS]


def run_checks(spec: Spec, others: Mapping[str, Spec]) -> list[CheckResult]:
    """Every generic check plus the relations and properties the spec declares."""
    results: list[CheckResult] = []
    for check in all_checks(spec):
        for result in _timed(check, spec, others):
            results.append(result)
    return results


def _timed(check: Check, spec: Spec, others: Mapping[str, Spec]) -> list[CheckResult]:
    start = time.perf_counter()
    try:
        out = list(check(spec, others))
    except Exception as exc:  # noqa: BLE001 - a user's spec must never crash the whole run
        name = getattr(check, "__name__", "check").replace("_", " ")
        out = [CheckResult(name, False, "-", f"could not run: {type(exc).__name__}: {exc}")]
    per = (time.perf_counter() - start) / max(1, len(out))
    return [CheckResult(r.name, r.passed, r.method, r.detail, per) for r in out]

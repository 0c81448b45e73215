"""Checks: each is ``Spec -> list[CheckResult]`` and says how it was shown (symbolic or sampled),
or that it was not shown (a claim about constructs the one-coordinate model cannot decide).

:func:`check_specs` is what the pipeline calls: every spec is checked once per digest (its text,
the texts of the specs its relations name, and the source of symopt itself), remembered in memory
and on disk, and the specs that were not checked before run in parallel processes.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Mapping, Sequence

from symopt.checks import budget, generic, line_search, properties, relations, second_order
from symopt.checks.cache import CheckCache, run_portable
from symopt.checks.result import CheckResult, unfinished
from symopt.spec import AnySpec, Spec
from symopt.spec.family import variant_label, variants

Check = Callable[[Spec, Mapping[str, Spec]], Iterable[CheckResult]]


def all_checks(spec: AnySpec) -> list[Check]:
    if spec.kind == "second_order":
        return [*second_order.CHECKS, *line_search.CHECKS]
    return [*generic.CHECKS, *relations.CHECKS, *properties.CHECKS]


def run_checks(spec: AnySpec, others: Mapping[str, AnySpec]) -> list[CheckResult]:
    """Every generic check plus the relations and properties the spec declares (uncached); for
    a spec with flags, the generic checks of every variant, each named by its setting."""
    results: list[CheckResult] = []
    for one in variants(spec) if spec.kind == "elementwise" else [spec]:
        label = variant_label(one)
        for check in all_checks(one):
            for r in _timed(check, one, others):
                if label:
                    r = dataclasses.replace(r, name=f"[{label}] {r.name}", variant=label)
                results.append(r)
    return results


def check_specs(
    specs: Sequence[AnySpec],
    known: Mapping[str, AnySpec],
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, list[CheckResult]]:
    """Every spec's check results by spec name, each computed once per digest."""
    return _CACHE.results(specs, known, progress)


def failures(results: Mapping[str, Sequence[CheckResult]]) -> list[str]:
    """``NAME: check`` for every failed check, in order ("not shown" is no failure)."""
    return [f"{name}: {r.name}" for name, rs in results.items() for r in rs if r.failed]


def _timed(check: Check, spec: AnySpec, others: Mapping[str, AnySpec]) -> list[CheckResult]:
    """The check's results, each claim under the time and memory budget; a claim past it, or
    one that raises, ends the check with an honest row (:func:`unfinished`)."""
    start, limit = time.perf_counter(), budget.seconds()
    name = getattr(check, "__name__", "check").replace("_", " ")
    out: list[CheckResult] = []
    try:
        claims = iter(check(spec, others))
        while True:
            with budget.budget(limit):
                result = next(claims, None)
            if result is None:
                break
            out.append(result)
    except (budget.OverBudget, Exception) as exc:  # noqa: BLE001 - a spec must never crash the run
        out.append(unfinished(name, exc, " (and the claims after it)" if out else ""))
    per = (time.perf_counter() - start) / max(1, len(out))
    return [CheckResult(r.name, r.passed, r.method, r.detail, per) for r in out]


def _job(text: str, source: str, others: dict[str, tuple[str, str]]) -> list[CheckResult]:
    """:func:`run_checks` in a worker process."""
    return run_portable(run_checks, text, source, others)


_CACHE = CheckCache(run_checks, _job)

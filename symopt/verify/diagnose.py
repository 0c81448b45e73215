"""Explaining a difference: variants of the spec (:mod:`symopt.variants`) replayed on the
implementation's trajectories, reported only when one explains it.

The search, simplest explanation first: every single rule; then every rule with a fitted constant
(an initial accumulator, a learning-rate decay, a weight decay, NAdam's psi, a hyperparameter at
another value), fitted on a log scale and then rounded to the fewest digits that still fit; then
pairs of the most promising rules. A variant *explains* the difference when it reproduces the
implementation within the tolerance everywhere and cuts the largest error/tolerance ratio by at
least ``EXPLAINS``; otherwise the difference is "unexplained" and the breakdown says which
quantity differs, on which streams and sizes, from which step, and where the gradient was zero.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np

from symopt.fitted_variants import Fitted, fitted_variants
from symopt.spec import Spec
from symopt.variants import apply, variants
from symopt.verify.comparison import (
    GroupStepper,
    QuantityStats,
    Trace,
    reference_grads,
    scaled_error,
)

#: A variant explains a difference when it cuts the error/tolerance ratio by this factor (and
#: leaves it within the tolerance).
EXPLAINS = 100.0
#: Pairs are formed from this many of the best single rules.
PAIR_CANDIDATES = 6
#: Steps of a trace replayed past its first failure (the long case is not replayed whole).
PAST_FAILURE = 30
#: Traces (those that fail first) a candidate is screened on before it is confirmed on all.
SCREEN = 2
#: Steps past the first failure a constant is fitted on.
FIT_PAST = 10


@dataclass
class Diagnosis:
    explained: bool
    rules: tuple[str, ...]  # the explaining variant's rules; () when unexplained
    description: str
    #: The variant's largest error/tolerance ratio (<= 1: within the tolerance), and how many
    #: times smaller it is than the spec's.
    ratio: float = math.inf
    factor: float = 1.0
    fitted: dict[str, float] = field(default_factory=dict)
    breakdown: list[str] = field(default_factory=list)


@dataclass
class _Candidate:
    rules: tuple[str, ...]
    description: str
    spec: Spec
    hyper: dict[str, float]  # overrides (fitted constants)
    fitted: dict[str, float]
    ratio: float = math.inf
    excess: float = math.inf  # mean log10 of the ratio above 1: how much is left unexplained


def replay(
    spec: Spec,
    traces: list[Trace],
    overrides: dict[str, float],
    bail: float = math.inf,
    past: int = PAST_FAILURE,
):
    """(largest error/tolerance ratio, mean log10 excess) of ``spec`` against the traces, up to
    ``past`` steps after each one's first failure; stops early once the ratio passes ``bail``."""
    worst, excess, count = 0.0, 0.0, 0
    for trace in traces:
        scales: dict = {}
        groups: dict[int, list] = {}
        for key in trace.w0:
            groups.setdefault(key[0], []).append(key)
        steppers = {}
        with np.errstate(all="ignore"):
            for i, keys in groups.items():
                hyper = {**trace.hyper[i], **_group(overrides, trace, i)}
                try:
                    steppers[i] = GroupStepper(spec, [trace.w0[k] for k in keys], hyper)
                except (ValueError, ZeroDivisionError, OverflowError):
                    return math.inf, math.inf
        for k in range(_horizon(trace, past)):
            for i, keys in groups.items():
                given = [trace.grads[k][key] for key in keys]
                steppers[i].step(reference_grads(trace.case, steppers[i], given, trace.sign))
                params, states = steppers[i].params(), steppers[i].states()
                for n, key in enumerate(keys):
                    tols = trace.tolerances[k][key]
                    mine = {"w": trace.params[k][key], **trace.states[k][key]}
                    for name, actual in mine.items():
                        expected = params[n] if name == "w" else states[n].get(name)
                        if expected is None or expected.shape != actual.shape:
                            continue
                        err, _, _ = scaled_error(scales, (key, name), actual, expected)
                        ratio = err / tols[name]
                        worst = max(worst, ratio)
                        excess += math.log10(ratio) if ratio > 1 else 0.0
                        count += 1
            if worst > bail:
                return worst, math.inf
    return worst, (excess / count if count else 0.0)


def _group(overrides: dict[str, float], trace: Trace, i: int) -> dict[str, float]:
    """A fitted constant in group ``i``: a fitted lr keeps the group's ratio to group 0's."""
    out = dict(overrides)
    if "lr" in out and trace.hyper[0].get("lr"):
        out["lr"] *= trace.hyper[i]["lr"] / trace.hyper[0]["lr"]
    return out


def _horizon(trace: Trace, past: int) -> int:
    steps = len(trace.params)
    if trace.first_failure is None:
        return min(steps, 2 * PAST_FAILURE)
    return min(steps, trace.first_failure + past)


def diagnose(
    spec: Spec,
    traces: list[Trace],
    quantities: dict[str, QuantityStats],
    extra: dict[str, float],
) -> Diagnosis:
    """The variant that explains the implementation's difference, or "unexplained"."""
    failing = [t for t in traces if t.first_failure is not None]
    base, _ = replay(spec, traces, {})
    breakdown = describe(quantities, failing, traces)
    if not failing or base <= 1:
        return Diagnosis(False, (), "unexplained", base, 1.0, {}, breakdown)
    screen = sorted(failing, key=lambda t: t.first_failure)[:SCREEN]
    best: _Candidate | None = None
    singles = []
    for v in variants(spec, extra):
        c = _Candidate((v.name,), v.description, v.spec, {}, {})
        c.ratio, c.excess = replay(v.spec, screen, {})
        singles.append(c)
    best = _confirmed(singles, traces, base)
    fitted = fitted_variants(spec, extra)
    if best is None:  # the implementation's own defaults, and common values, first
        guessed = [_guessed(f, screen[:1]) for f in fitted]
        best = _confirmed([g for g in guessed if g is not None], traces, base)
    if best is None:
        fits = [_fit(f, screen[:1]) for f in fitted]
        fits = [f for f in fits if f is not None]
        best = _confirmed(fits, traces, base)
        singles += fits
    if best is None:
        best = _confirmed(_pairs(singles, screen[:1]), traces, base)
    if best is None:
        return Diagnosis(False, (), "unexplained", base, 1.0, {}, breakdown)
    description = best.description
    for value in best.fitted.values():
        description = description.replace("{value}", f"{value:.6g}")
    return Diagnosis(
        True, best.rules, description, best.ratio, base / max(best.ratio, 1e-300), best.fitted
    )


def _confirmed(candidates: list[_Candidate], traces, base: float) -> _Candidate | None:
    """The best candidate within the tolerance on the screening traces that stays within it on
    every trace and cuts the spec's ratio by ``EXPLAINS`` (a difference less than that many
    times its tolerance only needs to come within it)."""
    for c in sorted(candidates, key=lambda c: c.ratio):
        if c.ratio > 1:
            return None
        ratio, _ = replay(c.spec, traces, c.hyper, bail=1.0)
        if ratio <= 1 and base / max(ratio, 1e-300) >= min(EXPLAINS, base):
            c.ratio = ratio
            return c
    return None


def _guessed(f: Fitted, screen: list[Trace]) -> _Candidate | None:
    """``f`` at the best of its guesses (the implementation's defaults, common values)."""
    best = None
    for c in f.guesses:
        if c >= 0 and (not f.unit or 0 < c < 1):
            cand = _Candidate((f.name,), f.description, f.spec, {f.constant: c}, {f.key: c})
            cand.ratio, cand.excess = replay(f.spec, screen, cand.hyper)
            if best is None or cand.ratio < best.ratio:
                best = cand
    return best


def _fit(f: Fitted, screen: list[Trace]) -> _Candidate | None:
    """Fit ``f``'s constant on the screening traces (a few steps past their first failure): a
    log-spaced grid (given up when no point improves on the spec), a bounded refinement around
    its best point, then the value rounded to the fewest significant digits that fit as well."""
    from scipy.optimize import minimize_scalar

    def value(x: float) -> float:
        return 1.0 - 10.0**x if f.unit else 10.0**x

    def score(c: float) -> float:
        ratio, _ = replay(f.spec, screen, {f.constant: c}, past=FIT_PAST)
        return math.log10(ratio) if ratio > 0 and math.isfinite(ratio) else 300.0

    ratio, _ = replay(f.spec, screen, {}, past=FIT_PAST)  # the constant at 0: the spec
    grid = np.linspace(-8, -1, 8) if f.unit else np.linspace(-12, 0, 9)
    scores = [score(value(x)) for x in grid]
    i = int(np.argmin(scores))
    if not scores[i] < math.log10(max(ratio, 1e-300)) - 0.01:
        return None
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
    result = minimize_scalar(
        lambda x: score(value(x)),
        bounds=(lo, hi),
        method="bounded",
        options={"xatol": 1e-6, "maxiter": 30},
    )
    tried = {value(result.x): result.fun}
    for digits in (1, 2, 3):
        rounded = float(f"{value(result.x):.{digits - 1}e}")
        if rounded > 0 and (not f.unit or rounded < 1):
            tried[rounded] = score(rounded)
    best = min(tried.values())
    # the shortest value that fits as well as the best (within a factor of 2 of its ratio)
    c = next(v for v in sorted(tried, key=lambda v: len(repr(v))) if tried[v] <= best + 0.3)
    cand = _Candidate((f.name,), f.description, f.spec, {f.constant: c}, {f.key: c})
    cand.ratio, cand.excess = replay(f.spec, screen, cand.hyper)
    return cand


def _pairs(singles: list[_Candidate], screen: list[Trace]) -> list[_Candidate]:
    """Two rules at once, from the candidates that explain the most (lowest mean excess): the
    plain rule rewrites the other's spec (which keeps its fitted constant, if any)."""
    ranked = sorted(singles, key=lambda c: (c.excess, c.ratio))[:PAIR_CANDIDATES]
    out = []
    for a, b in itertools.combinations(ranked, 2):
        if a.fitted and b.fitted:
            continue
        base, rule = (a, b) if a.fitted or not b.fitted else (b, a)
        spec = apply(base.spec, rule.rules[0])
        if spec is None:
            continue
        c = _Candidate(
            (*base.rules, *rule.rules),
            f"{base.description}; and {rule.description}",
            spec,
            dict(base.hyper),
            dict(base.fitted),
        )
        c.ratio, c.excess = replay(spec, screen, c.hyper)
        out.append(c)
    return out


def describe(quantities: dict[str, QuantityStats], failing: list[Trace], traces) -> list[str]:
    """Which quantity differs, on which streams and sizes, from which step, where g is zero."""
    lines = []
    for name, q in sorted(quantities.items(), key=lambda kv: kv[1].first_step or 0):
        where = (
            "only where the gradient is 0"
            if q.at_nonzero_gradient == 0
            else "only where the gradient is not 0"
            if q.at_zero_gradient == 0
            else f"where the gradient is 0 ({q.at_zero_gradient}) and where not "
            f"({q.at_nonzero_gradient})"
        )
        lines.append(
            f"{name} differs from step {q.first_step} (largest relative difference "
            f"{q.worst:.1e}) on the {', '.join(sorted(q.streams))} stream(s), in tensors of "
            f"{', '.join(str(s) for s in sorted(q.sizes))} elements of parameter group(s) "
            f"{', '.join(str(g + 1) for g in sorted(q.groups))}, {where}"
        )
    if quantities and not failing:
        largest = max((w.size for t in traces for w in t.w0.values()), default=0)
        lines.append(
            f"the tensors of up to {largest} elements agree: it differs only on the large tensor"
        )
    return lines

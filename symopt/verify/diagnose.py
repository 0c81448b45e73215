"""Explaining a mismatch: every variant of the spec (:mod:`symopt.variants`) is run on the same
gradients, and the one closest to the implementation is named."""

from __future__ import annotations

import math
from dataclasses import dataclass

from symopt.variants import variants
from symopt.verify.comparison import compare, initial, reference_run, seeded


@dataclass
class Diagnosis:
    variant: str
    description: str
    error: float
    exact: bool  # matched to the tolerance


def closest_variant(
    spec, runs, hyper, extra, steps, tol, match, sign: float = 1.0
) -> Diagnosis | None:
    best: Diagnosis | None = None
    numeric_extra = {k: float(v) for k, v in extra.items() if isinstance(v, (int, float))}
    for variant in variants(spec, numeric_extra):
        vhyper = {
            **hyper,
            **{
                h.name: numeric_extra[h.name]
                for h in variant.spec.hypers
                if h.name in numeric_extra
            },
        }
        worst = 0.0
        for run in runs:
            w0 = initial(run)
            params, states = reference_run(variant.spec, seeded(run), w0, vhyper, steps, sign)
            err, _ = compare(run, params, states, tol)
            worst = max(worst, err)
            if best is not None and worst >= best.error:
                break
        if not math.isfinite(worst):
            continue
        if best is None or worst < best.error:
            best = Diagnosis(variant.name, variant.description, worst, worst <= match)
    return best

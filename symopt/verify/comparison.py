"""Runs of an implementation and of the reference stepper on the same gradients, compared step
by step (relative to the largest value seen so far)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from symopt.reference import ReferenceStepper
from symopt.spec import Spec
from symopt.verify.streams import PARAMETER_DEPENDENT, STREAMS


@dataclass
class Run:
    stream: str
    seed: int
    shape: tuple[int, ...]
    params: list[np.ndarray] = field(default_factory=list)  # after each step
    states: list[dict[str, np.ndarray]] = field(default_factory=list)
    grads: list[np.ndarray] = field(default_factory=list)  # given to the implementation


@dataclass
class Difference:
    stream: str
    seed: int
    shape: tuple[int, ...]
    step: int
    quantity: str  # "w" or a state name
    index: tuple[int, ...]
    implementation: float
    reference: float
    relative: float


def _error(actual: np.ndarray, expected: np.ndarray, scale: float) -> tuple[float, tuple]:
    with np.errstate(all="ignore"):
        diff = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
    same = (actual == expected) | (np.isnan(actual) & np.isnan(expected))  # inf == inf too
    diff = np.where(same, 0.0, diff)
    diff = np.where(np.isnan(diff), np.inf, diff)
    index = np.unravel_index(int(np.argmax(diff)), diff.shape) if diff.size else ()
    worst = float(diff[index]) if diff.size else 0.0
    return (worst / scale if scale > 0 else worst), tuple(int(i) for i in index)


def reference_run(
    spec: Spec, run: Run, w0, hyper, steps: int, sign: float = 1.0
) -> tuple[list, list]:
    """The reference on the run's gradients, times ``sign``: -1 for an implementation that
    maximizes. A parameter-dependent stream is the gradient of a function f to minimize; such an
    implementation is given that of -f (see :func:`~symopt.verify.run.verify`), so the
    reference takes the gradient of f as it is, and both descend f."""
    ref = ReferenceStepper(spec, [w0], **hyper)
    params, states = [], []
    rng = np.random.default_rng(run.seed)
    for k in range(steps):
        if run.stream in PARAMETER_DEPENDENT:
            g = STREAMS[run.stream](rng, run.shape, k, ref.params[0])
        else:
            g = run.grads[k] if sign == 1 else sign * np.asarray(run.grads[k], dtype=np.float64)
        ref.step([g])
        params.append(np.array(ref.params[0], dtype=np.float64))
        states.append({s: np.array(v, dtype=np.float64) for s, v in ref.state[0].items()})
    return params, states


def compare(run: Run, ref_params, ref_states, tol) -> tuple[float, Difference | None]:
    """Largest relative error over the run, and the first point where it exceeds ``tol``."""
    worst, first = 0.0, None
    scales: dict[str, float] = {}
    for k, (p, s) in enumerate(zip(run.params, run.states, strict=True)):
        quantities = [(name, s[name], ref_states[k][name]) for name in s if name in ref_states[k]]
        quantities.append(("w", p, ref_params[k]))
        for name, actual, expected in quantities:
            finite = np.abs(expected[np.isfinite(expected)])
            scales[name] = max(scales.get(name, 0.0), float(finite.max(initial=0.0)))
            err, index = _error(actual, expected, scales[name])
            worst = max(worst, err)
            if err > tol and first is None:
                first = Difference(
                    run.stream,
                    run.seed,
                    run.shape,
                    k + 1,
                    name,
                    index,
                    float(actual[index]),
                    float(expected[index]),
                    err,
                )
    return worst, first


def seeded(run: Run) -> Run:
    """The reference regenerates parameter-dependent gradients with the implementation's seed."""
    return Run(run.stream, 1000 + run.seed, run.shape, grads=run.grads)


def initial(run: Run) -> np.ndarray:
    rng = np.random.default_rng(run.seed)
    return (rng.standard_normal(run.shape) * 0.5).astype(run.params[0].dtype)

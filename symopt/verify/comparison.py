"""One case run by the implementation and the reference in lockstep, compared after every step.

Each tensor's quantities (w and every spec state the implementation exposes) are compared
relative to the largest magnitude the reference's value has reached so far, against a tolerance
that grows with the spread of perturbed reference runs (:mod:`.tolerance`). The small tensors'
trajectories are kept as a :class:`Trace`, which the diagnosis replays variants of the spec on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from symopt.reference import ReferenceStepper
from symopt.spec import Spec
from symopt.verify.adapters import Adapter, Groups, ImplementationError
from symopt.verify.state_map import StateMap
from symopt.verify.streams import PARAMETER_DEPENDENT, STREAMS, Case
from symopt.verify.tolerance import RUNS, UNIT_ROUNDOFF, Perturbed, bound, perturbed_hyper

#: Tensors up to this size are kept for the diagnosis (the large one is compared only).
KEEP = 1000
#: No tolerance above this (relative): beyond it a run is too ill-conditioned to compare.
CAP = {"float64": 1e-8, "float32": 1e-3}

Key = tuple[int, int]  # (group, tensor)


@dataclass
class Difference:
    """Where a quantity first parts from the reference by more than its tolerance."""

    case: str
    step: int
    quantity: str  # "w" or a spec state
    tensor: Key
    shape: tuple[int, ...]
    index: tuple[int, ...]
    implementation: float
    reference: float
    relative: float
    tolerance: float
    gradient_zero: bool  # the gradient was exactly 0 at that element and step


@dataclass
class QuantityStats:
    """Where one quantity differs, over every case: for the breakdown of an unexplained FAIL."""

    worst: float = 0.0
    first_step: int | None = None
    streams: set[str] = field(default_factory=set)
    sizes: set[int] = field(default_factory=set)
    groups: set[int] = field(default_factory=set)
    at_zero_gradient: int = 0
    at_nonzero_gradient: int = 0


@dataclass
class Trace:
    """The implementation's trajectory on a case's small tensors, with the tolerances it was
    held to: what the diagnosis compares variants of the spec with."""

    case: Case
    w0: dict[Key, np.ndarray]
    hyper: list[dict[str, float]]  # per group
    grads: list[dict[Key, np.ndarray]] = field(default_factory=list)
    params: list[dict[Key, np.ndarray]] = field(default_factory=list)
    states: list[dict[Key, dict[str, np.ndarray]]] = field(default_factory=list)
    tolerances: list[dict[Key, dict[str, float]]] = field(default_factory=list)
    sign: float = 1.0
    #: The first step (1-based) where the spec itself is outside the tolerance, if any.
    first_failure: int | None = None


@dataclass
class Outcome:
    """A case's comparison: the largest error, the worst error/tolerance ratio, the first
    difference, per-quantity statistics and the trace."""

    max_error: float = 0.0
    worst_ratio: float = 0.0
    first: Difference | None = None
    quantities: dict[str, QuantityStats] = field(default_factory=dict)
    trace: Trace | None = None


class GroupStepper:
    """The reference on one parameter group: the tensors of an element-wise spec stepped as one
    concatenated array (the same numbers, one tree walk per step), else one by one."""

    def __init__(self, spec: Spec, params: list[np.ndarray], hyper, arith=None) -> None:
        self.shapes = [p.shape for p in params]
        self.flat = spec.elementwise and all(s.shape == "full" for s in spec.states)
        ends = np.cumsum([int(np.prod(s)) for s in self.shapes]).tolist()
        self.spans = list(zip([0, *ends[:-1]], ends, strict=True))
        arrays = [np.concatenate([p.reshape(-1) for p in params])] if self.flat else params
        self.stepper = ReferenceStepper(
            spec, [np.asarray(a, np.float64) for a in arrays], arith=arith, **hyper
        )

    def _split(self, array: np.ndarray) -> list[np.ndarray]:
        return [
            array[a:b].reshape(shape) for (a, b), shape in zip(self.spans, self.shapes, strict=True)
        ]

    def params(self) -> list[np.ndarray]:
        p = self.stepper.params
        return self._split(p[0]) if self.flat else list(p)

    def states(self) -> list[dict[str, np.ndarray]]:
        if not self.flat:
            return [dict(s) for s in self.stepper.state]
        parts = {k: self._split(v) for k, v in self.stepper.state[0].items()}
        return [{k: v[i] for k, v in parts.items()} for i in range(len(self.shapes))]

    def step(self, grads: list[np.ndarray]) -> None:
        grads = [np.asarray(g, np.float64) for g in grads]
        self.stepper.step([np.concatenate([g.reshape(-1) for g in grads])] if self.flat else grads)


def initial_params(case: Case, dtype: str) -> Groups:
    rng = np.random.default_rng(case.seed)
    return [
        [(rng.standard_normal(shape) * 0.5).astype(dtype) for shape in group]
        for group in case.layout
    ]


def reference_grads(case: Case, stepper: GroupStepper, given: list[np.ndarray], sign: float):
    """The gradients the reference takes: the implementation's (times ``sign``: -1 for an
    implementation that maximizes), or for a parameter-dependent stream, that of f at the
    reference's own parameters (the implementation was given that of -f when it maximizes, so
    both descend f)."""
    if case.stream in PARAMETER_DEPENDENT:
        return [STREAMS[case.stream](None, p.shape, 0, p) for p in stepper.params()]
    return [sign * np.asarray(g, dtype=np.float64) for g in given]


def _relative(actual: np.ndarray, expected: np.ndarray, scale: float):
    """max |a - e| / scale, NaN where only one side is NaN counting as infinite, and where."""
    with np.errstate(all="ignore"):
        diff = np.abs(actual - expected)
    same = (actual == expected) | (np.isnan(actual) & np.isnan(expected))
    diff = np.where(same, 0.0, np.where(np.isnan(diff), np.inf, diff))
    if not diff.size:
        return 0.0, ()
    index = np.unravel_index(int(np.argmax(diff)), diff.shape)
    worst = float(diff[index])
    return (worst / scale if scale > 0 else worst), tuple(int(i) for i in index)


def scaled_error(scales: dict, at, actual: np.ndarray, expected: np.ndarray):
    """(error, where, scale): the error relative to the largest finite magnitude ``expected``
    has reached at ``at`` so far (``scales`` keeps the running maxima)."""
    finite = np.abs(expected[np.isfinite(expected)])
    scale = scales[at] = max(scales.get(at, 0.0), float(finite.max(initial=0.0)))
    err, index = _relative(actual, expected, scale)
    return err, index, scale


def _spread(perturbed: list[np.ndarray], reference: np.ndarray, scale: float) -> float:
    worst = 0.0
    for p in perturbed:
        with np.errstate(all="ignore"):
            diff = np.abs(p - reference)
        diff = diff[np.isfinite(diff)]
        if diff.size:
            worst = max(worst, float(diff.max()))
    return worst / scale if scale > 0 else worst


def run_case(
    case: Case,
    adapter: type[Adapter],
    target,
    target_name: str,
    spec: Spec,
    hyper: list[dict[str, float]],
    kwargs: list[dict[str, object]],
    state_map: StateMap,
    *,
    dtype: str,
    sign: float = 1.0,
) -> Outcome:
    """Step the implementation and the reference (and its perturbed twins) through ``case``."""
    w0 = initial_params(case, dtype)
    ref = [GroupStepper(spec, list(g), h) for g, h in zip(w0, hyper, strict=True)]
    u = UNIT_ROUNDOFF[dtype]
    prng = np.random.default_rng(99 + case.seed)
    twins = [
        [
            GroupStepper(spec, list(g), perturbed_hyper(h, u, prng), Perturbed(u, prng))
            for g, h in zip(w0, hyper, strict=True)
        ]
        for _ in range(RUNS)
    ]
    initial = [[_initial_state(spec, state_map, s) for s in r.states()] for r in ref]
    impl = _call(target_name, case, 0, lambda: adapter(target, _copy(w0), kwargs, initial))
    keys = [(i, j) for i, group in enumerate(w0) for j in range(len(group))]
    kept = [k for k in keys if w0[k[0]][k[1]].size <= KEEP]
    out = Outcome(trace=Trace(case, {k: w0[k[0]][k[1]] for k in kept}, hyper, sign=sign))
    scale: dict[tuple[Key, str], float] = {}
    tol: dict[tuple[Key, str], float] = {}
    grad_rng = np.random.default_rng(1000 + case.seed)
    for k in range(case.steps):
        params_before = _call(target_name, case, k, impl.params)
        grads = [
            [
                (
                    sign * STREAMS[case.stream](grad_rng, p.shape, k, p)
                    if case.stream in PARAMETER_DEPENDENT
                    else STREAMS[case.stream](grad_rng, p.shape, k, p)
                ).astype(dtype)
                for p in group
            ]
            for group in params_before
        ]
        t = spec.t_start + k
        _call(target_name, case, k, lambda g=grads, t=t: impl.step(_copy(g), t))
        for steppers in (ref, *twins):
            for stepper, given in zip(steppers, grads, strict=True):
                stepper.step(reference_grads(case, stepper, given, sign))
        impl_params = _call(target_name, case, k, impl.params)
        impl_states = _call(target_name, case, k, impl.state)
        ref_states = [r.states() for r in ref]
        if not state_map.resolved:
            state_map.resolve(impl_states, ref_states, target_name)
        ref_params = [r.params() for r in ref]
        twin_params = [[t.params() for t in steppers] for steppers in twins]
        twin_states = [[t.states() for t in steppers] for steppers in twins]
        record = _StepRecord(out, k, case, dtype)
        for key in keys:
            i, j = key
            shapes = {n: v.shape for n, v in ref_states[i][j].items()}
            mine = state_map.spec_states(impl_states[i][j], shapes)
            quantities = [(n, mine[n], ref_states[i][j][n]) for n in mine]
            quantities.append(("w", np.asarray(impl_params[i][j], np.float64), ref_params[i][j]))
            for name, actual, expected in quantities:
                twins_q = [
                    (tp[i][j] if name == "w" else ts[i][j][name])
                    for tp, ts in zip(twin_params, twin_states, strict=True)
                ]
                err, index, s = scaled_error(scale, (key, name), actual, expected)
                bound_ = tol[key, name] = min(
                    max(tol.get((key, name), 0.0), bound(_spread(twins_q, expected, s), dtype)),
                    CAP[dtype],
                )
                g_zero = bool(grads[i][j][index] == 0) if index else False
                record.add(key, name, actual, expected, err, bound_, index, g_zero, key in kept)
            if key in kept:
                record.keep(
                    key,
                    grads[i][j],
                    impl_params[i][j],
                    mine,
                    {n: tol[key, n] for n in (*mine, "w")},
                )
        record.close()
    return out


class _StepRecord:
    """Adds one step's comparisons to an :class:`Outcome`."""

    def __init__(self, out: Outcome, k: int, case: Case, dtype: str) -> None:
        self.out, self.k, self.case = out, k, case
        self.trace = out.trace
        self.grads, self.params, self.states, self.tols = {}, {}, {}, {}

    def add(self, key, name, actual, expected, err, tol, index, g_zero, kept) -> None:
        out = self.out
        out.max_error = max(out.max_error, err)
        ratio = err / tol
        out.worst_ratio = max(out.worst_ratio, ratio)
        if ratio <= 1:
            return
        stats = out.quantities.setdefault(name, QuantityStats())
        stats.worst = max(stats.worst, err)
        stats.first_step = min(stats.first_step or self.k + 1, self.k + 1)
        stats.streams.add(self.case.stream)
        stats.sizes.add(int(actual.size))
        stats.groups.add(key[0])
        if g_zero:
            stats.at_zero_gradient += 1
        else:
            stats.at_nonzero_gradient += 1
        if kept and self.trace.first_failure is None:
            self.trace.first_failure = self.k + 1
        if out.first is None:
            out.first = Difference(
                self.case.label,
                self.k + 1,
                name,
                key,
                tuple(actual.shape),
                index,
                float(actual[index]) if index else float(actual),
                float(expected[index]) if index else float(expected),
                err,
                tol,
                g_zero,
            )

    def keep(self, key, g, params, states, tols) -> None:
        self.grads[key] = np.asarray(g, np.float64)
        self.params[key] = np.asarray(params, np.float64)
        self.states[key] = states
        self.tols[key] = tols

    def close(self) -> None:
        t = self.trace
        t.grads.append(self.grads)
        t.params.append(self.params)
        t.states.append(self.states)
        t.tolerances.append(self.tols)


def _initial_state(spec: Spec, state_map: StateMap, state: dict[str, np.ndarray]) -> dict:
    """The spec's initial state of one tensor under the implementation's names (given ones)."""
    return {state_map.keys.get(n, n): np.array(v) for n, v in state.items()}


def _copy(groups) -> Groups:
    return [[np.array(a, copy=True) for a in group] for group in groups]


def _call(target_name: str, case: Case, k: int, fn):
    """Run the implementation; what it raises becomes one line naming the step and case."""
    try:
        with np.errstate(all="ignore"):  # overflow on the huge stream is the comparison's to judge
            return fn()
    except ImplementationError:
        raise
    except Exception as exc:  # noqa: BLE001  (anything the implementation raises)
        message = " ".join(str(exc).split()) or type(exc).__name__
        raise ImplementationError(
            f"{target_name} raised {type(exc).__name__} at step {k + 1} of the {case.label}: "
            f"{message}"
        ) from exc

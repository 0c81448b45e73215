"""``verify``: drive an implementation and the reference on every case, compare, diagnose."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from symopt.errors import Unsupported
from symopt.spec import Spec
from symopt.verify.adapters import Adapter, ImplementationError
from symopt.verify.arguments import api_call, uses_api
from symopt.verify.binding import bind, check_domains
from symopt.verify.comparison import Difference, QuantityStats, run_case
from symopt.verify.diagnose import Diagnosis
from symopt.verify.diagnose import diagnose as explain
from symopt.verify.state_map import StateMap
from symopt.verify.streams import LONG, STREAMS, cases, layout_for, single_group
from symopt.verify.targets import adapter_factory
from symopt.verify.tolerance import UNIT_ROUNDOFF

#: The second parameter group's learning rate, relative to the first's.
SECOND_GROUP_LR = 0.5


@dataclass
class Report:
    target: str
    against: str
    passed: bool
    #: The largest relative difference, and the largest difference/tolerance ratio (<= 1: pass).
    max_error: float
    worst_ratio: float
    dtype: str
    steps: int
    long: int
    runs: int
    groups: int
    sizes: tuple[int, int]  # the smallest and largest tensor
    first_difference: Difference | None = None
    diagnosis: Diagnosis | None = None
    #: Spec state -> "the implementation's key (how it was found)".
    compared_state: dict[str, str] = field(default_factory=dict)
    #: The variant of the spec (and maximize) the arguments selected, in words; "" for the
    #: default.
    variant: str = ""
    #: The arguments the implementation was constructed with (the first group's).
    arguments: dict = field(default_factory=dict)
    #: The implementation's own numeric arguments left at their defaults.
    defaults: dict = field(default_factory=dict)
    #: Spec hyperparameters at 0 that no argument of the implementation carries.
    unpassed: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        what = f"{self.target} against {self.against}"
        if self.variant:
            what += f" ({self.variant})"
        checked = ", ".join(
            [
                "w",
                *(
                    s if s == key.split(" ")[0] else f"{s} = {key.split(' ')[0]}"
                    for s, key in self.compared_state.items()
                ),
            ]
        )
        scope = (
            f"{self.runs} runs ({self.steps} steps, one of {self.long}), {self.groups} parameter "
            f"group(s), tensors of {self.sizes[0]} to {self.sizes[1]:,} elements, {self.dtype}"
        )
        if self.unpassed:
            what += f" ({', '.join(self.unpassed)} = 0: no argument takes it)"
        if self.passed:
            return (
                f"PASS  {what}: {checked} agree within the rounding tolerance over {scope} "
                f"(largest relative difference {self.max_error:.1e}, "
                f"{self.worst_ratio:.2g} of its tolerance)"
            )
        lines = [
            f"FAIL  {what}: largest relative difference {self.max_error:.1e} "
            f"({self.worst_ratio:.1e} times its tolerance) over {scope}"
        ]
        if (d := self.first_difference) is not None:
            where = "where the gradient is 0" if d.gradient_zero else "where the gradient is not 0"
            lines.append(
                f"  first parts at step {d.step} of the {d.case}, in {d.quantity} of tensor "
                f"{d.tensor} (shape {d.shape}) at {list(d.index)}, {where}: "
                f"{d.implementation:.17g} vs {d.reference:.17g} (relative {d.relative:.1e}, "
                f"tolerance {d.tolerance:.1e})"
            )
        g = self.diagnosis
        if g is not None and g.explained:
            lines.append(
                f"  diagnosis: matches {self.against} with {g.description} (within the "
                f"tolerance; the error/tolerance ratio falls {g.factor:.1e}-fold)"
            )
        elif g is not None:
            lines.append(
                "  diagnosis: unexplained: no rule of the catalogue, no pair of rules and no "
                f"fitted constant cuts the difference {EXPLAINS_TEXT}"
            )
            lines += [f"    {line}" for line in g.breakdown]
        if (hint := precision_hint(self.max_error, self.dtype)) and not (g and g.explained):
            lines.append(f"  precision: {hint}")
        return "\n".join(lines)


EXPLAINS_TEXT = "100-fold to within the tolerance"

#: Unit roundoff of the formats an implementation may compute in internally.
ROUNDOFF = {"float32": 2.0**-24, "float16": 2.0**-11, "bfloat16": 2.0**-8}


def precision_hint(error: float, dtype: str) -> str | None:
    """When a difference is the size of a lower precision's rounding, say so: torch.optim.Muon,
    for one, runs its Newton-Schulz iteration in bfloat16 whatever the parameters' dtype."""
    own = UNIT_ROUNDOFF[dtype]
    if not error < 0.1:
        return None
    near = [name for name, u in ROUNDOFF.items() if u / 10 <= error <= u * 10 and u > own * 10]
    if not near:
        return None
    return (
        f"a difference of {error:.1e} is the size of {' or '.join(near)} rounding: the "
        "implementation may compute part of the step in that precision"
    )


def verify(
    target: object,
    spec: Spec,
    *,
    target_name: str | None = None,
    hyper: Mapping[str, object] | None = None,
    state_map: Mapping[str, str] | None = None,
    steps: int = 40,
    seeds: int = 1,
    long: int = LONG,
    dtype: str = "float64",
    streams: Sequence[str] = tuple(STREAMS),
    large: bool = True,
    diagnose: bool = True,
    progress: Callable[[str], None] = lambda _: None,
) -> Report:
    """Run ``target`` and the reference on the same cases and compare every step.

    ``hyper`` gives values by the spec's names or the implementation's; ``state_map`` maps spec
    names (states or hyperparameters) to the implementation's. When ``target`` is the class the
    spec's ``[api]`` matches (torch.optim.Adam for adam), it is constructed with every argument
    by its own name and the reference runs the variant its flags select (on -g when
    ``maximize``); otherwise every hyperparameter is bound to an argument
    (:func:`~symopt.verify.binding.bind`). ``large=False`` leaves out the 70,000-element tensor
    (for tests that run many settings); ``progress`` hears of each run as it starts."""
    if dtype not in UNIT_ROUNDOFF:
        raise Unsupported(f"dtype must be float64 or float32, got {dtype!r}", key="--dtype")
    unknown = [s for s in streams if s not in STREAMS]
    if unknown:
        raise Unsupported(f"unknown stream(s) {', '.join(unknown)}", key="streams")
    name = target_name or getattr(target, "__qualname__", None) or repr(target)
    adapter = adapter_factory(target)
    maps = dict(state_map or {})
    for key in maps:
        if key not in spec.state_names and key not in spec.hyper_names:
            raise Unsupported(
                f"{key}: neither a state ({', '.join(spec.state_names) or 'none'}) nor a "
                f"hyperparameter ({', '.join(spec.hyper_names)}) of {spec.name}",
                key="--map",
            )
    states = StateMap(spec, {k: v for k, v in maps.items() if k in spec.state_names})
    sign, variant, defaults, unpassed = 1.0, "", {}, []
    if uses_api(target, spec):
        call = api_call(spec, hyper or {}, dtype)
        spec, hyper0, kwargs0 = call.variant, call.hyper, dict(call.kwargs)
        _refused(adapter, target, name, kwargs0, dtype, layout_for(spec)[0][0][0])
        check_domains(spec, hyper0)
        given_states = states.keys
        states = StateMap(spec, {**call.state_map, **given_states}, "the spec's key")
        states.how.update(dict.fromkeys(given_states, "given"))
        sign = -1.0 if call.maximize else 1.0
        variant, lr_route = call.description, "lr" if "lr" in kwargs0 else None
    else:
        binding = bind(
            spec,
            adapter.signature(target),
            adapter.leading,
            hyper or {},
            {k: v for k, v in maps.items() if k in spec.hyper_names},
            name,
        )
        hyper0, kwargs0, defaults = binding.hyper, binding.kwargs, binding.defaults
        unpassed = binding.unpassed
        lr_route = binding.routes.get("lr")
    hypers, kwargs = _groups(adapter, hyper0, kwargs0, lr_route)
    outcomes, runs = [], cases(spec, steps, seeds, long, tuple(streams), large)
    for number, case in enumerate(runs, start=1):
        progress(f"verify: run {number}/{len(runs)}: {case.label}")
        if not adapter.takes_groups:
            case = single_group(case)
        outcomes.append(
            run_case(
                case,
                adapter,
                target,
                name,
                spec,
                hypers[: len(case.layout)],
                kwargs[: len(case.layout)],
                states,
                dtype=dtype,
                sign=sign,
            )
        )
    sizes = [math.prod(s) for c in runs for group in c.layout for s in group]
    report = Report(
        target=name,
        against=spec.name,
        passed=all(o.worst_ratio <= 1 for o in outcomes),
        max_error=max(o.max_error for o in outcomes),
        worst_ratio=max(o.worst_ratio for o in outcomes),
        dtype=dtype,
        steps=steps,
        long=max((c.steps for c in runs), default=steps),
        runs=len(runs),
        groups=len(hypers) if adapter.takes_groups else 1,
        sizes=(min(sizes), max(sizes)),
        first_difference=next((o.first for o in outcomes if o.first is not None), None),
        compared_state={s: f"{k} ({states.how[s]})" for s, k in states.keys.items()},
        variant=variant,
        arguments=kwargs0,
        defaults=defaults,
        unpassed=unpassed,
    )
    if not report.passed and diagnose:
        progress("verify: naming the difference")
        quantities: dict[str, QuantityStats] = {}
        for o in outcomes:
            for q, stats in o.quantities.items():
                _merge(quantities.setdefault(q, QuantityStats()), stats)
        extra = {
            k: float(v)
            for k, v in {**defaults, **(hyper or {})}.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)
        }
        traces = [o.trace for o in outcomes if o.trace is not None and o.trace.w0]
        report.diagnosis = explain(spec, traces, quantities, extra)
    return report


def _refused(
    adapter: type[Adapter], target, name: str, kwargs: dict, dtype: str, shape: tuple
) -> None:
    """The class a spec's ``[api]`` matches checks its arguments (torch's checks): what it
    refuses is the user's bad input, a usage error, not the implementation failing."""
    try:
        adapter(target, [[np.zeros(shape, dtype)]], [kwargs], [[{}]])
    except ImplementationError as exc:
        if isinstance(exc.__cause__, (ValueError, TypeError)):
            reason = " ".join(str(exc.__cause__).split())
            raise Unsupported(f"{name} refuses its arguments: {reason}", key="--hyper") from None
        raise


def _groups(adapter: type[Adapter], hyper, kwargs, lr_route: str | None):
    """Two parameter groups, the second with its own learning rate (when it has one)."""
    if not adapter.takes_groups:
        return [hyper], [kwargs]
    second_hyper, second_kwargs = dict(hyper), dict(kwargs)
    if lr_route in kwargs and "lr" in hyper:
        second_hyper["lr"] = hyper["lr"] * SECOND_GROUP_LR
        second_kwargs[lr_route] = second_hyper["lr"]
    return [hyper, second_hyper], [kwargs, second_kwargs]


def _merge(into: QuantityStats, other: QuantityStats) -> None:
    into.worst = max(into.worst, other.worst)
    steps = [s for s in (into.first_step, other.first_step) if s is not None]
    into.first_step = min(steps) if steps else None
    into.streams |= other.streams
    into.sizes |= other.sizes
    into.groups |= other.groups
    into.at_zero_gradient += other.at_zero_gradient
    into.at_nonzero_gradient += other.at_nonzero_gradient

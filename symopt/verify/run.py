"""``verify``: drive an implementation and the reference on every stream, compare, diagnose."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from symopt.errors import SpecError
from symopt.spec import Spec
from symopt.verify.adapters import adapter_factory
from symopt.verify.arguments import ApiCall, api_call, split_hyper, uses_api
from symopt.verify.comparison import Difference, Run, compare, reference_run, seeded
from symopt.verify.diagnose import Diagnosis, closest_variant
from symopt.verify.streams import PARAMETER_DEPENDENT, STREAMS, shapes_for

TOLERANCE = {"float64": 1e-10, "float32": 1e-4}
#: A variant "matches" when it explains the implementation to this relative error (looser than
#: TOLERANCE: torch keeps some scalar state such as NAdam's mu_product in float32).
MATCH = {"float64": 1e-7, "float32": 1e-3}


@dataclass
class Report:
    target: str
    against: str
    passed: bool
    max_error: float
    tolerance: float
    steps: int
    runs: int
    first_difference: Difference | None = None
    diagnosis: Diagnosis | None = None
    compared_state: list[str] = field(default_factory=list)
    #: The variant of the spec (and maximize) the arguments selected, in words; "" for the
    #: default.
    variant: str = ""
    #: The arguments the implementation was constructed with, when the spec's [api] matches it.
    arguments: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        what = f"{self.target} against {self.against}"
        if self.variant:
            what += f" ({self.variant})"
        checked = ", ".join(["w", *self.compared_state])
        if self.passed:
            return (
                f"PASS  {what}: {checked} agree to {self.max_error:.1e} (relative) over "
                f"{self.runs} runs x {self.steps} steps"
            )
        d = self.first_difference
        lines = [f"FAIL  {what}: largest relative difference {self.max_error:.1e}"]
        if d is not None:
            lines.append(
                f"  first parts at step {d.step} of the {d.stream} stream (seed {d.seed}, shape "
                f"{d.shape}), in {d.quantity}{list(d.index)}: {d.implementation:.17g} vs "
                f"{d.reference:.17g} (relative {d.relative:.1e})"
            )
        if self.diagnosis is not None:
            g = self.diagnosis
            verb = "matches" if g.exact else "closest known variant:"
            lines.append(
                f"  diagnosis: {verb} {self.against} with {g.description} (to {g.error:.1e})"
            )
        else:
            lines.append("  diagnosis: no known convention difference explains it")
        if (hint := precision_hint(self.max_error, self.tolerance)) and not (
            self.diagnosis and self.diagnosis.exact
        ):
            lines.append(f"  precision: {hint}")
        return "\n".join(lines)


#: Unit roundoff of the formats an implementation may compute in internally.
ROUNDOFF = {"float32": 2.0**-24, "float16": 2.0**-11, "bfloat16": 2.0**-8}


def precision_hint(error: float, tolerance: float) -> str | None:
    """When a difference is the size of a lower precision's rounding, say so: torch.optim.Muon,
    for one, runs its Newton-Schulz iteration in bfloat16 whatever the parameters' dtype."""
    if not tolerance < error < 0.1:
        return None
    near = [name for name, u in ROUNDOFF.items() if u / 100 <= error <= u * 100 and u > tolerance]
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
    seeds: int = 2,
    dtype: str = "float64",
    streams: Sequence[str] = tuple(STREAMS),
    diagnose: bool = True,
) -> Report:
    """Run ``target`` and the reference on the same streams and compare every step.

    When ``target`` is the class the spec's ``[api]`` matches (torch.optim.Adam for adam), it
    is constructed with every argument by its own name (``hyper`` gives some, by those names or
    a tuple's parts by the spec's; the rest take the spec's defaults, which are the class's),
    the reference runs the variant the flags select, on -g when ``maximize``. Otherwise
    ``hyper`` passes through :func:`~symopt.verify.arguments.split_hyper`."""
    if dtype not in TOLERANCE:
        raise SpecError(f"dtype must be float64 or float32, got {dtype!r}", key="--dtype")
    factory = adapter_factory(target)
    call: ApiCall | None = api_call(spec, hyper or {}, dtype) if uses_api(target, spec) else None
    exact: dict[str, object] = {}
    sign = 1.0
    if call is not None:
        spec, spec_hyper, extra = call.variant, call.hyper, {}
        state_map = {**call.state_map, **(state_map or {})}
        exact = {"kwargs": call.kwargs}
        sign = -1.0 if call.maximize else 1.0
    else:
        spec_hyper, extra = split_hyper(spec, hyper or {})
    tol = TOLERANCE[dtype]
    runs: list[Run] = []
    worst, first = 0.0, None
    extras_seen: dict[str, float] = {}
    compared: set[str] = set()
    for stream in streams:
        for seed in range(seeds):
            for shape in shapes_for(spec):
                rng = np.random.default_rng(seed)
                w0 = (rng.standard_normal(shape) * 0.5).astype(dtype)
                impl = factory(target, w0, spec, spec_hyper, extra, dict(state_map or {}), **exact)
                extras_seen.update(getattr(impl, "extras", {}))
                run = Run(stream, seed, shape)
                grad_rng = np.random.default_rng(1000 + seed)
                for k in range(steps):
                    g = STREAMS[stream](grad_rng, shape, k, impl.params())
                    if stream in PARAMETER_DEPENDENT:  # maximize: of -f, so both descend f
                        g = sign * g
                    g = g.astype(dtype)
                    run.grads.append(g)
                    impl.step(g, spec.t_start + k)
                    run.params.append(impl.params())
                    run.states.append(impl.state())
                compared |= set(run.states[-1]) if run.states else set()
                ref_params, ref_states = reference_run(
                    spec, seeded(run), w0, spec_hyper, steps, sign
                )
                err, diff = compare(run, ref_params, ref_states, tol)
                worst = max(worst, err)
                first = first or diff
                runs.append(run)
    report = Report(
        target=target_name or getattr(target, "__qualname__", str(target)),
        against=spec.name,
        passed=worst <= tol,
        max_error=worst,
        tolerance=tol,
        steps=steps,
        runs=len(runs),
        first_difference=first,
        compared_state=sorted(compared),
        variant=call.description if call is not None else "",
        arguments=dict(call.kwargs) if call is not None else {},
    )
    if not report.passed and diagnose:
        if call is not None:  # the extras torch reports are the spec's own hyperparameters
            own = set(spec.family.raw.hyper_names) if spec.family is not None else set()
            extras_seen = {k: x for k, x in extras_seen.items() if k not in own}
        report.diagnosis = closest_variant(
            spec, runs, spec_hyper, {**extras_seen, **extra}, steps, tol, MATCH[dtype], sign
        )
    return report

"""Verify a hand-written optimizer against a spec, and explain where and how it differs.

The implementation and the reference stepper run on the same gradient streams (random, sparse,
tiny, huge, sign-alternating, and a Rosenbrock gradient that depends on the parameters); parameters
and readable state are compared after every step. On a mismatch, every variant of the spec from
:mod:`symopt.variants` is run on the same streams, and the one that matches the implementation is
named: "matches adam with eps inside the square root to 2e-16".
"""

from __future__ import annotations

import importlib
import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from symopt.errors import SpecError
from symopt.reference import ReferenceStepper
from symopt.spec import Spec
from symopt.variants import variants

TOLERANCE = {"float64": 1e-10, "float32": 1e-4}
#: A variant "matches" when it explains the implementation to this relative error (looser than
#: TOLERANCE: torch keeps some scalar state such as NAdam's mu_product in float32).
MATCH = {"float64": 1e-7, "float32": 1e-3}

#: torch.optim's names for the spec hyperparameters (betas is split into beta1, beta2).
TORCH_HYPER = {"lr": "lr", "eps": "eps", "rho": "momentum", "decay": "alpha"}
#: Fixed torch options a spec implies.
TORCH_FIXED = {"nesterov": {"nesterov": True}}
#: torch.optim state names -> spec state names, by optimizer class.
TORCH_STATE = {
    "Adam": {"exp_avg": "m", "exp_avg_sq": "v"},
    "AdamW": {"exp_avg": "m", "exp_avg_sq": "v"},
    "NAdam": {"exp_avg": "m", "exp_avg_sq": "v"},
    "Adamax": {"exp_avg": "m", "exp_inf": "u"},
    "Adagrad": {"sum": "s"},
    "RMSprop": {"square_avg": "v"},
    # torch's SGD buffer is the article's velocity for plain momentum; for Nesterov it is -v/lr.
    "SGD": {"momentum_buffer": "v"},
}
TORCH_STATE_SKIP = {("SGD", "nesterov")}
#: torch options that the variant catalogue understands (read from the optimizer's param group).
TORCH_EXTRAS = ("weight_decay", "momentum_decay")


# ---------------------------------------------------------------------------------------------
# Gradient streams
# ---------------------------------------------------------------------------------------------


def _rosenbrock_grad(w: np.ndarray) -> np.ndarray:
    """Gradient of sum over pairs (x, y) of (1 - x)^2 + 10 (y - x^2)^2 (mild, so runs stay tame)."""
    flat = w.reshape(-1)
    x, y = flat[0::2], flat[1::2]
    g = np.empty_like(flat)
    with np.errstate(all="ignore"):  # a broken optimizer may run off to infinity
        g[0::2] = -2 * (1 - x) - 40 * x * (y - x**2)
        g[1::2] = 20 * (y - x**2)
    return g.reshape(w.shape)


StreamFn = Callable[[np.random.Generator, tuple[int, ...], int, np.ndarray], np.ndarray]

STREAMS: dict[str, StreamFn] = {
    "random": lambda rng, shape, k, w: rng.standard_normal(shape) * 10 ** rng.uniform(-2, 1),
    "sparse": lambda rng, shape, k, w: rng.standard_normal(shape) * (rng.random(shape) < 0.5),
    "tiny": lambda rng, shape, k, w: rng.standard_normal(shape) * 1e-9,
    "huge": lambda rng, shape, k, w: rng.standard_normal(shape) * 1e8,
    "alternating": lambda rng, shape, k, w: (-1.0) ** k * np.abs(rng.standard_normal(shape)),
    "rosenbrock": lambda rng, shape, k, w: _rosenbrock_grad(w),
}
PARAMETER_DEPENDENT = {"rosenbrock"}
SHAPES = ((6,), (2, 5))


# ---------------------------------------------------------------------------------------------
# Implementations
# ---------------------------------------------------------------------------------------------


class Adapter:
    """One parameter array driven by an implementation: step(g), params(), state()."""

    def step(self, g: np.ndarray, t: int) -> None:
        raise NotImplementedError

    def params(self) -> np.ndarray:
        raise NotImplementedError

    def state(self) -> dict[str, np.ndarray]:
        return {}


class TorchAdapter(Adapter):
    def __init__(self, cls, w0, spec, hyper, extra, state_map):
        import torch

        self.torch = torch
        self.param = torch.nn.Parameter(torch.tensor(w0, dtype=_torch_dtype(torch, w0.dtype)))
        kwargs = dict(TORCH_FIXED.get(spec.name, {}))
        for name, value in hyper.items():
            if name in ("beta1", "beta2"):
                kwargs["betas"] = (hyper["beta1"], hyper["beta2"])
            elif name in TORCH_HYPER:
                kwargs[TORCH_HYPER[name]] = value
        kwargs.update(extra)
        try:
            self.opt = cls([self.param], **kwargs)
        except TypeError as exc:
            raise SpecError(f"cannot construct {cls.__name__}({_kwargs(kwargs)}): {exc}") from None
        names = (
            {}
            if (cls.__name__, spec.name) in TORCH_STATE_SKIP
            else TORCH_STATE.get(cls.__name__, {})
        )
        self.state_map = {
            spec_name: impl for impl, spec_name in names.items() if spec_name in spec.state_names
        }
        self.state_map.update(state_map)
        group = self.opt.param_groups[0]
        self.extras = {k: group[k] for k in TORCH_EXTRAS if k in group}

    def step(self, g, t):
        self.param.grad = self.torch.tensor(g, dtype=self.param.dtype)
        self.opt.step()

    def params(self):
        return self.param.detach().numpy().copy()

    def state(self):
        state = self.opt.state[self.param]
        return {
            s: state[i].detach().numpy().copy() for s, i in self.state_map.items() if i in state
        }


class ClassAdapter(Adapter):
    """A class with the generated NumPy API: cls([w], **hyper), step([g]), params, state[0]."""

    def __init__(self, cls, w0, spec, hyper, extra, state_map):
        self.opt = cls([w0.copy()], **hyper, **extra)
        self.state_map = {s: state_map.get(s, s) for s in spec.state_names}

    def step(self, g, t):
        self.opt.step([g])

    def params(self):
        return np.array(self.opt.params[0], copy=True)

    def state(self):
        own = self.opt.state[0] if getattr(self.opt, "state", None) else {}
        return {s: np.array(own[i]) for s, i in self.state_map.items() if i in own}


class FunctionAdapter(Adapter):
    """A step function f(w, g, state, t, **hyper) updating ``state`` in place; returns the new w
    (or None when it updated w in place). ``state`` starts with the spec's initial values."""

    def __init__(self, fn, w0, spec, hyper, extra, state_map):
        self.fn, self.hyper = fn, {**hyper, **extra}
        self.w = w0.copy()
        ref = ReferenceStepper(spec, [w0], **hyper)
        self.state_map = {s: state_map.get(s, s) for s in spec.state_names}
        self.own = {self.state_map[s]: v.copy() for s, v in ref.state[0].items()}

    def step(self, g, t):
        out = self.fn(self.w, g, self.own, t, **self.hyper)
        if out is not None:
            self.w = np.asarray(out, dtype=self.w.dtype)

    def params(self):
        return self.w.copy()

    def state(self):
        return {s: np.array(self.own[i]) for s, i in self.state_map.items() if i in self.own}


def _torch_dtype(torch, dtype):
    return torch.float64 if dtype == np.float64 else torch.float32


def _kwargs(kwargs: Mapping) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in kwargs.items())


def load_target(path: str) -> object:
    """Import ``pkg.mod.Name`` (or ``pkg.mod:Name``) without executing anything else."""
    module_name, _, attr = path.replace(":", ".").rpartition(".")
    if not module_name or not attr:
        raise SpecError(
            f"expected an import path like torch.optim.Adam, got {path!r}", key="TARGET"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SpecError(f"cannot import {module_name!r}: {exc}", key="TARGET") from None
    if not hasattr(module, attr):
        raise SpecError(f"{module_name!r} has no attribute {attr!r}", key="TARGET")
    return getattr(module, attr)


def adapter_factory(target: object) -> type[Adapter]:
    if inspect.isclass(target):
        try:
            import torch

            if issubclass(target, torch.optim.Optimizer):
                return TorchAdapter
        except ImportError:
            pass
        if hasattr(target, "step"):
            return ClassAdapter
        raise SpecError(f"{target.__name__} has no step() method", key="TARGET")
    if callable(target):
        return FunctionAdapter
    raise SpecError(f"{target!r} is neither an optimizer class nor a step function", key="TARGET")


# ---------------------------------------------------------------------------------------------
# Running and comparing
# ---------------------------------------------------------------------------------------------


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


@dataclass
class Diagnosis:
    variant: str
    description: str
    error: float
    exact: bool  # matched to the tolerance


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

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        what = f"{self.target} against {self.against}"
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
        return "\n".join(lines)


def _error(actual: np.ndarray, expected: np.ndarray, scale: float) -> tuple[float, tuple]:
    with np.errstate(all="ignore"):
        diff = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
    same = (actual == expected) | (np.isnan(actual) & np.isnan(expected))  # inf == inf too
    diff = np.where(same, 0.0, diff)
    diff = np.where(np.isnan(diff), np.inf, diff)
    index = np.unravel_index(int(np.argmax(diff)), diff.shape) if diff.size else ()
    worst = float(diff[index]) if diff.size else 0.0
    return (worst / scale if scale > 0 else worst), tuple(int(i) for i in index)


def _reference_run(spec: Spec, run: Run, w0, hyper, steps: int) -> tuple[list, list]:
    ref = ReferenceStepper(spec, [w0], **hyper)
    params, states = [], []
    rng = np.random.default_rng(run.seed)
    for k in range(steps):
        if run.stream in PARAMETER_DEPENDENT:
            g = STREAMS[run.stream](rng, run.shape, k, ref.params[0])
        else:
            g = run.grads[k]
        ref.step([g])
        params.append(np.array(ref.params[0], dtype=np.float64))
        states.append({s: np.array(v, dtype=np.float64) for s, v in ref.state[0].items()})
    return params, states


def _compare(run: Run, ref_params, ref_states, tol) -> tuple[float, Difference | None]:
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
    """Run ``target`` and the reference on the same streams and compare every step."""
    if dtype not in TOLERANCE:
        raise SpecError(f"dtype must be float64 or float32, got {dtype!r}", key="--dtype")
    factory = adapter_factory(target)
    spec_hyper, extra = split_hyper(spec, hyper or {})
    tol = TOLERANCE[dtype]
    runs: list[Run] = []
    worst, first = 0.0, None
    extras_seen: dict[str, float] = {}
    compared: set[str] = set()
    for stream in streams:
        for seed in range(seeds):
            for shape in SHAPES:
                rng = np.random.default_rng(seed)
                w0 = (rng.standard_normal(shape) * 0.5).astype(dtype)
                impl = factory(target, w0, spec, spec_hyper, extra, dict(state_map or {}))
                extras_seen.update(getattr(impl, "extras", {}))
                run = Run(stream, seed, shape)
                grad_rng = np.random.default_rng(1000 + seed)
                for k in range(steps):
                    g = STREAMS[stream](grad_rng, shape, k, impl.params()).astype(dtype)
                    run.grads.append(g)
                    impl.step(g, spec.t_start + k)
                    run.params.append(impl.params())
                    run.states.append(impl.state())
                compared |= set(run.states[-1]) if run.states else set()
                ref_params, ref_states = _reference_run(spec, _seeded(run), w0, spec_hyper, steps)
                err, diff = _compare(run, ref_params, ref_states, tol)
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
    )
    if not report.passed and diagnose:
        report.diagnosis = _diagnose(
            spec, runs, spec_hyper, {**extras_seen, **extra}, steps, tol, MATCH[dtype]
        )
    return report


def _seeded(run: Run) -> Run:
    """The reference regenerates parameter-dependent gradients with the implementation's seed."""
    return Run(run.stream, 1000 + run.seed, run.shape, grads=run.grads)


def _diagnose(spec, runs, hyper, extra, steps, tol, match) -> Diagnosis | None:
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
            w0 = _initial(run)
            params, states = _reference_run(variant.spec, _seeded(run), w0, vhyper, steps)
            err, _ = _compare(run, params, states, tol)
            worst = max(worst, err)
            if best is not None and worst >= best.error:
                break
        if not math.isfinite(worst):
            continue
        if best is None or worst < best.error:
            best = Diagnosis(variant.name, variant.description, worst, worst <= match)
    return best


def _initial(run: Run) -> np.ndarray:
    rng = np.random.default_rng(run.seed)
    return (rng.standard_normal(run.shape) * 0.5).astype(run.params[0].dtype)


def split_hyper(
    spec: Spec, given: Mapping[str, object]
) -> tuple[dict[str, float], dict[str, object]]:
    """The spec's hyperparameters (defaults updated) and the implementation-only extras.

    Accepts spec names and torch.optim names: betas=(b1, b2), momentum=rho, alpha=decay.
    """
    spec_hyper = dict(spec.defaults)
    extra: dict[str, object] = {}
    reverse = {v: k for k, v in TORCH_HYPER.items()}
    for key, value in given.items():
        if key == "betas" and {"beta1", "beta2"} <= set(spec.hyper_names):
            spec_hyper["beta1"], spec_hyper["beta2"] = _pair(value)
        elif key in spec_hyper:
            spec_hyper[key] = float(value)  # type: ignore[arg-type]
        elif key in reverse and reverse[key] in spec_hyper:
            spec_hyper[reverse[key]] = float(value)  # type: ignore[arg-type]
        else:
            extra[key] = value
    return spec_hyper, extra


def _pair(value: object) -> tuple[float, float]:
    if isinstance(value, str):
        value = [v for v in value.strip("()[] ").split(",") if v.strip()]
    try:
        a, b = value  # type: ignore[misc]
        return float(a), float(b)
    except (TypeError, ValueError):
        raise SpecError(f"betas must be two numbers, got {value!r}", key="--hyper") from None


def parse_assignments(items: Sequence[str], option: str) -> dict[str, str]:
    """``k=v`` strings from the command line."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SpecError(f"expected NAME=VALUE, got {item!r}", key=option)
        out[key.strip()] = value.strip()
    return out


def coerce(value: str) -> object:
    """Command-line values: numbers, booleans, or comma-separated pairs."""
    lowered = value.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if "," in value:
        return value
    try:
        return float(value)
    except ValueError:
        raise SpecError(f"not a number: {value!r}", key="--hyper") from None

"""Hyperparameters and ``NAME=VALUE`` options as a user gives them (spec or torch names)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from symopt.errors import SpecError
from symopt.spec import Spec
from symopt.verify.adapters import TORCH_HYPER


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

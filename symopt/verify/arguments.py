"""Hyperparameters and ``NAME=VALUE`` options as a user gives them (spec or torch names).

An implementation that is the library class a spec's ``[api]`` matches (``torch.optim.Adam``
for ``adam``, or a generated drop-in of the same name) is called exactly through that table
(:func:`api_call`): every argument by the class's name, the variant the flags select, the
gradient negated for ``maximize``. Any other implementation gets them through
:mod:`.binding`.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from symopt import api_matrix
from symopt.errors import Unsupported
from symopt.spec import Spec
from symopt.spec.family import variant_for, variant_label


@dataclass(frozen=True)
class ApiCall:
    """How an implementation matching the spec's ``[api]`` is called, and what it computes."""

    #: Every argument the class takes (but the framework ones that do not change the numbers
    #: and were not given), by its names: ``betas=(0.9, 0.999)``.
    kwargs: dict[str, object]
    #: The variant of the spec these arguments select, and its hyperparameter values.
    variant: Spec
    hyper: dict[str, float]
    #: The implementation steps along the gradient: the reference is given -g.
    maximize: bool
    #: Spec state name -> the implementation's state key (``m`` -> ``exp_avg``).
    state_map: dict[str, str]

    @property
    def description(self) -> str:
        """The variant and maximize, in words ("amsgrad, weight_decay != 0, maximize")."""
        words = [variant_label(self.variant), "maximize" if self.maximize else ""]
        return ", ".join(w for w in words if w)


def uses_api(target: object, spec: Spec) -> bool:
    """Whether ``target`` is the torch optimizer class the spec's ``[api]`` matches (by class
    name: torch.optim.Adam, or a generated drop-in symopt_torch.Adam), or the generated NumPy
    or C class of the spec's family (symopt_numpy.Adam), which takes the same arguments."""
    matches = api_matrix.matches(spec)
    if not matches or not inspect.isclass(target):
        return False
    if hasattr(target, "kernels") and hasattr(target, "tuples"):
        return target.__name__ == spec.class_name
    try:
        import torch
    except ImportError:
        return False
    return (
        issubclass(target, torch.optim.Optimizer) and target.__name__ == matches.rpartition(".")[2]
    )


def api_call(spec: Spec, given: Mapping[str, object], dtype: str = "float64") -> ApiCall:
    """The call for ``given`` arguments (the class's names, a tuple's parts by the spec's names;
    numbers, booleans or command-line strings) on parameters of ``dtype``; unknown names and
    values of the wrong kind are :class:`~symopt.errors.Unsupported` (exit status 2)."""
    kwargs = api_matrix.api_kwargs(spec, given)
    variant = variant_for(spec, api_matrix.setting_of(spec, kwargs))
    values = api_matrix.spec_hyper(spec, kwargs, dtype)
    return ApiCall(
        kwargs=kwargs,
        variant=variant,
        hyper={h: values[h] for h in variant.hyper_names},
        maximize=bool(kwargs.get("maximize", False)),
        state_map={s.name: s.state_key for s in variant.states},
    )


def parse_assignments(items: Sequence[str], option: str) -> dict[str, str]:
    """``k=v`` strings from the command line."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise Unsupported(f"expected NAME=VALUE, got {item!r}", key=option)
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
        raise Unsupported(f"not a number: {value!r}", key="--hyper") from None

"""Every spec hyperparameter reaches the implementation: by its own name, by a name libraries use
for it (``learning_rate``, ``b1``, ``epsilon``, torch's ``momentum`` for rho), as a position in a
tuple (``betas=(beta1, beta2, beta3)``), or by the user's ``--map lr=step``; a hyperparameter the
implementation takes no argument for is an error, not a silent default, unless its value is 0
(taken to switch off the term it scales; the report lists it).

The implementation's other arguments keep its defaults; those with numbers are reported (they are
where a difference often comes from: AdamW's ``weight_decay=0.01``).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from symopt.api_matrix import tuple_parts
from symopt.errors import Unsupported
from symopt.spec import Spec
from symopt.spec.domains import DOMAINS

#: Other names libraries give a spec hyperparameter (torch, optax, Keras, pytorch_optimizer).
SYNONYMS = {
    "lr": ("learning_rate", "step_size"),
    "eps": ("epsilon",),
    "rho": ("momentum",),
    "decay": ("alpha",),
    "alpha": ("decay",),
    "weight_decay": ("wd", "weight_decay_rate"),
}
_NUMBERED = re.compile(r"([A-Za-z_]+?)_?(\d+)$")


@dataclass
class Binding:
    """The spec's hyperparameter values and the implementation's arguments carrying them."""

    hyper: dict[str, float]
    kwargs: dict[str, object]
    #: spec hyperparameter -> how it reaches the implementation ("betas[1]", "learning_rate")
    routes: dict[str, str] = field(default_factory=dict)
    #: the implementation's own numeric arguments, left at their defaults
    defaults: dict[str, float] = field(default_factory=dict)
    #: spec hyperparameters at 0 that no argument carries: 0 is taken to switch off the term
    #: they scale (a weight decay, a learning-rate decay) in an implementation without it
    unpassed: list[str] = field(default_factory=list)


def arguments(signature: inspect.Signature | None, leading: int) -> dict[str, inspect.Parameter]:
    """The parameters hyperparameters may go to (after the ``leading`` positional ones:
    params, or w, g, state, t)."""
    if signature is None:
        return {}
    params = list(signature.parameters.values())
    return {p.name: p for p in params[leading:] if p.kind is not p.VAR_POSITIONAL}


def _route(name: str, params: dict[str, inspect.Parameter], open_kwargs: bool) -> str | None:
    """How hyperparameter ``name`` reaches an implementation with ``params``: an argument name,
    or ``tuple_name[i]``."""
    if name in params:
        return name
    for other in SYNONYMS.get(name, ()):
        if other in params:
            return other
    if m := _NUMBERED.match(name):
        stem, index = m.group(1), int(m.group(2))
        if f"{stem[0]}{index}" in params and stem[0] != stem:
            return f"{stem[0]}{index}"  # optax's b1, b2
        for plural in (f"{stem}s", stem):
            if plural in params and index >= 1:
                return f"{plural}[{index - 1}]"
    return name if open_kwargs else None


def bind(
    spec: Spec,
    signature: inspect.Signature | None,
    leading: int,
    given: Mapping[str, object],
    hyper_map: Mapping[str, str],
    target_name: str,
) -> Binding:
    """Bind the spec's hyperparameters (defaults updated by ``given``, by spec or implementation
    names) to the implementation's arguments; ``given`` names that are neither go to the
    implementation as they are, if it takes them."""
    params = arguments(signature, leading)
    open_kwargs = signature is None or any(
        p.kind is p.VAR_KEYWORD for p in signature.parameters.values()
    )
    named = {n: p for n, p in params.items() if p.kind is not p.VAR_KEYWORD}
    routes: dict[str, str] = {}
    for name in spec.hyper_names:
        if name in hyper_map:
            route = hyper_map[name]
            if route not in named and not open_kwargs:
                raise Unsupported(
                    f"{name}={route}: {target_name} takes no argument {route!r} "
                    f"(it takes {', '.join(named) or 'none'})",
                    key="--map",
                )
        else:
            route = _route(name, named, open_kwargs)
        if route is not None:
            routes[name] = route
    hyper = dict(spec.defaults)
    extra: dict[str, object] = {}
    by_route = {r: h for h, r in routes.items()}
    tuples = {r.partition("[")[0] for r in routes.values() if "[" in r}
    for key, value in given.items():
        if key in hyper:
            hyper[key] = _number(key, value)
        elif key in by_route:
            hyper[by_route[key]] = _number(key, value)
        elif key in tuples:
            parts = _tuple(key, value)
            for h, r in routes.items():
                if r.partition("[")[0] == key:
                    index = int(r.partition("[")[2].rstrip("]"))
                    if index >= len(parts):
                        raise Unsupported(
                            f"{key}={value!r}: needs {index + 1} numbers", key="--hyper"
                        )
                    hyper[h] = _number(key, parts[index])
        elif key in named or open_kwargs:
            extra[key] = value
        else:
            raise Unsupported(
                f"{key}: neither a hyperparameter of {spec.name} ({', '.join(spec.hyper_names)}) "
                f"nor an argument of {target_name}",
                key="--hyper",
            )
    check_domains(spec, hyper)
    unpassed = [n for n in spec.hyper_names if n not in routes]
    for name in unpassed:
        if hyper[name] != 0:
            tried = ", ".join([name, *SYNONYMS.get(name, ())])
            raise Unsupported(
                f"{spec.name}'s hyperparameter {name} = {hyper[name]:g} does not reach "
                f"{target_name}: it takes no argument {tried} (it takes "
                f"{', '.join(named) or 'none'}); name the one that carries it with --map "
                f"{name}=ARGUMENT",
                key="--hyper",
            )
    kwargs = {**extra, **_arguments(routes, hyper, named)}
    defaults = {
        n: float(p.default)
        for n, p in named.items()
        if n not in kwargs
        and isinstance(p.default, (int, float))
        and not isinstance(p.default, bool)
    }
    return Binding(hyper, kwargs, routes, defaults, unpassed)


def _arguments(routes: dict[str, str], hyper: dict[str, float], named) -> dict[str, object]:
    """The implementation's keyword arguments for the spec's values (tuples assembled, their
    unfilled places from the argument's default)."""
    out: dict[str, object] = {}
    tuples: dict[str, dict[int, float]] = {}
    for h, route in routes.items():
        if "[" in route:
            base, _, index = route.partition("[")
            tuples.setdefault(base, {})[int(index.rstrip("]"))] = hyper[h]
        else:
            out[route] = hyper[h]
    for base, places in tuples.items():
        default = named[base].default if base in named else None
        length = max(len(default) if isinstance(default, (tuple, list)) else 0, max(places) + 1)
        values = []
        for i in range(length):
            if i in places:
                values.append(places[i])
            elif isinstance(default, (tuple, list)) and i < len(default):
                values.append(default[i])
            else:
                raise Unsupported(
                    f"{base}[{i}] has no spec hyperparameter and no default", key="--hyper"
                )
        out[base] = tuple(values)
    return out


def check_domains(spec: Spec, hyper: Mapping[str, float]) -> None:
    """Every hyperparameter value inside its domain (``eps=0`` is not positive)."""
    for h in spec.hypers:
        domain = DOMAINS[h.domain]
        if not domain.contains(hyper[h.name]):
            raise Unsupported(
                f"{h.name}={hyper[h.name]!r} is outside {spec.name}'s domain for it, "
                f"{domain.interval}",
                key="--hyper",
            )


def _number(key: str, value: object) -> float:
    if isinstance(value, bool):
        raise Unsupported(f"{key}={value!r}: expected a number", key="--hyper")
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise Unsupported(f"{key}={value!r}: expected a number", key="--hyper") from None


def _tuple(key: str, value: object) -> list[object]:
    if isinstance(value, str):
        return tuple_parts(value)
    if isinstance(value, (tuple, list)):
        return list(value)
    raise Unsupported(f"{key}={value!r}: expected numbers separated by commas", key="--hyper")

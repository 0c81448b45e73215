"""A drop-in spec's arguments as its library class takes them, and the matrix of flags to test.

A spec whose ``[api] matches`` names a library class (``torch.optim.Adam``) is called with that
class's keyword arguments: torch's names, tuples packed (``betas=(0.9, 0.999)``). This module
maps such keyword arguments to the spec (:func:`spec_hyper`, :func:`setting_of`), fills in and
checks the ones a user gives (:func:`api_kwargs`), and lists the combinations every drop-in is
tested on (:func:`flag_matrix`): each flag off and on, each ``off_at_zero`` hyperparameter at 0
and at a nonzero value, ``maximize`` off and on, and one row with the other hyperparameters
moved off their defaults.
"""

from __future__ import annotations

import difflib
import itertools
import math
from collections.abc import Mapping

import numpy as np

from symopt.errors import Unsupported
from symopt.spec import Spec
from symopt.spec.api import FRAMEWORK_ARGUMENTS, Api, ApiArgument, Family

#: The value an ``off_at_zero`` hyperparameter takes in the matrix when its default is 0.
NONZERO = 0.1
#: Framework arguments that may be None in torch (``foreach``, ``fused``: "let torch choose").
MAY_BE_NONE = {name for name, default in FRAMEWORK_ARGUMENTS.items() if default is None}


class Row(dict):
    """One combination of keyword arguments (a plain dict to call the class with), and its
    :func:`label`."""

    label: str = ""


def family_of(spec: Spec) -> Family:
    """The family of a spec that matches a library class; ValueError for any other spec."""
    family = spec.family
    if family is None or not family.api.matches:
        raise ValueError(f"{spec.name} matches no library class (no [api] matches)")
    return family


def matches(spec: Spec) -> str:
    """The library class a spec is a drop-in for ("torch.optim.Adam"), or ""."""
    return spec.family.api.matches if spec.family is not None else ""


def defaults(spec: Spec) -> dict[str, object]:
    """Every argument that changes the numbers at the spec's default (torch's), in the class's
    order: hyperparameters, tuples, flags, constants, a choice at None (its first string), a
    machine-epsilon hyperparameter at None, and ``maximize=False`` where it is an argument."""
    family = family_of(spec)
    api = family.api
    hyper = {
        h.name: None if h.name in api.machine_epsilon else h.default for h in family.raw.hypers
    }
    flags = {f.name: f.default for f in family.raw.flags}
    out: dict[str, object] = {}
    for a in api.arguments:
        if a.kind == "hyper":
            out[a.name] = hyper[a.name]
        elif a.kind == "tuple":
            out[a.name] = tuple(hyper[p] for p in a.parts)
        elif a.kind == "flag":
            out[a.name] = flags[a.name]
        elif a.kind == "choice":
            out[a.name] = None
        elif a.kind == "constant":
            out[a.name] = a.value
        elif a.name == "maximize":
            out[a.name] = False
    return out


def spec_hyper(
    spec: Spec, kwargs: Mapping[str, object], dtype: str = "float64"
) -> dict[str, float]:
    """Every hyperparameter of the spec as written (those a variant drops included) from the
    class's keyword arguments: tuples unpacked, the rest at their defaults; a machine-epsilon
    hyperparameter at None (torch's default) is that of ``dtype``."""
    family = family_of(spec)
    api = family.api
    epsilon = float(np.finfo(dtype).eps)
    out = {
        h.name: epsilon if h.name in api.machine_epsilon else float(h.default)
        for h in family.raw.hypers
    }

    def number(name: str, value: object) -> float:
        return epsilon if value is None and name in api.machine_epsilon else float(value)  # type: ignore[arg-type]

    for key, value in kwargs.items():
        a = _argument(api, key)
        if a.kind == "hyper":
            out[a.name] = number(a.name, value)
        elif a.kind == "tuple":
            for part, v in zip(a.parts, value, strict=True):  # type: ignore[call-overload]
                out[part] = number(part, v)
    return out


def setting_of(spec: Spec, kwargs: Mapping[str, object]) -> dict[str, bool]:
    """The variant axes the keyword arguments select: each flag's value (set by the class, by
    a choice's string, or given), and for each ``off_at_zero`` hyperparameter whether it is
    nonzero."""
    family = family_of(spec)
    api = family.api
    flags = {f.name: f.default for f in family.raw.flags}
    flags.update({k: v for k, v in api.fixed.items() if k in flags})
    for a in api.arguments:
        if a.kind == "flag" and a.name in kwargs:
            flags[a.name] = bool(kwargs[a.name])
        elif a.kind == "choice":
            option = kwargs.get(a.name)
            if option is not None and option not in options(a):
                raise ValueError(f"{a.name}: {option!r} is not one of {', '.join(options(a))}")
            flags.update(options(a)[option if option is not None else next(iter(options(a)))])
    values = spec_hyper(spec, kwargs)
    return {axis: flags[axis] if axis in flags else values[axis] != 0 for axis in family.axes}


def options(a: ApiArgument) -> dict[str, dict[str, bool]]:
    """A choice argument's strings and the flags each sets (the first is torch's None)."""
    return {k: v for k, v in a.choices.items() if k != "message"}  # type: ignore[misc]


def flag_matrix(spec: Spec) -> list[Row]:
    """The keyword arguments of every combination of the spec's flags (or, for flags a choice
    sets, of the choice's strings), ``off_at_zero`` hyperparameters (0, or the default when
    nonzero, else :data:`NONZERO`) and ``maximize``, the other arguments at their defaults;
    then one row with every numeric hyperparameter that is not an axis moved off its default
    (:func:`moved`). Flags the class fixes (AdamW's decoupled weight decay) are not varied.
    Some rows may be invalid for the library class (SGD's nesterov without momentum): it
    raises ValueError."""
    family = family_of(spec)
    api = family.api
    base = defaults(spec)
    hypers = {h.name: h for h in family.raw.hypers}
    chosen = {
        f: a for a in api.arguments if a.kind == "choice" for s in options(a).values() for f in s
    }
    toggles: list[tuple[str, tuple[object, ...]]] = []
    for axis in family.axes:
        if axis in api.fixed:
            continue
        if axis in chosen:
            toggle = (chosen[axis].name, tuple(options(chosen[axis])))
            if toggle not in toggles:
                toggles.append(toggle)
        elif axis in hypers:
            default = hypers[axis].default
            toggles.append((axis, (0.0, default if default != 0 else NONZERO)))
        else:
            toggles.append((axis, (False, True)))
    if "maximize" in base:
        toggles.append(("maximize", (False, True)))
    rows = []
    for values in itertools.product(*(v for _, v in toggles)):
        row = Row(base)
        words = []
        for (name, choices), value in zip(toggles, values, strict=True):
            _assign(api, row, name, value)
            if value != choices[0]:
                words.append(name if value is True else f"{name}={_short(value)}")
        row.label = "+".join(words) or "plain"
        rows.append(row)
    row = Row(base)
    for h in family.raw.hypers:
        if h.name not in family.axes:
            _assign(api, row, h.name, moved(h.domain, h.default))
    row.label = "moved"
    rows.append(row)
    return rows


def moved(domain: str, x: float) -> float:
    """A value off the default, inside the domain: unit intervals x -> (1 + x)/2, positive
    x -> 2x, nonnegative 0 -> 0.1 and x -> 2x, real: unchanged."""
    if domain in ("unit_open", "unit_closed_open"):
        return (1 + x) / 2
    if domain == "positive":
        return 2 * x
    if domain == "nonnegative":
        return 2 * x if x != 0 else NONZERO
    return x


def label(row: Mapping[str, object]) -> str:
    """A short name for a row (a test id): the flags on and the ``off_at_zero`` values nonzero,
    "plain" when none is, "moved" for the row of moved hyperparameters."""
    if getattr(row, "label", ""):
        return row.label  # type: ignore[attr-defined]
    return ",".join(f"{k}={_short(v)}" for k, v in row.items())


def _short(value: object) -> str:
    if isinstance(value, tuple):
        return "(" + ",".join(_short(v) for v in value) + ")"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _argument(api: Api, name: str) -> ApiArgument:
    for a in api.arguments:
        if a.name == name:
            return a
    raise ValueError(f"{name!r} is not an argument of {api.matches}")


def _assign(api: Api, row: dict, name: str, value: object) -> None:
    """Set an argument, a hyperparameter that is a part of a tuple argument, or a flag that a
    choice argument sets (the first of its strings that sets it so)."""
    for a in api.arguments:
        if a.name == name:
            row[name] = value
            return
        options = {o: s for o, s in a.choices.items() if o != "message"}
        if any(name in setting for setting in options.values()):
            row[a.name] = next(o for o, s in options.items() if s.get(name) == value)
            return
        if name in a.parts:
            row[a.name] = tuple(
                value if p == name else v
                for p, v in zip(a.parts, row[a.name], strict=True)  # type: ignore[call-overload]
            )
            return
    raise ValueError(f"{name!r} is not an argument of {api.matches}")


def api_kwargs(spec: Spec, given: Mapping[str, object], option: str = "--hyper") -> dict:
    """Every argument of the spec's class with a value: those ``given`` (torch's names, or a
    tuple's hyperparameters by the spec's names; command-line strings converted) over the
    :func:`defaults`. A name the class does not take, or a value of the wrong kind, is a
    one-line :class:`~symopt.errors.Unsupported` error."""
    family = family_of(spec)
    api = family.api
    cls = api.matches.rpartition(".")[2]
    out = defaults(spec)
    names = {a.name: a for a in api.arguments}
    parts = {p: a for a in api.arguments for p in a.parts}
    later: list[tuple[str, float | None]] = []
    for key, value in given.items():
        if key in names:
            out[key] = _convert(api, names[key], value, option)
        elif key in parts:
            later.append((key, _number(key, value, option, key in api.machine_epsilon)))
        else:
            hint = difflib.get_close_matches(key, [*names, *parts], n=1)
            near = f" (did you mean {hint[0]!r}?)" if hint else ""
            known = ", ".join([*names, *parts])
            raise Unsupported(
                f"{cls} takes no argument {key!r}{near}; it takes {known}", key=option
            )
    for key, value in later:  # beta1=0.8 after betas=(...)
        _assign(api, out, key, value)
    return out


def _convert(api: Api, a: ApiArgument, value: object, option: str) -> object:
    """A given value of one argument, checked against its kind."""
    if a.kind == "hyper":
        return _number(a.name, value, option, a.name in api.machine_epsilon)
    if a.kind == "tuple":
        items = value
        if isinstance(value, str):
            items = tuple_parts(value)
        if not isinstance(items, (list, tuple)) or len(items) != len(a.parts):
            raise Unsupported(
                f"{a.name}: expected {len(a.parts)} numbers ({', '.join(a.parts)}), got {value!r}",
                key=option,
            )
        return tuple(
            _number(f"{a.name}[{i}]", v, option, p in api.machine_epsilon)
            for i, (p, v) in enumerate(zip(a.parts, items, strict=True))
        )
    if isinstance(value, str) and value.strip().lower() == "none":
        value = None
    if a.kind == "choice":
        if value is None or value in options(a):
            return value
        words = ", ".join(repr(o) for o in options(a))
        raise Unsupported(f"{a.name}: expected {words} or none, got {value!r}", key=option)
    if a.kind == "constant":
        if _same_value(value, a.value):
            return a.value
        raise Unsupported(
            f"{a.name}: the spec fixes it at {a.value!r} (torch's default), got {value!r}",
            key=option,
        )
    allowed = (True, False, None) if a.name in MAY_BE_NONE else (True, False)
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        value = value.strip().lower() == "true"
    if (value is None and None in allowed) or isinstance(value, bool):
        return value
    words = "true, false or none" if None in allowed else "true or false"
    raise Unsupported(f"{a.name} is a flag: expected {words}, got {value!r}", key=option)


def tuple_parts(value: str) -> list[str]:
    """A tuple as the command line gives it: ``0.9,0.999`` or ``(0.9, 0.999)``."""
    return [v for v in value.strip("()[] ").split(",") if v.strip()]


def _same_value(value: object, constant: object) -> bool:
    if isinstance(constant, bool) or isinstance(value, bool):
        return value is constant or str(value).lower() == str(constant).lower()
    try:
        return float(value) == float(constant)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def _number(name: str, value: object, option: str, may_be_none: bool = False) -> float | None:
    """A finite number (or None for a machine-epsilon hyperparameter: torch's default)."""
    if isinstance(value, str):
        if may_be_none and value.strip().lower() == "none":
            return None
        try:
            value = float(value)
        except ValueError:
            pass
    if value is None and may_be_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise Unsupported(f"{name}: expected a finite number, got {value!r}", key=option)
    return float(value)

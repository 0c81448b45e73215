"""A spec's variants: one per setting of its flags and ``off_at_zero`` hyperparameters.

torch.optim decides with flags which terms of an update run and which state exists (Adam's
``amsgrad`` keeps a running maximum, SGD keeps no buffer when ``momentum`` is 0). A spec writes
them as conditions, ``where(amsgrad, vmax, v)``, and ``[state.vmax] when = "amsgrad"``; each
setting is specialised here into an ordinary spec without flags (the conditions decided, the
state that does not exist and its lines removed), which is checked and lowered like any other.
So the generated code branches once per step on a flag, never per element, and allocates only
the state its setting needs.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping

import sympy

from symopt.errors import SpecError
from symopt.spec.api import Family
from symopt.spec.common import make_symbol
from symopt.spec.domains import DOMAINS
from symopt.spec.elementwise import Assignment, Spec
from symopt.spec.parse import FlagSymbol

#: The default, in a variant for its nonzero values, of an off_at_zero hyperparameter whose
#: default is 0.
NONZERO_DEFAULT = 0.1
#: The most variants a spec may have (2 to the number of its axes).
MAX_VARIANTS = 16


def specialise(family: Family, setting: Mapping[str, bool]) -> Spec:
    """The variant of ``family`` for one setting of its axes (every axis given)."""
    raw = family.raw
    subs: dict[sympy.Basic, sympy.Basic] = {
        FlagSymbol(f.name): sympy.true if setting[f.name] else sympy.false for f in raw.flags
    }
    off = {h.name for h in raw.hypers if h.off_at_zero and not setting[h.name]}
    nonzero = {}
    for h in raw.hypers:
        symbol = make_symbol(h.name, DOMAINS[h.domain].assumptions)
        if h.name in off:
            subs[symbol] = sympy.Integer(0)
        elif h.off_at_zero:
            nonzero[symbol] = sympy.Dummy(h.name, **_nonzero(DOMAINS[h.domain].assumptions))
    absent = {s.name: s.when for s in raw.states if s.when and not setting[s.when]}
    update = _lines(raw, raw.update, subs, absent, "update", nonzero)
    otherwise = _lines(raw, raw.otherwise, subs, absent, "otherwise.update", nonzero)
    states = tuple(
        dataclasses.replace(s, init=s.init.xreplace(subs))
        for s in raw.states
        if s.name not in absent
    )
    scopes = {
        check: {k: v.xreplace(subs) for k, v in scope.items() if k not in off}
        for check, scope in raw.check_scopes.items()
    }
    scopes = {check: scope for check, scope in scopes.items() if scope}  # met by the setting
    default = setting == family.default_setting()
    used = {x.name for a in (*update, *otherwise) for x in a.expr.free_symbols}
    used |= {x.name for st in states for x in st.init.free_symbols}
    hypers = tuple(
        # a variant for nonzero values of a hyperparameter whose default is 0 defaults to
        # NONZERO_DEFAULT, so that its own tests exercise what it is for
        dataclasses.replace(h, default=NONZERO_DEFAULT) if h.off_at_zero and h.default == 0 else h
        for h in raw.hypers
        # a variant takes the hyperparameters its equations use (the default one all of its
        # spec's, which its relations may name)
        if h.name not in off and (default or h.name in used)
    )
    return dataclasses.replace(
        raw,
        hypers=hypers,
        states=states,
        update=update,
        otherwise=otherwise,
        check_scopes=scopes,
        relations=raw.relations if default else (),
        properties=raw.properties if default else (),
        flags=(),
        family=family,
        setting=dict(setting),
    )


def _nonzero(assumptions: Mapping[str, bool]) -> dict[str, bool]:
    """The assumptions of a hyperparameter known to be nonzero."""
    if assumptions.get("nonnegative") or assumptions.get("positive"):
        return {"positive": True}
    return {"real": True, "nonzero": True}


def _decide(expr: sympy.Basic, nonzero: Mapping[sympy.Symbol, sympy.Dummy]) -> sympy.Basic:
    """Conditions a variant for nonzero values settles (``momentum != 0``, ``momentum > 0``)
    replaced by true or false; any other condition is left as it is."""
    decided = {}
    for rel in expr.atoms(sympy.core.relational.Relational):
        if len(rel.free_symbols) == 1 and next(iter(rel.free_symbols)) in nonzero:
            value = rel.xreplace(nonzero)
            if value in (sympy.true, sympy.false):
                decided[rel] = value
    return expr.xreplace(decided) if decided else expr


def _lines(
    raw: Spec,
    lines: tuple[Assignment, ...],
    subs: Mapping[sympy.Basic, sympy.Basic],
    absent: Mapping[str, str],
    key: str,
    nonzero: Mapping[sympy.Symbol, sympy.Dummy],
) -> tuple[Assignment, ...]:
    """The lines with the setting substituted, less those assigning a state that is absent."""
    out = []
    for a in lines:
        if a.target in absent:
            continue
        expr = _decide(a.expr.xreplace(subs), nonzero)
        if expr == sympy.Symbol(a.target, real=True) and expr != a.expr:
            continue  # "w = where(decoupled, w*(1 - lr*wd), w)" without the flag: no line
        used = sorted({s.name for s in expr.free_symbols} & set(absent))
        if used:
            raise SpecError(
                f"{a.text!r} uses the state {used[0]!r}, which does not exist when "
                f"{absent[used[0]]!r} is off: put the use in where({absent[used[0]]}, ...)",
                file=raw.source,
                key=key,
            )
        text = a.text if expr == a.expr else f"{a.target} = {sympy.sstr(expr)}"
        out.append(dataclasses.replace(a, expr=expr, text=text))
    return tuple(out)


def settings(family: Family) -> list[dict[str, bool]]:
    """Every setting of the axes, the default first."""
    first = family.default_setting()
    rest = [
        dict(zip(family.axes, values, strict=True))
        for values in itertools.product((False, True), repeat=len(family.axes))
    ]
    return [first, *(s for s in rest if s != first)]


def variants(spec: Spec) -> list[Spec]:
    """The distinct variants of a spec's family, the default first (a spec without a family is
    its only variant). Settings whose equations coincide (SGD's ``nesterov`` without momentum)
    share the first such variant."""
    if spec.family is None:
        return [spec]
    out: list[Spec] = []
    for setting in settings(spec.family):
        candidate = specialise(spec.family, setting)
        if not any(_same(candidate, v) for v in out):
            out.append(candidate)
    return out


def variant_for(spec: Spec, setting: Mapping[str, bool]) -> Spec:
    """The variant that runs for ``setting`` (one of :func:`variants`)."""
    if spec.family is None:
        return spec
    wanted = specialise(spec.family, {**spec.family.default_setting(), **setting})
    return next(v for v in variants(spec) if _same(wanted, v))


def variant(spec: Spec, **setting: bool) -> Spec:
    """The variant of a loaded spec with some axes changed: ``variant(adam, amsgrad=True)``."""
    if spec.family is None:
        if setting:
            raise ValueError(f"{spec.name} has no flags")
        return spec
    unknown = set(setting) - set(spec.family.axes)
    if unknown:
        known = ", ".join(spec.family.axes)
        raise ValueError(f"{spec.name} has no flag {sorted(unknown)[0]!r}; its flags: {known}")
    return variant_for(spec, setting)


def _same(a: Spec, b: Spec) -> bool:
    return (
        a.hypers == b.hypers
        and a.states == b.states
        and [(x.target, x.expr) for x in (*a.update, *a.otherwise)]
        == [(x.target, x.expr) for x in (*b.update, *b.otherwise)]
    )


def module_name(spec: Spec) -> str:
    """The generated module of a variant: ``_adam``, ``_adam__amsgrad``, ...; a spec without a
    family keeps its name (spec names cannot start with ``_``, so none collide)."""
    if spec.family is None:
        return spec.name
    on = [a for a in spec.family.axes if spec.setting[a]]
    return "_" + "__".join([spec.name, *on])


def first_of_its_layout(spec: Spec) -> bool:
    """Whether no earlier variant of the spec's family keeps the same state (names and shapes):
    variants that do share one memory layout, which a sanitizer run needs to see once."""
    if spec.family is None:
        return True

    def layout(v: Spec) -> tuple:
        return tuple((s.name, s.shape) for s in v.states)

    return next(v for v in variants(spec) if layout(v) == layout(spec)).setting == spec.setting


def variant_label(spec: Spec) -> str:
    """How a variant differs from its spec's defaults ("amsgrad, weight_decay != 0"); "" for
    the default variant and for a spec without a family."""
    family = spec.family
    if family is None:
        return ""
    flags = set(family.flag_names)
    default = family.default_setting()
    words = []
    for axis in family.axes:
        on = spec.setting[axis]
        if on == default[axis]:
            continue
        if axis in flags:
            words.append(axis if on else f"not {axis}")
        else:
            words.append(f"{axis} != 0" if on else f"{axis} = 0")
    return ", ".join(words)


def check_family(family: Family) -> None:
    """Every variant specialises (no line uses a state its setting removes), at most
    :data:`MAX_VARIANTS` of them."""
    if 2 ** len(family.axes) > MAX_VARIANTS:
        raise SpecError(
            f"{len(family.axes)} flags and off_at_zero hyperparameters make more than "
            f"{MAX_VARIANTS} variants",
            file=family.raw.source,
            key="flag",
        )
    for setting in settings(family):
        specialise(family, setting)

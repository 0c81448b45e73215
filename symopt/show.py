"""Plain-text description of a spec for ``symopt show``."""

from __future__ import annotations

import textwrap

import sympy

from symopt.backends.docs.update import SHAPE_WORDS, split_repeats
from symopt.spec import Assignment, Spec, StateVar
from symopt.spec.family import module_name, variant_label, variants
from symopt.spec.model import ModelSpec


def _head(spec: Spec | ModelSpec, domains) -> list[str]:
    out = [f"{spec.title} ({spec.name}, class {spec.class_name})", f"source: {spec.source}", ""]
    out += textwrap.wrap(" ".join(spec.summary.split()), 96)
    out += ["", f"reference: {spec.reference}"]
    if spec.hypers:
        out += ["", "hyperparameters:"]
    width = max([8, *(len(h.name) for h in spec.hypers)])
    for h in spec.hypers:
        interval = domains[h.domain].interval
        out.append(f"  {h.name:{width}} = {h.default:<8g} in {interval:12} {h.doc}")
    return out


def _notes(spec: Spec | ModelSpec) -> list[str]:
    if not spec.notes:
        return []
    text = " ".join(spec.notes.split())
    return ["", "notes:", *textwrap.wrap(text, 96, initial_indent="  ", subsequent_indent="  ")]


def describe_model(spec: ModelSpec, domains) -> str:
    """A second-order spec: its model and the step derived from it."""
    from symopt.lowering.derive import derive

    d = derive(spec, None)
    out = _head(spec, domains)
    out += ["", f"model (order {spec.order}, curvature {spec.curvature}):"]
    out += [f"  m(d) = L + {sympy.sstr(d.model)}", f"  gradient: {sympy.sstr(d.gradient)}"]
    out += [f"  stationary where ({sympy.sstr(d.matrix)})*d = {sympy.sstr(d.rhs)}"]
    out += [f"  derived step: d = {sympy.sstr(d.step)}"]
    if spec.step_text:
        out += [f"  written step: d = {spec.step_text} (checked equal by 'symopt check')"]
    out += ["", f"control rule: {spec.rule}"]
    if spec.rule == "radius":
        out += [f"subproblem: {spec.subproblem}"]
    else:
        out += [f"where H is not positive definite: {spec.on_indefinite}"]
    return "\n".join(out + _notes(spec))


def _lines(update: tuple[Assignment, ...]) -> list[str]:
    """The update as written: a repeat block once, under ``repeat N times:``."""
    out = []
    for repeat, lines in split_repeats(update):
        if repeat is None:
            out += [f"  {a.text}" for a in lines]
        else:
            out += [f"  repeat {repeat.count} times:", *(f"    {a.text}" for a in lines)]
    return out


def _state(s: StateVar) -> str:
    marks = [SHAPE_WORDS[s.shape]] if s.shape != "full" else []
    if s.when:
        marks.append(f"only with {s.when}")
    if {"g", "w"} & {x.name for x in s.init.free_symbols}:
        marks.append("set at the first step")
    mark = f"({', '.join(marks)}) " if marks else ""
    return f"  {s.name:8} = {sympy.sstr(s.init):<8} {mark}{s.doc}".rstrip()


def _family(spec: Spec) -> list[str]:
    """A spec with flags: the flags, the library class it is a drop-in for, its variants."""
    family = spec.family
    if family is None:
        return []
    out = []
    if family.raw.flags:
        out += ["", "flags:"]
        width = max(8, *(len(f.name) for f in family.raw.flags))
        out += [f"  {f.name:{width}} = {f.default!s:<8} {f.doc}" for f in family.raw.flags]
    if family.api.matches:
        out += ["", f"drop-in for {family.api.matches}: the generated classes take its arguments"]
    found = variants(spec)
    out += ["", f"variants ({len(found)}), each with a kernel of its own (module: setting):"]
    out += [f"  {module_name(v)}: {variant_label(v) or 'the defaults'}" for v in found]
    return out


def describe(spec: Spec | ModelSpec, domains) -> str:
    if isinstance(spec, ModelSpec):
        return describe_model(spec, domains)
    variant = spec
    if spec.family is not None:  # the spec as written: every flag and the state each needs
        spec = spec.family.raw
    out = _head(spec, domains) + _family(variant)
    if spec.states:
        out += ["", "state (initial value):", *(_state(s) for s in spec.states)]
    steps = f"for t = {spec.t_start}, {spec.t_start + 1}, ... (g is the gradient at w)"
    if spec.applies_to != "any":
        which = (
            "2-D parameters (rows x cols)"
            if spec.applies_to == "matrix"
            else ("parameters of 2 or more dimensions")
        )
        out += ["", f"update of {which}, {steps}:", *_lines(spec.update)]
        if spec.otherwise:
            out += ["", "update of every other parameter:", *_lines(spec.otherwise)]
        else:
            out += ["", "every other parameter: refused (the optimizer raises an error)"]
    else:
        out += ["", f"update, {steps}:", *_lines(spec.update)]
    if spec.lookahead_free:
        out += ["", "look-ahead-free form (used by generated code):"]
        out += _lines(spec.lookahead_free.update)
    if spec.check_scopes:
        out += ["", "checks stated for some hyperparameter values ([checks.NAME] where):"]
    for check, scope in spec.check_scopes.items():
        where = ", ".join(f"{k} = {sympy.sstr(v)}" for k, v in scope.items())
        out.append(f"  {check}: {where}")
    return "\n".join(out + _notes(spec))

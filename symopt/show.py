"""Plain-text description of a spec for ``symopt show``."""

from __future__ import annotations

import textwrap

import sympy

from symopt.spec import Spec


def describe(spec: Spec, domains) -> str:
    out = [f"{spec.title} ({spec.name}, class {spec.class_name})", f"source: {spec.source}", ""]
    out += textwrap.wrap(" ".join(spec.summary.split()), 96)
    out += ["", f"reference: {spec.reference}", "", "hyperparameters:"]
    for h in spec.hypers:
        out.append(f"  {h.name:8} = {h.default:<8g} in {domains[h.domain].interval:12} {h.doc}")
    if spec.states:
        out += ["", "state (initial value):"]
        out += [f"  {s.name:8} = {sympy.sstr(s.init):<8} {s.doc}" for s in spec.states]
    out += [
        "",
        f"update, for t = {spec.t_start}, {spec.t_start + 1}, ... (g is the gradient at w):",
    ]
    out += [f"  {a.text}" for a in spec.update]
    if spec.lookahead_free:
        out += ["", "look-ahead-free form (used by generated code):"]
        out += [f"  {a.text}" for a in spec.lookahead_free.update]
    if spec.notes:
        out += [
            "",
            "notes:",
            *textwrap.wrap(
                " ".join(spec.notes.split()), 96, initial_indent="  ", subsequent_indent="  "
            ),
        ]
    return "\n".join(out)

"""The tables of ``docs/torch-parity.md``, written from the specs (none of them typed by hand).

Three tables, each between marker comments in the document:

* ``classes``: every ``torch.optim.Optimizer`` class of the installed torch, the spec that is a
  drop-in for it (``[api] matches``), its generated class and how many kernels it has;
* ``arguments``: per class, its signature and what covers each argument: a hyperparameter, a
  flag, a tuple of hyperparameters, a string that sets flags (a choice), a constant, or a
  framework argument the runtime handles; and the state dict keys;
* ``matrix``: per spec, every row of :func:`symopt.api_matrix.flag_matrix` (what
  ``tests/test_torch_optim_parity.py`` runs), its keyword arguments, and the generated kernel
  module that runs it, or torch's message where torch refuses the combination.

``python -m symopt.parity_doc --write`` rewrites the tables in the document, ``--check`` exits
with status 1 when they are stale; with neither it prints them. It needs torch (it reads
torch.optim's classes and constructs them to see which rows they refuse).
"""

from __future__ import annotations

import functools
import importlib
import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from symopt import doc_blocks
from symopt.api_matrix import defaults, flag_matrix, setting_of
from symopt.resources import PACKAGE, builtin_specs
from symopt.spec import Spec
from symopt.spec.api import FRAMEWORK_ARGUMENTS, ApiArgument
from symopt.spec.family import module_name, variant_for, variants

#: The document, in a source checkout.
DOC = PACKAGE.parent / "docs" / "torch-parity.md"
BEGIN, END = doc_blocks.markers("parity_doc")
#: What the runtime does with each framework argument.
RUNTIME = {
    "foreach": "runtime: None or True runs the torch._foreach_* path, False one tensor at a "
    "time (the same numbers)",
    "maximize": "runtime: the update runs on the negated gradient",
    "capturable": "runtime: True is refused (RuntimeError: no CUDA graph capture)",
    "differentiable": "runtime: True is refused (RuntimeError: the update runs under no_grad)",
    "fused": "runtime: True runs the fused kernel (C on the CPU, Triton on CUDA); the foreach "
    "path's values",
}
#: What the runtime does with fused=True for a spec that is not element-wise.
NOT_FUSED = "runtime: True is refused (RuntimeError: fused kernels are for element-wise specs)"


def drop_ins() -> dict[str, Spec]:
    """The built-in specs whose ``[api] matches`` names a torch.optim class, by class name."""
    out = {}
    for spec in builtin_specs().values():
        family = getattr(spec, "family", None)
        if family is not None and family.api.matches.startswith("torch.optim."):
            out[family.api.matches] = spec
    return dict(sorted(out.items(), key=lambda item: item[0].lower()))


def torch_class(spec: Spec) -> type:
    module, _, name = spec.family.api.matches.rpartition(".")
    return getattr(importlib.import_module(module), name)


def torch_optimizers() -> list[str]:
    """Every optimizer class torch.optim exports ("torch.optim.Adam", ...), by name."""
    import torch

    names = []
    for name in dir(torch.optim):
        obj = getattr(torch.optim, name)
        if isinstance(obj, type) and issubclass(obj, torch.optim.Optimizer):
            if obj is not torch.optim.Optimizer:
                names.append(f"torch.optim.{name}")
    return sorted(names, key=str.lower)


# -- values as torch's signature writes them ----------------------------------------------------


def value(x: object) -> str:
    """A keyword argument's value as Python source: ``0.001``, ``(0.9, 0.999)``, ``'original'``."""
    if isinstance(x, tuple):
        return "(" + ", ".join(value(v) for v in x) + ")"
    return repr(x)


def signature(spec: Spec, width: int = 96) -> str:
    """The class's signature with its defaults (torch's), ``*`` before the keyword-only ones,
    wrapped as black would wrap a call that is too long for one line."""
    api = spec.family.api
    given = defaults(spec)
    parts = ["params"]
    star = False
    for a in api.arguments:
        if a.keyword_only and not star:
            parts.append("*")
            star = True
        default = given.get(a.name, FRAMEWORK_ARGUMENTS.get(a.name))
        parts.append(f"{a.name}={value(default)}")
    line = f"{spec.class_name}({', '.join(parts)})"
    if len(line) <= width:
        return line
    lines, current = [f"{spec.class_name}("], "   "
    for part in parts:
        if len(current) + len(part) + 2 > width:
            lines.append(current.rstrip())
            current = "   "
        current += f" {part},"
    return "\n".join([*lines, current, ")"])


# -- the tables ----------------------------------------------------------------------------------


def _code(names) -> str:
    return ", ".join(f"`{n}`" for n in names)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in r) + " |" for r in rows]
    return lines


def classes_table() -> str:
    """Every torch.optim optimizer class, and the spec and generated class that replace it."""
    specs = drop_ins()
    rows = []
    for cls in torch_optimizers():
        spec = specs.get(cls)
        if spec is None:
            rows.append([f"`{cls}`", "no spec", "", "", ""])
            continue
        rows.append(
            [
                f"`{cls}`",
                f"[`{spec.family.raw.name}`](../{spec.source})",
                f"`symopt_torch.{spec.class_name}`",
                str(len(variants(spec))),
                str(len(flag_matrix(spec))),
            ]
        )
    missing = sorted(set(specs) - set(torch_optimizers()))
    for cls in missing:  # a spec matching a class this torch does not have
        rows.append([f"`{cls}`", specs[cls].name, "not in this torch", "", ""])
    header = ["torch.optim class", "spec", "generated class", "kernels", "rows tested"]
    return "\n".join(_table(header, rows))


def _covers(spec: Spec, a: ApiArgument) -> list[str]:
    """What covers one argument: the kind, the spec's names, and the variant it selects."""
    raw, api = spec.family.raw, spec.family.api
    hypers = {h.name: h for h in raw.hypers}
    flags = {f.name: f for f in raw.flags}

    def hyper_note(name: str) -> str:
        h = hypers[name]
        words = [h.doc] if h.doc else []
        if h.off_at_zero:
            words.append("0 and nonzero select different variants")
        if name in api.machine_epsilon:
            words.append("None: the machine epsilon of the parameters' dtype")
        return "; ".join(words)

    if a.kind == "hyper":
        return ["hyperparameter", f"`{a.name}`", hyper_note(a.name)]
    if a.kind == "flag":
        doc = flags[a.name].doc
        return ["flag", f"`{a.name}`", f"{doc}; selects a variant" if doc else "selects a variant"]
    if a.kind == "tuple":
        notes = [f"`{p}`: {hyper_note(p)}" for p in a.parts if hyper_note(p)]
        return ["tuple of hyperparameters", _code(a.parts), "; ".join(notes)]
    if a.kind == "choice":
        options = [(o, s) for o, s in a.choices.items() if o != "message"]
        words = []
        for i, (option, setting) in enumerate(options):
            sets = ", ".join(f"{k} = {str(v).lower()}" for k, v in setting.items())
            words.append(f"`{option!r}`{' (and None)' if i == 0 else ''} sets {sets}")
        flag_names = sorted({f for _, s in options for f in s})
        return ["choice (a string that sets flags)", _code(flag_names), "; ".join(words)]
    if a.kind == "constant":
        return ["constant", "", f"{value(a.value)} only: any other value is refused (ValueError)"]
    if a.name == "fused" and not spec.family.raw.elementwise:
        return ["framework argument", "", NOT_FUSED]
    return ["framework argument", "", RUNTIME.get(a.name, "runtime")]


def arguments_section(spec: Spec) -> str:
    """One class: its signature, what covers each argument, the flags it fixes, its state."""
    api = spec.family.api
    raw = spec.family.raw
    out = [
        f"### {api.matches}",
        "",
        f"Spec [`{raw.name}`](../{spec.source}), class `symopt_torch.{spec.class_name}`:",
        "",
        "```python",
        signature(spec),
        "```",
        "",
    ]
    rows = [[f"`{a.name}`", *_covers(spec, a)] for a in api.arguments]
    out += _table(["argument", "covered by", "spec names", "notes"], rows)
    for name, fixed in api.fixed.items():
        out += [
            "",
            f"The class fixes the flag `{name}` at {fixed} (as {api.matches} does: in its param "
            "groups, not among its arguments).",
        ]
    keys = ["`step` (a 0-d tensor)"]
    for s in raw.states:
        when = f", only when {_axis_words(spec, s.when)}" if s.when else ""
        keys.append(f"`{s.state_key or s.name}` (`{s.name}`{when})")
    out += ["", "State per parameter (`state[p]`): " + ", ".join(keys) + "."]
    if "step" not in torch_state_keys(spec):
        out += [
            "",
            f"{api.matches} keeps no `step`: the generated class's extra key is kept, unread, "
            "when torch's class loads its state dict.",
        ]
    return "\n".join(out)


def torch_state_keys(spec: Spec) -> set[str]:
    """The keys torch's class keeps for a parameter after one step at its defaults."""
    import torch

    param = torch.nn.Parameter(torch.ones(2, 2))
    opt = torch_class(spec)([param])
    param.grad = torch.ones(2, 2)
    opt.step()
    return set(opt.state[param])


def _axis_words(spec: Spec, axis: str) -> str:
    flags = set(spec.family.flag_names)
    return axis if axis in flags else f"{axis} != 0"


def arguments_table() -> str:
    return "\n\n".join(arguments_section(spec) for spec in drop_ins().values())


def refusal(spec: Spec, kwargs: Mapping[str, object]) -> str | None:
    """torch's ValueError message when its class refuses ``kwargs`` (built on a 2-D dummy
    parameter, which every torch.optim class takes), else None."""
    import torch

    try:
        torch_class(spec)([torch.nn.Parameter(torch.zeros(2, 2))], **kwargs)
    except ValueError as exc:
        return str(exc)
    return None


def matrix_section(spec: Spec, refused: Callable[[Spec, Mapping], str | None] = refusal) -> str:
    """One spec's flag matrix: each row, its arguments off the defaults, the kernel module."""
    api = spec.family.api
    base = defaults(spec)
    rows = []
    for row in flag_matrix(spec):
        changed = ", ".join(f"{k}={value(v)}" for k, v in row.items() if base.get(k) != v)
        message = refused(spec, row)
        if message is not None:
            rows.append([row.label, f"`{changed}`", "-", f"refuses: {message}"])
            continue
        chosen = variant_for(spec, setting_of(spec, row))
        rows.append(
            [
                row.label,
                f"`{changed}`" if changed else "(defaults)",
                f"`{module_name(chosen)}`",
                "accepts",
            ]
        )
    header = ["row", "keyword arguments", "kernel module", api.matches]
    title = f"### {spec.family.raw.name} ({api.matches})"
    return "\n".join([title, "", *_table(header, rows)])


def matrix_table(refused: Callable[[Spec, Mapping], str | None] = refusal) -> str:
    return "\n\n".join(matrix_section(spec, refused) for spec in drop_ins().values())


TABLES: dict[str, Callable[[], str]] = {
    "classes": classes_table,
    "arguments": arguments_table,
    "matrix": matrix_table,
}


# -- the document --------------------------------------------------------------------------------


def block(name: str) -> re.Pattern[str]:
    return doc_blocks.block(BEGIN, END, name)


def update(text: str, tables: Mapping[str, str]) -> str:
    """``text`` with each marked block's contents replaced by its table."""
    return doc_blocks.update(BEGIN, END, text, tables)


@functools.cache
def tables() -> dict[str, str]:
    """Every table by its block's name (built once per process: the built-in specs are too)."""
    return {name: make() for name, make in TABLES.items()}


def render(text: str) -> str:
    """The document with every table rewritten from the specs."""
    return update(text, tables())


def main(argv: list[str] | None = None, doc: Path = DOC) -> int:
    return doc_blocks.main("parity_doc", __doc__.split("\n\n")[0], doc, tables, argv)


if __name__ == "__main__":
    sys.exit(main())

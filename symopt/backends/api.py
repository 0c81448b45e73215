"""What the generated classes with a library's arguments are made of, for every Python target:
the signature, the checks of argument values (as code), and the kernel of each setting of the
spec's flags. The templates (``TARGET/api.py.jinja``) lay them out."""

from __future__ import annotations

import sympy

from symopt.backends.numpy.elementwise import ScalarPrinter
from symopt.spec import Spec
from symopt.spec.api import FRAMEWORK_ARGUMENTS, ApiCheck
from symopt.spec.family import module_name, settings, variant_for, variant_label


def api_data(spec: Spec, framework: tuple[str, ...]) -> dict:
    """Template data of the class of ``spec``'s family. ``framework``: the framework arguments
    this target takes (the others are left out of its signature)."""
    family = spec.family
    assert family is not None, "only a spec with a family has an API class"
    raw, api = family.raw, family.api
    hypers = {h.name: h for h in raw.hypers}
    flags = {f.name: f for f in raw.flags}
    arguments = []
    for a in api.arguments:
        if a.kind == "framework" and a.name not in framework:
            continue
        if a.kind == "hyper":
            default, annotation, doc = _number(hypers[a.name].default), "float", hypers[a.name].doc
        elif a.kind == "flag":
            default, annotation, doc = repr(flags[a.name].default), "bool", flags[a.name].doc
        elif a.kind == "tuple":
            eps = set(api.machine_epsilon)
            default = (
                "("
                + ", ".join("None" if p in eps else _number(hypers[p].default) for p in a.parts)
                + ")"
            )
            annotation = (
                "tuple[" + ", ".join("float | None" if p in eps else "float" for p in a.parts) + "]"
            )
            doc = "(" + ", ".join(a.parts) + "): " + "; ".join(hypers[p].doc for p in a.parts)
            if eps & set(a.parts):
                doc += "; None: the machine epsilon of the parameters' dtype"
        elif a.kind == "choice":
            options = [o for o in a.choices if o != "message"]
            default, annotation = "None", "str | None"
            doc = f"one of {', '.join(map(repr, options))} (None: {options[0]!r})"
        elif a.kind == "constant":
            default, annotation = repr(a.value), type(a.value).__name__
            doc = f"{a.value} only: the spec fixes it"
        else:
            value = FRAMEWORK_ARGUMENTS[a.name]
            default = repr(value)
            annotation = "bool | None" if value is None else "bool"
            doc = FRAMEWORK_DOCS[a.name]
            if a.name == "fused" and not raw.elementwise:
                doc = NOT_FUSED_DOC
        arguments.append(
            {
                "name": a.name,
                "default": default,
                "annotation": annotation,
                "keyword_only": a.keyword_only,
                "doc": doc,
            }
        )
    kinds = {f.name: "flag" for f in raw.flags}
    axes = [f'("{axis}", "{kinds.get(axis, "nonzero")}")' for axis in family.axes]
    kernels = []
    labels: dict[str, str] = {}
    for setting in sorted(settings(family), key=lambda s: tuple(s[a] for a in family.axes)):
        chosen = variant_for(spec, setting)
        key = tuple(setting[a] for a in family.axes)
        kernels.append({"key": repr(key), "module": module_name(chosen)})
        labels.setdefault(module_name(chosen), variant_label(chosen) or "the defaults")
    modules = sorted(labels)
    printer = ScalarPrinter()
    checks = [check_code(c, printer) for c in api.checks]
    for a in api.arguments:
        if a.kind == "choice":
            options = tuple(o for o in a.choices if o != "message")
            message = a.choices.get("message")
            text = (
                _message(message)
                if message
                else f'f"{a.name} must be one of {options!r} or None, got {{{a.name}!r}}"'
            )
            checks.append({"refuse": f"{a.name} not in {(None, *options)!r}", "message": text})
        elif a.kind == "constant":
            checks.append(
                {
                    "refuse": f"{a.name} != {a.value!r}",
                    "message": f'f"{a.name} = {a.value!r} only (the spec fixes it), '
                    f'got {{{a.name}!r}}"',
                }
            )
    extra = [a.name for a in api.arguments if a.kind in ("choice", "constant")]
    return {
        "spec": spec,
        "matches": api.matches,
        "arguments": arguments,
        "check_names": [*hypers, *flags, *extra],
        "checks": checks,
        "uses_math": uses_math(checks),
        "tuples": {a.name: a.parts for a in api.arguments if a.kind == "tuple"},
        "fixed": {name: repr(value) for name, value in api.fixed.items()},
        "choices": {a.name: _choice(a.choices) for a in api.arguments if a.kind == "choice"},
        "constants": {a.name: repr(a.value) for a in api.arguments if a.kind == "constant"},
        "machine_epsilon": list(api.machine_epsilon),
        "axes": axes,
        "kernels": kernels,
        "modules": modules,
        "variants": [{"module": m, "label": labels[m]} for m in modules],
        "state_keys": {s.name: s.state_key for s in raw.states},
        "equations": [a.text for a in raw.update],
    }


#: What the framework arguments do, for the docstrings.
FRAMEWORK_DOCS = {
    "foreach": "True or None (default): the multi-tensor torch._foreach_* path; False: one "
    "tensor at a time; bit-identical results",
    "maximize": "maximise the objective: the update runs on the negated gradient",
    "capturable": "accepted for torch.optim's signature; True is refused (no CUDA graph capture)",
    "differentiable": "accepted for torch.optim's signature; True is refused",
    "fused": "True: one fused kernel per step for all tensors of a device and dtype (C on the "
    "CPU, built on first use; Triton on CUDA); same values as foreach in float64; cannot be "
    "True with foreach=True",
}
NOT_FUSED_DOC = (
    "accepted for torch.optim's signature; True is refused (fused kernels are generated for "
    "element-wise specs only)"
)


def _number(value: float) -> str:
    return repr(int(value)) if value == int(value) and abs(value) < 1e15 else repr(value)


def _choice(choices) -> dict:
    """A choice argument as code: each string -> the flags it sets (None -> the first), and
    the f-string of the error for any other string."""
    options = {o: setting for o, setting in choices.items() if o != "message"}
    first = next(iter(options))
    table = {"None": repr(dict(options[first]))}
    table.update({repr(o): repr(dict(setting)) for o, setting in options.items()})
    message = choices.get("message")
    return {"table": table, "message": _message(message) if message else ""}


def _message(parts) -> str:
    """A message as a safe (f-)string: its literal text holds no braces (the loader made sure),
    and repr escapes quotes and backslashes."""
    text = "".join(p if isinstance(p, str) else "{" + p[0] + "}" for p in parts)
    return ("f" if any(not isinstance(p, str) for p in parts) else "") + repr(text)


def uses_math(checks: list[dict]) -> bool:
    """Whether the checks' code calls ``math`` (``sqrt`` in a condition): the module imports it."""
    return any("math." in c["refuse"] for c in checks)


def check_code(check: ApiCheck, printer: ScalarPrinter) -> dict:
    """A check as code: when it refuses (``not (condition)``: NaN is refused as in torch,
    where ``lr < 0`` would let it through), and the message."""
    condition = check.condition
    if isinstance(condition, sympy.Not):
        refuse = printer.doprint(condition.args[0])
    else:
        refuse = f"not ({printer.doprint(condition)})"
    return {"refuse": refuse, "message": _message(check.message)}

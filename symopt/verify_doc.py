"""The verdict tables of ``docs/verify.md``: ``symopt verify`` run on torch.optim and optax.

Two tables, each between marker comments in the document, every cell written from a
:class:`~symopt.verify.Report` (none typed by hand):

* ``torch``: every torch.optim class a built-in spec is a drop-in for, at its defaults; one row
  per axis of the spec's family (a flag on, an ``off_at_zero`` hyperparameter off its default);
  and the classes against the articles' specs (Adamax against adamax, AdamW against adam, ...);
* ``optax``: every optax optimizer that has a symopt spec.

A row shows the verdict and, for a pass, what was compared; for a difference, the diagnosis.
The measured errors are left out: they may differ in the last bit between machines, the verdicts
and diagnoses do not. The runs use :data:`SETTINGS`, cheaper than the command's defaults, so that
the two tables take seconds.

``python -m symopt.verify_doc --write`` rewrites the tables in the document, ``--check`` exits
with status 1 when they are stale (2 when torch or optax is missing); with neither it prints
them.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import re
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import NamedTuple

import sympy

from symopt import api_matrix, doc_blocks
from symopt.errors import SpecError
from symopt.parity_doc import drop_ins, value
from symopt.resources import PACKAGE, builtin_spec
from symopt.spec import Spec
from symopt.spec.family import module_name, variant_for
from symopt.spec.parse import FlagSymbol
from symopt.verify import ImplementationError, Report, load_target, verify

#: The document, in a source checkout.
DOC = PACKAGE.parent / "docs" / "verify.md"
BEGIN, END = doc_blocks.markers("verify_doc")
#: What every row runs with: cheaper than ``symopt verify``'s defaults (40 steps and a long run
#: of 1000), on the same streams, layouts and tensor sizes, so that both tables take about 40 s
#: of CPU.
SETTINGS = {"steps": 10, "seeds": 1, "long": 0, "dtype": "float64"}
#: The libraries the tables need.
LIBRARIES = ("torch", "optax")


class Row(NamedTuple):
    """One ``symopt verify PATH --against SPEC --hyper K=V ... --map S=I ...``."""

    library: str  # the table: "torch" or "optax"
    label: str  # the implementation with its arguments: torch.optim.SGD(momentum=0.9)
    path: str  # the import path (TARGET)
    hyper: Mapping[str, object]  # --hyper
    spec: str  # --against
    state_map: Mapping[str, str]  # --map (hyperparameters and states)


def row(
    library: str,
    path: str,
    spec: str,
    hyper: Mapping[str, object] | None = None,
    state_map: Mapping[str, str] | None = None,
) -> Row:
    hyper = dict(hyper or {})
    args = ", ".join(f"{k}={value(v)}" for k, v in hyper.items())
    label = f"{path}({args})" if args else path
    return Row(library, label, path, hyper, spec, dict(state_map or {}))


# -- the torch.optim rows ------------------------------------------------------------------------


def accepted(spec: Spec, kwargs: Mapping[str, object]) -> bool:
    """Whether the library class takes ``kwargs``: the spec's ``[api] checks``, which state its
    refusals (SGD's nesterov without momentum)."""
    family = api_matrix.family_of(spec)
    hyper = api_matrix.spec_hyper(spec, kwargs)
    flags = api_matrix.setting_of(spec, kwargs)
    for check in family.api.checks:
        subs = {
            s: (sympy.true if flags[s.name] else sympy.false)
            if isinstance(s, FlagSymbol)
            else hyper[s.name]
            for s in check.condition.free_symbols
        }
        if check.condition.xreplace(subs) is not sympy.true:
            return False
    return True


def axis_rows(cls: str, spec: Spec) -> list[Row]:
    """One row per axis of the spec's family (each flag on, each ``off_at_zero`` hyperparameter
    off its default): from :func:`~symopt.api_matrix.flag_matrix`, the fewest arguments off the
    defaults that the class accepts and where moving the axis changes the kernel (SGD's nesterov
    comes with a momentum, Adam's decoupled weight decay with a weight decay)."""
    family = api_matrix.family_of(spec)
    base = api_matrix.defaults(spec)
    start = api_matrix.setting_of(spec, base)
    rows = [
        (_changed(spec, base, kwargs), api_matrix.setting_of(spec, kwargs))
        for kwargs in api_matrix.flag_matrix(spec)
        if not kwargs.get("maximize") and kwargs.label != "moved" and accepted(spec, kwargs)
    ]

    def kernel(setting: Mapping[str, bool]) -> str:
        return module_name(variant_for(spec, setting))

    out = []
    for axis in family.axes:
        if axis in family.api.fixed:
            continue
        moving = [
            changed
            for changed, setting in rows
            if setting[axis] != start[axis]
            and kernel(setting) != kernel({**setting, axis: start[axis]})
        ]
        out.append(row("torch", cls, spec.name, min(moving, key=len)))
    return out


def _changed(spec: Spec, base: Mapping[str, object], kwargs: Mapping[str, object]) -> dict:
    """The arguments off the defaults (a choice at its first string is at its default, None)."""
    api = spec.family.api
    out = {}
    for k, v in kwargs.items():
        a = api.argument(k)
        first = next(iter(api_matrix.options(a)), None) if a.kind == "choice" else None
        if base[k] != v and not (base[k] is None and v == first):
            out[k] = v
    return out


#: torch.optim classes against the articles' specs (and SGD's momentum forms).
PAPER_FORMS = (
    ("torch.optim.Adamax", "adamax", {}),
    ("torch.optim.NAdam", "nadam", {}),
    ("torch.optim.AdamW", "adam", {}),
    ("torch.optim.SGD", "momentum", {"momentum": 0.9}),
    ("torch.optim.SGD", "nesterov", {"momentum": 0.9, "nesterov": True}),
    ("torch.optim.Adam", "amsgrad", {"amsgrad": True}),
)


#: A class whose axis rows are left out, and why (the note under the table).
LEFT_OUT = (
    "torch.optim.Muon",
    "only its defaults are run here: each row costs seconds (the reference runs the "
    "Newton-Schulz iteration on a 70,000-element matrix) and each differs as the defaults do, "
    "by torch's bfloat16 cast (tests/test_torch_optim_parity.py runs every flag row of it, with "
    "the cast removed, against the generated class)",
)


def torch_rows() -> list[Row]:
    """Per drop-in class: its defaults, its axes, then its comparisons with other specs."""
    out = []
    for cls, spec in drop_ins().items():
        out.append(row("torch", cls, spec.name))
        out += axis_rows(cls, spec) if cls != LEFT_OUT[0] else []
        out += [row("torch", p, name, hyper) for p, name, hyper in PAPER_FORMS if p == cls]
    return out


# -- the optax rows ------------------------------------------------------------------------------

#: optax names for rprop's hyperparameters (the others are bound by name or synonym).
RPROP_NAMES = {
    "etaminus": "eta_minus",
    "etaplus": "eta_plus",
    "step_min": "min_step_size",
    "step_max": "max_step_size",
}

OPTAX_ROWS = [
    row("optax", "optax.sgd", "sgd"),
    row("optax", "optax.sgd", "momentum", {"momentum": 0.9}),
    row("optax", "optax.sgd", "nesterov", {"momentum": 0.9, "nesterov": True}),
    *(
        row("optax", f"optax.{name}", name)
        for name in (
            "adagrad",
            "rmsprop",
            "adam",
            "adamw",
            "adamax",
            "nadam",
            "adabelief",
            "amsgrad",
            "lion",
            "radam",
            "yogi",
            "lamb",
            "lars",
            "adadelta",
        )
    ),
    row("optax", "optax.rprop", "rprop", state_map=RPROP_NAMES),
]

ROWS: list[Row] = [*torch_rows(), *OPTAX_ROWS]


# -- running and rendering -----------------------------------------------------------------------


def run(r: Row) -> Report | str:
    """The row's report, or why verify cannot run it: its exit status and one-line message (as
    ``symopt verify`` exits)."""
    try:
        return verify(
            load_target(r.path),
            builtin_spec(r.spec),
            target_name=r.path,
            hyper=r.hyper,
            state_map=r.state_map,
            **SETTINGS,
        )
    except SpecError as exc:
        return f"status 2 (a usage error): {' '.join(str(exc).split())}"
    except ImplementationError as exc:
        return f"status 3 (the implementation raised): {' '.join(str(exc).split())}"


def compared(report: Report) -> str:
    """``w, m = exp_avg, v = exp_avg_sq``: w and the states compared, by the spec's names (and
    the implementation's, where they differ), as the report's summary writes them."""
    names = ["w"]
    for state, how in report.compared_state.items():
        key = how.split(" ")[0]
        names.append(state if key == state else f"{state} = {key}")
    return ", ".join(names)


#: Measured numbers in a breakdown line (the largest difference, how many elements differ):
#: left out, like every measured error.
_MEASURED = re.compile(r" \((largest relative difference [^)]*|\d+)\)")


def diagnosis(report: Report) -> str:
    """What the table says of a difference: the explaining variant (fitted constants in its
    description), or "unexplained" and the first line of the breakdown."""
    d = report.diagnosis
    if d.explained:
        return d.description
    first = _MEASURED.sub("", d.breakdown[0]) if d.breakdown else ""
    return f"unexplained: {first}" if first else "unexplained"


def label(r: Row) -> str:
    """The implementation with its arguments, and any ``--map`` the row needs."""
    maps = " ".join(f"--map {k}={v}" for k, v in r.state_map.items())
    return f"`{r.label}`" + (f" with `{maps}`" if maps else "")


def command(r: Row) -> str:
    """The row as a command line (its settings left out)."""
    words = ["symopt verify", r.path, f"--against {r.spec}"]
    words += [f"--hyper {k}={v}" for k, v in r.hyper.items()]
    words += [f"--map {k}={v}" for k, v in r.state_map.items()]
    return " ".join(words)


def cells(r: Row, report: Report) -> list[str]:
    """A table row: the verdict, and what was compared or the diagnosis."""
    against = f"{r.spec} ({report.variant})" if report.variant else r.spec
    if report.passed:
        return [label(r), against, "PASS", f"compared {compared(report)}"]
    return [label(r), against, "FAIL", diagnosis(report)]


def settings_line() -> str:
    s = SETTINGS
    return (
        f"Each row runs `symopt verify TARGET --against SPEC --steps {s['steps']} --seeds "
        f"{s['seeds']} --long {s['long']} --dtype {s['dtype']}`, the arguments in parentheses "
        "given as `--hyper NAME=VALUE`."
    )


def table(library: str) -> str:
    """The library's table, then the rows verify cannot run, and why."""
    header = ["implementation", "against", "verdict", "diagnosis"]
    lines = [settings_line(), "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    notes = [f"`{LEFT_OUT[0]}`: {LEFT_OUT[1]}."] if library == "torch" else []
    for r, outcome in zip(ROWS, outcomes(), strict=True):
        if r.library != library:
            continue
        if isinstance(outcome, str):
            notes.append(f"Not in the table: `{command(r)}` stops with {outcome}")
            continue
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells(r, outcome)) + " |")
    return "\n".join([*lines, *("\n" + n for n in notes)])


@functools.cache
def outcomes() -> tuple[Report | str, ...]:
    """Every row's report, or why verify cannot run it, in the order of :data:`ROWS` (run once
    per process: together they take about 40 s of CPU)."""
    with one_torch_thread():
        return tuple(run(r) for r in ROWS)


def outcome(label: str, spec: str) -> Report | str:
    """The outcome of the row of ``label`` against ``spec``."""
    for r, out in zip(ROWS, outcomes(), strict=True):
        if (r.label, r.spec) == (label, spec):
            return out
    raise KeyError(f"no row {label} against {spec}")


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """torch on one thread while the tables run: the tensors are small, so a second thread only
    costs CPU time, and one thread sums in one order on every machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def missing() -> list[str]:
    """The libraries the tables need that are not installed."""
    return [name for name in LIBRARIES if importlib.util.find_spec(name) is None]


# -- the document --------------------------------------------------------------------------------


def block(name: str) -> re.Pattern[str]:
    return doc_blocks.block(BEGIN, END, name)


def tables() -> dict[str, str]:
    """Every table by its block's name."""
    return {name: table(name) for name in LIBRARIES}


def render(text: str) -> str:
    """The document with every table rewritten from fresh runs."""
    return doc_blocks.update(BEGIN, END, text, tables())


def main(argv: list[str] | None = None, doc: Path = DOC) -> int:
    if absent := missing():
        print(
            f"cannot run the tables of {doc.name}: {' and '.join(absent)} not installed "
            f"(they need {' and '.join(LIBRARIES)})",
            file=sys.stderr,
        )
        return 2
    return doc_blocks.main("verify_doc", __doc__.split("\n\n")[0], doc, tables, argv)


if __name__ == "__main__":
    sys.exit(main())

"""The update of an element-wise spec as the documents show it.

The spec stores a ``repeat`` block unrolled; here it is one group of lines under "Repeat N
times" (its first run), as the spec was written. A name assigned again gets a new line (and a
new label): the update is sequential, so each line reads what the lines before it left. An
``applies_to = "matrix"`` spec has two labelled blocks, the matrix update and ``[otherwise]``.
Below the equations, a short note says in words what each tensor-level construct used means.
"""

from __future__ import annotations

from collections.abc import Sequence

import sympy

from symopt.backends.docs.latex import SpecLatexPrinter
from symopt.spec import Assignment, Spec
from symopt.spec.elementwise import Repeat
from symopt.spec.tensor import (
    ColMean,
    ColSum,
    MatProduct,
    RowMean,
    RowSum,
    TensorMax,
    TensorMean,
    TensorNorm,
    TensorSum,
    Transposed,
)

#: How the documents and ``symopt show`` name a state's shape.
SHAPE_WORDS = {
    "full": "like w",
    "scalar": "one per tensor",
    "rows": "one per row",
    "cols": "one per column",
}


def split_repeats(update: Sequence[Assignment]) -> list[tuple[Repeat | None, list[Assignment]]]:
    """Runs of lines outside repeat blocks, and each block's lines once (its first run)."""
    out: list[tuple[Repeat | None, list[Assignment]]] = []
    for a in update:
        r = a.repeat
        if r is not None and r.iteration > 0:
            continue
        key = None if r is None else r.block
        if out and (None if out[-1][0] is None else out[-1][0].block) == key:
            out[-1][1].append(a)
        else:
            out.append((r, [a]))
    return out


def _times(count: int) -> str:
    return "once" if count == 1 else f"{count} times"


def equations(
    printer: SpecLatexPrinter, spec: Spec, update: Sequence[Assignment], prefix: str
) -> list[dict]:
    """One row per printed line; a name's first line is labelled ``eq:SPEC:NAME``, later ones
    ``eq:SPEC:NAME:2``, ... (unrolled repeats are left out)."""
    stored = {"w", *spec.state_names}
    seen: dict[str, int] = {}
    rows = []
    for repeat, lines in split_repeats(update):
        for a in lines:
            seen[a.target] = seen.get(a.target, 0) + 1
            suffix = "" if seen[a.target] == 1 else f":{seen[a.target]}"
            rows.append(
                {
                    "tex": printer.assignment(a),
                    "label": f"eq:{spec.name}:{prefix}{a.target}{suffix}",
                    "symbol": printer.name(a.target),
                    "target": a.target,
                    "intermediate": a.target not in stored,
                    "repeat": repeat,
                }
            )
    return rows


def _and(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def _groups(rows: list[dict]) -> list[dict]:
    """Consecutive rows with their heading: a repeat block's, or "After the loop:"."""
    groups: list[dict] = []
    for row in rows:
        r = row["repeat"]
        if groups and groups[-1]["repeat"] == r:
            groups[-1]["equations"].append(row)
            continue
        if r is not None:
            text = f"Repeat {_times(r.count)}, in order:"
        else:
            text = "After the loop:" if groups else ""
        groups.append({"repeat": r, "intro": text, "equations": [row]})
    return groups


def _intermediates(rows: list[dict]) -> dict | None:
    """The sentence naming the intermediates (each with its first line's number in LaTeX)."""
    first = {}
    for row in rows:
        if row["intermediate"]:
            first.setdefault(row["target"], row)
    if not first:
        return None
    return {
        "tex": _and([f"${e['symbol']}$ \\eqref{{{e['label']}}}" for e in first.values()]),
        "md": _and([f"${e['symbol']}$" for e in first.values()]),
        "verb": "is an intermediate" if len(first) == 1 else "are intermediates",
    }


def _reassigned(rows: list[dict]) -> str | None:
    """The sentence for names with more than one line (sequential semantics, in words)."""
    counts: dict[str, int] = {}
    symbols = {}
    for row in rows:
        counts[row["target"]] = counts.get(row["target"], 0) + 1
        symbols[row["target"]] = row["symbol"]
    again = [f"${symbols[n]}$" for n, c in counts.items() if c > 1]
    if not again:
        return None
    verb = "is" if len(again) == 1 else "are"
    return (
        f"{_and(again)} {verb} assigned on more than one line: each line reads the value the "
        "lines before it left, so the last line gives the value the step ends with."
    )


def block(
    printer: SpecLatexPrinter, spec: Spec, update: Sequence[Assignment], prefix: str, number: int
) -> dict:
    """One update as the templates print it; equations are numbered from ``number`` in
    Markdown (LaTeX numbers them itself)."""
    rows = equations(printer, spec, update, prefix)
    for i, row in enumerate(rows):
        row["number"] = number + i
    return {
        "equations": rows,
        "groups": _groups(rows),
        "intermediates": _intermediates(rows),
        "reassigned": _reassigned(rows),
    }


def _axis_note(name: str, op: str, axis: str) -> str:
    return (
        rf"$\operatorname{{{name}}}(x)$ is the {op} of each {axis} of the matrix $x$ (one value "
        f"per {axis}, shared by the elements of that {axis})"
    )


#: What each construct means, in words, for the note below the equations: (classes, LaTeX).
_NOTES: list[tuple[tuple[type, ...], str]] = [
    (
        (TensorNorm,),
        r"$\lVert x \rVert_2$ is the 2-norm of the whole array $x$ (the square root of the sum "
        r"of its squared elements)",
    ),
    ((TensorSum,), r"${\textstyle\sum}(x)$ is the sum of all elements of $x$"),
    ((TensorMean,), r"$\operatorname{mean}(x)$ is the mean of all elements of $x$"),
    ((TensorMax,), r"$\max(x)$, with one argument, is the largest element of $x$"),
    ((RowSum,), _axis_note("rowsum", "sum", "row")),
    ((RowMean,), _axis_note("rowmean", "mean", "row")),
    ((ColSum,), _axis_note("colsum", "sum", "column")),
    ((ColMean,), _axis_note("colmean", "mean", "column")),
    (
        (MatProduct,),
        r"two matrices written side by side, $A B$, are the matrix product (an element-wise "
        r"product of two arrays is written $A \odot B$, an element-wise power $A^{\odot k}$)",
    ),
    ((Transposed,), r"$A^{\top}$ is the transpose of $A$"),
    (
        (sympy.Piecewise,),
        r"a case distinction holds coordinate by coordinate: each element takes the value of the "
        r"first case whose condition holds for it",
    ),
]


def notation(spec: Spec) -> dict | None:
    """The sentence that says what the tensor-level constructs of the spec mean."""
    lines = (*spec.update, *spec.otherwise)
    used = [text for classes, text in _NOTES if any(a.expr.atoms(*classes) for a in lines)]
    if not used:
        return None
    text = "; ".join(used)
    if any(a.expr.atoms(TensorNorm, TensorSum, TensorMean, TensorMax) for a in lines):
        text += (
            "; a whole-array value is one number per parameter, used for every element in "
            "an element-wise expression"
        )
    text = text[0].upper() + text[1:] + "."
    return {"tex": text, "md": text}

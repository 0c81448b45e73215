"""Docs target: the mathematics of every spec as LaTeX (a document and a fragment per algorithm)
and as Markdown with ``$$`` math, rendered from the same specs as the code.

The documents list exactly what ``symopt check`` reports for each spec (pass or fail, symbolic
or sampled), never more: the results the pipeline computed once per spec digest.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Mapping, Sequence

from symopt import __version__
from symopt.backends.base import Backend, generated
from symopt.backends.docs.derivation import derivation_latex
from symopt.backends.docs.latex import (
    SpecLatexPrinter,
    escape_latex,
    escape_markdown,
    format_number,
    safe_symbol,
)
from symopt.backends.docs.prose import to_latex, to_markdown
from symopt.backends.docs.update import SHAPE_WORDS, block, notation
from symopt.backends.render import render_latex
from symopt.checks import check_specs
from symopt.files.writer import GeneratedFile, shown_source
from symopt.spec import Spec
from symopt.spec.domains import DOMAINS
from symopt.spec.model import ModelSpec
from symopt.spec.tensor import ALL_FEATURES

FOLDER = "docs"
DOCUMENT = "symopt"
#: What ``symopt docs --pdf`` or a hand-run pdflatex leaves in the folder: not generated files.
BUILD_SUFFIXES = (".pdf", ".aux", ".log", ".out", ".toc", ".fls", ".fdb_latexmk", ".synctex.gz")


def _wrap(text: str, width: int = 96) -> str:
    """Lines for a .tex file: never split at a hyphen, where TeX would print a space."""
    return "\n".join(textwrap.wrap(text, width, break_on_hyphens=False, break_long_words=False))


def _paragraphs(text: str) -> list[str]:
    return [" ".join(p.split()) for p in text.split("\n\n") if p.strip()]


def _breakable(tex: str) -> str:
    """A line may break after the underscore of a long identifier such as
    ``pytorch_optimizer.Lamb``, which TeX cannot hyphenate (short ones such as m_t stay whole)."""
    words = tex.split(" ")
    return " ".join(w.replace(r"\_", r"\_\hspace{0pt}") if len(w) > 18 else w for w in words)


def _text_tex(text: str) -> str:
    return _breakable(escape_latex(text))


#: What makes a Markdown paragraph a list item or a heading underline: ``- x``, ``1. x``, ``===``.
_BLOCK_START = re.compile(r"[-+=]|\d+[.)]")


def _paragraph_md(markdown: str) -> str:
    """A paragraph that stays a paragraph: its first character escaped where it would start a
    list or underline a heading (the other marks are escaped everywhere)."""
    start = _BLOCK_START.match(markdown)
    return markdown if start is None else rf"{start.group()[:-1]}\{markdown[start.end() - 1 :]}"


def _prose(text: str, names: Mapping[str, str] | None = None) -> dict:
    """Paragraphs as LaTeX and Markdown; with a spec's ``names``, their formulas as maths."""
    paras = _paragraphs(text)
    if names is None:
        return {
            "tex": [_wrap(_text_tex(p)) for p in paras],
            "md": [_paragraph_md(escape_markdown(p)) for p in paras],
        }
    return {
        "tex": [_wrap(to_latex(p, names, escape=_text_tex)) for p in paras],
        "md": [_paragraph_md(to_markdown(p, names)) for p in paras],
    }


def prose_names(spec: Spec | ModelSpec) -> dict[str, str]:
    """The LaTeX of a spec's names (hyperparameters, state, w, g, t), for the maths in its prose."""
    if isinstance(spec, ModelSpec):
        names = {h.name: safe_symbol(h.latex) for h in spec.hypers}
        if spec.damping:
            names[spec.damping] = safe_symbol(spec.latex_name(spec.damping))
        return names
    raw = spec.family.raw if spec.family is not None else spec
    return SpecLatexPrinter.for_spec(raw).names


def _and(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def _hypers(spec: Spec | ModelSpec) -> list[dict]:
    names = prose_names(spec)
    return [
        {
            "symbol": safe_symbol(h.latex),
            "name_tex": escape_latex(h.name),
            "name": h.name,
            "default": format_number(h.default),
            "domain": DOMAINS[h.domain].latex,
            "doc_tex": to_latex(h.doc, names),
            "doc_md": to_markdown(h.doc, names),
        }
        for h in spec.hypers
    ]


#: The method of a check that symopt could not decide for this spec's constructs.
NOT_SHOWN = "not shown"


def _checks(spec: Spec | ModelSpec, known: Mapping[str, Spec]) -> dict:
    """The check rows and their counts; a "not shown" row is neither passed nor failed."""
    rows = []
    names = prose_names(spec)
    for r in check_specs([spec], known)[spec.name]:
        status = NOT_SHOWN if r.method == NOT_SHOWN else ("passed" if r.passed else "failed")
        detail = r.detail if status != "passed" else ""
        rows.append(
            {
                "name_tex": to_latex(r.name, names),
                "variant_tex": to_latex(r.variant, names),
                "claim_tex": to_latex(r.claim, names),
                "name_md": to_markdown(r.name, names),
                "passed": r.passed,
                "status": status,
                "method": "-" if status == NOT_SHOWN else r.method,
                "detail_tex": to_latex(detail, names),
                "detail_md": to_markdown(detail, names),
            }
        )
    count = {k: sum(c["status"] == k for c in rows) for k in ("passed", "failed", NOT_SHOWN)}
    return {
        "checks": rows,
        "check_groups": _by_variant(rows),
        "passed": count["passed"],
        "not_shown": count[NOT_SHOWN],
    }


def _by_variant(rows: list[dict]) -> list[dict]:
    """The rows by variant, for the PDF: one table each, short enough for a page (SGD's 30
    checks in one would not be)."""
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(row["variant_tex"], []).append({**row, "name_tex": row["claim_tex"]})
    return [{"label_tex": label, "rows": group} for label, group in groups.items()]


def _common(spec: Spec | ModelSpec, known: Mapping[str, Spec]) -> dict:
    """What every section has: prose, hyperparameters and the check results."""
    return {
        "spec": spec,
        "version": __version__,
        "title_tex": escape_latex(spec.title),
        "title_md": escape_markdown(spec.title),
        "summary": _prose(spec.summary, prose_names(spec)),
        "reference": _prose(spec.reference),
        "notes": _prose(spec.notes, prose_names(spec)),
        "source": _source_md(spec),
        "hypers": _hypers(spec),
        **_checks(spec, known),
        "states": [],
        "derivation": None,
        "lookahead": None,
        "updates": [],
    }


def _source_md(spec: Spec | ModelSpec) -> str:
    """The spec file, as a Markdown code span where its path is plain (a file name is untrusted)."""
    shown = shown_source(spec.source)
    return f"`{shown}`" if shown else f"a spec file (sha256:{spec.digest})"


def _states(printer: SpecLatexPrinter, spec: Spec) -> dict:
    """The state table's rows, and the sentences on shapes and on state set at the first step."""
    rows = [
        {
            "symbol": safe_symbol(s.latex),
            "name_tex": escape_latex(s.name),
            "name": s.name,
            "shape": {**SHAPE_WORDS, "full": "like $w$"}[s.shape],
            "init": printer.expr(s.init),
            "first_step": bool({"g", "w"} & {x.name for x in s.init.free_symbols}),
            "doc_tex": to_latex(s.doc, printer.names),
            "doc_md": to_markdown(s.doc, printer.names),
        }
        for s in spec.states
    ]
    first = [f"${r['symbol']}$" for r in rows if r["first_step"]]
    notes = []
    if first:
        notes.append(
            f"{_and(first)} {'is' if len(first) == 1 else 'are'} set at the first step, from "
            "its gradient $g$ and parameters $w$, before the update runs."
        )
    if spec.applies_to != "any" and spec.otherwise:
        own = [spec.states_of(spec.update), spec.states_of(spec.otherwise)]
        if own[0] != own[1]:
            names = [_and([f"${safe_symbol(s.latex)}$" for s in x]) if x else "" for x in own]
            notes.append(
                f"{_upper_first(spec.shapes_taken)} parameters keep {names[0] or 'no state'}; "
                "every other parameter keeps "
                f"{names[1] or 'no state'}."
            )
    return {
        "states": rows,
        "state_shapes": any(s.shape != "full" for s in spec.states),
        "state_notes": notes,
    }


def _upper_first(text: str) -> str:
    return text[:1].upper() + text[1:]


def _updates(printer: SpecLatexPrinter, spec: Spec) -> list[dict]:
    """The update blocks: one, or the matrix update and ``[otherwise]`` with their headings."""
    main = block(printer, spec, spec.update, "", 1)
    if spec.applies_to == "any":
        return [{**main, "title": "", "lead": "one step runs, in order:"}]
    lead = (
        r"For a matrix $w$, of shape $\mathrm{rows} \times \mathrm{cols}$, one step runs, in order:"
        if spec.applies_to == "matrix"
        else "For a parameter $w$ of two or more dimensions, one step runs, in order:"
    )
    matrix = {**main, "title": f"{_upper_first(spec.shapes_taken)} parameters", "lead": lead}
    other = {"title": "Every other parameter", "equations": [], "groups": []}
    other.update(intermediates=None, reassigned=None)
    if spec.otherwise:
        other = {
            **block(printer, spec, spec.otherwise, "otherwise:", len(main["equations"]) + 1),
            "title": "Every other parameter",
            "lead": "One step runs, in order:",
        }
    else:
        other["lead"] = (
            f"Any parameter that is not {spec.shapes_taken} is refused: the optimizer raises an "
            "error."
        )
    return [matrix, other]


def template_data(spec: Spec | ModelSpec, known: Mapping[str, Spec]) -> dict:
    if isinstance(spec, ModelSpec):
        return {**_common(spec, known), "derivation": derivation_latex(spec)}
    checked = spec
    if spec.family is not None:  # the equations as written, flags and all
        spec = spec.family.raw
    printer = SpecLatexPrinter.for_spec(spec)
    updates = _updates(printer, spec)
    equations = updates[0]["equations"]
    lookahead = None
    if spec.lookahead_free:
        lf = spec.lookahead_free
        refs = f"\\eqref{{{equations[0]['label']}}}--\\eqref{{{equations[-1]['label']}}}"
        lookahead = {
            **block(printer, spec, lf.update, "lf:", len(equations) + 1),
            "summary": _prose(lf.summary, printer.names),
            "variables": {
                fmt: _and(
                    [
                        f"the ${printer.name(k)}$ of {where} is ${printer.expr(v)}$"
                        for k, v in lf.variables.items()
                    ]
                )
                for fmt, where in (("tex", refs), ("md", f"(1)–({len(equations)})"))
            },
        }
    return {
        **_common(checked, known),
        "hypers": _hypers(spec),
        **_states(printer, spec),
        "t_start": spec.t_start,
        "updates": updates,
        "notation": notation(spec),
        "lookahead": lookahead,
    }


class DocsBackend(Backend):
    name = "docs"
    gated = False
    supports = ALL_FEATURES  # documents render every construct of the language

    def files(self, specs: Sequence[Spec]) -> list[GeneratedFile]:
        from symopt.resources import builtin_specs

        known = {**builtin_specs(), **{s.name: s for s in specs}}
        out = []
        for spec in specs:
            data = template_data(spec, known)
            for template, path, comment, end in (
                ("latex/algorithm.tex.jinja", f"{FOLDER}/{spec.name}.tex", "%", ""),
                ("latex/algorithm.md.jinja", f"{FOLDER}/{spec.name}.md", "<!--", " -->"),
            ):
                body = render_latex(template, **data)
                out.append(generated(path, body, spec=spec, comment=comment, end=end))
        sections = [{"name": s.name, "title_tex": escape_latex(s.title)} for s in specs]
        body = render_latex(f"latex/{DOCUMENT}.tex.jinja", sections=sections, version=__version__)
        out.append(generated(f"{FOLDER}/{DOCUMENT}.tex", body, comment="%"))
        return out

    def owns(self, path: str) -> bool:
        return not path.endswith(BUILD_SUFFIXES)

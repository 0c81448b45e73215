"""Docs target: the mathematics of every spec as LaTeX (a document and a fragment per algorithm)
and as Markdown with ``$$`` math, rendered from the same specs as the code.

The documents list exactly what ``symopt check`` reports for each spec (pass or fail, symbolic
or sampled), never more: the results the pipeline computed once per spec digest.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence

from symopt import __version__
from symopt.backends.base import Backend, generated
from symopt.backends.docs.latex import (
    SpecLatexPrinter,
    derivation_latex,
    escape_latex,
    escape_markdown,
    format_number,
)
from symopt.backends.render import render_latex
from symopt.checks import check_specs
from symopt.files.writer import GeneratedFile
from symopt.spec import Assignment, Spec
from symopt.spec.domains import DOMAINS
from symopt.spec.model import ModelSpec

FOLDER = "docs"
DOCUMENT = "symopt"
#: What ``symopt docs --pdf`` or a hand-run pdflatex leaves in the folder: not generated files.
BUILD_SUFFIXES = (".pdf", ".aux", ".log", ".out", ".toc", ".fls", ".fdb_latexmk", ".synctex.gz")


def _wrap(text: str, width: int = 96) -> str:
    """Lines for a .tex file: never split at a hyphen, where TeX would print a space."""
    return "\n".join(textwrap.wrap(text, width, break_on_hyphens=False, break_long_words=False))


def _paragraphs(text: str) -> list[str]:
    return [" ".join(p.split()) for p in text.split("\n\n") if p.strip()]


def _prose(text: str) -> dict:
    paras = _paragraphs(text)
    return {
        "tex": [_wrap(escape_latex(p)) for p in paras],
        "md": [escape_markdown(p) for p in paras],
    }


def _equations(
    printer: SpecLatexPrinter, spec: Spec, update: Sequence[Assignment], prefix: str
) -> list[dict]:
    stored = {"w", *spec.state_names}
    return [
        {
            "tex": printer.assignment(a),
            "label": f"eq:{spec.name}:{prefix}{a.target}",
            "symbol": printer.name(a.target),
            "intermediate": a.target not in stored,
        }
        for a in update
    ]


def _and(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def _intermediates(equations: Sequence[dict]) -> dict | None:
    """The sentence that names the intermediates (with their equation numbers in LaTeX)."""
    if not equations:
        return None
    return {
        "tex": _and([f"${e['symbol']}$ \\eqref{{{e['label']}}}" for e in equations]),
        "md": _and([f"${e['symbol']}$" for e in equations]),
        "verb": "is an intermediate" if len(equations) == 1 else "are intermediates",
    }


def _hypers(spec: Spec | ModelSpec) -> list[dict]:
    return [
        {
            "symbol": h.latex,
            "name_tex": escape_latex(h.name),
            "name": h.name,
            "default": format_number(h.default),
            "domain": DOMAINS[h.domain].latex,
            "doc_tex": escape_latex(h.doc),
            "doc_md": escape_markdown(h.doc),
        }
        for h in spec.hypers
    ]


def _common(spec: Spec | ModelSpec, known: Mapping[str, Spec]) -> dict:
    """What every section has: prose, hyperparameters and the check results."""
    checks = [
        {
            "name_tex": escape_latex(r.name),
            "name_md": escape_markdown(r.name),
            "passed": r.passed,
            "method": r.method,
            "detail_tex": escape_latex(r.detail),
            "detail_md": escape_markdown(r.detail),
        }
        for r in check_specs([spec], known)[spec.name]
    ]
    return {
        "spec": spec,
        "version": __version__,
        "title_tex": escape_latex(spec.title),
        "title_md": escape_markdown(spec.title),
        "summary": _prose(spec.summary),
        "reference": _prose(spec.reference),
        "notes": _prose(spec.notes),
        "source_tex": escape_latex(spec.source),
        "source_md": escape_markdown(spec.source),
        "hypers": _hypers(spec),
        "checks": checks,
        "passed": sum(c["passed"] for c in checks),
        "methods": sorted({c["method"] for c in checks}),
        "states": [],
        "derivation": None,
        "lookahead": None,
    }


def template_data(spec: Spec | ModelSpec, known: Mapping[str, Spec]) -> dict:
    if isinstance(spec, ModelSpec):
        return {**_common(spec, known), "derivation": derivation_latex(spec)}
    printer = SpecLatexPrinter.for_spec(spec)
    states = [
        {
            "symbol": s.latex,
            "name_tex": escape_latex(s.name),
            "name": s.name,
            "init": printer.expr(s.init),
            "doc_tex": escape_latex(s.doc),
            "doc_md": escape_markdown(s.doc),
        }
        for s in spec.states
    ]
    equations = _equations(printer, spec, spec.update, "")
    lookahead = None
    if spec.lookahead_free:
        lf = spec.lookahead_free
        lookahead = {
            "summary": _prose(lf.summary),
            "equations": _equations(printer, spec, lf.update, "lf:"),
            "variables": {
                fmt: _and(
                    [
                        f"the ${printer.name(k)}$ of {refs} is ${printer.expr(v)}$"
                        for k, v in lf.variables.items()
                    ]
                )
                for fmt, refs in (
                    (
                        "tex",
                        f"\\eqref{{{equations[0]['label']}}}--\\eqref{{{equations[-1]['label']}}}",
                    ),
                    ("md", f"(1)–({len(equations)})"),
                )
            },
        }
    return {
        **_common(spec, known),
        "states": states,
        "t_start": spec.t_start,
        "equations": equations,
        "intermediates": _intermediates([e for e in equations if e["intermediate"]]),
        "lookahead": lookahead,
    }


class DocsBackend(Backend):
    name = "docs"
    gated = False

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

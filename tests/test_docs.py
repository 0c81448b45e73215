"""symopt docs: the update rules as LaTeX, Markdown and PDF, from the specs the code comes from."""

import os
import re
import shutil
from pathlib import Path

import pytest
import sympy
from click.testing import CliRunner

from symopt.api_matrix import matches
from symopt.backends.base import generated as generated_file
from symopt.backends.docs import DocsBackend
from symopt.backends.docs.backend import prose_names
from symopt.backends.docs.latex import (
    SpecLatexPrinter,
    escape_latex,
    escape_markdown,
    format_number,
    safe_symbol,
)
from symopt.backends.docs.prose import to_latex, to_markdown
from symopt.checks import check_specs
from symopt.checks.result import CheckResult
from symopt.cli import main
from symopt.files.writer import edited
from symopt.resources import builtin_specs
from symopt.spec import load_spec_text
from symopt.spec.elementwise_loader import TOP_KEYS
from symopt.spec.parse import Grad, parse_expr

ROOT = Path(__file__).resolve().parents[1]


# Adam as written in its spec: the paper's moments and step, and torch.optim.Adam's flags
# (decoupled_weight_decay, amsgrad) as cases on the flag.
def cases(value: str, flag: str, otherwise: str) -> str:
    return (
        rf"\begin{{cases}} {value} & \text{{if }} \mathtt{{{flag}}} \\ {otherwise} & "
        r"\text{otherwise} \end{cases}"
    )


DECOUPLED = r"decoupled\_weight\_decay"
GW_CASES = cases("0", DECOUPLED, r"\lambda w")
W_CASES = cases(r"(1 - \eta \lambda) w", DECOUPLED, "w")
V_CASES = cases(r"v_{\max}", "amsgrad", "v")
ADAM_ALIGN = "\n".join(
    [
        r"\begin{align}",
        r"\tilde{g} &\leftarrow g + " + GW_CASES + r" \label{eq:adam:gw} \\",
        r"w &\leftarrow " + W_CASES + r" \label{eq:adam:w} \\",
        r"m &\leftarrow \beta_1 m + (1 - \beta_1) \tilde{g} \label{eq:adam:m} \\",
        r"v &\leftarrow \beta_2 v + (1 - \beta_2) \tilde{g}^{2} \label{eq:adam:v} \\",
        r"v_{\max} &\leftarrow \max(v, v_{\max}) \label{eq:adam:vmax} \\",
        r"\hat{m} &\leftarrow \frac{m}{1 - \beta_1^{t}} \label{eq:adam:m_hat} \\",
        r"\hat{v} &\leftarrow \frac{" + V_CASES + r"}{1 - \beta_2^{t}} \label{eq:adam:v_hat} \\",
        r"w &\leftarrow w - \frac{\eta \hat{m}}{\sqrt{\hat{v}} + \epsilon} \label{eq:adam:w:2}",
        r"\end{align}",
        "",
    ]
)


def run(*args: str):
    return CliRunner().invoke(main, list(args))


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    """``symopt docs`` over every built-in, once for the module (the checks take a few seconds)."""
    out = tmp_path_factory.mktemp("docs")
    result = run("docs", "--out", str(out))
    assert result.exit_code == 0, result.output
    return out / "docs"


def user_spec(tmp_path: Path, name: str = "my_adam", **replace: str) -> Path:
    text = builtin_specs()["adam"].text.replace('name = "adam"', f'name = "{name}"')
    text = text.replace('class_name = "Adam"', 'class_name = "MyAdam"')
    text = text.replace('title = "Adam"', 'title = "My Adam & co: 100% $safe_name"')
    for old, new in replace.items():
        assert old in text
        text = text.replace(old, new)
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


# -- the equations -----------------------------------------------------------------------------


def test_adam_equations_render_as_written_by_hand(generated):
    tex = (generated / "adam.tex").read_text()
    assert ADAM_ALIGN in tex


def test_adam_markdown_equations(generated):
    md = (generated / "adam.md").read_text()
    assert (
        "m &\\leftarrow \\beta_1 m + (1 - \\beta_1) \\tilde{g} && (3) \\\\\n"
        "v &\\leftarrow \\beta_2 v + (1 - \\beta_2) \\tilde{g}^{2} && (4) \\\\\n"
        "v_{\\max} &\\leftarrow \\max(v, v_{\\max}) && (5) \\\\\n"
        "\\hat{m} &\\leftarrow \\frac{m}{1 - \\beta_1^{t}} && (6) \\\\\n"
        "\\hat{v} &\\leftarrow \\frac{\\begin{cases} v_{\\max} & \\text{if } \\mathtt{amsgrad} "
        "\\\\ v & \\text{otherwise} \\end{cases}}{1 - \\beta_2^{t}} && (7) \\\\\n"
        "w &\\leftarrow w - \\frac{\\eta \\hat{m}}{\\sqrt{\\hat{v}} + \\epsilon} && (8)\n"
        "\\end{aligned}\n$$\n"
    ) in md
    assert "| $\\epsilon$ | `eps` | $10^{-8}$ | $(0, \\infty)$ | added to the denominator |" in md
    assert "| $\\lambda$ | `weight_decay` | $0$ | $[0, \\infty)$ | weight decay |" in md
    # the checks of every variant, each named by how it differs from the defaults
    assert "| passed | symbolic | \\[amsgrad\\] at rest: $g = 0$ leaves $w$ unchanged" in md


@pytest.mark.parametrize(
    "name, line",
    [
        ("sgd", r"w &\leftarrow w - \eta \tilde{g}"),
        (
            "sgd",
            r"\tilde{g} &\leftarrow \begin{cases} \begin{cases} \tilde{g} + \mu b & \text{if } "
            r"\mathtt{nesterov} \\ b & \text{otherwise} \end{cases} & \text{if } \mu \neq 0",
        ),
        ("momentum", r"v &\leftarrow \rho v + g"),
        ("nesterov", r"v &\leftarrow \rho v - \eta \nabla L(w + \rho v)"),
        ("nesterov", r"w &\leftarrow w + \rho v - \eta g"),  # the look-ahead-free form
        ("adagrad", r"w &\leftarrow w - \frac{\eta_t \tilde{g}}{\sqrt{s} + \epsilon}"),
        (
            "adadelta",
            r"\Delta &\leftarrow \frac{\sqrt{u + \epsilon} \tilde{g}}{\sqrt{v + \epsilon}}",
        ),
        ("rmsprop", r"v &\leftarrow \alpha v + (1 - \alpha) \tilde{g}^{2}"),
        (
            "rmsprop",
            r"d &\leftarrow \begin{cases} \sqrt{v - m^{2}} & \text{if } \mathtt{centered} \\ "
            r"\sqrt{v} & \text{otherwise} \end{cases} + \epsilon",
        ),
        ("adamax", r"u &\leftarrow \max(\beta_2 u, \lvert g \rvert)"),
        ("adamax_torch", r"u &\leftarrow \max(\beta_2 u, \lvert \tilde{g} \rvert + \epsilon)"),
        ("nadam_torch", r"\Pi_\mu &\leftarrow \mu_t \Pi_\mu"),
        ("asgd", r"\mu &\leftarrow \frac{1}{\max(t - t_0, 1)}"),
        (
            "nadam",
            r"\bar{m} &\leftarrow \frac{\beta_1 m}{1 - \beta_1^{t + 1}}"
            r" + \frac{(1 - \beta_1) g}{1 - \beta_1^{t}}",
        ),
        ("adabelief", r"s &\leftarrow \beta_2 s + (1 - \beta_2) (g - m)^{2} + \epsilon"),
    ],
)
def test_every_algorithm_prints_like_a_paper(generated, name, line):
    assert line in (generated / f"{name}.tex").read_text()


def test_printer_details():
    p = SpecLatexPrinter({"lr": r"\eta", "x": "x", "y": "y"}, hypers=["lr"], variables=["x", "y"])
    x, y = sympy.symbols("x y", real=True)
    lr = sympy.Symbol("lr", positive=True)
    assert p.expr(Grad(x)) == r"\nabla L(x)"
    assert p.expr(sympy.sqrt(x + lr)) == r"\sqrt{x + \eta}"
    assert p.expr(sympy.Min(x, sympy.Abs(y))) == r"\min(x, \lvert y \rvert)"
    assert p.expr(x / (y + 1) ** 2) == r"\frac{x}{(y + 1)^{2}}"
    assert p.expr(1 - lr * x) == r"1 - \eta x"
    assert p.expr(-x * y) == r"- x y"
    assert format_number(1e-8) == "10^{-8}" and format_number(3e-5) == r"3 \cdot 10^{-5}"
    assert format_number(0.001) == "0.001"


def test_text_is_escaped():
    assert escape_latex(r'a_b & 50% $x #1 {y} ~ ^ \ <> | "q"') == (
        r"a\_b \& 50\% \$x \#1 \{y\} \textasciitilde{} \textasciicircum{} \textbackslash{} "
        r"\textless{}\textgreater{} \textbar{} ``q''"
    )
    assert escape_markdown("a*b_c $x$ <b> [l](u) |") == r"a\*b\_c \$x\$ \<b\> \[l\](u) \|"


# -- the tensor-level constructs ---------------------------------------------------------------


def section(monkeypatch, spec, results=()) -> tuple[str, str]:
    """A spec's LaTeX and Markdown, with ``results`` as its checks (the notation does not
    depend on them, and the real checks of every built-in run in ``generated``)."""
    monkeypatch.setattr(
        "symopt.backends.docs.backend.check_specs",
        lambda specs, known: {s.name: list(results) for s in specs},
    )
    files = {f.path: f.text for f in DocsBackend().files([spec])}
    return files[f"docs/{spec.name}.tex"], files[f"docs/{spec.name}.md"]


MUON_ALIGN = "\n".join(
    [
        r"\begin{align}",
        r"B &\leftarrow \mu B + (1 - \mu) g \label{eq:muon:b} \\",
        r"u &\leftarrow \begin{cases} \mu B + (1 - \mu) g & \text{if } \mathtt{nesterov} \\ B & "
        r"\text{otherwise} \end{cases} \label{eq:muon:u} \\",
        r"x &\leftarrow \frac{u}{\max(\lVert u \rVert_2, \epsilon)} \label{eq:muon:x} \\",
        r"\intertext{Repeat 5 times, in order:}",
        r"a_{mat} &\leftarrow x x^{\top} \label{eq:muon:a_mat} \\",
        r"b_{mat} &\leftarrow b a_{mat} + c a_{mat} a_{mat} \label{eq:muon:b_mat} \\",
        r"x &\leftarrow a x + b_{mat} x \label{eq:muon:x:2} \\",
        r"\intertext{After the loop:}",
        r"w &\leftarrow (1 - \eta \lambda) w \label{eq:muon:w} \\",
        r"w &\leftarrow w - \eta \left(\begin{cases} "
        r"\frac{\sqrt{\max(\mathrm{cols}, \mathrm{rows})}}{5}"
        r" & \text{if } \mathtt{match\_rms\_adamw} \\ \sqrt{\max\left(1, "
        r"\frac{\mathrm{rows}}{\mathrm{cols}}\right)} & \text{otherwise} \end{cases}\right) x"
        r" \label{eq:muon:w:2}",
        r"\end{align}",
        "",
    ]
)


def test_muon_shows_the_norm_the_transpose_and_the_loop_once(monkeypatch):
    spec = builtin_specs()["muon"]
    assert len(spec.update) == 20  # stored unrolled: 5 + 5 x 3 lines
    tex, md = section(monkeypatch, spec)
    assert MUON_ALIGN in tex
    assert tex.count(r"x x^{\top}") == 1 and md.count(r"x x^{\top}") == 1
    labels = re.findall(r"\\label\{(eq:[^}]*)\}", tex)
    assert len(labels) == len(set(labels)) == 8
    assert r"\paragraph{2-D parameters.} For a matrix $w$, of shape" in tex
    assert r"\paragraph{Every other parameter.} Any parameter that is not 2-D is refused" in tex
    assert "$x$ and $w$ are assigned on more than one line: each line reads the value" in tex
    assert r"$u$ \eqref{eq:muon:u}, $x$ \eqref{eq:muon:x}, $a_{mat}$" in tex
    notation = tex.split(r"\paragraph{Notation.}")[1]
    assert r"$\lVert x \rVert_2$ is the 2-norm of the whole array $x$" in notation
    assert r"$A^{\top}$ is the transpose of $A$" in notation and "cases" not in notation


def test_muon_markdown_numbers_the_lines_across_the_loop(monkeypatch):
    _, md = section(monkeypatch, builtin_specs()["muon"])
    assert (
        "x &\\leftarrow \\frac{u}{\\max(\\lVert u \\rVert_2, \\epsilon)} && (3)\n"
        "\\end{aligned}\n$$\n\nRepeat 5 times, in order:\n\n$$\n\\begin{aligned}\n"
        "a_{mat} &\\leftarrow x x^{\\top} && (4) \\\\\n"
    ) in md
    assert "\\end{aligned}\n$$\n\nAfter the loop:\n\n$$\n\\begin{aligned}\nw &" in md
    assert "### 2-D parameters" in md and "### Every other parameter" in md
    assert "&& (8)\n\\end{aligned}" in md and "(9)" not in md


def test_rprop_shows_where_as_cases(monkeypatch):
    tex, md = section(monkeypatch, builtin_specs()["rprop"])
    factor = (
        r"\eta^{\pm} &\leftarrow \begin{cases} \eta^+ & \text{if } s > 0"
        r" \\ \eta^- & \text{else if } s < 0"
        r" \\ 1 & \text{otherwise} \end{cases} \label{eq:rprop:eta} \\"
    )
    assert factor in tex
    step = r"\Delta &\leftarrow \min(\max(\eta^{\pm} \Delta, \Delta_{\min}), \Delta_{\max})"
    assert step in tex
    assert (
        r"gz &\leftarrow \begin{cases} 0 & \text{if } s < 0 \\ g & \text{otherwise} \end{cases}"
        in md
    )
    assert "each element takes the value of the first case whose condition holds" in tex


SYM = {n: sympy.Symbol(n, real=True) for n in ("x", "y", "a", "b")}


def printed(text: str, **kw) -> str:
    names = {"x": "x", "y": "y", "a": "A", "b": "B"}
    printer = SpecLatexPrinter(names, variables=["x", "y", "a", "b"], **kw)
    return printer.expr(parse_expr(text, SYM))


@pytest.mark.parametrize(
    "text, tex",
    [
        ("norm(x)", r"\lVert x \rVert_2"),
        ("norm(x)**2", r"\lVert x \rVert_2^{2}"),
        ("norm(x/(y + 1))", r"\left\lVert \frac{x}{y + 1} \right\rVert_2"),
        ("sum(x**2)", r"{\textstyle\sum}(x^{2})"),
        ("mean(x)**2", r"(\operatorname{mean}(x))^{2}"),
        ("max(x)", r"\max(x)"),
        ("max(x, y)", r"\max(x, y)"),
        ("row_sum(x)", r"\operatorname{rowsum}(x)"),
        ("row_mean(x)", r"\operatorname{rowmean}(x)"),
        ("col_sum(x)", r"\operatorname{colsum}(x)"),
        ("col_mean(x)", r"\operatorname{colmean}(x)"),
        ("a @ b", "A B"),
        ("a @ b @ a", "A B A"),
        ("(a + b) @ a", "(A + B) A"),
        ("transpose(a)", r"A^{\top}"),
        ("transpose(a + b)", r"(A + B)^{\top}"),
        ("transpose(a @ b)", r"(A B)^{\top}"),
        (
            "where(x > 0, x, 0)",
            r"\begin{cases} x & \text{if } x > 0 \\ 0 & \text{otherwise} \end{cases}",
        ),
        (
            "where(x >= 0 and y != 1 or not x == y, 1, 2)",
            r"\begin{cases} 1 & \text{if } x \neq y \text{ or } (x \geq 0 \text{ and } y \neq 1)"
            r" \\ 2 & \text{otherwise} \end{cases}",
        ),
        (
            "y*where(x > 0, x, 0)",
            r"y \left(\begin{cases} x & \text{if } x > 0 \\ 0 & \text{otherwise} "
            r"\end{cases}\right)",
        ),
    ],
)
def test_tensor_notation(text, tex):
    assert printed(text) == tex


def test_element_wise_products_of_arrays_are_hadamard_where_matrix_products_juxtapose():
    # x is a per-tensor scalar here, a and b arrays.
    kw = {"arrays": ["a", "b"], "hadamard": True}
    assert printed("a*b", **kw) == r"A \odot B"
    assert printed("x*a*b", **kw) == r"x A \odot B"
    assert printed("a**2", **kw) == r"A^{\odot 2}"
    assert printed("sqrt(a)", **kw) == r"\sqrt{A}"
    assert printed("a*(a @ b)", **kw) == r"A \odot (A B)"
    assert printed("norm(a)*b", **kw) == r"\lVert A \rVert_2 B"
    # Without matrix products, juxtaposition is the element-wise product, as in Adam.
    assert printed("a*b") == "A B" and printed("a**2") == "A^{2}"


def test_check_not_shown_is_neither_passed_nor_failed(monkeypatch):
    results = [
        CheckResult("at rest: g = 0 leaves w unchanged", True, "symbolic"),
        CheckResult("descent: the first step", True, "not shown", "uses matrix products & 50%"),
        CheckResult("well defined", False, "sampled", "division by zero"),
    ]
    tex, md = section(monkeypatch, builtin_specs()["muon"], results)
    assert r"\texttt{symopt check} reports 1 of 3 checks passed, 1 not shown" in tex
    assert r"\emph{not shown}: symopt cannot decide the claim for this" in tex
    assert r"\emph{not shown} & - & descent: the first step: uses matrix products \& 50\% \\" in tex
    assert r"\textbf{FAILED} & sampled & well defined: division by zero \\" in tex
    assert "passed & not shown" not in tex
    assert "| *not shown* | - | descent: the first step: uses matrix products & 50% |" in md
    assert "reports 1 of 3 checks passed, 1 not shown (*symbolic*" in md


SHAPES = """\
name = "shapes"
class_name = "Shapes"
title = "Shapes"
summary = "Every tensor-level construct."
reference = "none"
applies_to = "matrix"
update = [
  "m = beta*m + (1 - beta)*g",
  "s = beta*s + (1 - beta)*sum(g**2)",
  "r = row_sum(g**2)",
  "c = col_mean(abs(g))",
  "z = where(s > 0 and max(g) < 1, m/sqrt(s), 0)",
  "w = w - lr*(z + r*c)",
]

[otherwise]
update = ["m = beta*m + (1 - beta)*g", "w = w - lr*m"]

[hyper.lr]
default = 0.1
domain = "positive"
latex = "\\\\eta"

[hyper.beta]
default = 0.9
domain = "unit_closed_open"
latex = "\\\\beta"

[state.m]
init = "g"
doc = "momentum"

[state.s]
init = "0"
shape = "scalar"

[state.r]
init = "0"
shape = "rows"

[state.c]
init = "0"
shape = "cols"
"""


def test_state_shapes_first_step_state_and_the_otherwise_block(monkeypatch, tmp_path):
    spec = load_spec_text(SHAPES, "shapes.toml")
    tex, md = section(monkeypatch, spec)
    assert "symbol & name & shape & initial value & meaning" in tex
    assert r"$m$ & \texttt{m} & like $w$ & $g$ at the first step & momentum \\" in tex
    for name, shape in (("s", "one per tensor"), ("r", "one per row"), ("c", "one per column")):
        assert f"${name}$ & \\texttt{{{name}}} & {shape} & $0$ &" in tex
        assert f"| ${name}$ | `{name}` | {shape} | $0$ |" in md
    assert "$m$ is set at the first step, from its gradient $g$ and parameters $w$" in tex
    assert "2-D parameters keep $m$, $s$, $r$ and $c$; every other parameter keeps $m$." in md
    assert r"\paragraph{Every other parameter.} One step runs, in order:" in tex
    assert r"\label{eq:shapes:otherwise:w}" in tex and "### Every other parameter" in md
    assert (
        r"z &\leftarrow \begin{cases} \frac{m}{\sqrt{s}} & \text{if } s > 0 "
        r"\text{ and } \max(g) < 1" in tex
    )
    for word in ("rowsum", "colmean"):
        assert rf"$\operatorname{{{word}}}(x)$ is the" in tex
    assert r"w &\leftarrow w - \eta (z + c r)" in tex and r"| $\beta$ | `beta` |" in md
    if shutil.which("pdflatex") is not None:
        from symopt.pdf import compile_pdf

        (tmp_path / "shapes.tex").write_text(tex)
        (tmp_path / "doc.tex").write_text(
            "\\documentclass{article}\n\\usepackage{amsmath}\n\\begin{document}\n"
            "\\input{shapes}\n\\end{document}\n"
        )
        build = compile_pdf(tmp_path, "doc")
        assert build.warnings == [] and "undefined" not in build.log.lower()


@pytest.mark.parametrize(
    "latex, safe",
    [
        (r"\hat{m}", True),
        (r"\beta_{1}", True),
        (r"\Delta_{\max}", True),
        (r"\mathrm{lr}", True),
        (r"\input{x}", False),
        (r"\write18{rm -rf /}", False),
        (r"\def\x{1}", False),
        (r"\end{align}", False),
        ("^^5cinput{x}", False),
        ("a & b", False),
        ("50%", False),
        ("$x$", False),
        ("{x", False),
        ("x}{", False),
        (r"x \\ y", False),
    ],
)
def test_spec_latex_is_used_only_when_it_is_plain_math(latex, safe):
    assert (safe_symbol(latex) == latex) is safe
    if not safe:
        assert safe_symbol(latex) == rf"\text{{{escape_latex(latex)}}}"


def test_show_prints_a_loop_once_and_both_updates():
    result = run("show", "muon")
    assert result.exit_code == 0, result.output
    assert (
        "  x = u/max(norm(u), eps)\n  repeat 5 times:\n    a_mat = x @ transpose(x)\n"
        "    b_mat = ns_b*a_mat + ns_c*(a_mat @ a_mat)\n    x = ns_a*x + b_mat @ x\n"
        "  w = w*(1 - lr*weight_decay)\n"
    ) in result.output
    assert "every other parameter: refused (the optimizer raises an error)" in result.output
    assert "  at_rest: weight_decay = 0" in result.output


def test_show_prints_shapes_first_step_state_and_otherwise(tmp_path):
    path = tmp_path / "shapes.toml"
    path.write_text(SHAPES)
    result = run("show", "--spec", str(path))
    assert result.exit_code == 0, result.output
    assert "  m        = g        (set at the first step) momentum\n" in result.output
    assert "  r        = 0        (one per row)\n" in result.output
    assert "update of every other parameter:\n  m = beta*m + (1 - beta)*g\n" in result.output


# -- the document --------------------------------------------------------------------------------


def test_document_inputs_a_section_per_algorithm(generated):
    doc = (generated / "symopt.tex").read_text()
    names = list(builtin_specs())
    assert re.findall(r"\\input\{(\w+)\}", doc) == names
    for name in names:
        section = (generated / f"{name}.tex").read_text()
        assert f"\\section{{{builtin_specs()[name].title}}}\\label{{sec:{name}}}" in section
        display = "equation" if builtin_specs()[name].kind == "second_order" else "align"
        assert f"\\begin{{{display}}}" in section and "\\documentclass" not in section
        assert (generated / f"{name}.md").is_file()


def test_checks_listed_are_those_run_checks_reports(generated):
    specs = builtin_specs()
    for name, spec in specs.items():
        tex = (generated / f"{name}.tex").read_text()
        md = (generated / f"{name}.md").read_text()
        results = check_specs([spec], specs)[name]  # what `symopt check` reports (cached)
        names = prose_names(spec)
        hidden = [r for r in results if r.method == "not shown"]
        shown = len(results) - len(hidden)
        counts = f"reports {shown} of {len(results)} checks passed"
        assert counts + (f", {len(hidden)} not shown" if hidden else "\n") in tex
        for r in results:
            # in the PDF, a variant's checks are a table of their own, headed by its setting
            label, _, plain = r.name.partition("] ") if r.name.startswith("[") else ("", "", r.name)
            if label:
                assert f"\\paragraph{{With {to_latex(label[1:], names)}.}}" in tex
            if r.method == "not shown":
                detail = f": {to_latex(r.detail, names)}" if r.detail else ""
                assert f"\\emph{{not shown}} & - & {to_latex(plain, names)}{detail} \\\\" in tex
                assert f"| *not shown* | - | {to_markdown(r.name, names)}" in md
            else:
                assert f"passed & {r.method} & {to_latex(plain, names)} \\\\" in tex
                assert f"| passed | {r.method} | {to_markdown(r.name, names)} |" in md
    assert (
        r"property: with $\epsilon = 0$ the steps do not change"
        in (generated / "adamax.tex").read_text()
    )
    # Muon's descent claim goes through matrix products: the one-coordinate model cannot decide
    # it, and the document says so rather than "passed".
    muon = (generated / "muon.tex").read_text()
    assert r"\emph{not shown} & - & descent: " in muon and "passed & not shown" not in muon


def test_a_failed_check_is_shown_as_failed(tmp_path):
    spec = user_spec(tmp_path, "ascent", **{"w = w - lr*m_hat": "w = w + lr*m_hat"})
    out = tmp_path / "out"
    result = run("docs", "--no-builtins", "--spec", str(spec), "--out", str(out))
    assert result.exit_code == 0, result.output
    tex = (out / "docs/ascent.tex").read_text()
    assert re.search(r"\\textbf\{FAILED\} & (symbolic|sampled) & descent: .*counterexample", tex)
    assert not re.search(r"passed & \w+ & descent", tex)
    assert re.search(r"\| \*\*FAILED\*\* \| \w+ \| descent: ", (out / "docs/ascent.md").read_text())


def test_user_spec_gets_a_section(tmp_path):
    spec = user_spec(tmp_path, **{'latex = "\\\\beta_1"': 'latex = "b_{1}"'})
    out = tmp_path / "out"
    result = run("docs", "--spec", str(spec), "--out", str(out))
    assert result.exit_code == 0, result.output
    doc = (out / "docs/symopt.tex").read_text()
    assert re.findall(r"\\input\{(\w+)\}", doc) == [*builtin_specs(), "my_adam"]
    section = (out / "docs/my_adam.tex").read_text()
    assert r"\section{My Adam \& co: 100\% \$safe\_name}\label{sec:my_adam}" in section
    assert r"m &\leftarrow b_{1} m + (1 - b_{1}) \tilde{g} \label{eq:my_adam:m}" in section
    assert "# My Adam & co: 100% \\$safe\\_name" in (out / "docs/my_adam.md").read_text()
    assert not list((out / "docs").glob("*.pdf"))


def test_headers_and_check(tmp_path):
    out = tmp_path / "out"
    assert run("docs", "--algorithm", "sgd", "--out", str(out)).exit_code == 0
    docs = out / "docs"
    assert sorted(p.name for p in docs.iterdir()) == ["sgd.md", "sgd.tex", "symopt.tex"]
    md = (docs / "sgd.md").read_text()
    assert md.startswith("<!-- Generated by symopt ") and "content sha256:" in md.splitlines()[2]
    assert all(line.endswith(" -->") for line in md.splitlines()[:3])
    for path in docs.iterdir():
        assert not edited(path.read_text()), path
    assert run("docs", "--algorithm", "sgd", "--out", str(out), "--check").exit_code == 0
    (docs / "sgd.md").write_text(md.replace("learning rate", "step size"))
    assert edited((docs / "sgd.md").read_text())
    result = run("docs", "--algorithm", "sgd", "--out", str(out), "--check")
    assert result.exit_code == 1 and "stale: docs/sgd.md" in result.output
    result = run("docs", "--algorithm", "sgd", "--out", str(out))
    assert result.exit_code == 1 and "docs/sgd.md: edited by hand" in result.output


def test_build_outputs_are_not_stale_files(generated, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(generated, out / "docs")
    for name in ("symopt.pdf", "symopt.aux", "symopt.log", "symopt.toc", "symopt.out"):
        (out / "docs" / name).write_text("built\n")
    assert run("generate", "--target", "docs", "--out", str(out), "--check").exit_code == 0
    (out / "docs/old.md").write_text(
        generated_file("docs/old.md", "stale\n", comment="<!--", end=" -->").text
    )
    result = run("docs", "--out", str(out), "--check")
    assert result.exit_code == 1
    assert result.output.splitlines()[-2:] == [
        "not generated by this run: docs/old.md",
        f"1 file(s) out of date in {out}/; to update them: "
        f"symopt generate --target docs --out {out}",
    ]


def test_committed_docs_are_fresh_and_listed_in_the_readme():
    result = run("docs", "--check", "--out", str(ROOT / "generated"))
    assert result.exit_code == 0, result.output
    readme = (ROOT / "README.md").read_text()
    for name in builtin_specs():
        assert f"(generated/docs/{name}.md)" in readme
    assert "generated/docs/*.pdf" in (ROOT / ".gitignore").read_text().split()


def test_readme_and_the_spec_format_count_and_list_the_built_ins():
    specs = builtin_specs()
    rules = {n: s for n, s in specs.items() if s.kind == "elementwise"}
    drop_ins = [n for n, s in rules.items() if matches(s).startswith("torch.optim.")]
    readme = (ROOT / "README.md").read_text()
    assert f"the {len(specs)} built-in algorithms" in readme
    for name, spec in rules.items():  # the algorithm table: name, class, the library class
        row = f"| {name} | {spec.class_name} | {matches(spec)} |".replace("|  |", "| |")
        assert row in readme, name
    assert "symopt_torch.Adam(model.parameters()" in readme
    assert "(docs/torch-parity.md)" in readme
    words = " ".join((ROOT / "docs" / "spec-format.md").read_text().split())
    assert (
        f"The {len(specs)} built-in specs in [`specs/`](../specs) ({len(rules)} update rules "
        f"such as Adam, AdamW, Muon and Rprop, {len(drop_ins)} of them drop-ins for a "
        f"`torch.optim` class, and {len(specs) - len(rules)} second-order methods)"
    ) in words


def test_the_spec_format_documents_every_key():
    text = (ROOT / "docs" / "spec-format.md").read_text()
    top = text.split("## Top-level keys", 1)[1].split("### Names", 1)[0]
    for key in TOP_KEYS:
        assert f"| `{key}` |" in top, key
    reference = text.split("## Key reference", 1)[1]
    for words in (
        "off_at_zero",
        "when (a flag or off_at_zero hyperparameter)",
        "key (its state-dict key)",
        "[flag.NAME]           default (required; true | false), doc",
        "matches, arguments",
        "tuples",
        "checks ([{ require, message }]), fixed, constants, machine_epsilon",
        "[api.choices.ARG]",
    ):
        assert words in reference, words


def test_docs_target_is_deterministic():
    specs = [builtin_specs()["adamax"], builtin_specs()["nesterov"]]
    first = DocsBackend().files(specs)
    assert first == DocsBackend().files(specs)
    assert [f.path for f in first] == [
        "docs/adamax.tex",
        "docs/adamax.md",
        "docs/nesterov.tex",
        "docs/nesterov.md",
        "docs/symopt.tex",
    ]


# -- the PDF ---------------------------------------------------------------------------------------


def test_pdf_without_pdflatex_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setattr("symopt.pdf.shutil.which", lambda name: None)
    result = run("docs", "--algorithm", "sgd", "--out", str(tmp_path), "--pdf")
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and "Traceback" not in result.output
    assert "apt-get install texlive-latex-base" in result.output


def needs_pdflatex() -> None:
    if shutil.which("pdflatex") is None:
        if os.environ.get("CI"):
            pytest.fail("CI must compile the documentation: .ci/run installs pdflatex")
        pytest.skip("pdflatex is not installed (apt-get install texlive-latex-base)")


def test_full_document_compiles_without_errors_or_undefined_references(generated, tmp_path):
    needs_pdflatex()
    from symopt.pdf import compile_pdf

    folder = tmp_path / "docs"
    shutil.copytree(generated, folder)
    build = compile_pdf(folder)
    assert build.pdf == folder / "symopt.pdf"
    assert build.pdf.read_bytes().startswith(b"%PDF")
    assert build.warnings == []  # no undefined references, nothing to rerun for
    assert "undefined" not in build.log.lower()
    assert "Overfull" not in build.log
    assert re.search(r"Output written on symopt\.pdf \((\d+) pages", build.log)


def test_a_section_can_be_input_into_another_document(generated, tmp_path):
    needs_pdflatex()
    from symopt.pdf import compile_pdf

    (tmp_path / "paper.tex").write_text(
        "\\documentclass{article}\n\\usepackage{amsmath}\n\\begin{document}\n"
        "As in (\\ref{eq:nesterov:v}):\n\\input{nesterov}\n\\end{document}\n"
    )
    shutil.copyfile(generated / "nesterov.tex", tmp_path / "nesterov.tex")
    build = compile_pdf(tmp_path, "paper")
    assert build.warnings == [] and "undefined" not in build.log.lower()


def test_docs_pdf_command(tmp_path):
    needs_pdflatex()
    result = run("docs", "--algorithm", "nesterov", "--out", str(tmp_path), "--pdf")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "docs/symopt.pdf").read_bytes().startswith(b"%PDF")
    assert "symopt.pdf" in result.output
    # The PDF is a build output: --check still passes with it there.
    assert run("docs", "--algorithm", "nesterov", "--out", str(tmp_path), "--check").exit_code == 0


def test_a_latex_error_is_one_line_and_keeps_the_log(tmp_path):
    needs_pdflatex()
    assert run("docs", "--algorithm", "sgd", "--out", str(tmp_path)).exit_code == 0
    tex = tmp_path / "docs/sgd.tex"
    tex.write_text(tex.read_text().replace(r"\begin{align}", r"\begin{align}\undefinedmacro"))
    from symopt.errors import SpecError
    from symopt.pdf import compile_pdf

    with pytest.raises(SpecError, match="Undefined control sequence") as info:
        compile_pdf(tmp_path / "docs")
    assert "\n" not in str(info.value)
    assert (tmp_path / "docs/symopt.log").is_file()

"""symopt docs: the update rules as LaTeX, Markdown and PDF, from the specs the code comes from."""

import os
import re
import shutil
from pathlib import Path

import pytest
import sympy
from click.testing import CliRunner

from symopt.backends.docs import DocsBackend
from symopt.backends.docs.latex import (
    SpecLatexPrinter,
    escape_latex,
    escape_markdown,
    format_number,
)
from symopt.checks import run_checks
from symopt.cli import main
from symopt.files.writer import edited
from symopt.resources import builtin_specs
from symopt.spec.parse import Grad

ROOT = Path(__file__).resolve().parents[1]

ADAM_ALIGN = r"""\begin{align}
m &\leftarrow \beta_1 m + (1 - \beta_1) g \label{eq:adam:m} \\
v &\leftarrow \beta_2 v + (1 - \beta_2) g^{2} \label{eq:adam:v} \\
\hat{m} &\leftarrow \frac{m}{1 - \beta_1^{t}} \label{eq:adam:m_hat} \\
\hat{v} &\leftarrow \frac{v}{1 - \beta_2^{t}} \label{eq:adam:v_hat} \\
w &\leftarrow w - \frac{\eta \hat{m}}{\sqrt{\hat{v}} + \epsilon} \label{eq:adam:w}
\end{align}
"""


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
        "$$\n\\begin{aligned}\n"
        "m &\\leftarrow \\beta_1 m + (1 - \\beta_1) g && (1) \\\\\n"
        "v &\\leftarrow \\beta_2 v + (1 - \\beta_2) g^{2} && (2) \\\\\n"
        "\\hat{m} &\\leftarrow \\frac{m}{1 - \\beta_1^{t}} && (3) \\\\\n"
        "\\hat{v} &\\leftarrow \\frac{v}{1 - \\beta_2^{t}} && (4) \\\\\n"
        "w &\\leftarrow w - \\frac{\\eta \\hat{m}}{\\sqrt{\\hat{v}} + \\epsilon} && (5)\n"
        "\\end{aligned}\n$$\n"
    ) in md
    assert "| $\\epsilon$ | `eps` | $10^{-8}$ | $(0, \\infty)$ | added to the denominator |" in md


@pytest.mark.parametrize(
    "name, line",
    [
        ("sgd", r"w &\leftarrow w - \eta g"),
        ("momentum", r"v &\leftarrow \rho v + g"),
        ("nesterov", r"v &\leftarrow \rho v - \eta \nabla L(w + \rho v)"),
        ("nesterov", r"w &\leftarrow w + \rho v - \eta g"),  # the look-ahead-free form
        ("adagrad", r"w &\leftarrow w - \frac{\eta g}{\sqrt{s} + \epsilon}"),
        ("rmsprop", r"v &\leftarrow \delta v + (1 - \delta) g^{2}"),
        ("adamax", r"u &\leftarrow \max(\beta_2 u, \lvert g \rvert)"),
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
        results = run_checks(spec, specs)
        assert f"reports {len(results)} of {len(results)} checks passed" in tex
        for r in results:
            assert f"passed & {r.method} & {escape_latex(r.name)} \\\\" in tex
            assert f"| passed | {r.method} | {escape_markdown(r.name)} |" in md
    assert "passed & sampled & property: with eps = 0" in (generated / "adamax.tex").read_text()


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
    assert r"m &\leftarrow b_{1} m + (1 - b_{1}) g \label{eq:my_adam:m}" in section
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
    (out / "docs/old.md").write_text("<!-- stale -->\n")
    result = run("docs", "--out", str(out), "--check")
    assert result.exit_code == 1
    assert result.output.splitlines()[-2:] == [
        "not generated by this run: docs/old.md",
        "1 file(s) out of date in " + str(out) + "/: run 'symopt generate --target docs'",
    ]


def test_committed_docs_are_fresh_and_listed_in_the_readme():
    result = run("docs", "--check", "--out", str(ROOT / "generated"))
    assert result.exit_code == 0, result.output
    readme = (ROOT / "README.md").read_text()
    for name in builtin_specs():
        assert f"(generated/docs/{name}.md)" in readme
    assert "generated/docs/*.pdf" in (ROOT / ".gitignore").read_text().split()


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

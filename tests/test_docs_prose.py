"""Prose maths in the documents (check statements, notes) typeset as maths, spec text still
escaped, and the second-order model's gradient printed simplified."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from symopt.backends.docs import DocsBackend
from symopt.backends.docs.backend import prose_names
from symopt.backends.docs.derivation import derivation_latex
from symopt.backends.docs.prose import to_latex, to_markdown
from symopt.checks.result import CheckResult
from symopt.cli import main
from symopt.resources import builtin_specs
from symopt.spec.model import ModelSpec

NAMES = {"lam": r"\lambda", "weight_decay": r"\lambda", "beta2": r"\beta_2", "eps": r"\epsilon"}


@pytest.mark.parametrize(
    ("text", "tex"),
    [
        (
            "for one datum K-FAC is exact: vec(g a^T) vec(g a^T)^T = (a a^T) kron (g g^T)",
            r"for one datum K-FAC is exact: $\operatorname{vec}(g a^{T}) "
            r"\operatorname{vec}(g a^{T})^{T} = (a a^{T}) \otimes (g g^{T})$",
        ),
        (
            "K-FAC's batch error is 1/(2 N^2) sum_{n,m} (A_n - A_m) kron (G_n - G_m)",
            r"K-FAC's batch error is "
            r"$1/(2 N^{2}) \sum_{n,m} (A_{n} - A_{m}) \otimes (G_{n} - G_{m})$",
        ),
        (
            "which differs by lam (A (x) I + I (x) G) + (lam^2 - lam) I.",
            r"which differs by $\lambda (A \otimes I + I \otimes G) + (\lambda^{2} - \lambda) I$.",
        ),
        (
            "descent (weight_decay = 0): the first step moves against the gradient, "
            "(w1 - w0) g < 0 for g != 0",
            r"descent ($\lambda = 0$): the first step moves against the gradient, "
            r"$(w_{1} - w_{0}) g < 0$ for $g \ne 0$",
        ),
        (
            "the predicted decrease m(0) - m(d*) is g^T (H + lam I)^-1 g / 2",
            r"the predicted decrease $m(0) - m(d^{*})$ is $g^{T} (H + \lambda I)^{-1} g / 2$",
        ),
        ("r becomes lam*||d||", r"$r$ becomes $\lambda \lVert d \rVert$"),
        (
            "the first-order model's minimiser in a ball of radius r is -r g/||g||",
            r"the first-order model's minimiser in a ball of radius $r$ is $-r g/\lVert g \rVert$",
        ),
        (
            "s = beta2 s + (1 - beta2)(g - m)^2 + eps with a scale, e.g. sqrt(s)",
            r"$s = \beta_2 s + (1 - \beta_2)(g - m)^{2} + \epsilon$ with a scale, e.g. $\sqrt{s}$",
        ),
        # prose stays prose: articles, hyphenated words, numbers, paths
        (
            "A spec in 2-D, see Algorithm 1 and benchmarks/bench_x.py (3 steps)",
            r"A spec in 2-D, see Algorithm 1 and benchmarks/bench\_x.py (3 steps)",
        ),
    ],
)
def test_prose_maths_is_typeset_as_maths(text, tex):
    assert to_latex(text, NAMES) == tex


def test_a_control_word_never_runs_into_a_letter():
    assert to_latex("i<=t and lam<=t", NAMES) == r"$i\le t$ and $\lambda\le t$"
    schedule = to_latex("beta1 (1 - 0.5 * 0.96^(t psi))", {})
    assert schedule == r"$\beta_{1} (1 - 0.5 \cdot 0.96^{t \psi})$"


def test_prose_maths_in_markdown():
    assert to_markdown("pytorch_optimizer and N^2 (x) G, *not* this", {}) == (
        r"pytorch\_optimizer and $N^{2} \otimes G$, \*not\* this"
    )


def test_hostile_prose_is_still_escaped():
    text = r"see \input{/etc/passwd} $x$ & 50% #1 a_b^{\def} lam^{\write}"
    assert to_latex(text, NAMES) == (
        r"see \textbackslash{}input\{/etc/passwd\} \$$x$\$ \& 50\% \#1 a\_b\textasciicircum{}"
        r"\{\textbackslash{}def\} $\lambda$\textasciicircum{}\{\textbackslash{}write\}"
    )
    assert to_markdown(text, NAMES) == (
        r"see \\input\{/etc/passwd\} \$$x$\$ & 50% \#1 a\_b\^\{\\def\} $\lambda$\^\{\\write\}"
    )


def test_spec_names_come_from_the_spec():
    names = prose_names(builtin_specs()["adam"])
    assert to_latex("with beta1 = 0 and weight_decay = 0", names) == (
        r"with $\beta_1 = 0$ and $\lambda = 0$"
    )


def test_check_table_and_notes_of_a_section_are_maths(monkeypatch):
    spec = builtin_specs()["kfac"]
    claim = "K-FAC's error is 1/(2 N^2) sum_{n,m} (A_n - A_m) kron (G_n - G_m)"
    result = CheckResult(claim, True, "symbolic")
    monkeypatch.setattr(
        "symopt.backends.docs.backend.check_specs", lambda specs, known: {spec.name: [result]}
    )
    files = {f.path: f.text for f in DocsBackend().files([spec])}
    tex, md = files["docs/kfac.tex"], files["docs/kfac.md"]
    row = r"$1/(2 N^{2}) \sum_{n,m} (A_{n} - A_{m}) \otimes (G_{n} - G_{m})$"
    assert f"passed & symbolic & K-FAC's error is {row} \\\\" in tex
    assert f"| passed | symbolic | K-FAC's error is {row} |" in md
    assert r"$\lambda (A \otimes I + I \otimes G) + (\lambda^{2} - \lambda) I$" in tex
    assert "(x)" not in tex and "textasciicircum" not in tex


SECOND_ORDER = sorted(n for n, s in builtin_specs().items() if isinstance(s, ModelSpec))


@pytest.mark.parametrize("name", SECOND_ORDER)
def test_model_gradient_is_simplified(name):
    spec = builtin_specs()[name]
    tex = derivation_latex(spec)["tex"]["gradient"]
    shown = CliRunner().invoke(main, ["show", name]).output
    if spec.damping:
        latex = r"\tau" if spec.damping == "tau" else r"\lambda"
        assert tex == rf"\nabla_d\, m(d) = {latex} d + H d + g"
        assert f"  gradient: {spec.damping}*d + H*d + g\n" in shown
    else:
        assert tex == r"\nabla_d\, m(d) = H d + g"
        assert "  gradient: H*d + g\n" in shown


def test_every_second_order_spec_is_tested():
    assert {"newton", "trust_region", "diag_newton", "block_newton", "kfac"} <= set(SECOND_ORDER)

"""The derivation of a second-order spec for the documents: the model, its gradient, the
stationarity condition and the step as LaTeX, and the control rule in words (prose maths typeset
by :mod:`symopt.backends.docs.prose`)."""

from __future__ import annotations

import sympy
from sympy.printing.latex import LatexPrinter

from symopt.backends.docs.latex import safe_symbol
from symopt.backends.docs.prose import to_latex, to_markdown
from symopt.lowering.derive import damping_symbol, derive
from symopt.spec.model import CURVATURES, STRUCTURES


class _MatrixLatexPrinter(LatexPrinter):
    """SymPy's LaTeX for matrix expressions, with ``I`` for the identity and bare fractions."""

    def _print_Identity(self, expr) -> str:
        return "I"

    def _print_MatMul(self, expr) -> str:
        coeff, factors = expr.as_coeff_mmul()
        if coeff.is_Rational and coeff not in (1, -1):
            sign = "- " if coeff < 0 else ""
            rest = self._print(sympy.MatMul(*factors.args))
            return f"{sign}\\frac{{{abs(coeff.p)}}}{{{coeff.q}}} {rest}"
        return super()._print_MatMul(expr)


def derivation_latex(spec) -> dict:
    """The model, its gradient, the stationarity condition and the step, as LaTeX, for the docs;
    all printed from :func:`symopt.lowering.derive.derive` (general ``n``), and the control rule."""

    d = derive(spec, None)
    latex = {h.name: safe_symbol(h.latex) for h in spec.hypers}
    damping = safe_symbol(spec.latex_name(spec.damping)) if spec.damping else ""
    names = {damping_symbol(spec.damping): damping} if spec.damping else {}
    printer = _MatrixLatexPrinter({"symbol_names": names})
    lhs = printer.doprint(d.matrix)
    tex = {
        "model": f"m(d) = L(w) + {printer.doprint(d.model)}",
        "gradient": f"\\nabla_d\\, m(d) = {printer.doprint(d.gradient)}",
        "system": f"{'(' + lhs + ')' if spec.damping else lhs}\\, d = {printer.doprint(d.rhs)}",
        "step": f"d^{{*}} = {printer.doprint(d.step)}",
    }
    subproblem = {
        "exact": "The subproblem is solved exactly (More-Sorensen: Cholesky factorisations of "
        "H + lambda I and Newton's method on the secular equation, including the hard case).",
        "cg": "The subproblem is solved by truncated conjugate gradients with Hessian-vector "
        "products (Steihaug), which never forms H.",
        "auto": "The subproblem is solved exactly (More-Sorensen, with the hard case, never "
        "worse than the Cauchy point) when the dense H is given and a factorisation is cheap "
        "next to Hessian-vector products, and by truncated conjugate gradients with "
        "Hessian-vector products (Steihaug) otherwise.",
    }[spec.subproblem]
    indefinite = {
        "fail": "Where the Cholesky factorisation of H fails (H is not positive definite) the "
        "method stops and says so; stopping where H is not positive semidefinite is reported "
        "as a saddle point.",
        "gradient": "Where H is not positive definite the step is steepest descent with a "
        "backtracking line search instead.",
        "solve": "The step solves H d = -g by Gaussian elimination whatever the curvature, so "
        "it can converge to a saddle point, which is reported.",
        "modify": "The damping tau is the smallest multiple of the identity (doubling from beta "
        "times the largest entry of H) that makes H + tau I positive definite (Nocedal & "
        "Wright, Algorithm 3.3), so d* is a descent direction, and each step is w + t d* with "
        "the first t of 1, rho, rho^2, ... for which L(w + t d*) <= L(w) + c1 t g^T d* (the "
        "Armijo condition; a loss that is not finite fails it), so the loss decreases at every "
        "step.",
    }[spec.on_indefinite]
    words = {**latex, "lambda": damping} if spec.damping else latex  # the prose's maths
    curvature = f"{CURVATURES[spec.curvature]} at w"
    if spec.structure != "dense":
        curvature += f", approximated by {STRUCTURES[spec.structure]}"
    return {
        "tex": tex,
        "rule": spec.rule,
        "lr": latex["lr"] if spec.rule == "damped" else "",
        "damping": damping,
        "hyper": latex,
        **{
            f"{key}_{fmt}": write(text, words)
            for key, text in (
                ("curvature", curvature),
                ("subproblem", subproblem),
                ("indefinite", indefinite),
            )
            for fmt, write in (("tex", to_latex), ("md", to_markdown))
        },
    }

"""Second-order specs: the local model of the loss and the rule that adapts it, not an update.

A second-order spec states the Taylor model ``L(w + d) ~ L + g^T d + 1/2 d^T (H + lam I) d`` (its
order, curvature matrix and damping) and the control rule that accepts steps and adapts the
damping or the trust-region radius. The step itself is derived from the model by
:mod:`symopt.lowering.derive`; a spec may also write the step as its paper does (``step``),
and the checks prove that formula equal to the derived one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import sympy

from symopt.errors import SpecError
from symopt.spec.common import Hyper, HyperparameterOwner, Loader
from symopt.spec.parse_matrix import parse_matrix_expr
from symopt.spec.reserved import DAMPING

MODEL_KEYS = {"order", "curvature", "structure", "damping", "step"}
TOP_KEYS = {"name", "class_name", "title", "summary", "reference", "notes", "model", "control"}
TOP_KEYS |= {"hyper"}
CURVATURES = {
    "hessian": "the Hessian of the loss",
    "ggn": "the generalized Gauss-Newton matrix J^T (d2c/df2) J",
    "fisher": "the Fisher information of the model's predictive distribution",
    "empirical_fisher": "the empirical Fisher (gradient outer products at the data labels)",
}
#: How the curvature matrix is approximated: the step solves with this structure.
STRUCTURES = {
    "dense": "the full matrix",
    "diagonal": "its diagonal",
    "block_diagonal": "its diagonal blocks (one per parameter tensor, or user-given blocks)",
    "kronecker": "a Kronecker product A (x) G per layer (K-FAC)",
}
#: Control rules and the hyperparameters each one needs (with the domain it needs them in).
RULES: dict[str, dict[str, str]] = {
    "newton": {},
    "radius": {
        "eta": "unit_closed_open",
        "shrink_below": "unit_open",
        "shrink": "unit_open",
        "expand_above": "unit_open",
        "expand": "positive",
        "radius0": "positive",
        "max_radius": "positive",
    },
    # A fixed damping lam (a hyperparameter) and a step size: w <- w - lr (C + lam I)^-1 g.
    "damped": {"lr": "positive"},
    # Newton's step of the model with the smallest shift tau that makes H + tau I positive
    # definite (Nocedal & Wright, Algorithm 3.3, beta in units of max_ij |H_ij|), then Armijo
    # backtracking, t <- rho t, until L(w + t d) <= L(w) + c1 t g^T d.
    "line_search": {"c1": "unit_open", "rho": "unit_open", "beta": "positive"},
}
#: Extra hyperparameters the "damped" rule needs for a structure (running averages of the
#: Kronecker factors, how often their eigendecompositions are refreshed, KL clipping).
STRUCTURE_HYPERS: dict[str, dict[str, str]] = {
    "kronecker": {
        "decay": "unit_closed_open",
        "inverse_every": "positive",
        "kl_clip": "nonnegative",
    },
}
SUBPROBLEMS = ("exact", "cg", "auto")
ON_INDEFINITE = ("fail", "gradient", "solve")
#: What the line-search rule does where H is not positive definite: shift it by tau I (the only
#: choice, and its default; the "newton" rule's choices are ON_INDEFINITE).
MODIFY = "modify"
#: Names of the model's matrices and vectors, as the step formula may use them.
MODEL_NAMES = {"g": "the gradient", "H": "the curvature matrix", "I": "the identity"}


@dataclass(frozen=True)
class ModelSpec(HyperparameterOwner):
    """A second-order method: the model, its derived step and the rule around it."""

    name: str
    class_name: str
    title: str
    summary: str
    reference: str
    notes: str
    hypers: tuple[Hyper, ...]
    order: int
    curvature: str
    structure: str
    damping: str | None  # the damping variable's name, or None for an undamped model
    step_text: str | None  # the step as the spec writes it (checked against the derivation)
    rule: str
    subproblem: str
    on_indefinite: str  # ON_INDEFINITE for the "newton" rule, MODIFY for "line_search"
    source: str = "<python>"
    text: str = ""

    kind: ClassVar[str] = "second_order"

    def latex_name(self, name: str) -> str:
        for h in self.hypers:
            if h.name == name:
                return h.latex
        return {"lam": "\\lambda"}.get(name, sympy.latex(sympy.Symbol(name)))

    def step_expr(self, symbols: Mapping[str, sympy.Basic]) -> sympy.Basic | None:
        """The spec's own step formula over the given model symbols (None when not written)."""
        if self.step_text is None:
            return None
        return parse_matrix_expr(self.step_text, symbols)


#: The dimension symbol of the general form.
N = sympy.Symbol("n", integer=True, positive=True)


def damping_symbol(damping: str | None) -> sympy.Expr:
    return sympy.Integer(0) if damping is None else sympy.Symbol(damping, nonnegative=True)


def model_symbols(damping: str | None, n: int | None) -> dict[str, sympy.Basic]:
    """g, H, I and the damping symbol, as a ``step`` formula may use them.

    For an explicit ``n``, ``H`` is a full symmetric matrix of real symbols ``h_ij``.
    """
    symbols: dict[str, sympy.Basic] = {}
    if damping is not None:
        symbols[damping] = damping_symbol(damping)
    if n is None:
        symbols |= {
            "g": sympy.MatrixSymbol("g", N, 1),
            "H": sympy.MatrixSymbol("H", N, N),
            "I": sympy.Identity(N),
            "d": sympy.MatrixSymbol("d", N, 1),
        }
        return symbols
    h = {
        (i, j): sympy.Symbol(f"h_{min(i, j) + 1}{max(i, j) + 1}", real=True)
        for i in range(n)
        for j in range(n)
    }
    symbols |= {
        "g": sympy.Matrix(n, 1, lambda i, _: sympy.Symbol(f"g_{i + 1}", real=True)),
        "H": sympy.Matrix(n, n, lambda i, j: h[i, j]),
        "I": sympy.eye(n),
        "d": sympy.Matrix(n, 1, lambda i, _: sympy.Symbol(f"d_{i + 1}", real=True)),
    }
    return symbols


class _ModelLoader(Loader):
    def load(self) -> ModelSpec:  # type: ignore[override]
        d = self.data
        name, class_name = self.names(TOP_KEYS, "Newton")
        model = self.get(d, "model", "", dict)
        self.check_keys(model, MODEL_KEYS, "model")
        order = self.get(model, "order", "model", int)
        if order != 2:
            raise self.fail(
                "model.order", f"only order 2 (quadratic) models are supported, got {order}"
            )
        curvature = self.get(model, "curvature", "model", str)
        if curvature not in CURVATURES:
            raise self.fail(
                "model.curvature",
                f"unknown curvature {curvature!r}; known: {', '.join(CURVATURES)}",
            )
        structure = self.get(model, "structure", "model", str, "dense")
        if structure not in STRUCTURES:
            raise self.fail(
                "model.structure",
                f"unknown structure {structure!r}; known: {', '.join(STRUCTURES)}",
            )
        damping_text = self.get(model, "damping", "model", str)
        damping = (
            None if damping_text.strip() == "0" else self.identifier(damping_text, "model.damping")
        )
        if damping in MODEL_NAMES:
            raise self.fail("model.damping", f"{damping!r} is the name of a model matrix")
        if damping in DAMPING:
            raise self.fail(
                "model.damping",
                f"{damping!r} names a variable of the damped solve "
                f"({', '.join(sorted(DAMPING))}); choose another",
            )
        control = self.get(d, "control", "", dict, {})
        self.check_keys(control, {"rule", "subproblem", "on_indefinite"}, "control")
        rule = self.get(control, "rule", "control", str, "newton")
        if rule not in RULES:
            raise self.fail("control.rule", f"unknown rule {rule!r}; known: {', '.join(RULES)}")
        if (rule == "newton") != (damping is None):
            want = 'damping = "0"' if rule == "newton" else 'a damping variable such as "lam"'
            raise self.fail("model.damping", f"the {rule!r} rule needs {want}")
        subproblem = self.get(control, "subproblem", "control", str, "auto")
        if subproblem not in SUBPROBLEMS:
            raise self.fail("control.subproblem", f"expected one of {', '.join(SUBPROBLEMS)}")
        on_indefinite = self.on_indefinite(control, rule)
        if (rule == "damped") != (structure != "dense"):
            raise self.fail(
                "control.rule",
                "a structured curvature (diagonal, block_diagonal, kronecker) uses the 'damped' "
                "rule, and the 'damped' rule a structured curvature",
            )
        hypers = self.hypers()
        self.rule_hypers(rule, structure, damping, hypers)
        spec = ModelSpec(
            name=name,
            class_name=class_name,
            **self.prose(),
            hypers=hypers,
            order=order,
            curvature=curvature,
            structure=structure,
            damping=damping,
            step_text=self.get(model, "step", "model", str, "").strip() or None,
            rule=rule,
            subproblem=subproblem,
            on_indefinite=on_indefinite,
        )
        self.check_step(spec)
        return spec

    def on_indefinite(self, control: dict, rule: str) -> str:
        """The "newton" rule's choice where H is not positive definite; the line-search rule
        always shifts H (``MODIFY``)."""
        if rule == "line_search":
            value = self.get(control, "on_indefinite", "control", str, MODIFY)
            if value != MODIFY:
                raise self.fail(
                    "control.on_indefinite",
                    f"the 'line_search' rule shifts an indefinite Hessian: only {MODIFY!r}",
                )
            return value
        value = self.get(control, "on_indefinite", "control", str, "fail")
        if value not in ON_INDEFINITE:
            raise self.fail("control.on_indefinite", f"expected one of {', '.join(ON_INDEFINITE)}")
        return value

    def rule_hypers(
        self, rule: str, structure: str, damping: str | None, hypers: tuple[Hyper, ...]
    ) -> None:
        """The rule's constants are hyperparameters with fixed names; their order is checked."""
        have = {h.name: h for h in hypers}
        need = dict(RULES[rule])
        if rule == "damped":
            need |= {damping: "positive", **STRUCTURE_HYPERS.get(structure, {})}
        for name, domain in need.items():
            if name not in have:
                raise self.fail("hyper", f"the {rule!r} rule needs a hyperparameter {name!r}")
            if have[name].domain != domain:
                raise self.fail(f"hyper.{name}.domain", f"the {rule!r} rule needs {domain!r}")
        extra = sorted(set(have) - set(need))
        if extra:
            raise self.fail(f"hyper.{extra[0]}", f"not used by the {rule!r} rule")
        if "inverse_every" in have and not float(have["inverse_every"].default).is_integer():
            raise self.fail("hyper.inverse_every.default", "must be a whole number of steps")
        if rule == "radius":
            v = {n: h.default for n, h in have.items()}
            if not v["eta"] < v["shrink_below"] < v["expand_above"]:
                raise self.fail("hyper", "need eta < shrink_below < expand_above")
            if not v["expand"] > 1 or v["radius0"] > v["max_radius"]:
                raise self.fail("hyper", "need expand > 1 and radius0 <= max_radius")

    def check_step(self, spec: ModelSpec) -> None:
        """The written step must be an n-vector built from the model's names (tried at n = 3)."""
        try:
            step = spec.step_expr(model_symbols(spec.damping, 3))
        except SpecError as exc:
            raise exc.located(file=self.file, key="model.step") from None
        if step is not None and getattr(step, "shape", None) != (3, 1):
            raise self.fail("model.step", "the step must be a vector (n x 1), like g")


def load_model_spec(data: dict, file: str, text: str) -> ModelSpec:
    return _ModelLoader(data, file, text).load()


def is_model_table(data: Mapping) -> bool:
    """A spec with a ``[model]`` table (and no ``update``) is a second-order spec."""
    return "model" in data

"""Known convention differences with a constant the implementation has and the spec does not:
an initial accumulator, a learning-rate decay, an L2 or decoupled weight decay, NAdam's momentum
schedule, a hyperparameter at another value than the one passed. Each :class:`Fitted` variant
takes the constant as a hyperparameter, which the diagnosis fits (:mod:`symopt.verify.diagnose`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

import sympy

from symopt.spec import G, Hyper, Spec, StateVar, T, W
from symopt.variants import Flat, _map, flatten, rebuild


@dataclass(frozen=True)
class Fitted:
    """A variant with a constant the implementation has and the spec does not (an initial
    accumulator, a learning-rate decay, a weight decay, a hyperparameter at another value):
    ``spec`` takes it as the hyperparameter ``constant``, which the diagnosis fits."""

    name: str
    description: str  # with {value}
    spec: Spec
    constant: str  # the hyperparameter of ``spec`` to fit
    key: str  # the name the fitted value is reported by
    unit: bool  # fitted as 1 - c on a log scale (a value in (0, 1))
    guesses: tuple[float, ...]  # values to try first (the implementation's defaults)


def _with_constant(spec: Spec, flat: Flat, name: str, default: float) -> Spec:
    return rebuild(spec, flat, hypers=(Hyper(name, default, "nonnegative", name),))


def initial_state(spec, flat, sym, extra):
    """A state starting at a constant c instead of its initial value (an accumulator at 0.1)."""
    for state in spec.states:
        if state.init.free_symbols:
            continue
        constant = f"{state.name}_initial"
        base = rebuild(spec, flat, hypers=(Hyper(constant, 0.0, "nonnegative", constant),))
        states = tuple(
            dataclasses.replace(s, init=sympy.Symbol(constant, nonnegative=True))
            if s.name == state.name
            else s
            for s in base.states
        )
        yield Fitted(
            f"initial_{state.name}",
            f"{state.name} starting at {{value}} instead of {state.init}",
            dataclasses.replace(base, states=states),
            constant,
            state.name,
            False,
            (0.1, 1e-6, 1e-8, 1.0),
        )


def lr_decay(spec, flat, sym, extra):
    """The learning rate decayed as lr / (1 + (t - 1) c) (torch's and Keras' Adagrad)."""
    if "lr" not in sym or "lr_decay" in spec.hyper_names:
        return
    c = sympy.Symbol("lr_decay", nonnegative=True)
    lr, t = sym["lr"], sym[T]
    decayed = _map(flat, lambda e: e.xreplace({lr: lr / (1 + (t - spec.t_start) * c)}))
    yield Fitted(
        "lr_decay",
        "the learning rate decayed as lr / (1 + (t - 1) lr_decay), lr_decay = {value}",
        _with_constant(spec, decayed, "lr_decay", 0.0),
        "lr_decay",
        "lr_decay",
        False,
        (float(extra.get("lr_decay", 0.0) or 0.0),),
    )


def hyper_value(spec, flat, sym, extra):
    """A hyperparameter at another value than the one passed (an argument ignored, a default
    hard-coded)."""
    for h in spec.hypers:
        yield Fitted(
            f"hyper_{h.name}",
            f"{h.name} = {{value}} instead of the value passed",
            spec,
            h.name,
            h.name,
            h.domain.startswith("unit"),
            (h.default,),
        )


def weight_decay(spec, flat, sym, extra):
    """L2 weight decay (wd w added to g) and decoupled weight decay (w shrunk by lr wd first)."""
    if "weight_decay" in spec.hyper_names:  # the spec has its own
        return
    guess = (float(extra.get("weight_decay", 0.0) or 0.0), 0.01, 1e-4)
    wd = sympy.Symbol("weight_decay", nonnegative=True)
    g, w = sym[G], sym[W]
    g_wd = sympy.Symbol("g_wd", real=True)
    coupled = [("g_wd", g + wd * w), *_map(flat, lambda e: e.xreplace({g: g_wd}))]
    yield Fitted(
        "l2_weight_decay",
        "L2 weight decay {value} added to the gradient",
        _with_constant(spec, coupled, "weight_decay", 0.0),
        "weight_decay",
        "weight_decay",
        False,
        guess,
    )
    if "lr" in sym:
        yield Fitted(
            "decoupled_weight_decay",
            "decoupled weight decay {value} (w shrunk by lr*weight_decay before the step)",
            _with_constant(spec, [(W, w - sym["lr"] * wd * w), *flat], "weight_decay", 0.0),
            "weight_decay",
            "weight_decay",
            False,
            guess,
        )


def momentum_schedule(spec, flat, sym, extra):
    """NAdam's momentum schedule mu_t = beta1 (1 - 0.5 * 0.96^(t psi)) (torch, Keras).

    Applies where the update uses beta^(t+1) (Dozat's look-ahead bias correction): beta^t becomes
    the running product of mu, beta^(t+1) that product times mu_{t+1}, and the remaining beta
    becomes mu_{t+1} on the momentum term and mu_t on the gradient term.
    """
    t, g = sym[T], sym[G]
    for h in spec.hypers:
        beta = sym[h.name]
        if not h.domain.startswith("unit") or not any(e.has(beta ** (t + 1)) for _, e in flat):
            continue
        psi = sympy.Symbol("momentum_decay", nonnegative=True)
        mu_t, mu_next, prod = (sympy.Symbol(n, real=True) for n in ("mu_t", "mu_next", "mu_prod"))
        half, decay = sympy.Rational(1, 2), sympy.Rational(96, 100)
        prelude = [
            ("mu_t", beta * (1 - half * decay ** (t * psi))),
            ("mu_next", beta * (1 - half * decay ** ((t + 1) * psi))),
            ("mu_prod", prod * mu_t),
        ]

        def schedule(e, beta=beta, prod=prod, mu_t=mu_t, mu_next=mu_next):
            e = e.xreplace({beta ** (t + 1): prod * mu_next, beta**t: prod})
            if not isinstance(e, sympy.Add):
                return e
            terms = []
            for term in sympy.Add.make_args(sympy.expand(e)):
                terms.append(term.xreplace({beta: mu_t if term.has(g) else mu_next}))
            return sympy.Add(*terms)

        new = [(tg, schedule(e) if tg == W else e) for tg, e in flat]
        hyper = (Hyper("momentum_decay", 0.004, "nonnegative", r"\psi"),)
        state = (StateVar("mu_prod", sympy.Integer(1), r"\Pi"),)
        yield Fitted(
            "momentum_schedule",
            "NAdam momentum schedule mu_t = beta1 (1 - 0.5 * 0.96^(t psi)), psi = {value}",
            rebuild(spec, [*prelude, *new], hypers=hyper, states=state),
            "momentum_decay",
            "momentum_decay",
            False,
            (float(extra.get("momentum_decay", 0.004)), 0.004, 0.0),
        )


#: Rules with a constant to fit.
RULES = (weight_decay, momentum_schedule, initial_state, lr_decay, hyper_value)


def fitted_variants(spec: Spec, extra: Mapping[str, float] | None = None) -> list[Fitted]:
    """Every variant of ``spec`` with a constant to fit."""
    flat, sym = flatten(spec)
    return [f for rule in RULES for f in rule(spec, flat, sym, extra or {})]

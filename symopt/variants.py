"""Known convention differences, derived from a spec by symbolic rewriting.

Hand-written optimizers drift from the mathematics in a small number of recurring ways: eps inside
or outside a square root or a max, eps accumulated into the state, a bias correction left out, a
dampened momentum, two hyperparameters swapped, the step counter off by one. Each :class:`Rule`
here rewrites *any* spec's update where its pattern occurs, so the variants of a new spec come for
free; none is written out per algorithm. Those with a constant to fit (weight decay, NAdam's
momentum schedule, an initial accumulator) are in :mod:`symopt.fitted_variants`; :func:`apply`
composes two rules.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import sympy

from symopt.spec import Assignment, G, Hyper, Spec, StateVar, T, W, symbol_table

Flat = list[tuple[str, sympy.Expr]]  # (target, expression): state and w updates, in order


@dataclass(frozen=True)
class Variant:
    name: str  # short id, e.g. "eps_inside_sqrt"
    description: str  # for people: "eps inside the square root"
    spec: Spec


def flatten(spec: Spec) -> tuple[Flat, dict[str, sympy.Symbol]]:
    """The executable update with every intermediate inlined (sequential semantics kept).

    A tensor-level spec keeps its lines: inlining a repeated matrix iteration (Muon's
    Newton-Schulz) would grow the expression exponentially."""
    symbols = symbol_table(spec)
    for a in spec.executable_update:
        symbols.setdefault(a.target, sympy.Symbol(a.target, real=True))
    if not spec.elementwise:
        return [(a.target, a.expr) for a in spec.executable_update], symbols
    outputs = {W, *spec.state_names}
    inline: dict[sympy.Symbol, sympy.Expr] = {}
    flat: Flat = []
    for a in spec.executable_update:
        expr = a.expr.xreplace(inline)
        if a.target in outputs:
            flat.append((a.target, expr))
        else:
            inline[symbols[a.target]] = expr
    return flat, symbols


def rebuild(
    spec: Spec, flat: Flat, *, hypers: tuple[Hyper, ...] = (), states: tuple[StateVar, ...] = ()
) -> Spec:
    """A spec whose update is ``flat`` (no look-ahead form, no relations: it is a variant)."""
    update = tuple(Assignment(t, e, f"{t} = {sympy.sstr(e)}") for t, e in flat)
    return dataclasses.replace(
        spec,
        update=update,
        hypers=spec.hypers + hypers,
        states=spec.states + states,
        lookahead_free=None,
        relations=(),
        properties=(),
    )


Rule = Callable[[Spec, Flat, dict, Mapping[str, float]], Iterator[tuple[str, str, Spec]]]


def _map(flat: Flat, fn: Callable[[sympy.Expr], sympy.Expr]) -> Flat:
    return [(t, fn(e)) for t, e in flat]


def _changed(a: Flat, b: Flat) -> bool:
    return any(x[1] != y[1] or x[0] != y[0] for x, y in zip(a, b, strict=False)) or len(a) != len(b)


def eps_placement(spec, flat, sym, extra):
    """eps inside the square root; eps added to the square root of the uncorrected moment."""
    if "eps" not in sym:
        return
    eps = sym["eps"]
    scalars = {sym[h] for h in spec.hyper_names} | {sym[T]}

    def inside(e):
        if isinstance(e, sympy.Add) and eps in e.args:
            roots = [a for a in e.args if isinstance(a, sympy.Pow) and a.args[1] == sympy.S.Half]
            if roots:
                rest = [a for a in e.args if a != eps and a != roots[0]]
                return sympy.Add(sympy.sqrt(roots[0].args[0] + eps), *rest)
        return e

    def uncorrected(e):
        if isinstance(e, sympy.Add) and eps in e.args:
            for r in e.args:
                if isinstance(r, sympy.Pow) and r.args[1] == sympy.S.Half:
                    k, x = r.args[0].as_independent(*(r.args[0].free_symbols - scalars))
                    if k != 1:
                        rest = [a for a in e.args if a != eps and a != r]
                        return sympy.Add(sympy.sqrt(k) * (sympy.sqrt(x) + eps), *rest)
        return e

    for name, desc, fn in (
        ("eps_inside_sqrt", "eps inside the square root", inside),
        (
            "eps_hat",
            "eps added to the square root of the uncorrected moment (epsilon-hat)",
            uncorrected,
        ),
    ):
        new = _map(flat, lambda e, fn=fn: e.replace(lambda n: isinstance(n, sympy.Add), fn))
        if _changed(flat, new):
            yield name, desc, rebuild(spec, new)


def eps_inside_max(spec, flat, sym, extra):
    """u = max(a, b + eps) with u used bare, instead of max(a, b) with (u + eps) downstream."""
    if "eps" not in sym:
        return
    eps = sym["eps"]
    for target, expr in flat:
        if not isinstance(expr, sympy.Max):
            continue
        s = sym[target]
        args = list(expr.args)
        free = [a for a in args if not a.has(s)]
        if not free:
            continue
        bumped = sympy.Max(*[a + eps if a == free[0] else a for a in args])
        new = [(t, bumped if t == target else e.xreplace({s + eps: s})) for t, e in flat]
        if _changed(flat, new):
            yield f"eps_inside_max_{target}", f"eps inside the max of {target}", rebuild(spec, new)


def eps_in_state(spec, flat, sym, extra):
    """eps accumulated into a state (or not), for states under a square root."""
    if "eps" not in sym:
        return
    eps = sym["eps"]
    w_expr = dict(flat)[W]
    for target, expr in flat:
        if target == W or not any(p.has(sym[target]) for p in w_expr.atoms(sympy.Pow)):
            continue
        if isinstance(expr, sympy.Add) and eps in expr.args:
            new_expr, desc = expr - eps, f"eps not accumulated into {target}"
        else:
            new_expr, desc = expr + eps, f"eps accumulated into {target}"
        new = [(t, new_expr if t == target else e) for t, e in flat]
        yield f"eps_state_{target}", desc, rebuild(spec, new)


def bias_correction(spec, flat, sym, extra):
    """The bias correction 1/(1 - beta^t) of one moment left out (beta^t -> 0)."""
    t = sym[T]
    for h in spec.hypers:
        beta = sym[h.name]
        if not h.domain.startswith("unit"):
            continue

        def drop(e, beta=beta):
            return e.replace(
                lambda n: isinstance(n, sympy.Pow) and n.args[0] == beta and n.args[1].has(t),
                lambda n: sympy.S.Zero,
            )

        new = _map(flat, drop)
        if _changed(flat, new):
            users = [tg for (tg, e), (_, e2) in zip(flat, new, strict=True) if e != e2]
            yield (
                f"no_bias_correction_{h.name}",
                f"no bias correction (1 - {h.name}^t) in the update of {', '.join(users)}",
                rebuild(spec, new),
            )


def step_counter(spec, flat, sym, extra):
    """The step counter off by one."""
    t = sym[T]
    if not any(e.has(t) for _, e in flat):
        return
    for shift, desc in ((-1, "t starting at 0 instead of 1 (t - 1)"), (1, "t one ahead (t + 1)")):
        yield (
            f"t_{'minus' if shift < 0 else 'plus'}_1",
            desc,
            rebuild(spec, _map(flat, lambda e, s=shift: e.xreplace({t: t + s}))),
        )


def dampening(spec, flat, sym, extra):
    """Momentum as an average (rho v + (1 - rho) g) versus a sum (rho v + g), per state."""
    g = sym[G]
    for target, expr in flat:
        if target == W or not isinstance(expr, sympy.Add):
            continue
        s = sym[target]
        coeff_g, coeff_s = expr.coeff(g), expr.coeff(s)
        if coeff_s == 0 or sympy.expand(expr - coeff_g * g - coeff_s * s) != 0:
            continue
        if coeff_g == 1:
            new_expr, desc = coeff_s * s + (1 - coeff_s) * g, f"dampening: {target} averages g"
        elif sympy.expand(coeff_g - (1 - coeff_s)) == 0:
            new_expr, desc = coeff_s * s + g, f"no (1 - {coeff_s}) factor on g in {target}"
        else:
            continue
        new = [(t, new_expr if t == target else e) for t, e in flat]
        yield f"dampening_{target}", desc, rebuild(spec, new)


def swapped_hypers(spec, flat, sym, extra):
    """Two hyperparameters of the same domain exchanged (beta1 <-> beta2)."""
    hypers = spec.hypers
    for i, a in enumerate(hypers):
        for b in hypers[i + 1 :]:
            if a.domain == b.domain and a.domain.startswith("unit"):
                swap = {sym[a.name]: sym[b.name], sym[b.name]: sym[a.name]}
                yield (
                    f"swap_{a.name}_{b.name}",
                    f"{a.name} and {b.name} swapped",
                    rebuild(spec, _map(flat, lambda e, s=swap: e.xreplace(s))),
                )


def sign(spec, flat, sym, extra):
    g = sym[G]
    yield (
        "sign",
        "the gradient's sign flipped (steps go uphill)",
        rebuild(spec, _map(flat, lambda e: e.xreplace({g: -g}))),
    )


def frozen_state(spec, flat, sym, extra):
    for target in dict.fromkeys(t for t, _ in flat):
        if target in spec.state_names:
            new = [(t, sym[t] if t == target else e) for t, e in flat]
            yield f"frozen_{target}", f"state {target} is never updated", rebuild(spec, new)


RULES: tuple[Rule, ...] = (
    eps_placement,
    eps_inside_max,
    eps_in_state,
    bias_correction,
    step_counter,
    dampening,
    swapped_hypers,
    sign,
    frozen_state,
)


def variants(spec: Spec, extra: Mapping[str, float] | None = None) -> list[Variant]:
    """Every single-rule variant of ``spec`` that differs from it."""
    flat, sym = flatten(spec)
    out = []
    for rule in RULES:
        for name, desc, vspec in rule(spec, flat, sym, extra or {}):
            out.append(Variant(name, desc, vspec))
    return out


def apply(spec: Spec, name: str) -> Spec | None:
    """``spec`` rewritten by the single rule ``name`` (for pairs of rules), or None."""
    for variant in variants(spec):
        if variant.name == name:
            return variant.spec
    return None

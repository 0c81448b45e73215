"""Bounded hyperparameters rewritten through unbounded symbols, so SymPy's assumptions see signs
(shared by the prover and the case splitter)."""

from __future__ import annotations

from collections.abc import Mapping

import sympy

from symopt.spec.domains import Domain


def reparametrize(expr: sympy.Expr, domains: Mapping[sympy.Symbol, Domain]) -> sympy.Expr:
    """Rewrite bounded hyperparameters through positive symbols so SymPy can reason about signs."""
    # b^e with b in a unit interval and e > 0 stays in that interval: name it, so that facts like
    # "1 - beta2**t > 0" reduce to the domain of a fresh symbol.
    powers = {}
    for node in expr.atoms(sympy.Pow):
        base, e = node.args
        dom = domains.get(base)
        if dom is not None and dom.name.startswith("unit_") and e.is_positive:
            powers[node] = sympy.Symbol(f"{base.name}__pow{len(powers)}", **dom.assumptions)
            domains = {**domains, powers[node]: dom}
    expr = expr.xreplace(powers)
    mapping = {}
    for sym, dom in domains.items():
        if sym in expr.free_symbols:
            base = sympy.Symbol(f"{sym.name}__x", **dom.base)
            mapping[sym] = dom.reparam(base)
    return expr.xreplace(mapping)

"""Case splitting: an expression with ``Max``, ``Min``, ``sign`` or ``Piecewise`` as one plain
expression per consistent choice of branches, so each can be proven with the usual algebra.

How it works. ``Max``/``Min`` are rewritten as ``Piecewise`` (``Max(a, b)`` is ``a`` where ``a >=
b``, else ``b``), and ``sign(x)`` as 1, -1 or 0 where x is positive, negative or 0 (Yogi's second
moment stays nonnegative in every case). Every comparison is reduced to the sign of one *atom*:
``lhs - rhs`` with its factors of known sign divided out (for the reparametrised domains, so ``c**2
(a - b)`` and ``a - b`` are the same atom) and its sign normalised, so that the two sides of a
scale-invariance claim split the same way. The splitter takes the first comparison without branches
inside (in preorder: the outermost branch's condition first, so inner branches are only split where
they are reached), and for its atom enumerates the signs (negative, zero, positive) that the
comparisons on that atom can tell apart (``>=`` alone needs two cases, not three), minus the signs
the atom provably cannot have, given the cases already taken. Each case replaces those comparisons
by True or False, which collapses the ``Piecewise`` they guard, and recurses.

Where SymPy can use a condition it is used: the atom, where it occurs, becomes a symbol of the
case's sign (``u_norm != 0`` with ``u_norm >= 0`` makes ``u_norm`` positive), and an atom ``x - r``
linear in a symbol ``x`` also gives the substitution ``x = r + s`` with ``s`` of that sign (``norm
>= eps`` makes the norm ``eps + s``). Each leaf comes in its plain form, with each substitution,
and with all of them; a proof of any form is a proof of the leaf.

Comparisons that come from ``Max``/``Min`` need no case for a tie (both branches are equal there),
so ``max(v_max, v)`` splits in two, not three.

A proof must hold in every leaf (leaves of impossible branch combinations included, which is only
more than needed). Splitting stops at :data:`MAX_CASES` leaves: the caller then falls back to
sampling the original expression, which SymPy evaluates exactly at each point."""

from __future__ import annotations

from collections.abc import Mapping

import sympy
from sympy.core.relational import Relational

from symopt.checks.reparam import reparametrize
from symopt.spec.domains import Domain

MAX_CASES = 64
MAX_ATOM_OPS = 200
SIGNS = ("neg", "zero", "pos")
ASSUMPTIONS = {
    frozenset({"pos"}): {"positive": True},
    frozenset({"neg"}): {"negative": True},
    frozenset({"zero", "pos"}): {"nonnegative": True},
    frozenset({"neg", "zero"}): {"nonpositive": True},
    frozenset({"neg", "pos"}): {"nonzero": True, "real": True},
}
TRUTH = {
    sympy.StrictGreaterThan: lambda s: s == "pos",
    sympy.GreaterThan: lambda s: s != "neg",
    sympy.StrictLessThan: lambda s: s == "neg",
    sympy.LessThan: lambda s: s != "pos",
    sympy.Equality: lambda s: s == "zero",
    sympy.Unequality: lambda s: s != "zero",
}


def conditional(expr: sympy.Basic) -> bool:
    """Whether ``expr`` has a branch that case splitting removes."""
    return isinstance(expr, sympy.Basic) and expr.has(
        sympy.Piecewise, sympy.Max, sympy.Min, sympy.sign
    )


def split(
    expr: sympy.Expr, domains: Mapping[sympy.Symbol, Domain]
) -> list[tuple[sympy.Expr, ...]] | None:
    """The leaves of ``expr`` (each as its plain form, then any form that uses its conditions),
    or None when there would be more than :data:`MAX_CASES` or a branch cannot be decided."""
    splitter = _Splitter(domains)
    leaves: list[tuple[sympy.Expr, ...]] = []
    try:
        made: set[Relational] = set()
        rewritten = _rewrite(expr, made)
        splitter.tie_free = made - expr.atoms(Relational)
        ok = splitter.run(rewritten, (), {}, leaves)
    except (TypeError, ValueError, sympy.PolynomialError):
        return None
    return leaves if ok else None


def _rewrite(expr: sympy.Expr, made: set[Relational]) -> sympy.Expr:
    """``Max``/``Min`` as ``Piecewise`` (bottom up, so nested ones come out as nested branches;
    SymPy's own rewrite would also turn every ``Abs`` inside into branches). The comparisons it
    makes are added to ``made``: at a tie either branch has the same value."""

    def branches(e: sympy.Basic) -> sympy.Expr:
        ge = sympy.Ge if isinstance(e, sympy.Max) else sympy.Le
        args = e.args
        pieces = []
        for i, a in enumerate(args[:-1]):
            tests = [ge(a, b) for j, b in enumerate(args) if j != i]
            made.update(t for t in tests if isinstance(t, (sympy.GreaterThan, sympy.LessThan)))
            pieces.append((a, sympy.And(*tests)))
        return sympy.Piecewise(*pieces, (args[-1], True))

    def signs(e: sympy.Basic) -> sympy.Expr:
        x = e.args[0]
        return sympy.Piecewise((1, sympy.Gt(x, 0)), (-1, sympy.Lt(x, 0)), (0, True))

    expr = expr.replace(lambda e: isinstance(e, (sympy.Max, sympy.Min)), branches)
    return expr.replace(lambda e: isinstance(e, sympy.sign), signs)


def sign_set(expr: sympy.Expr, domains: Mapping[sympy.Symbol, Domain]) -> frozenset[str]:
    """The signs ``expr`` can have, as far as SymPy's assumptions tell (hyperparameters
    reparametrised as for sign decisions)."""

    if expr.is_number and expr.is_comparable:
        return frozenset({"neg" if expr < 0 else "zero" if expr == 0 else "pos"})
    e = reparametrize(expr, domains)
    forms = [e]
    if sympy.count_ops(e) <= MAX_ATOM_OPS:
        forms.append(lambda: sympy.factor(sympy.together(e)))
    allowed = set(SIGNS)
    for form in forms:
        f = form() if callable(form) else form
        tests = {
            "neg": f.is_nonnegative,
            "zero": f.is_nonzero,
            "pos": f.is_nonpositive,
        }
        allowed -= {s for s, excluded in tests.items() if excluded}
        if len(allowed) <= 1:
            break
    return frozenset(allowed)


class _Splitter:
    def __init__(self, domains: Mapping[sympy.Symbol, Domain]) -> None:
        self.domains = domains
        self.atoms: dict[Relational, tuple[sympy.Expr, bool]] = {}
        self.count = 0
        #: Comparisons made by rewriting Max/Min: at a tie both branches have the same value,
        #: so the zero sign of their atom needs no case of its own.
        self.tie_free: set[Relational] = set()

    def atom(self, rel: Relational) -> tuple[sympy.Expr, bool]:
        """(atom, flipped): ``rel`` holds iff its operator holds for the sign of the atom
        (negated when flipped)."""
        if rel not in self.atoms:
            diff = rel.lhs - rel.rhs
            if sympy.count_ops(diff) <= MAX_ATOM_OPS:
                diff = sympy.factor_terms(sympy.together(diff))
            flipped = False
            core = []
            for f in sympy.Mul.make_args(diff):
                signs = sign_set(f, self.domains)
                if signs == {"pos"}:
                    continue
                if signs == {"neg"}:
                    flipped = not flipped
                    continue
                core.append(f)
            e = sympy.Mul(*core)
            if e.is_Add and sympy.count_ops(e) <= MAX_ATOM_OPS:
                e = sympy.expand(e)
            if e.could_extract_minus_sign():
                e, flipped = -e, not flipped
            self.atoms[rel] = (e, flipped)
        return self.atoms[rel]

    def truth(self, rel: Relational, sign: str) -> bool:
        _, flipped = self.atom(rel)
        flip = {"neg": "pos", "pos": "neg", "zero": "zero"}
        return TRUTH[type(rel)](flip[sign] if flipped else sign)

    def run(self, expr, facts: tuple, signs_of: dict, leaves: list) -> bool:
        """Split ``expr`` on its first comparison without branches inside (outermost branch's
        condition first), recursing into each case; ``facts`` are the substitutions the cases so
        far allow, ``signs_of`` the signs decided for each atom. An impossible case (no sign
        left for the atom) has no leaves: nothing happens there."""
        first = next((r for r in sympy.preorder_traversal(expr) if _splittable(r)), None)
        if first is None:
            if expr.has(sympy.Piecewise):
                return False
            self.count += 1
            leaves.append(_forms(expr, facts))
            return self.count <= MAX_CASES
        atom, _ = self.atom(first)
        same = [r for r in expr.atoms(Relational) if _splittable(r) and self.atom(r)[0] == atom]
        known = sign_set(atom, self.domains) & signs_of.get(atom, frozenset(SIGNS))
        if facts:  # what the earlier cases say about this atom (x = r + s makes x - r known)
            known &= sign_set(atom.xreplace(dict(facts)), self.domains)
        tie = "zero" in known and len(known) > 1 and all(r in self.tie_free for r in same)
        classes: dict[tuple[bool, ...], list[str]] = {}
        for s in SIGNS:
            if s in known and not (tie and s == "zero"):
                classes.setdefault(tuple(self.truth(r, s) for r in same), []).append(s)
        for signs in classes.values():
            truth = {r: sympy.true if self.truth(r, signs[0]) else sympy.false for r in same}
            if tie and set(signs) != {"pos", "neg"}:
                signs = [*signs, "zero"]  # the tie goes with this side: its value is the same
            fact = _use_sign(atom, frozenset(signs))
            known_signs = {**signs_of, atom: frozenset(signs)}
            if not self.run(expr.xreplace(truth), (*facts, *fact.items()), known_signs, leaves):
                return False
        return True


def _splittable(e: sympy.Basic) -> bool:
    return isinstance(e, Relational) and type(e) in TRUTH and not _has_inner(e)


def _has_inner(rel: Relational) -> bool:
    return any(a.has(sympy.Piecewise, Relational) for a in rel.args)


def _use_sign(atom: sympy.Expr, signs: frozenset[str]) -> dict[sympy.Expr, sympy.Expr]:
    """A case's sign of ``atom`` as substitutions for the other forms of each leaf: the atom
    itself as a symbol ``s`` of that sign (0 for the zero case) and, when the atom is ``x - r``
    for a symbol ``x`` (``r`` free of it), ``x = r + s`` (``norm >= eps`` makes the norm
    ``eps + s``, which is positive)."""
    if signs == {"zero"}:
        fresh: sympy.Expr = sympy.Integer(0)
    elif signs in ASSUMPTIONS:
        fresh = sympy.Dummy(atom.name if atom.is_Symbol else "case", **ASSUMPTIONS[signs])
    else:
        return {}
    facts: dict[sympy.Expr, sympy.Expr] = {atom: fresh}
    for x in sorted(atom.free_symbols, key=lambda s: (s.is_integer is True, s.name)):
        if not atom.is_Add or x.is_integer:
            break
        slope = atom.diff(x)
        if slope in (1, -1) and not (atom - slope * x).has(x):
            facts[x] = (fresh - (atom - slope * x)) / slope
            break
    return facts


def _forms(expr: sympy.Expr, facts: tuple) -> tuple[sympy.Expr, ...]:
    """The leaf itself, then with each fact (the latest first), then with all of them."""
    forms = [expr]
    for fact in (*((f,) for f in reversed(facts)), facts):
        if fact:
            used = expr.xreplace(dict(fact))
            if used not in forms:
                forms.append(used)
    return tuple(forms)

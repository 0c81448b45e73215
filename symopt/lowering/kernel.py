"""Lowering a spec for code generation: a host prelude of scalars and an element-wise body.

* The **prelude** holds every subexpression that depends only on hyperparameters and ``t`` (bias
  corrections, effective step sizes). Targets compute it once per step, in double precision.
* The **body** is a list of SSA statements over the arrays ``w, g`` and the state: common
  subexpressions are shared through numbered temporaries (``sympy.cse``), intermediates of the spec
  are inlined, and each statement remembers the spec lines it implements (for code comments).

Everything is ordered by the spec and by SymPy's canonical argument order, so the output is the
same bytes on every run and under every ``PYTHONHASHSEED``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import sympy

from symopt.checks.prove import SYMBOLIC, decide_sign
from symopt.lowering.names import readable
from symopt.spec import Assignment, G, Spec, T, W, symbol_table
from symopt.spec.domains import DOMAINS


@dataclass(frozen=True)
class Statement:
    target: sympy.Symbol  # an SSA name: a temporary, or the new value of w / a state
    expr: sympy.Expr
    array: str | None  # the array this statement's value is the new content of (None: temporary)
    equations: tuple[str, ...]  # spec lines implemented here (empty for a shared temporary)


@dataclass(frozen=True)
class Kernel:
    spec: Spec
    hypers: tuple[str, ...]
    arrays: tuple[str, ...]  # w, g, then state names: the element-wise inputs
    outputs: tuple[str, ...]  # w and the state names: arrays updated in place
    prelude: tuple[tuple[sympy.Symbol, sympy.Expr], ...]
    body: tuple[Statement, ...]
    init: Mapping[str, sympy.Expr]  # state name -> initial value (over hyperparameters)

    @property
    def scalars(self) -> tuple[sympy.Symbol, ...]:
        return tuple(s for s, _ in self.prelude)

    def ssa_name(self, array: str) -> sympy.Symbol:
        """The symbol holding the final value of an output array."""
        return next(s.target for s in reversed(self.body) if s.array == array)


class Hoister:
    """Moves loop-invariant work to the prelude, as scalars ``_c0, _c1, ...``.

    Two exact rewrites first expose more invariant work (each applied only when SymPy proves the
    side condition, never on a sampled verdict):

    * ``(s*x)**p = s**p * x**p`` for a scalar ``s > 0``;
    * ``N / (k*x + e) = (N/k) / (x + e/k)`` for a scalar ``k != 0``, so the denominator's leading
      term needs no multiply (Adam's ``sqrt(v/(1 - beta2**t))`` becomes ``sqrt(v)`` with the bias
      correction folded into the step size);
    * a scalar factor distributes into a sum whose terms all have scalar coefficients.
    """

    def __init__(self, scalar_symbols: set[sympy.Symbol], domains):
        self.scalar_symbols = scalar_symbols
        self.domains = domains
        self.prelude: dict[sympy.Expr, sympy.Symbol] = {}

    def is_scalar(self, e: sympy.Expr) -> bool:
        return e.free_symbols <= self.scalar_symbols

    def proven(self, e: sympy.Expr, want: str) -> bool:
        verdict = decide_sign(e, want, self.domains, allow_sampling=False)
        return verdict.holds and verdict.method == SYMBOLIC

    def rewrite(self, e: sympy.Expr) -> sympy.Expr:
        """Bottom-up exact rewrites (see the class docstring)."""
        if self.is_scalar(e) or not e.args:
            return e
        e = e.func(*(self.rewrite(a) for a in e.args))
        if isinstance(e, sympy.Pow):
            base, ex = e.args
            if isinstance(base, sympy.Mul) and self.is_scalar(ex) and not ex.is_Integer:
                scalar = sympy.Mul(*[a for a in base.args if self.is_scalar(a)])
                rest = sympy.Mul(*[a for a in base.args if not self.is_scalar(a)])
                if scalar != 1 and self.proven(scalar, "positive"):
                    # powdenest may pull powers apart because the scalar is proven positive.
                    scalar_part = sympy.powdenest(sympy.Pow(scalar, ex), force=True)
                    return scalar_part * sympy.Pow(rest, ex)
        if isinstance(e, sympy.Mul):
            return self.distribute(sympy.Mul(*(self.normalize(f) for f in e.args)))
        return e

    def distribute(self, product: sympy.Expr) -> sympy.Expr:
        """k*(a*x + b*y)*r -> (k*a*x + k*b*y)*r when every term of the sum already has a scalar
        coefficient: the multiply by k then merges into the coefficients and costs nothing."""
        if not isinstance(product, sympy.Mul):
            return product
        k = sympy.Mul(*[f for f in product.args if self.is_scalar(f)])
        sums = [f for f in product.args if isinstance(f, sympy.Add) and not self.is_scalar(f)]
        if k == 1 or len(sums) != 1:
            return product
        terms = sums[0].args
        if not all(
            self.is_scalar(t) or any(self.is_scalar(f) for f in sympy.Mul.make_args(t))
            for t in terms
        ):
            return product
        rest = [f for f in product.args if not self.is_scalar(f) and f is not sums[0]]
        return sympy.Mul(sympy.Add(*[k * t for t in terms]), *rest)

    def normalize(self, factor: sympy.Expr) -> sympy.Expr:
        """1/(k*x + e) -> (1/k) * 1/(x + e/k) when k is a scalar proven nonzero."""
        if not (isinstance(factor, sympy.Pow) and factor.args[1] == -1):
            return factor
        denominator = factor.args[0]
        if not isinstance(denominator, sympy.Add) or self.is_scalar(denominator):
            return factor
        lead = next(t for t in denominator.args if not self.is_scalar(t))
        k = sympy.Mul(*[f for f in sympy.Mul.make_args(lead) if self.is_scalar(f)])
        if k == 1 or not self.proven(k, "nonzero"):
            return factor
        return sympy.Mul(1 / k, 1 / sympy.Add(*[t / k for t in denominator.args]))

    def name(self, e: sympy.Expr) -> sympy.Expr:
        if e.is_Symbol or e.is_Number:
            return e
        if e not in self.prelude:
            self.prelude[e] = sympy.Symbol(f"_c{len(self.prelude)}", real=True)  # renamed later
        return self.prelude[e]

    def __call__(self, e: sympy.Expr) -> sympy.Expr:
        return self.hoist(self.rewrite(e))

    def guarded(self, e: sympy.Expr, guard: sympy.Basic) -> sympy.Expr:
        """A scalar hoisted out of a branch is computed only where its branch is taken (else it is
        a harmless 1): the prelude runs eagerly, and RAdam's rectification is the root of a
        negative number until rho_t > 5."""
        if guard is sympy.true or e.is_Number or e.is_Symbol:
            return e
        return sympy.Piecewise((e, guard), (1, True))

    def hoist(self, e: sympy.Expr, guard: sympy.Basic = sympy.true) -> sympy.Expr:
        if self.is_scalar(e):
            return self.name(self.guarded(e, guard))
        if isinstance(e, sympy.Piecewise):
            return self.hoist_branches(e, guard)
        if isinstance(e, (sympy.Add, sympy.Mul)):
            scalar = [a for a in e.args if self.is_scalar(a)]
            rest = [self.hoist(a, guard) for a in e.args if not self.is_scalar(a)]
            op = type(e)
            if not scalar:
                return op(*rest)
            s = op(*scalar)
            if isinstance(e, sympy.Mul) and s.is_Number:
                return op(s, *rest)
            return op(self.name(self.guarded(s, guard)), *rest)
        if isinstance(e, sympy.Pow):
            base, ex = e.args
            return sympy.Pow(self.hoist(base, guard), ex if ex.is_Number else self.hoist(ex, guard))
        if e.args:
            return e.func(*(self.hoist(a, guard) for a in e.args))
        return e

    def hoist_branches(self, e: sympy.Piecewise, guard: sympy.Basic) -> sympy.Expr:
        """Each branch under the conditions that select it, where those are scalars."""
        pairs, before = [], []
        for expr, cond in e.args:
            if self.is_scalar(cond):
                named = cond if cond is sympy.true else self.name(cond)
                taken = sympy.And(guard, named, *[sympy.Not(c) for c in before])
                pairs.append((self.hoist(expr, taken), named))
                before.append(named)
            else:
                pairs.append((self.hoist(expr, guard), self.hoist(cond, guard)))
        return sympy.Piecewise(*pairs)


def lower(spec: Spec, inputs: tuple[str, ...] = ()) -> Kernel:
    """Lower a spec's executable update into prelude + element-wise SSA body, once per spec text.

    ``inputs`` names read-only arrays beside ``g`` (a diagonal curvature, for instance)."""
    key = (*spec.cache_key, inputs)
    if spec.text and key in _LOWERED:
        return _LOWERED[key]
    kernel = _lower(spec, inputs)
    if spec.text:
        _LOWERED[key] = kernel
    return kernel


#: Kernels by (source, spec text, inputs): every backend and the docs share one lowering.
_LOWERED: dict[tuple, Kernel] = {}


def first_step_states(spec: Spec, symbols) -> tuple[Assignment, ...]:
    """A state set from the first gradient starts at 0 and is set by the first step's first line:
    ``s = where(t == t_start, init, s)`` (the condition is a per-step scalar)."""
    first = {symbols[W], symbols[G]}
    lines = []
    for s in spec.states:
        if s.init.free_symbols & first:
            expr = sympy.Piecewise(
                (s.init, sympy.Eq(symbols[T], spec.t_start)), (symbols[s.name], True)
            )
            lines.append(
                Assignment(s.name, expr, f"{s.name} = {sympy.sstr(s.init)} at the first step")
            )
    return tuple(lines)


def prelude_intermediates(
    update: tuple[Assignment, ...], outputs: tuple[str, ...], hoist: Hoister
) -> set[str]:
    """Intermediates that go to the prelude under their own names (RAdam's ``rho_t``): assigned
    once, over hyperparameters, t and earlier such names only, and safe to compute eagerly: no
    root or log, and no division unless by a value proven nonzero (a branch of a where() may
    need its condition to be valid, and the prelude computes every name)."""
    counts: dict[str, int] = {}
    for a in update:
        counts[a.target] = counts.get(a.target, 0) + 1
    known = {s.name for s in hoist.scalar_symbols}
    out: set[str] = set()

    def risky(p: sympy.Basic) -> bool:
        if isinstance(p, sympy.log):
            return True
        if not isinstance(p, sympy.Pow):
            return False
        if not p.exp.is_integer:
            return True
        return p.exp.is_negative and not hoist.proven(p.base, "nonzero")

    for a in update:
        eager = not any(risky(p) for p in sympy.preorder_traversal(a.expr))
        if (
            a.target not in outputs
            and counts[a.target] == 1
            and eager
            and {s.name for s in a.expr.free_symbols} <= known | out
        ):
            out.add(a.target)
    return out


def initial_values(spec: Spec) -> dict[str, sympy.Expr]:
    """What each state array holds before the first step (0 for state set from the first step)."""
    first = {W, G}
    return {
        s.name: sympy.Integer(0) if {x.name for x in s.init.free_symbols} & first else s.init
        for s in spec.states
    }


def _lower(spec: Spec, inputs: tuple[str, ...]) -> Kernel:
    symbols = symbol_table(spec)
    update = (*first_step_states(spec, symbols), *spec.executable_update)
    for a in update:
        symbols.setdefault(a.target, sympy.Symbol(a.target, real=True))
    outputs = (W, *spec.state_names)
    hyper_syms = {symbols[h] for h in spec.hyper_names} | {symbols[T]}
    domains = {symbols[h.name]: DOMAINS[h.domain] for h in spec.hypers}

    # 1. Sequential semantics -> SSA, intermediates inlined (but those of the prelude).
    scalar_names = prelude_intermediates(update, outputs, Hoister(set(hyper_syms), domains))
    named_scalars: dict[sympy.Expr, sympy.Symbol] = {}
    current: dict[sympy.Symbol, sympy.Expr] = {}
    pending_lines: list[str] = []
    statements: list[tuple[sympy.Symbol, sympy.Expr, str, tuple[str, ...]]] = []
    version: dict[str, int] = {}
    for a in update:
        expr = a.expr.xreplace(current)
        if a.target in outputs:
            version[a.target] = version.get(a.target, 0) + 1
            ssa = sympy.Symbol(f"{a.target}__{version[a.target]}", real=True)
            current[symbols[a.target]] = ssa
            statements.append((ssa, expr, a.target, (*pending_lines, a.text)))
            pending_lines = []
        elif a.target in scalar_names:  # keeps the spec's name, in the prelude
            named = sympy.Symbol(a.target, real=True)
            named_scalars[expr] = named
            hyper_syms.add(named)
            current[symbols[a.target]] = named
            pending_lines.append(a.text)
        else:
            current[symbols[a.target]] = expr
            pending_lines.append(a.text)

    # 2. Hoist loop invariants into the prelude.
    hoist = Hoister(hyper_syms, domains)
    hoist.prelude.update(named_scalars)
    hoisted = [(ssa, hoist(expr), arr, lines) for ssa, expr, arr, lines in statements]

    # 3. Common subexpressions across the whole body (SSA makes this valid).
    temps, reduced = sympy.cse(
        [expr for _, expr, _, _ in hoisted],
        symbols=sympy.numbered_symbols("_t", real=True),  # renamed by readable()
        optimizations="basic",
    )
    body = interleave(temps, reduced, hoisted)
    prelude = tuple((sym, expr) for expr, sym in hoist.prelude.items())
    arrays = (W, G, *inputs, *spec.state_names)
    kernel = Kernel(
        spec,
        spec.hyper_names,
        arrays,
        outputs,
        prelude,
        tuple(body),
        initial_values(spec),
    )
    return readable(kernel, set(symbols) | set(arrays))


def interleave(temps, reduced, hoisted) -> list[Statement]:
    """Place each CSE temporary just before the first statement that needs it."""
    deps = {sym: expr.free_symbols for sym, expr in temps}
    needed_by: dict[sympy.Symbol, int] = {}
    for i, expr in enumerate(reduced):
        stack = list(expr.free_symbols)
        while stack:
            s = stack.pop()
            if s in deps and needed_by.get(s, i + 1) > i:
                needed_by[s] = i
                stack.extend(deps[s])
    body: list[Statement] = []
    for i, ((ssa, _, arr, lines), expr) in enumerate(zip(hoisted, reduced, strict=True)):
        body += [Statement(sym, e, None, ()) for sym, e in temps if needed_by.get(sym) == i]
        body.append(Statement(ssa, expr, arr, lines))
    return body


def describe_kernel(kernel: Kernel) -> str:
    """What code generation works from, for ``symopt show --kernel``."""
    lines = ["prelude (once per step, float64):"]
    lines += [f"  {s} = {sympy.sstr(e)}" for s, e in kernel.prelude]
    lines += ["element-wise body (SSA; NAME_new is the new value of NAME):"]
    lines += [f"  {st.target} = {sympy.sstr(st.expr)}" for st in kernel.body]
    return "\n".join(lines)

"""Splitting an update with per-tensor reductions into passes over memory (the C target's form).

A norm needs the whole tensor before the element-wise work that uses it, so such an update cannot
run as one fused loop. It runs as a few passes over each tensor instead:

* pass k computes the element-wise values it can and accumulates the reductions whose arguments
  are available, in double: a sum (``sum``, ``mean``), a sum of squares (``norm``) or a maximum;
* after it, the per-tensor scalars (norms, trust ratios, ...) are computed once; later passes read
  them like the prelude's scalars;
* an output array (w, a state) is written in the last pass that still needs its old value, and
  not before its new value can be computed. A value that a later pass needs is recomputed there
  from the arrays as they are then (the old value of an array not written yet, the new value of
  one written before), never kept in scratch memory: a step allocates nothing;
* a state of one value per tensor (``shape = "scalar"``) is read before the first pass and written
  after the last; its new value is a per-tensor scalar like the others.

Each pass is an element-wise body like :mod:`symopt.lowering.kernel`'s (invariants hoisted per
step and per tensor, shared subexpressions as temporaries, readable names): printed alike.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import sympy

from symopt.lowering.kernel import Hoister, Statement, first_step_states, initial_values, interleave
from symopt.lowering.names import Namer, readable_prelude
from symopt.spec import Assignment, G, Spec, T, W, symbol_table
from symopt.spec.common import COLS, ROWS
from symopt.spec.domains import DOMAINS
from symopt.spec.tensor import ReductionBase

#: How each reduction accumulates a tensor's elements.
ACCUMULATE = {"sum": "sum", "mean": "sum", "norm": "sumsq", "max": "max"}
#: The tensor's element count in the per-tensor scalars (a mean divides by it).
SIZE = sympy.Symbol("n", positive=True, integer=True)
#: split()'s results, by spec text, variant and ``written_last``.
_SPLIT: dict[tuple, Stages] = {}


@dataclass(frozen=True)
class Accumulator:
    """A per-tensor double that a pass accumulates ``value`` into."""

    name: sympy.Symbol
    kind: str  # "sum", "sumsq" (sum of squares) or "max"
    value: sympy.Symbol  # a target of the pass's body, or an array it loads


@dataclass(frozen=True)
class Pass:
    index: int  # 1, 2, ...
    loads: tuple[str, ...]  # the arrays the loop reads
    fresh: tuple[str, ...]  # those of them an earlier pass wrote: they hold their new values
    body: tuple[Statement, ...]
    stores: tuple[tuple[str, sympy.Symbol], ...]  # (array, the body target written to it)
    accumulators: tuple[Accumulator, ...]
    #: Per-tensor scalars computed after the pass from its accumulators, earlier per-tensor
    #: scalars, the hyperparameters, t, the prelude and the size n.
    scalars: tuple[tuple[sympy.Symbol, sympy.Expr], ...]


@dataclass(frozen=True)
class Stages:
    spec: Spec
    hypers: tuple[str, ...]
    arrays: tuple[str, ...]  # w, g, then the state (the kernel's array arguments)
    outputs: tuple[str, ...]  # the arrays written (w and the state)
    prelude: tuple[tuple[sympy.Symbol, sympy.Expr], ...]  # per step, as in a Kernel
    passes: tuple[Pass, ...]
    init: Mapping[str, sympy.Expr]  # state name -> what its array holds before the first step
    #: per-tensor scalar name -> the spec line it comes from (for comments)
    notes: Mapping[str, str] = field(default_factory=dict)
    #: The per-tensor scalars computed before the first pass (from the old values of the states
    #: of one value per tensor, which their names stand for), and (such a state, its new value).
    before: tuple[tuple[sympy.Symbol, sympy.Expr], ...] = ()
    scalar_stores: tuple[tuple[str, sympy.Symbol], ...] = ()

    @property
    def scalars(self) -> tuple[sympy.Symbol, ...]:
        return tuple(s for s, _ in self.prelude)

    @property
    def tensor_scalars(self) -> tuple[tuple[sympy.Symbol, sympy.Expr], ...]:
        return (*self.before, *(x for p in self.passes for x in p.scalars))

    def written_in(self, array: str) -> int:
        """The pass that writes ``array``'s new value."""
        return next(p.index for p in self.passes if array in dict(p.stores))


def split(spec: Spec, written_last: bool = False) -> Stages:
    """The spec's executable update as passes over memory, once per spec text. ``written_last``:
    every output stored by the last pass, so that no pass reads a value another one stored (a
    kernel that stores bfloat16 rounds each value once, as a one-pass kernel does)."""
    key = (spec.cache_key, written_last)
    if key not in _SPLIT or not spec.text:  # a spec without text is derived every time
        _SPLIT[key] = _Splitter(spec, written_last).stages()
    return _SPLIT[key]


class _Splitter:
    def __init__(self, spec: Spec, written_last: bool = False):
        self.spec = spec
        self.written_last = written_last
        self.symbols = symbol_table(spec)
        lines = (*first_step_states(spec, self.symbols), *spec.executable_update)
        for a in lines:
            self.symbols.setdefault(a.target, sympy.Symbol(a.target, real=True))
        self.per_tensor = tuple(s.name for s in spec.states if s.shape == "scalar")
        self.all_arrays = (W, G, *spec.state_names)  # the kernel's array arguments
        self.arrays = tuple(a for a in self.all_arrays if a not in self.per_tensor)  # loaded
        self.array_symbols = {self.symbols[a] for a in self.arrays}
        self.old_scalars = {self.symbols[s] for s in self.per_tensor}  # read before pass 1
        self.step_symbols = {self.symbols[h] for h in spec.hyper_names} | {self.symbols[T]}
        #: SSA values of the outputs: symbol -> (expression, array, spec lines)
        self.values: dict[sympy.Symbol, tuple[sympy.Expr, str, tuple[str, ...]]] = {}
        self.final: dict[str, sympy.Symbol] = {}
        #: reductions: symbol -> (op, element-wise argument, name of the argument, spec line)
        self.reductions: dict[sympy.Symbol, tuple[str, sympy.Expr, str, str]] = {}
        #: per-tensor intermediates and states: symbol -> (expression, name, spec line)
        self.named: dict[sympy.Symbol, tuple[sympy.Expr, str, str]] = {}
        self.scalar_final: dict[str, sympy.Symbol] = {}  # per-tensor state -> its new value
        self._ready: dict[sympy.Symbol, int] = {}
        self._ssa(lines)

    # -- the update in SSA form, reductions and per-tensor intermediates as symbols -------------
    def _ssa(self, lines: Iterable[Assignment]) -> None:
        current: dict[sympy.Symbol, sympy.Expr] = {}
        pending: list[str] = []
        for a in lines:
            expr = self._walk(a.expr, current, a.text)
            target = self.symbols[a.target]
            if a.target in self.arrays:  # w and the state of one value per element
                count = sum(1 for _, arr, _ in self.values.values() if arr == a.target)
                ssa = sympy.Symbol(f"{a.target}__{count + 1}", real=True)
                self.values[ssa] = (expr, a.target, (*pending, a.text))
                self.final[a.target] = current[target] = ssa
                pending = []
            elif a.target in self.per_tensor or self._per_tensor(expr):
                if expr.free_symbols & self._elementwise():
                    raise ValueError(f"{a.target!r} is one value per tensor: {a.text!r} is not")
                sym = sympy.Symbol(f"_s{len(self.named)}", real=True)
                self.named[sym] = (expr, a.target, a.text)
                current[target] = sym
                if a.target in self.per_tensor:
                    self.scalar_final[a.target] = sym
            else:
                current[target] = expr
                pending.append(a.text)

    def _walk(self, e: sympy.Basic, current: dict, text: str) -> sympy.Basic:
        if isinstance(e, ReductionBase):
            if e.axis is not None:
                raise ValueError(f"{type(e).__name__} is not a reduction over the whole tensor")
            inner = e.args[0]
            arg = self._walk(inner, current, text)
            return self._reduce(e.op, arg, inner.name if inner.is_Symbol else "", text)
        if e.is_Symbol or not e.args:
            return current.get(e, e)
        return e.func(*(self._walk(a, current, text) for a in e.args))

    def _reduce(self, op: str, arg: sympy.Expr, hint: str, text: str) -> sympy.Expr:
        if not arg.free_symbols & self._elementwise():
            # a per-tensor value, reduced as the reference stepper reduces a 0-d array
            return sympy.Abs(arg) if op == "norm" else arg
        for sym, (other, a, _, _) in self.reductions.items():
            if (other, a) == (op, arg):
                return sym
        sym = sympy.Symbol(f"_r{len(self.reductions)}", real=True)
        self.reductions[sym] = (op, arg, hint, text)
        return sym

    def _elementwise(self) -> set[sympy.Symbol]:
        return self.array_symbols | set(self.values)

    def _per_tensor(self, expr: sympy.Expr) -> bool:
        free = expr.free_symbols
        tensor = {*self.reductions, *self.named, *self.old_scalars}
        return not free & self._elementwise() and bool(free & tensor)

    # -- when things can be computed -----------------------------------------------------------
    def ready(self, sym: sympy.Symbol) -> int:
        """The first pass in which ``sym``'s value is available."""
        if sym not in self._ready:
            later = 1 if sym in self.reductions else 0  # a reduction needs its pass to end
            self._ready[sym] = max(map(self.ready, self._inputs(sym)), default=1) + later
        return self._ready[sym]

    def stage(self, reduction: sympy.Symbol) -> int:
        """The pass that accumulates a reduction."""
        return self.ready(reduction) - 1

    def _inputs(self, sym: sympy.Symbol) -> set[sympy.Symbol]:
        """What ``sym``'s definition reads (nothing for an input: an array, t, ...)."""
        for table, i in ((self.values, 0), (self.named, 0), (self.reductions, 1)):
            if sym in table:
                return table[sym][i].free_symbols
        return set()

    def _closure(self, roots: Iterable[sympy.Symbol]) -> set[sympy.Symbol]:
        seen: set[sympy.Symbol] = set()
        stack = list(roots)
        while stack:
            s = stack.pop()
            if s not in seen:
                seen.add(s)
                stack.extend(self._inputs(s))
        return seen

    # -- which pass writes each output ---------------------------------------------------------
    def _roots(self, q: int, write: dict[str, int], live: list) -> list[sympy.Expr]:
        roots = [self.final[x] for x in self.final if write[x] == q]
        return roots + [self.reductions[r][1] for r in live if self.stage(r) == q]

    def _needs(self, e: sympy.Expr, q: int, write: dict[str, int], old: set, seen: set) -> None:
        """Walk what pass q computes for ``e``: SSA values are recomputed unless their array
        already holds them; ``old`` collects the outputs whose old values are read."""
        for s in e.free_symbols - seen:
            seen.add(s)
            if s in self.values:
                array = self.values[s][1]
                if not (s == self.final[array] and write[array] < q):
                    self._needs(self.values[s][0], q, write, old, seen)
            elif s.name in self.final and s in self.array_symbols:
                old.add(s.name)

    def _write_passes(self, count: int, live: list) -> dict[str, int]:
        if self.written_last:
            return dict.fromkeys(self.final, count)
        write = {x: self.ready(s) for x, s in self.final.items()}
        changed = True
        while changed:
            changed = False
            for q in range(1, count + 1):
                old: set[str] = set()
                seen: set[sympy.Symbol] = set()
                for root in self._roots(q, write, live):
                    self._needs(root, q, write, old, seen)
                for x in old:
                    if write[x] < q:  # its old value is still needed: write it later
                        write[x] = q
                        changed = True
        return write

    # -- the passes ----------------------------------------------------------------------------
    def stages(self) -> Stages:
        outputs = [*self.final.values(), *self.scalar_final.values()]
        live = [r for r in self.reductions if r in self._closure(outputs)]
        # a per-tensor state's new value is computed after the pass before the one it is ready in
        count = max([1, *map(self.ready, self.final.values())])
        count = max([count, *(self.ready(s) - 1 for s in self.scalar_final.values())])
        write = self._write_passes(count, live)
        domains = {self.symbols[h.name]: DOMAINS[h.domain] for h in self.spec.hypers}
        tensor = {*self.reductions, *self.named, *self.old_scalars}
        hoist = Hoister(self.step_symbols | tensor, domains)
        self.accumulator: dict[sympy.Symbol, Accumulator] = {}  # reduction -> its accumulator
        passes = [self._pass(q, write, live, hoist) for q in range(1, count + 1)]
        return _Namer(self, live).stages(passes, hoist.prelude)

    def _pass(self, q: int, write: dict[str, int], live: list, hoist: Hoister) -> Pass:
        loaded = {self.final[x]: self.symbols[x] for x in self.final if write[x] < q}
        seen: set[sympy.Symbol] = set()
        for root in self._roots(q, write, live):
            self._needs(root, q, write, set(), seen)
        items = [
            (s, expr.xreplace(loaded), array, lines)
            for s, (expr, array, lines) in self.values.items()
            if s in seen and s not in loaded
        ]
        accumulators: dict[tuple[str, sympy.Expr], Accumulator] = {}
        for r in (r for r in live if self.stage(r) == q):
            op, arg, _, text = self.reductions[r]
            arg = arg.xreplace(loaded)
            key = (ACCUMULATE[op], arg)
            if key not in accumulators:
                value = arg if arg.is_Symbol else sympy.Symbol(f"_v{r.name}", real=True)
                if not arg.is_Symbol:
                    items.append((value, arg, None, (text,)))
                accumulators[key] = Accumulator(sympy.Symbol(f"_a{r.name}"), key[0], value)
            self.accumulator[r] = accumulators[key]
        hoisted = [(s, hoist(e), array, lines) for s, e, array, lines in items]
        temps, reduced = sympy.cse(
            [e for _, e, _, _ in hoisted],
            symbols=sympy.numbered_symbols(f"_t{q}_", real=True),
            optimizations="basic",
        )
        body = interleave(temps, reduced, hoisted)
        free = {x for st in body for x in st.expr.free_symbols}
        free |= {a.value for a in accumulators.values()}
        loads = tuple(a for a in self.arrays if self.symbols[a] in free)
        fresh = tuple(a for a in loads if a in self.final and write[a] < q)
        stores = tuple((x, self.final[x]) for x in self.final if write[x] == q)
        return Pass(q, loads, fresh, tuple(body), stores, tuple(accumulators.values()), ())


class _Namer:
    """Readable names for what the split introduced (as :mod:`symopt.lowering.names` gives a
    kernel's), and each per-tensor scalar placed after the pass that makes it available."""

    def __init__(self, splitter: _Splitter, live: list):
        self.s = splitter
        self.live = live
        taken = {*splitter.spec.hyper_names, *splitter.all_arrays, T, ROWS, COLS, SIZE.name}
        self.namer = Namer(taken)
        self.temporaries = 0  # tmp0, tmp1, ... across the passes

    def fresh(self, base: str) -> sympy.Symbol:
        return sympy.Symbol(self.namer.fresh(base), real=True)

    def stages(self, passes: list[Pass], hoisted: dict) -> Stages:
        s, hypers = self.s, self.s.spec.hyper_names
        step = [(sym, e) for e, sym in hoisted.items() if e.free_symbols <= s.step_symbols]
        tensor = [(sym, e) for e, sym in hoisted.items() if (sym, e) not in step]
        prelude, rename = readable_prelude(tuple(step), hypers, self.namer)
        for sym, (e, name, _) in s.named.items():
            name = f"{name}_new" if name in s.per_tensor else name  # the old value is NAME
            if e in self.live and e not in rename:  # u_norm = norm(u): the reduction's name
                rename[e] = rename[sym] = self.fresh(name)
            else:
                rename[sym] = self.fresh(name)
        for r in self.live:
            op, _, hint, _ = s.reductions[r]
            rename.setdefault(r, self.fresh(f"{op}_{hint}" if hint else f"{op}_{r.name[2:]}"))
        named = [
            (rename[sym], e.xreplace(rename))
            for sym, (e, _, _) in s.named.items()
            if rename[sym] != rename.get(e)
        ]
        hoisted_named, more = readable_prelude(
            tuple((sym, e.xreplace(rename)) for sym, e in tensor), hypers, self.namer
        )
        rename.update(more)
        passes = [self._pass(p, rename) for p in passes]
        reduced = [(rename[r], self._value(r, rename)) for r in self.live]
        used = {x for p in passes for st in p.body for x in st.expr.free_symbols}
        used |= {rename[sym] for sym in s.scalar_final.values()}  # stored after the last pass
        kept = []
        for sym, e in reversed([*reduced, *named, *hoisted_named]):  # what is read, later on
            if sym in used:
                kept.insert(0, (sym, e))
                used |= e.free_symbols
        available = {rename[r]: s.stage(r) for r in self.live}
        after: dict[int, list] = {}  # pass -> the scalars computed after it (0: before the first)
        for sym, e in kept:
            available.setdefault(sym, max((available.get(x, 0) for x in e.free_symbols), default=0))
            after.setdefault(available[sym], []).append((sym, e))
        notes = {rename[r].name: s.reductions[r][3] for r in self.live}
        notes |= {rename[sym].name: text for sym, (_, _, text) in s.named.items()}
        written = {*s.final, *s.scalar_final}
        return Stages(
            s.spec,
            hypers,
            s.all_arrays,
            tuple(x for x in (W, *s.spec.state_names) if x in written),
            tuple(prelude),
            tuple(dataclasses.replace(p, scalars=tuple(after.get(p.index, ()))) for p in passes),
            initial_values(s.spec),
            notes,
            tuple(after.get(0, ())),
            tuple((x, rename[sym]) for x, sym in s.scalar_final.items()),
        )

    def _value(self, r: sympy.Symbol, rename: dict) -> sympy.Expr:
        """A reduction from its accumulator."""
        acc = rename[self.s.accumulator[r].name]
        op = self.s.reductions[r][0]
        return {"sum": acc, "mean": acc / SIZE, "norm": sympy.sqrt(acc), "max": acc}[op]

    def _pass(self, p: Pass, rename: dict) -> Pass:
        s = self.s
        # a value accumulated for a reduction of an intermediate takes the intermediate's name
        hints = {a.value: s.reductions[r][2] for r, a in s.accumulator.items()}
        for st in p.body:
            if st.target not in rename:
                if st.array is not None:
                    rename[st.target] = self.fresh(f"{st.array}_new")
                elif hints.get(st.target):
                    rename[st.target] = self.fresh(hints[st.target])
                else:
                    rename[st.target] = self.fresh(f"tmp{self.temporaries}")
                    self.temporaries += 1
        for r, a in s.accumulator.items():
            if a in p.accumulators and a.name not in rename:
                rename[a.name] = self.fresh(f"acc_{s.reductions[r][2] or s.reductions[r][0]}")
        return dataclasses.replace(
            p,
            body=tuple(
                Statement(rename[st.target], st.expr.xreplace(rename), st.array, st.equations)
                for st in p.body
            ),
            stores=tuple((x, rename[v]) for x, v in p.stores),
            accumulators=tuple(
                Accumulator(rename[a.name], a.kind, rename.get(a.value, a.value))
                for a in p.accumulators
            ),
        )

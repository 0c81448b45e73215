"""Loading an element-wise spec from TOML: every key validated, every error one located line."""

from __future__ import annotations

import sympy

from symopt.errors import SpecError
from symopt.spec.common import G, Hyper, Loader, T, W, make_symbol
from symopt.spec.domains import DOMAINS
from symopt.spec.elementwise import (
    Assignment,
    LookaheadFree,
    Property,
    Relation,
    Spec,
    StateVar,
)
from symopt.spec.parse import Grad, parse_assignment

# ---------------------------------------------------------------------------------------------
# Loading from TOML
# ---------------------------------------------------------------------------------------------

TOP_KEYS = {
    "name",
    "class_name",
    "title",
    "summary",
    "reference",
    "notes",
    "t_start",
    "hyper",
    "state",
    "update",
    "intermediate",
    "lookahead_free",
    "relations",
    "properties",
}
PROPERTY_KINDS = {"unbiased", "scale_invariant"}


class ElementwiseLoader(Loader):
    def load(self) -> Spec:
        d = self.data
        name, class_name = self.names(TOP_KEYS, "Adam")
        t_start = self.get(d, "t_start", "", int, 1)
        if t_start < 0:
            raise self.fail("t_start", f"the first step counter must be 0 or more, got {t_start}")
        hypers = self.hypers()
        states = self.states(hypers)
        spec = Spec(
            name=name,
            class_name=class_name,
            **self.prose(),
            hypers=hypers,
            states=states,
            update=(),
            t_start=t_start,
        )
        update = self.update(spec, d.get("update"), "update")
        spec = _replace(spec, update=update)
        inter = self.get(d, "intermediate", "", dict, {})
        latex: dict[str, str] = {}
        for key, table in inter.items():
            where = f"intermediate.{key}"
            if key not in spec.intermediates:
                raise self.fail(where, f"{key!r} is not an intermediate of the update")
            self.check_keys(self.get(inter, key, "intermediate", dict), {"latex"}, where)
            latex[key] = self.get(table, "latex", where, str, sympy.latex(sympy.Symbol(key)))
        spec = _replace(spec, intermediate_latex=latex)
        spec = _replace(spec, lookahead_free=self.lookahead_free(spec))
        if any(_uses_lookahead(a.expr) for a in spec.update) and spec.lookahead_free is None:
            raise self.fail(
                "update",
                "grad(...) at a point other than w needs a [lookahead_free] form "
                "(an equivalent update that uses only g), so code can be generated",
            )
        relations = tuple(
            self.relation(spec, r, f"relations[{i}]")
            for i, r in enumerate(self.get(d, "relations", "", list, []))
        )
        properties = tuple(
            self.property(spec, p, f"properties[{i}]")
            for i, p in enumerate(self.get(d, "properties", "", list, []))
        )
        return _replace(spec, relations=relations, properties=properties)

    def states(self, hypers: tuple[Hyper, ...]) -> tuple[StateVar, ...]:
        symbols = {h.name: make_symbol(h.name, DOMAINS[h.domain].assumptions) for h in hypers}
        out = []
        for key, table in self.get(self.data, "state", "", dict, {}).items():
            where = f"state.{key}"
            self.identifier(key, where)
            if key in symbols:
                raise self.fail(where, f"{key!r} is already a hyperparameter")
            if not isinstance(table, dict):
                raise self.fail(where, "expected a table with init (and optionally latex, doc)")
            self.check_keys(table, {"init", "latex", "doc"}, where)
            if "init" not in table:
                raise self.fail(
                    where, f"state variable {key!r} has no initial value (add init = ...)"
                )
            init = self.expr(
                table["init"]
                if not isinstance(table["init"], (int, float))
                else str(table["init"]),
                symbols,
                f"{where}.init",
            )
            latex = self.get(table, "latex", where, str, sympy.latex(sympy.Symbol(key)))
            out.append(StateVar(key, init, latex, self.get(table, "doc", where, str, "")))
        return tuple(out)

    def update(
        self,
        spec: Spec,
        lines: object,
        where: str,
        *,
        allow_new: bool = True,
        base: dict[str, sympy.Symbol] | None = None,
        require_all: bool = True,
    ) -> tuple[Assignment, ...]:
        if not isinstance(lines, list) or not lines or not all(isinstance(x, str) for x in lines):
            raise self.fail(where, "expected a non-empty list of 'NAME = EXPRESSION' strings")
        table = dict(base) if base is not None else _initial_symbols(spec)
        targets = [_peek_target(line) for line in lines]
        out: list[Assignment] = []
        seen: set[str] = set()
        protected = {G: "the gradient g", T: "the step counter t"}
        protected.update({h: f"the hyperparameter {h!r}" for h in spec.hyper_names})
        for i, line in enumerate(lines):
            key = f"{where}[{i}]"
            later = frozenset(n for n in targets[i:] if n and n not in table)
            try:
                target, expr = parse_assignment(line, table, later=later)
            except SpecError as exc:
                raise exc.located(file=self.file, key=key) from None
            if target in protected:
                raise self.fail(key, f"cannot assign to {protected[target]}")
            if target in seen:
                raise self.fail(key, f"{target!r} is assigned twice (each name once per step)")
            if not allow_new and target not in table:
                raise self.fail(key, f"{target!r} is not a variable of the spec")
            if target not in table:
                self.identifier(target, key)
            seen.add(target)
            table.setdefault(target, make_symbol(target))
            out.append(Assignment(target, expr, line.strip()))
        if require_all:
            if W not in seen:
                raise self.fail(where, "the parameter w is never updated")
            for s in spec.state_names:
                if s not in seen:
                    raise self.fail(where, f"state variable {s!r} is never updated")
        return tuple(out)

    def lookahead_free(self, spec: Spec) -> LookaheadFree | None:
        table = self.get(self.data, "lookahead_free", "", dict, {})
        if not table:
            return None
        where = "lookahead_free"
        self.check_keys(table, {"summary", "variables", "update"}, where)
        update = self.update(spec, table.get("update"), f"{where}.update")
        if any(_has_grad(a.expr) for a in update):
            raise self.fail(
                f"{where}.update", "the look-ahead-free form must use only g, not grad(...)"
            )
        symbols = _initial_symbols(spec)
        variables = {}
        for k, v in self.get(table, "variables", where, dict).items():
            if k not in (W, *spec.state_names):
                raise self.fail(f"{where}.variables.{k}", f"{k!r} is not w or a state variable")
            variables[k] = self.expr(v, symbols, f"{where}.variables.{k}")
        return LookaheadFree(self.get(table, "summary", where, str, "").strip(), variables, update)

    def relation(self, spec: Spec, table: object, where: str) -> Relation:
        if not isinstance(table, dict):
            raise self.fail(where, "expected a table")
        self.check_keys(
            table, {"name", "where", "replace", "other", "hyper", "state", "update", "init"}, where
        )
        symbols = _initial_symbols(spec)
        where_map = {}
        for k, v in self.get(table, "where", where, dict, {}).items():
            if k not in spec.hyper_names:
                raise self.fail(f"{where}.where.{k}", f"{k!r} is not a hyperparameter")
            where_map[k] = self.expr(v, symbols, f"{where}.where.{k}")
        replace = ()
        if "replace" in table:
            replace = self.update(
                spec,
                table["replace"],
                f"{where}.replace",
                allow_new=False,
                base=_all_symbols(spec),
                require_all=False,
            )
        other = table.get("other")
        inline = "update" in table
        if (other is None) == (not inline):
            raise self.fail(
                where, "give exactly one of 'other' (a spec name) or an inline 'update'"
            )
        update: tuple[Assignment, ...] = ()
        init: dict[str, sympy.Expr] = {}
        if inline:
            for k, v in self.get(table, "init", where, dict, {}).items():
                self.identifier(k, f"{where}.init.{k}")
                init[k] = self.expr(
                    str(v) if isinstance(v, (int, float)) else v, symbols, f"{where}.init.{k}"
                )
            inner = _replace(spec, states=tuple(StateVar(k, v, k) for k, v in init.items()))
            update = self.update(inner, table["update"], f"{where}.update")
        elif not isinstance(other, str) or not other.isidentifier():
            raise self.fail(f"{where}.other", f"expected a spec name, got {other!r}")
        hyper = {}
        if inline and "hyper" in table:
            raise self.fail(
                f"{where}.hyper", "'hyper' maps another spec's names; use it with 'other'"
            )
        for k, v in self.get(table, "hyper", where, dict, {}).items():
            hyper[k] = self.expr(v, symbols, f"{where}.hyper.{k}")
        state = {}
        for k, v in self.get(table, "state", where, dict, {}).items():
            state[k] = self.expr(v, symbols, f"{where}.state.{k}")
        name = self.get(table, "name", where, str)
        return Relation(name, where_map, replace, other, hyper, state, update, init)

    def property(self, spec: Spec, table: object, where: str) -> Property:
        if not isinstance(table, dict):
            raise self.fail(where, "expected a table")
        kind = self.get(table, "kind", where, str)
        if kind not in PROPERTY_KINDS:
            raise self.fail(
                f"{where}.kind",
                f"unknown property {kind!r}; known: {', '.join(sorted(PROPERTY_KINDS))}",
            )
        name = self.get(table, "name", where, str)
        symbols = _all_symbols(spec)
        options: dict[str, object] = {}
        if kind == "unbiased":
            self.check_keys(table, {"kind", "name", "state", "corrected", "expect"}, where)
            state = self.get(table, "state", where, str)
            if state not in spec.state_names:
                raise self.fail(f"{where}.state", f"{state!r} is not a state variable")
            corrected = self.get(table, "corrected", where, str)
            if corrected not in spec.intermediates:
                raise self.fail(f"{where}.corrected", f"{corrected!r} is not an intermediate")
            options = {
                "state": state,
                "corrected": corrected,
                "expect": self.expr(
                    self.get(table, "expect", where, str), symbols, f"{where}.expect"
                ),
            }
        else:
            self.check_keys(table, {"kind", "name", "where"}, where)
            for k in self.get(table, "where", where, dict, {}):
                if k not in spec.hyper_names:
                    raise self.fail(f"{where}.where.{k}", f"{k!r} is not a hyperparameter")
            options = {
                "where": {
                    k: self.expr(v, symbols, f"{where}.where.{k}")
                    for k, v in self.get(table, "where", where, dict, {}).items()
                }
            }
        return Property(kind, name, options)


def _peek_target(line: object) -> str | None:
    if isinstance(line, str) and "=" in line:
        head = line.split("=", 1)[0].strip()
        return head if head.isidentifier() else None
    return None


def _initial_symbols(spec: Spec) -> dict[str, sympy.Symbol]:
    table = {h.name: make_symbol(h.name, DOMAINS[h.domain].assumptions) for h in spec.hypers}
    table[T] = sympy.Symbol(T, positive=True, integer=True)
    for name in (W, G, *spec.state_names):
        table[name] = make_symbol(name)
    return table


def _all_symbols(spec: Spec) -> dict[str, sympy.Symbol]:
    table = _initial_symbols(spec)
    for a in spec.update:
        table.setdefault(a.target, make_symbol(a.target))
    return table


def _has_grad(expr: sympy.Expr) -> bool:
    return bool(expr.atoms(Grad))


def _uses_lookahead(expr: sympy.Expr) -> bool:
    w = make_symbol(W)
    return any(call.args[0] != w for call in expr.atoms(Grad))


def _replace(spec: Spec, **changes) -> Spec:
    import dataclasses

    return dataclasses.replace(spec, **changes)

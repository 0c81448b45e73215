"""Loading what a spec claims about itself: relations to other updates and properties."""

from __future__ import annotations

import sympy

from symopt.spec.common import Loader
from symopt.spec.elementwise import Assignment, Property, Relation, Spec, StateVar
from symopt.spec.loader_symbols import all_symbols, initial_symbols, replace_spec

PROPERTY_KINDS = {"unbiased", "scale_invariant"}


class ClaimsLoader(Loader):
    """Relations and properties; the update loader (``self.update``) comes from the subclass."""

    def update(self, spec: Spec, lines: object, where: str, **kw) -> tuple[Assignment, ...]:
        raise NotImplementedError

    def relation(self, spec: Spec, table: object, where: str) -> Relation:
        if not isinstance(table, dict):
            raise self.fail(where, "expected a table")
        self.check_keys(
            table, {"name", "where", "replace", "other", "hyper", "state", "update", "init"}, where
        )
        symbols = initial_symbols(spec)
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
                base=all_symbols(spec),
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
            inner = replace_spec(spec, states=tuple(StateVar(k, v, k) for k, v in init.items()))
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
        symbols = all_symbols(spec)
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

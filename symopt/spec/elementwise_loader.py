"""Loading an element-wise spec from TOML: every key validated, every error one located line."""

from __future__ import annotations

import sympy

from symopt.errors import SpecError
from symopt.spec import tensor
from symopt.spec.api import Family
from symopt.spec.api_loader import ApiLoader
from symopt.spec.claims_loader import ClaimsLoader
from symopt.spec.common import G, Hyper, T, W, make_symbol
from symopt.spec.domains import DOMAINS
from symopt.spec.elementwise import (
    APPLIES_TO,
    STATE_SHAPES,
    Assignment,
    LookaheadFree,
    Repeat,
    Spec,
    StateVar,
)
from symopt.spec.family import check_family, specialise
from symopt.spec.loader_symbols import initial_symbols, replace_spec
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
    "applies_to",
    "otherwise",
    "checks",
    "flag",
    "api",
}
#: Generic checks a spec may restrict with ``[checks.NAME] where = {...}``.
SCOPED_CHECKS = ("at_rest", "well_defined", "descent")
#: The most runs a ``repeat`` block may ask for (the loop is unrolled for checks and the oracle).
MAX_REPEAT = 20
#: The largest first step counter. Optimizers start at 0 or 1; the bound keeps t exact in a
#: float32 counter (exact to 2**24, JAX's default) with 15 million steps to spare, and keeps the
#: checks' exact powers such as beta1**t to a few million digits.
MAX_T_START = 10**6


class ElementwiseLoader(ClaimsLoader, ApiLoader):
    def load(self) -> Spec:
        d = self.data
        name, class_name = self.names(TOP_KEYS, "Adam")
        t_start = self.get(d, "t_start", "", int, 1)
        if not 0 <= t_start <= MAX_T_START:
            raise self.fail(
                "t_start", f"the first step counter must be 0 to {MAX_T_START:,}, got {t_start}"
            )
        hypers = self.hypers()
        flags = self.flags({h.name for h in hypers})
        axes = (*(f.name for f in flags), *(h.name for h in hypers if h.off_at_zero))
        states = self.states(hypers, axes)
        spec = Spec(
            name=name,
            class_name=class_name,
            **self.prose(),
            hypers=hypers,
            states=states,
            update=(),
            t_start=t_start,
            flags=flags,
        )
        applies_to = self.get(d, "applies_to", "", str, "any")
        if applies_to not in APPLIES_TO:
            known = ", ".join(repr(k) for k in APPLIES_TO)
            raise self.fail("applies_to", f"expected one of {known}, got {applies_to!r}")
        spec = replace_spec(spec, applies_to=applies_to)
        has_otherwise = "otherwise" in d
        update = self.update(
            spec,
            d.get("update"),
            "update",
            require_all=not has_otherwise,
            base=initial_symbols(spec, matrix=applies_to != "any"),
        )
        spec = replace_spec(spec, update=update)
        spec = replace_spec(spec, otherwise=self.otherwise(spec, has_otherwise))
        self.check_state_shapes(spec)
        self.check_axis_reductions(spec)
        spec = replace_spec(spec, check_scopes=self.check_scopes(spec))
        inter = self.get(d, "intermediate", "", dict, {})
        latex: dict[str, str] = {}
        for key, table in inter.items():
            where = f"intermediate.{key}"
            if key not in spec.intermediates:
                raise self.fail(where, f"{key!r} is not an intermediate of the update")
            self.check_keys(self.get(inter, key, "intermediate", dict), {"latex"}, where)
            latex[key] = self.latex(table, key, where)
        spec = replace_spec(spec, intermediate_latex=latex)
        spec = replace_spec(spec, lookahead_free=self.lookahead_free(spec))
        if any(_uses_lookahead(a.expr) for a in spec.update) and spec.lookahead_free is None:
            raise self.fail(
                "update",
                "grad(...) at a point other than w needs a [lookahead_free] form "
                "(an equivalent update that uses only g), so code can be generated",
            )
        if any(_uses_lookahead(a.expr) for a in spec.update) and not spec.elementwise:
            raise self.fail(
                "update",
                "grad(...) at a point other than w needs an element-wise update (no reductions "
                "or matrix operations): code is generated from the [lookahead_free] form only "
                "for those",
            )
        relations = tuple(
            self.relation(spec, r, f"relations[{i}]")
            for i, r in enumerate(self.get(d, "relations", "", list, []))
        )
        properties = tuple(
            self.property(spec, p, f"properties[{i}]")
            for i, p in enumerate(self.get(d, "properties", "", list, []))
        )
        spec = replace_spec(spec, relations=relations, properties=properties)
        if not axes and "api" not in d:
            return spec
        if spec.lookahead_free is not None:
            raise self.fail("lookahead_free", "a spec with flags or [api] cannot have one")
        keys = [st.state_key for st in spec.states]
        for st in spec.states:
            if st.state_key == "step" or keys.count(st.state_key) > 1:
                why = "is the step counter's" if st.state_key == "step" else "is taken twice"
                raise self.fail(f"state.{st.name}", f"the state key {st.state_key!r} {why}")
        family = Family(spec, axes, self.api(spec))
        check_family(family)
        return specialise(family, family.default_setting())

    def otherwise(self, spec: Spec, present: bool) -> tuple[Assignment, ...]:
        """The update of the parameters an ``applies_to = "matrix"`` update does not cover."""
        if not present:
            return ()
        where = "otherwise"
        if spec.applies_to == "any":
            raise self.fail(where, "[otherwise] needs applies_to = 'matrix' or 'multidim'")
        table = self.get(self.data, "otherwise", "", dict)
        self.check_keys(table, {"update"}, where)
        lines = self.update(spec, table.get("update"), f"{where}.update", require_all=False)
        if W not in {a.target for a in lines}:
            raise self.fail(f"{where}.update", "the parameter w is never updated")
        own = {a.target for a in lines}
        for a in lines:
            read = {x.name for x in a.expr.free_symbols} & set(spec.state_names) - own
            if read:
                raise self.fail(
                    f"{where}.update",
                    f"reads the state {sorted(read)[0]!r}, which it never assigns (the parameters "
                    "it updates keep only the states it assigns)",
                )
        assigned = {a.target for a in (*spec.update, *lines)}
        for s in spec.state_names:
            if s not in assigned:
                raise self.fail("update", f"state variable {s!r} is never updated")
        return lines

    def check_state_shapes(self, spec: Spec) -> None:
        """Row and column state exists only for 2-D parameters, so only in a matrix update."""
        for st in spec.states:
            if st.shape in ("rows", "cols"):
                if spec.applies_to == "any":
                    raise self.fail(
                        f"state.{st.name}.shape",
                        f"{st.shape!r} state needs applies_to = 'matrix' or 'multidim'",
                    )
                if any(a.target == st.name for a in spec.otherwise):
                    raise self.fail(
                        "otherwise.update",
                        f"{st.name!r} has shape {st.shape!r}: only the matrix update may assign it",
                    )

    def check_axis_reductions(self, spec: Spec) -> None:
        """Row and column reductions need a 2-D parameter: only in a matrix update."""
        for key, lines, allowed in (
            ("update", spec.update, spec.applies_to != "any"),
            ("otherwise.update", spec.otherwise, False),
        ):
            for a in lines:
                axis = [r for r in a.expr.atoms(tensor.ReductionBase) if r.axis is not None]
                if axis and not allowed:
                    name = tensor.SPEC_NAMES[type(axis[0])]
                    raise self.fail(
                        key,
                        f"{a.text!r}: {name}() needs a 2-D parameter: only the update of a spec "
                        "with applies_to = 'matrix' or 'multidim' may use row/column reductions",
                    )

    def check_scopes(self, spec: Spec) -> dict[str, dict[str, sympy.Expr]]:
        out: dict[str, dict[str, sympy.Expr]] = {}
        symbols = initial_symbols(spec)
        for key, table in self.get(self.data, "checks", "", dict, {}).items():
            where = f"checks.{key}"
            if key not in SCOPED_CHECKS:
                raise self.fail(where, f"unknown check; known: {', '.join(SCOPED_CHECKS)}")
            if not isinstance(table, dict):
                raise self.fail(where, "expected a table with where = { NAME = VALUE }")
            self.check_keys(table, {"where"}, where)
            scope = {}
            for k, v in self.get(table, "where", where, dict).items():
                if k not in spec.hyper_names:
                    raise self.fail(f"{where}.where.{k}", f"{k!r} is not a hyperparameter")
                scope[k] = self.expr(v, symbols, f"{where}.where.{k}")
            out[key] = scope
        return out

    def states(self, hypers: tuple[Hyper, ...], axes: tuple[str, ...]) -> tuple[StateVar, ...]:
        symbols = {h.name: make_symbol(h.name, DOMAINS[h.domain].assumptions) for h in hypers}
        first_step = {**symbols, W: make_symbol(W), G: make_symbol(G)}
        out = []
        for key, table in self.get(self.data, "state", "", dict, {}).items():
            where = f"state.{key}"
            self.identifier(key, where)
            if key in symbols:
                raise self.fail(where, f"{key!r} is already a hyperparameter")
            if not isinstance(table, dict):
                raise self.fail(where, "expected a table with init (and optionally latex, doc)")
            self.check_keys(table, {"init", "latex", "doc", "shape", "when", "key"}, where)
            if "init" not in table:
                raise self.fail(
                    where, f"state variable {key!r} has no initial value (add init = ...)"
                )
            init = self.expr(
                table["init"]
                if not isinstance(table["init"], (int, float))
                else str(table["init"]),
                first_step,
                f"{where}.init",
            )
            self.per_tensor(init, {W, G}, f"{where}.init")
            shape = self.get(table, "shape", where, str, "full")
            if shape not in STATE_SHAPES:
                raise self.fail(
                    f"{where}.shape", f"unknown shape {shape!r}; known: {', '.join(STATE_SHAPES)}"
                )
            if shape != "full" and init.free_symbols & {first_step[W], first_step[G]}:
                raise self.fail(f"{where}.init", f"{shape!r} state cannot start from g or w")
            latex = self.latex(table, key, where)
            doc = self.get(table, "doc", where, str, "")
            when = self.get(table, "when", where, str, "") or None
            if when is not None and when not in axes:
                raise self.fail(
                    f"{where}.when", f"{when!r} is not a flag or an off_at_zero hyperparameter"
                )
            state_key = self.get(table, "key", where, str, "")
            if state_key and not state_key.isidentifier():
                raise self.fail(f"{where}.key", f"{state_key!r} is not an identifier")
            out.append(StateVar(key, init, latex, doc, shape, when, state_key))
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
        entries = self.flatten(lines, where)
        table = dict(base) if base is not None else initial_symbols(spec)
        targets = [_peek_target(line) for line, _, _ in entries]
        out: list[Assignment] = []
        seen: set[str] = set()
        protected = {G: "the gradient g", T: "the step counter t"}
        protected.update({h: f"the hyperparameter {h!r}" for h in spec.hyper_names})
        parsed: dict[str, tuple[str, sympy.Expr]] = {}  # a repeat block's lines, parsed once
        scalars = {T, *spec.hyper_names, *(f.name for f in spec.flags), "rows", "cols"}
        tensors = {name for name in table if name not in scalars}
        for i, (line, key, repeat) in enumerate(entries):
            later = frozenset(n for n in targets[i:] if n and n not in table)
            try:
                if key not in parsed:
                    parsed[key] = parse_assignment(line, table, later=later)
                target, expr = parsed[key]
            except SpecError as exc:
                raise exc.located(file=self.file, key=key) from None
            if target in protected:
                raise self.fail(key, f"cannot assign to {protected[target]}")
            if not allow_new and target not in table:
                raise self.fail(key, f"{target!r} is not a variable of the spec")
            if target not in table:
                self.identifier(target, key)
            self.per_tensor(expr, tensors, key)
            (tensors.add if tensor.varies(expr, tensors) else tensors.discard)(target)
            seen.add(target)
            table.setdefault(target, make_symbol(target))
            out.append(Assignment(target, expr, line.strip(), repeat))
        if require_all:
            if W not in seen:
                raise self.fail(where, "the parameter w is never updated")
            for s in spec.state_names:
                if s not in seen:
                    raise self.fail(where, f"state variable {s!r} is never updated")
        return tuple(out)

    def per_tensor(self, expr: sympy.Basic, tensors: set[str], key: str) -> None:
        """SpecError for a reduction or matrix operation of a value that is one number per
        tensor (:func:`symopt.spec.tensor.operation_on_a_number`)."""
        node = tensor.operation_on_a_number(expr, tensors)
        if node is not None:
            name = {tensor.MatProduct: "@", tensor.Transposed: "transpose"}.get(type(node))
            raise self.fail(
                key,
                f"{name or tensor.SPEC_NAMES[type(node)]!r} of a value that is one number per "
                "tensor (made of hyperparameters, t and reductions only); apply it to w, g, a "
                "state or a value made of them",
            )

    def flatten(self, lines: object, where: str) -> list[tuple[str, str, Repeat | None]]:
        """(line, key, repeat) per assignment, ``{ repeat = N, update = [...] }`` unrolled."""
        if not isinstance(lines, list) or not lines:
            raise self.fail(where, "expected a non-empty list of 'NAME = EXPRESSION' strings")
        out: list[tuple[str, str, Repeat | None]] = []
        blocks = 0
        for i, entry in enumerate(lines):
            key = f"{where}[{i}]"
            if isinstance(entry, str):
                out.append((entry, key, None))
                continue
            if not isinstance(entry, dict):
                raise self.fail(
                    key, "expected 'NAME = EXPRESSION' or { repeat = N, update = [..] }"
                )
            self.check_keys(entry, {"repeat", "update"}, key)
            count = self.get(entry, "repeat", key, int)
            if not 1 <= count <= MAX_REPEAT:
                raise self.fail(f"{key}.repeat", f"expected 1 to {MAX_REPEAT} runs, got {count}")
            inner = entry.get("update")
            if not (isinstance(inner, list) and inner and all(isinstance(x, str) for x in inner)):
                nested = isinstance(inner, list) and any(isinstance(x, dict) for x in inner)
                why = "strings (a repeat block cannot hold another)" if nested else "strings"
                raise self.fail(
                    f"{key}.update", f"expected a non-empty list of 'NAME = EXPRESSION' {why}"
                )
            for run in range(count):
                repeat = Repeat(blocks, count, run)
                out += [(x, f"{key}.update[{j}]", repeat) for j, x in enumerate(inner)]
            blocks += 1
        return out

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
        symbols = initial_symbols(spec)
        variables = {}
        for k, v in self.get(table, "variables", where, dict).items():
            if k not in (W, *spec.state_names):
                raise self.fail(f"{where}.variables.{k}", f"{k!r} is not w or a state variable")
            variables[k] = self.expr(v, symbols, f"{where}.variables.{k}")
        return LookaheadFree(self.get(table, "summary", where, str, "").strip(), variables, update)


def _peek_target(line: object) -> str | None:
    if isinstance(line, str) and "=" in line:
        head = line.split("=", 1)[0].strip()
        return head if head.isidentifier() else None
    return None


def _has_grad(expr: sympy.Expr) -> bool:
    return bool(expr.atoms(Grad))


def _uses_lookahead(expr: sympy.Expr) -> bool:
    w = make_symbol(W)
    return any(call.args[0] != w for call in expr.atoms(Grad))

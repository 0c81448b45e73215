"""Loading a spec's flags and its ``[api]`` table: how the generated classes are called."""

from __future__ import annotations

import math
import re

import sympy

from symopt.errors import SpecError
from symopt.spec.api import (
    FRAMEWORK_ARGUMENTS,
    KEYWORD_ONLY,
    Api,
    ApiArgument,
    ApiCheck,
)
from symopt.spec.common import Loader, make_symbol
from symopt.spec.domains import DOMAINS
from symopt.spec.elementwise import Flag, Spec
from symopt.spec.parse import FlagSymbol, parse_condition

#: A placeholder in a check's message: ``{lr}``.
PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
#: The longest message a check may have.
MAX_MESSAGE = 200
#: The library class an ``[api]`` matches: a dotted Python path (it is printed in docstrings).
DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


def plain_symbols(spec: Spec) -> dict:
    """Hyperparameters without their domains' assumptions (a check of an argument must not be
    decided by the domain it checks), and the flags."""
    table = {h.name: make_symbol(h.name) for h in spec.hypers}
    table.update({f.name: FlagSymbol(f.name) for f in spec.flags})
    return table


class ApiLoader(Loader):
    def flags(self, taken: set[str]) -> tuple[Flag, ...]:
        out = []
        for key, table in self.get(self.data, "flag", "", dict, {}).items():
            where = f"flag.{key}"
            self.identifier(key, where)
            if key in taken:
                raise self.fail(where, f"{key!r} is already a hyperparameter")
            if not isinstance(table, dict):
                raise self.fail(where, "expected a table with default (true or false) and doc")
            self.check_keys(table, {"default", "doc"}, where)
            default = self.get(table, "default", where, bool)
            out.append(Flag(key, default, self.get(table, "doc", where, str, "")))
        return tuple(out)

    def api(self, spec: Spec) -> Api:
        """The ``[api]`` table, or the default: the hyperparameters and flags in spec order."""
        table = self.get(self.data, "api", "", dict, {})
        known = {"matches", "arguments", "tuples", "checks", "fixed", "choices", "constants"}
        self.check_keys(table, known | {"machine_epsilon"}, "api")
        tuples = self.tuples(spec, self.get(table, "tuples", "api", dict, {}))
        fixed = self.fixed(spec, self.get(table, "fixed", "api", dict, {}))
        choices = self.choices(spec, self.get(table, "choices", "api", dict, {}))
        constants = self.get(table, "constants", "api", dict, {})
        for name, value in constants.items():
            self.identifier(name, f"api.constants.{name}")
            finite = not isinstance(value, float) or math.isfinite(value)
            if not isinstance(value, (int, float, bool)) or not finite:
                raise self.fail(f"api.constants.{name}", f"expected a finite number, got {value!r}")
        epsilon = self.get(table, "machine_epsilon", "api", list, [])
        for name in epsilon:
            if name not in spec.hyper_names:
                raise self.fail("api.machine_epsilon", f"{name!r} is not a hyperparameter")
        if "arguments" in table:
            names = self.get(table, "arguments", "api", list)
        else:
            names = [*spec.hyper_names, *(f.name for f in spec.flags), KEYWORD_ONLY]
            names += ["foreach", "maximize"]
        arguments = self.arguments(spec, names, tuples, set(fixed), choices, constants)
        if "checks" in table:
            checks = tuple(
                self.check(spec, c, arguments, f"api.checks[{i}]")
                for i, c in enumerate(self.get(table, "checks", "api", list))
            )
        else:
            checks = tuple(self.domain_check(spec, h.name) for h in spec.hypers)
        self.defaults_pass(spec, checks, constants)
        matches = self.get(table, "matches", "api", str, "")
        if matches and not DOTTED.fullmatch(matches):
            raise self.fail(
                "api.matches", f"{matches!r} is not a dotted name such as torch.optim.Adam"
            )
        return Api(matches, arguments, checks, fixed, tuple(epsilon))

    def choices(self, spec: Spec, table: dict) -> dict[str, dict[str, dict[str, bool]]]:
        """``[api.choices.ARG] STRING = { FLAG = true, ... }``: a string argument setting flags."""
        flags = {f.name for f in spec.flags}
        out = {}
        for name, options in table.items():
            where = f"api.choices.{name}"
            self.identifier(name, where)
            if not isinstance(options, dict) or not options:
                raise self.fail(where, "expected a table: STRING = { FLAG = true|false }")
            out[name] = {}
            for option, setting in options.items():
                if option == "message":  # what a value outside the choices raises
                    out[name]["message"] = self.message(
                        self.get(options, "message", where, str), {name}, f"{where}.message"
                    )
                    continue
                if not (isinstance(setting, dict) and setting):
                    raise self.fail(f"{where}.{option}", "expected { FLAG = true|false }")
                for flag, value in setting.items():
                    if flag not in flags or not isinstance(value, bool):
                        raise self.fail(f"{where}.{option}.{flag}", "expected a flag = true|false")
                out[name][option] = dict(setting)
            first = next((o for o in out[name] if o != "message"), None)
            defaults = {f.name: f.default for f in spec.flags}
            for flag, value in out[name].get(first, {}).items():
                if value is not defaults[flag]:  # None passes the first choice
                    raise self.fail(
                        f"{where}.{first}.{flag}",
                        f"the first choice is the default, so it must keep the flag's default, "
                        f"{str(defaults[flag]).lower()}",
                    )
        return out

    def fixed(self, spec: Spec, table: dict) -> dict[str, bool]:
        """Group entries the class sets itself: a flag at its default, or a constant."""
        flags = {f.name: f.default for f in spec.flags}
        for name, value in table.items():
            where = f"api.fixed.{name}"
            self.identifier(name, where)
            if name in spec.hyper_names:
                raise self.fail(where, f"{name!r} is a hyperparameter; give it a default instead")
            if not isinstance(value, bool):
                raise self.fail(where, f"expected true or false, got {value!r}")
            if name in flags and value is not flags[name]:
                raise self.fail(where, f"expected the flag's default, {flags[name]}")
        return dict(table)

    def tuples(self, spec: Spec, table: dict) -> dict[str, tuple[str, ...]]:
        out = {}
        for name, parts in table.items():
            where = f"api.tuples.{name}"
            self.identifier(name, where)
            if not (isinstance(parts, list) and len(parts) >= 2):
                raise self.fail(where, "expected a list of two or more hyperparameter names")
            for part in parts:
                if part not in spec.hyper_names:
                    raise self.fail(where, f"{part!r} is not a hyperparameter")
            out[name] = tuple(parts)
        return out

    def arguments(
        self,
        spec: Spec,
        names: list,
        tuples: dict[str, tuple[str, ...]],
        fixed: set[str],
        choices: dict[str, dict[str, dict[str, bool]]],
        constants: dict[str, object],
    ) -> tuple[ApiArgument, ...]:
        flags = {f.name for f in spec.flags} - fixed
        out: list[ApiArgument] = []
        keyword_only = False
        covered: set[str] = set(fixed)
        for options in choices.values():
            covered.update(flag for setting in options.values() for flag in setting)
        for i, name in enumerate(names):
            where = f"api.arguments[{i}]"
            if name == KEYWORD_ONLY and not keyword_only:
                keyword_only = True
                continue
            if not isinstance(name, str) or name in covered or name == KEYWORD_ONLY:
                raise self.fail(where, f"expected a new argument name, got {name!r}")
            if name in tuples:
                kind = "tuple"
            elif name in choices:
                kind = "choice"
            elif name in constants:
                kind = "constant"
            elif name in spec.hyper_names:
                kind = "hyper"
            elif name in flags:
                kind = "flag"
            elif name in FRAMEWORK_ARGUMENTS:
                kind = "framework"
            else:
                known = ", ".join(FRAMEWORK_ARGUMENTS)
                raise self.fail(
                    where,
                    f"{name!r} is not a hyperparameter, flag or tuple of the spec, "
                    f"nor one of {known}",
                )
            parts = tuples.get(name, ())
            covered.update((name, *parts))
            out.append(
                ApiArgument(
                    name, kind, keyword_only, parts, choices.get(name, {}), constants.get(name)
                )
            )
        for name in (*spec.hyper_names, *flags):
            if name not in covered:
                raise self.fail("api.arguments", f"{name!r} is not among the arguments")
        return tuple(out)

    def check(
        self, spec: Spec, entry: object, arguments: tuple[ApiArgument, ...], where: str
    ) -> ApiCheck:
        if not isinstance(entry, dict):
            raise self.fail(where, "expected { require = CONDITION, message = TEXT }")
        self.check_keys(entry, {"require", "message"}, where)
        text = self.get(entry, "require", where, str)
        try:
            condition = parse_condition(text, plain_symbols(spec))
        except SpecError as exc:  # the parser words it for where()'s first argument
            reason = exc.reason.replace("the condition of where() must be", "expected")
            raise self.fail(f"{where}.require", reason) from None
        allowed = {s.name for s in condition.free_symbols}
        names = {a.name for a in arguments} | {p for a in arguments for p in a.parts}
        if not allowed <= names:
            bad = sorted(allowed - names)[0]
            raise self.fail(f"{where}.require", f"{bad!r} is not an argument")
        message = self.get(entry, "message", where, str)
        return ApiCheck(condition, self.message(message, names, f"{where}.message"), text)

    def message(self, text: str, names: set[str], where: str) -> tuple[str | tuple[str], ...]:
        """A message as literal text and placeholders; anything else in braces is refused."""
        if len(text) > MAX_MESSAGE or not text.isprintable():
            raise self.fail(where, f"expected one line of printable text, at most {MAX_MESSAGE}")
        out: list[str | tuple[str]] = []
        last = 0
        for match in PLACEHOLDER.finditer(text):
            name = match.group(1)
            if name not in names:
                raise self.fail(where, f"{{{name}}}: only {{ARGUMENT}} placeholders are allowed")
            out += [text[last : match.start()], (name,)]
            last = match.end()
        rest = text[last:]
        if (
            "{" in rest
            or "}" in rest
            or any("{" in p or "}" in p for p in out if isinstance(p, str))
        ):
            raise self.fail(where, "unbalanced '{' or '}'")
        out.append(rest)
        return tuple(p for p in out if p != "")

    def defaults_pass(self, spec: Spec, checks: tuple[ApiCheck, ...], constants: dict) -> None:
        """SpecError for a check the spec's own defaults fail: every target would refuse to
        construct the optimizer with its defaults."""
        values = {h.name: h.default for h in spec.hypers} | {f.name: f.default for f in spec.flags}
        values |= constants
        for i, check in enumerate(checks):
            known = {s: values[s.name] for s in check.condition.free_symbols if s.name in values}
            shown = ", ".join(f"{s.name} = {v!r}" for s, v in sorted(known.items(), key=str))
            try:
                holds = check.condition.subs(known)
            except (TypeError, ValueError, ArithmeticError):  # sqrt(-1) compared, say
                holds = None
            if holds is None or holds is sympy.false:
                why = "do not satisfy it" if holds is sympy.false else "leave it undefined"
                raise self.fail(f"api.checks[{i}].require", f"the defaults ({shown}) {why}")

    def domain_check(self, spec: Spec, name: str) -> ApiCheck:
        """The check of a hyperparameter's domain, for a spec without ``[api] checks``."""
        hyper = next(h for h in spec.hypers if h.name == name)
        domain = DOMAINS[hyper.domain]
        condition = parse_condition(domain.condition.format(x=name), plain_symbols(spec))
        message = (f"{name} must be in {domain.interval}, got ", (name,))
        return ApiCheck(condition, message, domain.condition.format(x=name))

"""What every kind of spec shares: names, hyperparameters, and the loader's validation helpers."""

from __future__ import annotations

import difflib
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass

import sympy

from symopt.errors import SpecError
from symopt.spec.domains import DOMAINS
from symopt.spec.parse import FUNCTIONS, parse_expr
from symopt.spec.reserved import class_name_problem, name_problem, spec_name_problem
from symopt.spec.symbol_latex import latex_problem

W, G, T = "w", "g", "t"
#: The row and column counts of a 2-D parameter, usable in an ``applies_to = "matrix"`` update.
ROWS, COLS = "rows", "cols"
NAME = re.compile(r"[a-z][a-z0-9_]*")
CLASS_NAME = re.compile(r"[A-Z][A-Za-z0-9]*")
RESERVED = {W, G, T, "grad", ROWS, COLS}
IDENTIFIER_HELP = "a lowercase identifier such as 'beta1'"
#: The most characters of a title, which is one line (a heading, a docstring's first line).
MAX_TITLE = 200


@dataclass(frozen=True)
class Hyper:
    name: str
    default: float
    domain: str
    latex: str
    doc: str = ""
    #: 0 switches off what this hyperparameter scales (SGD's momentum buffer): symopt
    #: generates a variant with the value 0 substituted, used whenever the value is 0.
    off_at_zero: bool = False


class HyperparameterOwner:
    """What every kind of spec has: hyperparameters with defaults, and a digest of its text."""

    hypers: tuple[Hyper, ...]
    text: str
    #: Set on element-wise specs with flags or an ``[api]`` (:mod:`symopt.spec.api`).
    family = None

    @property
    def hyper_names(self) -> tuple[str, ...]:
        return tuple(h.name for h in self.hypers)

    @property
    def defaults(self) -> dict[str, float]:
        return {h.name: h.default for h in self.hypers}

    @property
    def digest(self) -> str:
        """A short hash of the spec source: generated files record it in their header."""
        return hashlib.sha256(self.text.encode()).hexdigest()[:16]


def make_symbol(name: str, assumptions: Mapping[str, bool] | None = None) -> sympy.Symbol:
    return sympy.Symbol(name, **(assumptions or {"real": True}))


class Loader:
    """Reads one TOML table with file/key-located errors; each kind of spec extends it."""

    def __init__(self, data: dict, file: str, text: str):
        self.data = data
        self.file = file
        self.text = text

    def fail(self, key: str, reason: str) -> SpecError:
        return SpecError(reason, file=self.file, key=key)

    def get(self, table: Mapping, key: str, where: str, kind: type | tuple, default=None):
        if key not in table:
            if default is None:
                raise self.fail(where, f"missing required key {key!r}")
            return default
        value = table[key]
        if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
            names = (
                kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            )
            raise self.fail(f"{where}.{key}" if where else key, f"expected {names}, got {value!r}")
        return value

    def check_keys(self, table: Mapping, allowed: set[str], where: str) -> None:
        for key in table:
            if key not in allowed:
                hint = difflib.get_close_matches(key, allowed, n=1)
                extra = f" (did you mean {hint[0]!r}?)" if hint else ""
                raise self.fail(f"{where}.{key}" if where else key, f"unknown key{extra}")

    def identifier(self, name: str, where: str, problem=name_problem) -> str:
        """``name`` if the rules for names allow it (``problem`` says why a name may not be
        taken, :func:`~symopt.spec.reserved.name_problem` for all but the spec's own name)."""
        if not NAME.fullmatch(name):
            raise self.fail(where, f"{name!r} is not a valid name ({IDENTIFIER_HELP})")
        if name in RESERVED:
            raise self.fail(
                where, f"{name!r} is reserved (w, g, t, grad, rows and cols are built in)"
            )
        if name in FUNCTIONS:
            raise self.fail(where, f"{name!r} is a function of the spec language; choose another")
        reason = problem(name)
        if reason:
            raise self.fail(where, f"{name!r} {reason}; choose another")
        return name

    def expr(self, text: object, symbols, where: str, **kw) -> sympy.Expr:
        try:
            return parse_expr(text, symbols, **kw)
        except SpecError as exc:
            raise exc.located(file=self.file, key=where) from None

    def names(self, top_keys: set[str], example: str) -> tuple[str, str]:
        """The top-level keys checked, and the spec's name and class name (every kind of spec)."""
        d = self.data
        self.check_keys(d, top_keys, "")
        second_order = "model" in d
        name = self.get(d, "name", "", str)
        self.identifier(name, "name", lambda n: spec_name_problem(n, second_order))
        class_name = self.get(d, "class_name", "", str)
        if not CLASS_NAME.fullmatch(class_name):
            raise self.fail(
                "class_name", f"{class_name!r} must be a CamelCase name such as {example!r}"
            )
        problem = class_name_problem(class_name)
        if problem:
            raise self.fail("class_name", f"{class_name!r} {problem}; choose another")
        return name, class_name

    def latex(self, table: Mapping, name: str, where: str) -> str:
        """A symbol's LaTeX: the spec's own, if it is plain math (a whitelist), else SymPy's for
        its name."""
        if "latex" not in table:
            return sympy.latex(sympy.Symbol(name))
        text = self.get(table, "latex", where, str)
        problem = latex_problem(text)
        if problem:
            raise self.fail(f"{where}.latex", problem)
        return text

    def title(self) -> str:
        title = self.get(self.data, "title", "", str)
        if "\n" in title or len(title) > MAX_TITLE:
            raise self.fail("title", f"expected one line of at most {MAX_TITLE} characters")
        return title

    def prose(self) -> dict[str, str]:
        """Title, summary, reference and notes, and where the spec came from."""
        d = self.data
        return {
            "title": self.title(),
            "summary": self.get(d, "summary", "", str).strip(),
            "reference": self.get(d, "reference", "", str).strip(),
            "notes": self.get(d, "notes", "", str, "").strip(),
            "source": self.file,
            "text": self.text,
        }

    def hypers(self) -> tuple[Hyper, ...]:
        out = []
        for key, table in self.get(self.data, "hyper", "", dict, {}).items():
            where = f"hyper.{key}"
            self.identifier(key, where)
            if not isinstance(table, dict):
                raise self.fail(where, "expected a table with default, domain, latex")
            self.check_keys(table, {"default", "domain", "latex", "doc", "off_at_zero"}, where)
            default = self.get(table, "default", where, (int, float))
            domain = self.get(table, "domain", where, str)
            if domain not in DOMAINS:
                raise self.fail(
                    f"{where}.domain", f"unknown domain {domain!r}; known: {', '.join(DOMAINS)}"
                )
            if not DOMAINS[domain].contains(default):
                raise self.fail(
                    f"{where}.default",
                    f"default {default!r} is outside its domain "
                    f"{domain} {DOMAINS[domain].interval}",
                )
            latex = self.latex(table, key, where)
            off_at_zero = self.get(table, "off_at_zero", where, bool, False)
            if off_at_zero and not DOMAINS[domain].contains(0.0):
                raise self.fail(
                    f"{where}.off_at_zero", f"0 is outside the domain {domain} of {key!r}"
                )
            doc = self.get(table, "doc", where, str, "")
            out.append(Hyper(key, float(default), domain, latex, doc, off_at_zero))
        return tuple(out)

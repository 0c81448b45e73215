"""Mutations of the built-in specs for the spec fuzz run (``fuzz_specs``): on the parsed TOML
(numbers, expressions, flags, strings, keys, update lines, copied tables, wrong types) and on the
text (renames to reserved-looking names, dropped, duplicated and swapped lines, byte flips,
truncation). :func:`mutated` is deterministic: a run's seed and a case index name one spec.
"""

from __future__ import annotations

import json
import math
import random
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUILTINS = {p.stem: p.read_text(encoding="utf-8") for p in sorted((ROOT / "specs").glob("*.toml"))}

#: Numbers for TOML values: huge, tiny, zero, negative, NaN/inf spellings, past a double.
NUMBERS = "0 -1 1e308 1e-308 5e-324 -0.0 1e20 3 2.5 nan inf -inf 1e400 -1e-30".split()
NUMBERS += ["9223372036854775808", "0.999999999999", "1e-12"]
#: Numbers and constants inside expressions (SymPy's spellings included).
EXPR_NUMBERS = "0 -1 1e308 1e-320 nan oo zoo 10**400 1/0 2**-1074 1e-300 -2 0.5 1000000 I E pi"
EXPR_NUMBERS = EXPR_NUMBERS.split()
FUNCTIONS = ["exp", "log", "sqrt", "sign", "abs", "norm"]
#: Wrappers of a sub-expression ``{}``: functions, powers, nesting, duplication, reductions.
WRAPS = [
    *("exp({})", "log({})", "sqrt({})", "sign({})", "abs({})", "min({}, 0)", "max({}, 1e-300)"),
    *("where({} > 0, {}, 0)", "({})**-1", "({})**0.5", "({})**100", "({})*({})", "({}) - ({})"),
    *("exp(exp(exp({})))", "sqrt(sqrt(sqrt(sqrt({}))))", "({})**({})", "1/({} - {})"),
    *("where(t > 1, {}, -{})", "({})**t", "grad({})", "mean({})", "sum({})", "norm({})"),
]
#: Reserved-looking names: Python and C keywords and builtins, the generated code's own names,
#: the spec language's, Unicode look-alikes, a very long one.
NAMES = """
lambda class def if None True int float print sum len i n p t t_start m__1 step loss w g self
np torch jax math double restrict auto register volatile __init__ _ x1 lr_ main errno NULL
sizeof state params grad exp sqrt I E pi oo H rows cols out chunk _b0 scalars w_1 float64
group jnp optax ctypes T_START
""".split()
NAMES += ["\uff4d", "\u0430", "\u03bc", "a" * 80]
FLAG_VALUES = [True, False, 0, 1, "yes", "", [], {}, 1.5]
STRINGS = """
positive nonnegative unit_open unit_closed_open real negative fail gradient solve auto exact cg
hessian ggn fisher diagonal kronecker block_diagonal rows cols matrix scalar 0
torch.optim.Adam lr
""".split()
STRINGS += ["", "\\alpha", "x" * 5000]
NEW_KEYS = """
t_start shape when off_at_zero key applies_to otherwise replace flags bogus domain default init
latex matches order
""".split()
IDENT = re.compile(r"\b[A-Za-z_][A-Za-z0-9_]*\b")
NUMBER = re.compile(r"(?<![A-Za-z_0-9.])\d+(\.\d*)?(e[-+]?\d+)?")


def _leaves(data, path=()):
    """Every (path, value) of a parsed TOML document's scalars."""
    if isinstance(data, dict):
        for k, v in data.items():
            yield from _leaves(v, (*path, k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            yield from _leaves(v, (*path, i))
    else:
        yield path, data


def _set(data, path, value) -> None:
    for k in path[:-1]:
        data = data[k]
    data[path[-1]] = value


def _tables(data, path=()):
    """Every (path, dict) of the document, the root included."""
    if isinstance(data, dict):
        yield path, data
        for k, v in data.items():
            yield from _tables(v, (*path, k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            yield from _tables(v, (*path, i))


def _expression(rng: random.Random, text: str) -> str:
    """An expression string mutated: a number, an operator, a function, a sub-expression."""
    roll = rng.randrange(6)
    if roll == 0 and NUMBER.search(text):
        spots = list(NUMBER.finditer(text))
        m = rng.choice(spots)
        return text[: m.start()] + rng.choice(EXPR_NUMBERS) + text[m.end() :]
    if roll == 1:
        ops = [m.start() for m in re.finditer(r"[-+*/<>]", text)]
        if ops:
            i = rng.choice(ops)
            return (
                text[:i]
                + rng.choice(["+", "-", "*", "/", "**", "<", ">=", "==", " or "])
                + text[i + 1 :]
            )
    if roll == 2:
        for f in FUNCTIONS:
            if f + "(" in text:
                return text.replace(f + "(", rng.choice(FUNCTIONS) + "(", 1)
    idents = list(IDENT.finditer(text))
    if not idents:
        return text + rng.choice(["+", "*2", "**", ")", "(", " = 1"])
    m = rng.choice(idents)
    if roll == 3:  # nest a name in a function or a power
        return text[: m.start()] + rng.choice(WRAPS).format(m.group(), m.group()) + text[m.end() :]
    if roll == 4 and "=" in text:  # duplicate the right-hand side
        lhs, _, rhs = text.partition("=")
        return f"{lhs}= ({rhs})*({rhs}) - ({rhs})*({rhs}) + ({rhs})"
    deep = m.group()
    for _ in range(rng.choice([2, 3, 6])):
        deep = rng.choice(WRAPS).format(deep, deep) if len(deep) < 4000 else deep
    return text[: m.start()] + deep + text[m.end() :]


def _mutate_data(rng: random.Random, data: dict) -> str:  # noqa: C901 - one branch per mutation
    """Mutate the parsed document in place; the mutation's name."""
    leaves = list(_leaves(data))
    tables = [t for t in _tables(data) if isinstance(t[1], dict)]
    kind = rng.choice(
        [
            "number",
            "expression",
            "expression",
            "flag",
            "string",
            "remove",
            "add",
            "update-lines",
            "table-copy",
            "type",
        ]
    )
    if kind == "number":
        nums = [
            (p, v) for p, v in leaves if isinstance(v, (int, float)) and not isinstance(v, bool)
        ]
        exprs = [
            (p, v) for p, v in leaves if isinstance(v, str) and NUMBER.search(v) and len(v) < 200
        ]
        if nums and rng.random() < 0.6:
            path, _ = rng.choice(nums)
            _set(
                data,
                path,
                float(rng.choice(NUMBERS)) if rng.random() < 0.8 else 10 ** rng.randint(18, 400),
            )
        elif exprs:
            path, text = rng.choice(exprs)
            m = rng.choice(list(NUMBER.finditer(text)))
            _set(
                data, path, text[: m.start()] + rng.choice(NUMBERS + EXPR_NUMBERS) + text[m.end() :]
            )
    elif kind == "expression":
        # mostly the update's equations, the states' inits and the model; sometimes the rest
        core = ("update", "otherwise", "state", "model")
        sections = (
            core
            if rng.random() < 0.7
            else (*core, "relations", "properties", "checks", "api", "hyper")
        )
        exprs = [
            (p, v)
            for p, v in leaves
            if isinstance(v, str)
            and len(v) < 300
            and p
            and p[0] in sections
            and p[-1] not in ("doc", "latex")
        ]
        if exprs:
            path, text = rng.choice(exprs)
            _set(data, path, _expression(rng, text))
    elif kind == "flag":
        bools = [p for p, v in leaves if isinstance(v, bool)]
        if bools:
            path = rng.choice(bools)
            _set(data, path, rng.choice(FLAG_VALUES))
        else:
            data.setdefault("flag", {})[rng.choice(NAMES)] = {"default": rng.choice(FLAG_VALUES)}
    elif kind == "string":
        strs = [p for p, v in leaves if isinstance(v, str)]
        if strs:
            _set(data, rng.choice(strs), rng.choice(STRINGS + NAMES))
    elif kind == "remove":
        path, table = rng.choice(tables)
        if table:
            del table[rng.choice(list(table))]
    elif kind == "add":
        path, table = rng.choice(tables)
        table[rng.choice(NEW_KEYS + NAMES)] = rng.choice(
            [rng.choice(STRINGS), rng.choice(FLAG_VALUES), 1e308, -1, {"default": 0.5}, ["w = w"]]
        )
    elif kind == "update-lines":
        lines = data.get("update") or data.get("otherwise")
        if isinstance(lines, list) and lines:
            i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
            op = rng.choice(["drop", "dup", "swap", "new", "self"])
            if op == "drop":
                del lines[i]
            elif op == "dup":
                lines.insert(j, lines[i])
            elif op == "swap":
                lines[i], lines[j] = lines[j], lines[i]
            elif op == "new":
                lines.insert(j, f"{rng.choice(NAMES)} = {rng.choice(WRAPS).format('g', 'w')}")
            else:
                lines.insert(j, "w = w - 0*w")
    elif kind == "table-copy":
        for section in ("hyper", "state", "intermediate", "flag"):
            table = data.get(section)
            copies = (
                [k for k, v in table.items() if isinstance(v, dict)]
                if isinstance(table, dict)
                else []
            )
            if copies:
                table[rng.choice(NAMES)] = dict(table[rng.choice(copies)])
                break
    else:  # a value of the wrong type
        path, _ = rng.choice(leaves) if leaves else ((), None)
        if path:
            _set(data, path, rng.choice([[1, 2], {"a": 1}, 1.5, True, "", [[]], -(2**70)]))
    return kind


def _rename(rng: random.Random, text: str) -> str:
    """Rename one name everywhere (or, sometimes, only in one place) to a reserved-looking one."""
    names = sorted(set(re.findall(r"^\[(?:hyper|state|intermediate|flag)\.(\w+)\]", text, re.M)))
    if not names:
        return text
    old, new = rng.choice(names), rng.choice(NAMES)
    pattern = re.compile(rf"\b{re.escape(old)}\b")
    return pattern.sub(new, text, count=0 if rng.random() < 0.8 else 1)


def _mutate_text(rng: random.Random, text: str) -> tuple[str, str]:
    lines = text.split("\n")
    kind = rng.choice(
        ["rename", "rename", "drop-line", "dup-line", "swap-lines", "byte", "truncate"]
    )
    if kind == "rename":
        return _rename(rng, text), kind
    i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
    if kind == "drop-line":
        del lines[i]
    elif kind == "dup-line":
        lines.insert(j, lines[i])
    elif kind == "swap-lines":
        lines[i], lines[j] = lines[j], lines[i]
    elif kind == "byte":
        pos = rng.randrange(len(text))
        char = rng.choice(
            [
                '"',
                "\n",
                "[",
                "]",
                "=",
                "\\",
                "\x00",
                "\u200b",
                "\uff4d",
                "#",
                "'",
                "{",
                chr(rng.randrange(32, 127)),
                "\udcff",
            ]
        )
        return text[:pos] + char + text[pos + rng.choice([0, 1]) :], kind
    else:
        return text[: rng.randrange(len(text))], kind
    return "\n".join(lines), kind


def mutated(seed: int, index: int, base: str | None = None) -> tuple[str, str, list[str]]:
    """The ``index``-th mutated spec of run ``seed``: (base name, text, mutations applied);
    the same arguments always give the same spec. ``base``: mutate this built-in instead of
    the one the case draws."""
    rng = random.Random(f"{seed}:{index}")
    drawn = rng.choice(sorted(BUILTINS))
    base = base or drawn
    text, applied = BUILTINS[base], []
    for _ in range(rng.choice([1, 1, 2, 3])):
        try:
            data = tomllib.loads(text)
        except (tomllib.TOMLDecodeError, ValueError):
            data = None
        if data is not None and rng.random() < 0.65:
            applied.append(_mutate_data(rng, data))
            text = to_toml(data)
        else:
            text, kind = _mutate_text(rng, text)
            applied.append(kind)
    return base, text, applied


def _key(k: str) -> str:
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else json.dumps(k, ensure_ascii=False)


def _value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return (
            "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
        )
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    return "{ " + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + " }"


def to_toml(data: dict, prefix: str = "") -> str:
    """A parsed TOML document written back (scalars first, then tables, arrays of tables)."""
    head = [
        f"{_key(k)} = {_value(v)}"
        for k, v in data.items()
        if not isinstance(v, dict)
        and not (isinstance(v, list) and v and all(isinstance(x, dict) for x in v) and not prefix)
    ]
    out = ["\n".join(head)]
    for k, v in data.items():
        name = f"{prefix}{_key(k)}"
        if isinstance(v, dict):
            out.append(f"\n[{name}]\n" + to_toml(v, name + "."))
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v) and not prefix:
            out += [f"\n[[{name}]]\n" + to_toml(x, name + ".") for x in v]
    return "\n".join(s for s in out if s) + "\n"

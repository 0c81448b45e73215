"""Prose with maths in it (spec notes, check statements, table entries) as LaTeX and Markdown.

Specs and checks write their formulas in plain text: ``g a^T``, ``N^2``, ``A (x) G``,
``(H + lam I)^-1 g``, ``||d||``. :func:`prose_parts` finds those formulas and prints them as
maths, with the spec's own symbols (``\\lambda`` for ``lam``, ``\\beta_1`` for ``beta1``), and
leaves the rest as text. A formula is a run of identifiers, numbers, operators and brackets with
an operator, a function call or a product of two quantities in it; a lone single letter (not the
words ``a``, ``A`` or ``I``) or a short spec name is a quantity too.

Spec text is untrusted, so nothing of it reaches LaTeX unescaped: the maths is built from a fixed
set of strings, identifiers of letters, digits and underscores, and the spec's symbols (which
:func:`~symopt.backends.docs.latex.safe_symbol` has vetted); everything else is escaped text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from symopt.backends.docs.latex import escape_latex, escape_markdown, format_number

_TOKEN = re.compile(
    r"(?P<space>\s+)"
    r"|(?P<sci>\d+(?:\.\d+)?e-?\d+(?![\w-]))"
    r"|(?P<word>(?:[\w.-]+/)+[\w-]+\.[A-Za-z]+|(?:[A-Za-z0-9]+-)+[A-Za-z0-9]+(?:'s)?|[A-Za-z]\.[A-Za-z]\."
    r"|[A-Za-z][A-Za-z0-9]*'s?(?![A-Za-z]))"
    r"|(?P<ident>[A-Za-z][A-Za-z0-9]*(?:_(?:\{[A-Za-z0-9,]+\}|[A-Za-z0-9]+))*)"
    r"|(?P<number>\d+(?:\.\d+)?)"
    r"|(?P<op>\(x\)|\|\||->|!=|<=|>=|[-+*/^=<>@|(),])"
    r"|(?P<text>.)",
    re.DOTALL,
)

GREEK = {
    **{n: rf"\{n}" for n in "alpha beta gamma delta zeta eta theta kappa mu nu xi rho".split()},
    **{n: rf"\{n}" for n in "sigma tau phi chi psi omega lambda epsilon".split()},
    "lam": r"\lambda",
    "lambd": r"\lambda",
    "eps": r"\epsilon",
}
FUNCTIONS = {"max": r"\max", "min": r"\min", "exp": r"\exp", "log": r"\log"}
OPERATORS = {
    "(x)": r"\otimes",
    "kron": r"\otimes",
    "!=": r"\ne",
    "<=": r"\le",
    ">=": r"\ge",
    "->": r"\to",
    "@": " ",
    "*": " ",
}
CONSTANTS = {"infinity": r"\infty", "inf": r"\infty"}
#: Words that are English more often than they are a quantity: maths only inside a formula.
NOT_ALONE = {"a", "A", "I"}


@dataclass(frozen=True)
class Token:
    kind: str  # space, atom, func, op, open, close, comma, text
    text: str


def _kind(match: re.Match, names: Mapping[str, str]) -> str:
    kind = match.lastgroup or "text"
    text, following = match.group(), match.string[match.end() :]
    short = len(re.match(r"[A-Za-z]*", text).group()) <= 2
    quotient = short and (following.startswith("/") or match.string[: match.start()].endswith("/"))
    if kind == "ident" and (text in names or quotient):  # a spec's name; dc in dc/df
        return "atom"
    if kind == "ident":
        if text in CONSTANTS or text == "kron" or len(text) == 1 or not following.startswith("("):
            return "op" if text == "kron" else _atom_or_text(text)
        return "func"
    if kind in ("sci", "number"):
        return "atom"
    if kind == "op":
        return {"(": "open", ")": "close", ",": "comma"}.get(text, "op")
    return "text" if kind == "word" else kind


def _atom_or_text(name: str) -> str:
    """An identifier is a quantity if it looks like one: ``g``, ``w1``, ``beta2``, ``A_n``."""
    letters = re.match(r"[A-Za-z]+", name).group()
    symbolic = len(letters) == 1 or letters in GREEK or "_" in name or name in CONSTANTS
    return "atom" if symbolic or name != letters else "text"


def tokens(text: str, names: Mapping[str, str] = {}) -> list[Token]:  # noqa: B006 (read only)
    """The text's words, numbers and operators; a spec's own names are quantities."""
    return [Token(_kind(m, names), m.group()) for m in _TOKEN.finditer(text)]


class ProseMath:
    """Splits prose into text and formulas, and prints a formula with a spec's symbols."""

    def __init__(self, names: Mapping[str, str]) -> None:
        self.names = dict(names)  # spec name -> its (vetted) LaTeX symbol

    # -- finding the formulas -------------------------------------------------------------------
    def parts(self, text: str) -> list[tuple[bool, str]]:
        """``(is_maths, piece)`` in order: a formula as LaTeX, text as written."""
        out: list[tuple[bool, str]] = []
        run: list[Token] = []
        depth = 0
        for tok in tokens(" ".join(text.split()), self.names):
            depth += {"open": 1, "close": -1}.get(tok.kind, 0)
            if tok.kind == "text" or (tok.kind == "comma" and depth <= 0):
                out += self._flush(run) + [(False, tok.text)]
                run = []
                depth = max(depth, 0)
            else:
                run.append(tok)
        return _merge(out + self._flush(run))

    def _flush(self, run: list[Token]) -> list[tuple[bool, str]]:
        """A run of formula-like tokens: its text before and after, and its formula if it is one."""
        start, end = 0, len(run)
        while True:
            before = (start, end)
            while start < end and _dangling(run, start):
                start += 1
            while end > start and _trailing(run, end - 1):
                end -= 1
            start, end = _balance(run, start, end)
            if _wrapped(run, start, end):  # "(lam = 0)": the brackets are the prose's
                start, end = start + 1, end - 1
            if (start, end) == before:
                break
        core = run[start:end]
        text = lambda toks: [(False, "".join(t.text for t in toks))] if toks else []  # noqa: E731
        if not core or not self._is_formula(core):
            return text(run)
        return text(run[:start]) + [(True, self.render(core))] + text(run[end:])

    def _is_formula(self, core: list[Token]) -> bool:
        atoms = [t for t in core if t.kind == "atom"]
        if not atoms and not any(t.kind == "func" for t in core):
            return False
        if any(t.kind in ("op", "func") for t in core):
            return any(not re.fullmatch(r"[\d.e-]+", t.text) for t in atoms) or len(atoms) > 1
        if len([t for t in atoms if not t.text[0].isdigit()]) > 1:
            return True
        name = atoms[0].text
        head = re.match(r"[A-Za-z]*", name).group()
        indexed = name != head and (len(head) == 1 or head in GREEK)  # g_n, w1, beta2, lam_G
        lone = len(name) == 1 and name.isalpha() and name not in NOT_ALONE
        return lone or indexed or (name in self.names and (len(name) <= 3 or "_" in name))

    # -- printing a formula ---------------------------------------------------------------------
    def render(self, core: list[Token]) -> str:
        """A formula's tokens as LaTeX; a space in the text is a space in the maths."""
        out, i = [], 0
        while i < len(core):
            if core[i].kind == "space":
                out.append(" ")
                i += 1
                continue
            tex, i = self._item(core, i)
            if out and re.search(r"\\[A-Za-z]+$", out[-1]) and tex[:1].isalpha():
                out.append(" ")  # \le then t is \le t, never \let
            out.append(tex)
        return re.sub(r" {2,}", " ", "".join(out)).strip()

    def _item(self, words: list[Token], i: int) -> tuple[str, int]:
        tok = words[i]
        if tok.kind == "func":
            inner, j = self._group(words, i + 1)
            name = tok.text
            if name == "sqrt":
                return rf"\sqrt{{{inner}}}", j
            if name == "abs":
                return rf"\lvert {inner} \rvert", j
            head = FUNCTIONS.get(name, r"\operatorname{" + name.replace("_", r"\_") + "}")
            return f"{head}({inner})", j
        if tok.kind == "open":
            inner, j = self._group(words, i)
            return f"({inner})", j
        if tok.text == "^":
            return self._power(words, i + 1)
        if tok.kind == "atom":
            return self.atom(tok.text), i + 1
        if tok.text == "*" and _star(words, i):
            return "^{*}", i + 1
        if tok.text == "*" and _between_numbers(words, i):
            return r"\cdot", i + 1
        if tok.kind == "comma":
            return ", ", i + 1
        if tok.text in ("||", "|"):
            return _bar(words, i), i + 1
        return OPERATORS.get(tok.text, tok.text), i + 1

    def _group(self, words: list[Token], i: int) -> tuple[str, int]:
        """The bracketed group opening at ``i``, printed without its brackets; and where it ends."""
        depth, j = 0, i
        while j < len(words):
            depth += {"open": 1, "close": -1}.get(words[j].kind, 0)
            if depth == 0:
                break
            j += 1
        return self.render(words[i + 1 : j]), j + 1

    def _power(self, words: list[Token], i: int) -> tuple[str, int]:
        sign = ""
        if i < len(words) and words[i].text == "-":
            sign, i = "-", i + 1
        if i >= len(words):
            return r"\textasciicircum{}", i
        if words[i].kind == "open":
            inner, j = self._group(words, i)
        else:
            inner, j = self._item(words, i)
        return f"^{{{sign}{inner}}}", j

    def atom(self, name: str) -> str:
        if name in self.names:
            return self.names[name]
        if name in CONSTANTS:
            return CONSTANTS[name]
        if re.fullmatch(r"\d+(\.\d+)?e-?\d+", name):
            return format_number(float(name))
        if name[0].isdigit():
            return name
        return _identifier(name)


def _identifier(name: str) -> str:
    """``beta2`` as ``\\beta_{2}``, ``A_n`` as ``A_{n}``, ``m_hat`` as ``\\hat{m}``."""
    head, *subs = re.split(r"_|,", name.replace("{", "").replace("}", ""))
    letters, digits = re.fullmatch(r"([A-Za-z]+)(\d*)|(.*)()", head).groups()[:2]
    if letters is None:  # d2f: a name, not a symbol with an index
        letters, digits = head, ""
    tex = GREEK.get(letters, letters if len(letters) == 1 else r"\mathrm{" + letters + "}")
    tex = r"\sum" if letters == "sum" else tex
    if "hat" in subs:
        tex, subs = rf"\hat{{{tex}}}", [s for s in subs if s != "hat"]
    subs = [digits, *subs] if digits else subs
    if not subs:
        return tex
    printed = [GREEK.get(s, s if len(s) == 1 or s.isdigit() else rf"\mathrm{{{s}}}") for s in subs]
    return f"{tex}_{{{','.join(printed)}}}"


def _star(run: list[Token], i: int) -> bool:
    """``d*`` (a starred name, as in ``m(d*)``): a ``*`` after a name and before a bracket or
    the end, not a product."""
    after = run[i + 1].kind if i + 1 < len(run) else "space"
    named = i > 0 and run[i - 1].kind == "atom"
    return run[i].text == "*" and named and after in ("close", "space")


def _trailing(run: list[Token], i: int) -> bool:
    """A token a formula does not end on: a space, comma, opening bracket or operator (but the
    closing bar of a norm and the star of ``d*``)."""
    tok = run[i]
    closing = tok.text in ("|", "||") and sum(t.text == tok.text for t in run[:i]) % 2 == 1
    return tok.kind in ("space", "comma", "open", "op") and not (_star(run, i) or closing)


def _between_numbers(words: list[Token], i: int) -> bool:
    """``0.5 * 0.96``: a product of two numbers needs a visible dot."""
    left = [w for w in words[:i] if w.kind != "space"][-1:]
    right = [w for w in words[i + 1 :] if w.kind != "space"][:1]
    return all(side and side[0].text[0].isdigit() for side in (left, right))


def _dangling(run: list[Token], i: int) -> bool:
    """A token a formula does not start with: a space, comma or closing bracket, or an operator
    with nothing on its left (but a sign, ``-g``, and the opening bar of a norm)."""
    tok = run[i]
    if tok.kind in ("space", "comma", "close"):
        return True
    nxt = run[i + 1].kind if i + 1 < len(run) else "space"
    sign = tok.text == "-" and nxt in ("atom", "open", "func")
    return tok.kind == "op" and not sign and tok.text not in ("|", "||")


def _balance(run: list[Token], start: int, end: int) -> tuple[int, int]:
    """Drop brackets at either end that close nothing or open nothing in the run."""
    stack: list[int] = []
    unmatched = []
    for i in range(start, end):
        if run[i].kind == "open":
            stack.append(i)
        elif run[i].kind == "close":
            (stack.pop() if stack else unmatched.append(i))
    unmatched += stack
    for i in sorted(unmatched):
        if i == start:
            start += 1
        elif i == end - 1:
            end -= 1
        else:
            return start, start  # brackets that do not pair inside: not a formula
    return start, end


def _wrapped(run: list[Token], start: int, end: int) -> bool:
    """Whether the bracket at ``start`` closes at ``end - 1``."""
    depth = 0
    for i in range(start, end):
        depth += {"open": 1, "close": -1}.get(run[i].kind, 0)
        if depth == 0:
            return i == end - 1 and run[start].kind == "open"
    return False


def _bar(words: list[Token], i: int) -> str:
    """``||x||`` and ``|x|``: an opening bar is one with an odd number of the same before it."""
    count = sum(w.text == words[i].text for w in words[:i])
    bars = {"||": (r"\lVert ", r" \rVert"), "|": (r"\lvert ", r" \rvert")}[words[i].text]
    return bars[count % 2]


def _merge(parts: list[tuple[bool, str]]) -> list[tuple[bool, str]]:
    out: list[tuple[bool, str]] = []
    for is_math, piece in parts:
        if out and not is_math and not out[-1][0]:
            out[-1] = (False, out[-1][1] + piece)
        elif piece:
            out.append((is_math, piece))
    return out


def _escaped(piece: str, escape: Callable[[str], str]) -> str:
    """Escaped text that keeps its space at either end (the escapes trim it)."""
    lead = " " if piece[:1].isspace() else ""
    trail = " " if piece[-1:].isspace() and piece.strip() else ""
    return lead + escape(piece) + trail


def to_latex(text: str, names: Mapping[str, str], escape: Callable = escape_latex) -> str:
    """Prose as LaTeX text mode: formulas in ``$...$``, everything else escaped."""
    parts = ProseMath(names).parts(text)
    return "".join(f"${p}$" if m else _escaped(p, escape) for m, p in parts)


def to_markdown(text: str, names: Mapping[str, str]) -> str:
    """Prose as GitHub Markdown: formulas in ``$...$``, everything else escaped."""
    parts = ProseMath(names).parts(text)
    return "".join(f"${p}$" if m else _escaped(p, escape_markdown) for m, p in parts)

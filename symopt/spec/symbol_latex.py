"""The LaTeX a spec may give a symbol (``latex = "\\hat{m}"``): a whitelist, not a blacklist.

A symbol is a small piece of math: letters, digits, a few operators, balanced braces, and the
math commands listed here (Greek letters, accents, math fonts, a few operators and delimiters).
Anything else is refused, so a spec cannot read or write files (``\\input``, ``\\openout``,
``\\write18``), define or redefine macros (``\\def``, ``\\catcode``, ``\\csname``), leave the
math (``$``, ``\\end``) or break an aligned equation or a table (``&``, ``\\\\``, ``%``, ``#``,
``^^`` character codes, line breaks).
"""

from __future__ import annotations

import re

#: The most characters of a symbol's LaTeX (the longest built-in one has 20).
MAX_SYMBOL = 100

GREEK = {
    *"alpha beta gamma delta epsilon varepsilon zeta eta theta vartheta iota kappa".split(),
    *"varkappa lambda mu nu xi pi varpi rho varrho sigma varsigma tau upsilon phi".split(),
    *"varphi chi psi omega Gamma Delta Theta Lambda Xi Pi Sigma Upsilon Phi Psi Omega".split(),
}
#: Commands that take an argument: accents and math fonts (all in amsmath and amssymb).
WITH_ARGUMENT = {
    *"hat bar tilde vec dot ddot dddot ddddot check breve acute grave mathring".split(),
    *"widehat widetilde overline underline mathrm mathbf mathit mathsf mathtt mathcal".split(),
    *"mathbb mathfrak boldsymbol operatorname text sqrt".split(),
}
SYMBOLS = {
    *"max min sup inf lim log exp ln sum prod partial nabla infty pm mp cdot times circ".split(),
    *"ast star dagger prime ell top perp ldots cdots dots odot otimes oplus langle".split(),
    *"rangle lvert rvert lVert rVert vert Vert leq geq le ge neq ne approx sim to".split(),
    *"left right".split(),
}
COMMANDS = GREEK | WITH_ARGUMENT | SYMBOLS | {"frac"}
#: Control symbols: thin, medium and negative spaces, a norm's bars, literal braces.
CONTROL_SYMBOLS = set(",;:!|{}")
CHARACTERS = re.compile(r"[A-Za-z0-9 _^{}()\[\]+\-=',./|*<>!:;]")
_TOKEN = re.compile(r"\\([A-Za-z]+)|\\(.)|(.)", re.DOTALL)
HELP = "a symbol uses letters, digits, _ ^ { } and math commands such as \\beta_1 or \\hat{m}"


def latex_problem(latex: str) -> str | None:
    """Why ``latex`` is not a plain piece of math a document can print as a symbol, or None."""
    if not latex.strip():
        return f"empty; {HELP}"
    if len(latex) > MAX_SYMBOL:
        return f"longer than {MAX_SYMBOL} characters"
    depth = lefts = 0
    tokens = list(_TOKEN.finditer(latex))
    for i, token in enumerate(tokens):
        word, symbol, char = token.groups()
        following = tokens[i + 1].group() if i + 1 < len(tokens) else ""
        if word is not None:
            if word not in COMMANDS:
                return f"\\{word} is not allowed; {HELP}"
            lefts += {"left": 1, "right": -1}.get(word, 0)
            if word in WITH_ARGUMENT | {"frac"} and following in ("", "}"):
                return f"\\{word} needs an argument"
        elif symbol is not None:
            if symbol not in CONTROL_SYMBOLS:
                return f"\\{symbol} is not allowed; {HELP}"
        elif not CHARACTERS.fullmatch(char):
            return f"{char!r} is not allowed; {HELP}"
        elif char in "_^" and following in ("", "}", "_", "^"):
            return f"{char!r} needs something after it"
        else:
            depth += {"{": 1, "}": -1}.get(char, 0)
            if depth < 0:
                return "unbalanced braces"
    if depth:
        return "unbalanced braces"
    if lefts:
        return "\\left and \\right must come in pairs"
    return None

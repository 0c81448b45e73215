"""Deciding a claimed matrix identity exactly: every entry of its residual is brought to the
cancelled normal form of a rational function (``exp``/``tanh`` terms are its generators); a
claim that must be false is refuted with the nonzero difference and its value at a witness."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import sympy

from symopt.checks.result import CheckResult

Matrix = sympy.ImmutableMatrix


def normal(x: sympy.Expr) -> sympy.Expr:
    """0 when ``x`` is identically 0, else its cancelled normal form. Without ``exp``/``tanh``
    terms ``expand`` is tried first: a polynomial's normal form, and much cheaper than ``cancel``
    (a 0 from it is a proof; anything else is decided by ``cancel``)."""
    if not x.atoms(sympy.Function) and sympy.expand(x) == 0:
        return sympy.Integer(0)
    return sympy.cancel(sympy.together(x))


def first_nonzero(residual: sympy.MatrixBase) -> tuple[tuple[int, int], sympy.Expr] | None:
    """The first entry whose normal form is not 0, or None when the residual vanishes."""
    for k, x in enumerate(residual):
        value = normal(x)
        if value != 0:
            return divmod(k, residual.cols), value
    return None


def short(x: sympy.Basic, limit: int = 120) -> str:
    text = sympy.sstr(x)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def proved(
    name: str, residuals: Iterable[tuple[str, sympy.MatrixBase]], detail: str
) -> CheckResult:
    """A claim that every residual is identically 0 (each is labelled by where it is taken)."""
    for where, residual in residuals:
        found = first_nonzero(residual)
        if found is not None:
            (i, j), value = found
            return CheckResult(
                name, False, "symbolic", f"{where}: entry ({i}, {j}) is {short(value)}"
            )
    return CheckResult(name, True, "symbolic", detail)


def refuted(
    name: str,
    residual: sympy.MatrixBase,
    witness: Mapping[sympy.Symbol, sympy.Expr],
    where: str,
    note: str = "",
) -> CheckResult:
    """A claim ``residual == 0`` that is expected to be false: the nonzero difference, and an
    entry that is exactly nonzero at the witness point (a counterexample)."""
    found = first_nonzero(residual)
    if found is None:
        return CheckResult(name, True, "symbolic", f"{where}: the difference vanishes identically")
    (i, j), value = found
    at = Matrix(residual.xreplace(dict(witness))).applyfunc(normal)
    k = next((k for k, x in enumerate(at) if x.is_Number and x != 0), None)
    point = ", ".join(f"{s} = {v}" for s, v in witness.items())
    example = (
        f"; at {point} entry {divmod(k, at.cols)} is {short(at[k])}"
        if k is not None
        else f"; (no exact nonzero entry at {point})"
    )
    detail = f"{where}: entry ({i}, {j}) of the difference is {short(value)}{example}"
    return CheckResult(name, False, "symbolic", detail + (f"; {note}" if note else ""))


def submatrix(M: sympy.MatrixBase, idx: Sequence[int]) -> Matrix:
    return Matrix(M.extract(list(idx), list(idx)))


def entries(M: sympy.MatrixBase) -> list[tuple[int, int, sympy.Basic]]:
    return [(i, j, M[i, j]) for i in range(M.rows) for j in range(M.cols)]


def rounded(M: sympy.MatrixBase) -> str:
    return str([[round(float(x), 4) for x in row] for row in M.tolist()])

"""Checks of the curvature matrices in :mod:`symopt.curvature` and of their approximations.

Each check takes no arguments and returns one :class:`~symopt.checks.CheckResult`; ``CHECKS`` maps
a stable name to it, so that a spec can name the checks it relies on. A positive identity is
``symbolic`` only when every entry of its residual cancels to 0 (``sympy.cancel`` is a normal form
for rational functions; ``exp``/``tanh`` terms are its generators). The cases in ``NEGATIVE`` are
claims that are false: they must FAIL, and report the nonzero difference (its normal form) and its
exact value at a witness point.

Identities proved (names in ``CHECKS``): the softmax cross-entropy Hessian in ``f`` is
``diag(p) - p p^T``; GGN = Fisher for softmax cross-entropy, squared error and the log-link Poisson
(and, negative, not for squared error on a sigmoid or the identity-link Poisson); Fisher =
``E_y[H]`` and ``E_y[grad] = 0`` for all five losses; Hessian = GGN for a linear model (negative:
not for a nonlinear one) and Hessian = GGN + ``sum_k dc/df_k d2f_k/dw2``; EF = ``C + gbar gbar^T``;
single-datum K-FAC is exact, the batch error is ``1/(2N^2) sum_{n,m} (A_n - A_m) kron (G_n - G_m)``
(exact for equal ``g_n``; negative: not in general), K-FAC with GGN factors is exact for a deep
linear net with squared error; the eigen-based damped inverse is exact, the factored damping is
``(A + lam I) kron (G + lam I)`` and (negative) not ``A kron G + lam I``; the diagonal and
block-diagonal Newton steps equal Newton's for such ``H`` (negative: not in general); TONGA's
push-through identity.

Conventions: ``vec`` stacks columns (column-major), so ``vec(g a^T) = a kron g`` and a layer's
block is ``A kron G`` (input factor left); a layer's parameters are ``vec([W | b])``; batch
averages carry ``1/N`` (empirical Fisher, biased covariance, both K-FAC factors).

Sources: Martens & Grosse 2015 (K-FAC, factored Tikhonov damping); Martens 2020 ("New insights and
perspectives on the natural gradient method": GGN = Fisher for matching losses); Schraudolph 2002
(GGN); Le Roux, Manzagol & Bengio 2008 (TONGA); Kunstner, Hennig & Balles 2019 (limitations of
the empirical Fisher).

The checks are in :mod:`symopt.checks.curvature_matrices` and
:mod:`symopt.checks.curvature_approximations` (deciding them: :mod:`symopt.checks.decide`); this
module is their registry. They take no arguments, so each runs at most once per process, however
many specs rely on it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from functools import cache

import symopt.checks.curvature_approximations as approximations
import symopt.checks.curvature_matrices as matrices
from symopt.checks.result import CheckResult, unfinished

# --- the registry ----------------------------------------------------------------------------

CHECKS: dict[str, Callable[[], CheckResult]] = {
    "softmax_hessian": matrices.check_softmax_hessian,
    "ggn_fisher_softmax": matrices.check_ggn_fisher_softmax,
    "ggn_fisher_squared_error": matrices.check_ggn_fisher_squared_error,
    "ggn_fisher_poisson_log": matrices.check_ggn_fisher_poisson_log,
    "ggn_fisher_sigmoid_squared_error": matrices.check_ggn_fisher_sigmoid_squared_error,
    "ggn_fisher_poisson_identity": matrices.check_ggn_fisher_poisson_identity,
    "fisher_expected_hessian": matrices.check_fisher_expected_hessian,
    "score_mean_zero": matrices.check_score_mean_zero,
    "hessian_ggn_linear": matrices.check_hessian_ggn_linear,
    "hessian_ggn_plus_residual": matrices.check_hessian_ggn_plus_residual,
    "hessian_ggn_nonlinear": matrices.check_hessian_ggn_nonlinear,
    "empirical_fisher": matrices.check_empirical_fisher,
    "kfac_single_datum": approximations.check_kfac_single_datum,
    "kfac_single_datum_model": approximations.check_kfac_single_datum_model,
    "kfac_batch_error": approximations.check_kfac_batch_error,
    "kfac_batch_equal_grads": approximations.check_kfac_batch_equal_grads,
    "kfac_batch_exact": approximations.check_kfac_batch_exact,
    "kfac_deep_linear": approximations.check_kfac_deep_linear,
    "kfac_eigen_inverse": approximations.check_kfac_eigen_inverse,
    "factored_damping_expansion": approximations.check_factored_damping_expansion,
    "factored_solve_inverts_factored": approximations.check_factored_solve_inverts_factored,
    "factored_solve_exact": approximations.check_factored_solve_exact,
    "diagonal_structured": approximations.check_diagonal_structured,
    "block_diagonal_structured": approximations.check_block_diagonal_structured,
    "diagonal_general": approximations.check_diagonal_general,
    "block_diagonal_general": approximations.check_block_diagonal_general,
    "tonga_push_through": approximations.check_tonga_push_through,
}

#: Claims that are false: their checks must fail (each shows the nonzero difference).
NEGATIVE = frozenset(
    {
        "ggn_fisher_sigmoid_squared_error",
        "ggn_fisher_poisson_identity",
        "hessian_ggn_nonlinear",
        "kfac_batch_exact",
        "factored_solve_exact",
        "diagonal_general",
        "block_diagonal_general",
    }
)


def run_curvature_checks(names: Iterable[str] | None = None) -> list[CheckResult]:
    """Run the named checks (all by default), each timed; a crash is a failed ``-`` result."""
    names = list(CHECKS if names is None else names)
    unknown = [n for n in names if n not in CHECKS]
    if unknown:
        raise KeyError(f"unknown curvature checks {unknown}; known: {', '.join(CHECKS)}")
    return [_timed(name) for name in names]


def _timed(name: str) -> CheckResult:
    """The check's result, computed once per process (a check takes no arguments)."""
    r = _result(name)
    return CheckResult(r.name, r.passed, r.method, r.detail, r.seconds)


@cache
def _result(name: str) -> CheckResult:
    start = time.perf_counter()
    try:
        r = CHECKS[name]()
    except Exception as exc:  # noqa: BLE001 - one broken check must not hide the others
        r = unfinished(name, exc)
    return CheckResult(r.name, r.passed, r.method, r.detail, time.perf_counter() - start)


def as_expected(name: str, result: CheckResult) -> bool:
    """Whether a check came out as it should: positives pass symbolically, negatives fail
    symbolically (a proved nonzero difference, not a crash)."""
    if name in NEGATIVE:
        return not result.passed and result.method == "symbolic"
    return result.passed and result.method == "symbolic"


def stated(name: str, result: CheckResult) -> CheckResult:
    """The result as a report lists it: a negative case becomes the true claim "NOT: ...", which
    passes exactly when the false claim was refuted."""
    if name not in NEGATIVE:
        return result
    ok = as_expected(name, result)
    return CheckResult(f"NOT: {result.name}", ok, result.method, result.detail, result.seconds)

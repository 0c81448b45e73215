"""The runtime of the generated NumPy second-order methods of the "damped" rule: their error,
their result type and the minimiser loop they share. Depends on NumPy only.

A generated module binds the step derived from its spec; this module drives it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Array = np.ndarray


class NotPositiveDefiniteError(np.linalg.LinAlgError):
    """The damped curvature is not positive definite (a ValueError too)."""


@dataclass
class Result:
    """Outcome of ``minimize``; the fields follow scipy.optimize.OptimizeResult."""

    x: Array
    fun: float
    grad_norm: float
    nit: int  # steps taken
    nfev: int
    ngev: int
    nhev: int  # dense Hessian evaluations
    nhessp: int  # Hessian-vector products (n per curvature when only hessp is given)
    success: bool
    status: int  # 0 converged, 1 max_iter, 2 damped curvature not positive definite, 3 non-finite
    message: str


def dense_hessian(
    hess: Callable[[Array], Array] | None,
    hessp: Callable[[Array, Array], Array] | None,
    x: Array,
) -> tuple[Array, int, int]:
    """The dense Hessian at x, from hess or from n Hessian-vector products; with the counts
    (Hessian evaluations, products) it took."""
    if hess is not None:
        return np.asarray(hess(x), dtype=float), 1, 0
    eye = np.eye(x.size)
    columns = [np.asarray(hessp(x, e), dtype=float) for e in eye]
    return np.column_stack(columns) if columns else np.zeros((0, 0)), 0, x.size


def minimize_damped(
    fun: Callable[[Array], float],
    grad: Callable[[Array], Array],
    x: Array,
    hess: Callable[[Array], Array] | None,
    hessp: Callable[[Array, Array], Array] | None,
    damped_step: Callable[[Array, Array, Array], Array],
    *,
    gtol: float,
    max_iter: int,
    callback: Callable[[Array], None] | None,
    not_positive_definite: str,
) -> Result:
    """Take ``x = damped_step(x, g, H)`` (H the dense Hessian at x) until ``||g|| <= gtol``.

    There is no line search. A damped curvature that is not positive definite stops the run
    (status 2, ``not_positive_definite`` in the message); a step to a non-finite f or gradient
    stops it at the last finite point (status 3); callback(x) is called after every step."""
    f = float(fun(x))
    g = np.asarray(grad(x), dtype=float)
    nfev = ngev = 1
    nhev = nhessp = 0
    status, message = 1, f"maximum number of iterations ({max_iter}) reached"
    k = 0
    while True:
        g_norm = math.sqrt(g @ g)
        if not (math.isfinite(f) and math.isfinite(g_norm)):
            status, message = 3, f"non-finite f or gradient at iteration {k}"
            break
        if g_norm <= gtol:
            status, message = 0, f"gradient norm {g_norm:.2e} <= gtol after {k} iterations"
            break
        if k >= max_iter:
            break
        h, evaluations, products = dense_hessian(hess, hessp, x)
        nhev += evaluations
        nhessp += products
        try:
            x_new = damped_step(x, g, h)
        except NotPositiveDefiniteError as exc:
            status, message = 2, f"{not_positive_definite} at iteration {k}: {exc}"
            break
        f_new = float(fun(x_new))
        g_new = np.asarray(grad(x_new), dtype=float)
        nfev += 1
        ngev += 1
        if not (math.isfinite(f_new) and np.all(np.isfinite(g_new))):
            status, message = 3, f"non-finite f or gradient after the step of iteration {k}"
            break
        x, f, g = x_new, f_new, g_new
        k += 1
        if callback is not None:
            callback(x.copy())
    return Result(x, f, math.sqrt(g @ g), k, nfev, ngev, nhev, nhessp, status == 0, status, message)


def check_curvature(name: str, c: Array, damping: float, damping_name: str) -> None:
    """Every c_i + damping must be positive (in c's dtype), else the step is not a descent step."""
    low = np.min(c, initial=np.inf) + c.dtype.type(damping)
    if not low > 0:
        i = int(np.argmin(c)) if not math.isnan(low) else int(np.argmax(np.isnan(c)))
        raise NotPositiveDefiniteError(
            f"{name} + {damping_name} must be positive everywhere (the damped diagonal must be "
            f"positive definite), but entry {i} gives {float(c.reshape(-1)[i] + damping)!r}"
        )

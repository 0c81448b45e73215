"""The trust-region method of the generated JAX minimiser: the driver, with every derivative
from JAX (the subproblem solvers are ``_subproblem``'s). Depends on JAX only.

The algorithm, its constants, its status codes and its Result are the NumPy runtime's
(``symopt_numpy/_trust_region.py``), so the iterates are NumPy's up to rounding (measured on
symopt.problems by symopt's tests/test_jax_trust_region.py: the same status and counts, iterates
within 1e-10 but where the path itself amplifies rounding, as on Rosenbrock n = 100, and CG
iterations within a few, as near x* g is mostly rounding). What differs is where the
derivatives come from: the user gives only f (a JAX-traceable function of a 1-D array); the
gradient is ``jax.grad(f)``, a Hessian-vector product ``jax.jvp`` of ``jax.grad(f)`` (forward
over reverse: the Hessian is never formed), the dense Hessian of the exact subproblem and of the
final check ``jax.hessian(f)``. f is only ever called while JAX traces it.

Compilation: f, its gradient, its dense Hessian, the whole Steihaug-CG loop (a
``jax.lax.while_loop``, one Hessian-vector product per CG iteration) and one Moré-Sorensen
factorisation with all it derives are ``jax.jit`` functions that take f (or the Hessian-vector
product) as a static argument, so jit's cache keeps them per f: a second call with the same f
(and size) compiles nothing; a new lambda per call compiles again. The driver loop and the
Moré-Sorensen iteration stay in Python on purpose: they are a few scalar decisions per step
(accept, the radius, the secular-equation bracket), taken on the host exactly as NumPy's code
takes them, around the compiled kernels; a ``lax`` loop would evaluate every branch of them,
and could not call the callback or count evaluations the way the NumPy minimiser does.

Precision: like the NumPy runtime (which converts x0 to float64), this computes in float64
whatever the dtype of x0; its constants (gtol 1e-8, MIN_RADIUS 1e-14, the tolerances of the exact
subproblem) are float64's. JAX computes in float32 unless 64-bit mode is on, so
:func:`require_x64` refuses to run without it rather than silently lose precision.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp

from ._dense import is_positive_semidefinite
from ._subproblem import Step, TrustRegion, exact_step, norm, solve_damped, steihaug_step

__all__ = [
    "Result",
    "Step",
    "TrustRegion",
    "cg_tolerance",
    "exact_step",
    "hessian_vector_product",
    "minimize",
    "require_x64",
    "solve_damped",
    "steihaug_step",
    "update_radius",
]

Array = jax.Array


def require_x64() -> None:
    """Refuse to run unless JAX computes float64 as float64 (64-bit mode)."""
    if jax.dtypes.canonicalize_dtype(jnp.float64) != jnp.float64:
        raise RuntimeError(
            "the JAX trust-region minimiser computes in float64, as the NumPy one does, but "
            "JAX's 64-bit mode is off: call jax.config.update('jax_enable_x64', True) first"
        )


@dataclass
class Result:
    """Outcome of ``minimize``; the fields follow scipy.optimize.OptimizeResult."""

    x: Array
    fun: float
    grad_norm: float
    nit: int  # trust-region iterations, rejected steps included (as scipy counts them)
    nfev: int
    ngev: int
    nhev: int  # dense Hessian evaluations (one more for the final second-order check)
    nhessp: int  # Hessian-vector products
    success: bool
    status: int  # 0 converged, 1 max_iter, 2 radius collapsed, 3 non-finite, 4 saddle point
    message: str


@dataclass(frozen=True)
class JvpOfGrad:
    """H v at x as ``jax.jvp`` of ``jax.grad(f)`` (forward over reverse); equal (and hashed)
    by f, so the kernels compiled for it are reused across calls."""

    f: Callable[[Array], Array]

    def __call__(self, x: Array, v: Array) -> Array:
        return jax.jvp(jax.grad(self.f), (x,), (v,))[1]


def hessian_vector_product(f: Callable[[Array], Array]) -> JvpOfGrad:
    """(x, v) -> H(x) v for f, without forming H."""
    return JvpOfGrad(f)


@partial(jax.jit, static_argnums=0)
def _value(f: Callable, x: Array) -> Array:
    return f(x)


@partial(jax.jit, static_argnums=0)
def _grad(f: Callable, x: Array) -> Array:
    return jax.grad(f)(x)


@partial(jax.jit, static_argnums=0)
def _hess(f: Callable, x: Array) -> Array:
    return jax.hessian(f)(x)


_is_psd = jax.jit(is_positive_semidefinite)


def update_radius(
    radius: float, rho: float, step_norm: float, on_boundary: bool, hyper: dict[str, float]
) -> float:
    """Next radius from rho = actual / predicted reduction and the step length.

    Shrinking to a fraction of ||d|| (not of r) lets a failed interior step cut the radius
    below its own length at once; expansion is to a multiple of ||d||, only on the boundary.
    """
    if rho < hyper["shrink_below"]:
        return hyper["shrink"] * step_norm
    if rho > hyper["expand_above"] and on_boundary:
        return min(max(radius, hyper["expand"] * step_norm), hyper["max_radius"])
    return radius


def cg_tolerance(g_norm: float, g0_norm: float, forcing: float) -> float:
    """CG residual target min(forcing, sqrt(||g|| / ||g0||)) ||g||: superlinear near a
    minimum (Dembo-Eisenstat-Steihaug) and invariant to the scale of f."""
    return min(forcing, math.sqrt(g_norm / g0_norm)) * g_norm


@partial(jax.jit, static_argnums=0)
def _trial(method: TrustRegion, x: Array, g: Array, d: Array, hd: Array) -> tuple[Array, Array]:
    """x + d, and (m(0) - m(d), ||d||)."""
    return x + d, jnp.array([method.predicted_reduction(g, d, hd), jnp.sqrt(d @ d)])


def minimize(
    method: TrustRegion,
    fun: Callable[[Array], Array],
    x0: Array,
    hessp: Callable[[Array, Array], Array] | None,
    *,
    gtol: float,
    max_iter: int | None,
    subproblem: str,
    check_second_order: bool,
    callback: Callable[[Array], None] | None,
    hyper: dict[str, float],
) -> Result:
    """The trust-region driver (the generated module's ``minimize`` documents it); ``hyper``
    holds the radius rule's hyperparameters, already checked."""
    require_x64()
    x = jnp.asarray(x0, dtype=jnp.float64)
    if x.ndim != 1:
        raise ValueError(f"x0 must be a 1-D array, got shape {x.shape}")
    n = x.size
    max_iter = 200 * n if max_iter is None else max_iter
    if subproblem == "auto":  # the dense Hessian is always at hand: jax.hessian
        subproblem = "exact" if n <= method.exact_max_n else "cg"
    if subproblem not in ("exact", "cg"):
        raise ValueError(f"unknown subproblem {subproblem!r}; use 'exact', 'cg' or 'auto'")
    hessp = hessian_vector_product(fun) if hessp is None else hessp

    nhev = nhessp = 0
    f = float(_value(fun, x))
    g = _grad(fun, x)
    nfev = ngev = 1
    g0_norm = float(norm(g))
    radius = float(hyper["radius0"])
    h = None  # dense Hessian at x, evaluated lazily and kept while x is unchanged
    lam_lb_hint = 0.0  # after a rejection r shrinks and lam* only grows: keep the lower bound
    status, message = 1, f"maximum number of iterations ({max_iter}) reached"
    k = 0
    while True:
        g_norm = float(norm(g))
        if not (math.isfinite(f) and math.isfinite(g_norm)):
            status, message = 3, f"non-finite f or gradient at iteration {k}"
            break
        if g_norm <= gtol:
            status, message = 0, f"gradient norm {g_norm:.2e} <= gtol after {k} iterations"
            break
        if k >= max_iter:
            break
        if radius < method.min_radius * max(1.0, float(norm(x))):
            status = 2
            message = f"trust radius collapsed to {radius:.1e} at iteration {k} (f = {f:.6g})"
            break
        if subproblem == "exact":
            if h is None:
                h = _hess(fun, x)
                nhev += 1
            step = exact_step(method, g, h, radius, lam_lb_hint=lam_lb_hint)
        else:
            tol = cg_tolerance(g_norm, g0_norm, method.cg_forcing)
            step = steihaug_step(g, hessp, x, radius, tol)
            nhessp += step.inner
        x_new, scalars = _trial(method, x, g, step.d, step.hd)
        pred, step_norm = scalars.tolist()
        f_new = float(_value(fun, x_new))
        nfev += 1
        # rho = (f(x) - f(x + d)) / (m(0) - m(d)); a non-finite f(x + d) counts as a failure
        rho = (f - f_new) / pred if pred > 0.0 and math.isfinite(f_new) else -math.inf
        new_radius = update_radius(radius, rho, step_norm, step.on_boundary, hyper)
        if rho > hyper["eta"]:
            x, f = x_new, f_new
            g = _grad(fun, x)
            ngev += 1
            h = None
            lam_lb_hint = 0.0
            if callback is not None:
                callback(x)
        elif new_radius < radius:
            lam_lb_hint = step.lam_lb
        radius = new_radius
        k += 1
    if status == 0 and check_second_order:
        if h is None:
            h = _hess(fun, x)
            nhev += 1
        if not bool(_is_psd(h, method.psd_tol)):
            status = 4
            message = (
                f"stopped at a saddle point after {k} iterations: the gradient vanishes "
                "but the Hessian is not positive semidefinite"
            )
    grad_norm = float(norm(g))
    return Result(x, f, grad_norm, k, nfev, ngev, nhev, nhessp, status == 0, status, message)

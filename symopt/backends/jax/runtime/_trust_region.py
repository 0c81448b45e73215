"""The trust-region method of the generated JAX minimiser: the driver, with every derivative
from JAX (the subproblem solvers are ``_subproblem``'s). Depends on JAX only.

The algorithm, its constants, its status codes and its Result are the NumPy runtime's
(``symopt_numpy/_trust_region.py``), so the iterates are NumPy's up to rounding (measured by
symopt's tests/test_jax_trust_region.py: on symopt.problems, NaN and inf cases included, the
same status, message and counts and iterates within 1e-9, where the same derivatives are
given; with JAX's own derivatives, as here, iterates within 1e-10 but where the path itself
amplifies rounding, as on Rosenbrock n = 100). What differs is where the
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
from ._subproblem import (
    Step,
    TrustRegion,
    exact_step,
    model_minimiser,
    norm,
    solve_damped,
    steihaug_run,
    steihaug_step,
)

__all__ = [
    "STATUS",
    "Result",
    "Step",
    "TrustRegion",
    "cg_tolerance",
    "choose_subproblem",
    "exact_step",
    "hessian_vector_product",
    "minimize",
    "ratio",
    "require_x64",
    "solve_damped",
    "steihaug_step",
    "update_radius",
]

Array = jax.Array
EPS = 2.0**-52  # float64's machine epsilon, as np.finfo(float).eps in the NumPy runtime

#: Status codes of Result.status (the same in every target).
STATUS = {
    0: "converged",
    1: "maximum number of iterations reached",
    2: "trust radius collapsed",
    3: "non-finite f, gradient or Hessian at the current point",
    4: "stopped at a saddle point",
}


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
    status: int  # see STATUS
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


@jax.jit
def _finite(a: Array) -> Array:
    return jnp.all(jnp.isfinite(a))


def update_radius(
    radius: float,
    rho: float,
    step_norm: float,
    on_boundary: bool,
    x_scale: float,
    hyper: dict[str, float],
) -> float:
    """Next radius from rho = actual / predicted reduction and the step length.

    Shrinking to a fraction of ||d|| (not of r) lets a failed interior step cut the radius
    below its own length at once; expansion is to a multiple of ||d||, only on the boundary,
    and at most max_radius x_scale, x_scale = max(1, ||x||): the bound scales with the point.
    """
    if rho < hyper["shrink_below"]:
        return hyper["shrink"] * step_norm
    if rho > hyper["expand_above"] and on_boundary:
        return min(max(radius, hyper["expand"] * step_norm), hyper["max_radius"] * x_scale)
    return radius


def ratio(f: float, f_new: float, predicted: float, rounding: float) -> float:
    """rho = (f(x) - f(x + d) + delta) / (m(0) - m(d) + delta), delta = rounding eps |f(x)|.

    Conn, Gould & Toint (2000), 17.4.2: near a minimiser both differences fall to the rounding
    error of f, and delta keeps rho near 1 instead of collapsing the radius; relative to |f|
    (not max(1, |f|)) it is invariant to the scale of f. A step without a positive finite
    predicted decrease, or to a non-finite f(x + d), gets -inf (rejected, the radius shrinks).
    """
    if not (predicted > 0.0 and math.isfinite(predicted) and math.isfinite(f_new)):
        return -math.inf
    delta = rounding * EPS * abs(f)
    return ((f - f_new) + delta) / (predicted + delta)


def cg_tolerance(g_norm: float, g0_norm: float, forcing: float) -> float:
    """CG residual target min(forcing, sqrt(||g|| / ||g0||)) ||g||: superlinear near a
    minimum (Dembo-Eisenstat-Steihaug) and invariant to the scale of f."""
    return min(forcing, math.sqrt(g_norm / g0_norm)) * g_norm


def choose_subproblem(
    subproblem: str, n: int, has_hess: bool, has_hessp: bool, exact_max_n: int
) -> str:
    """The solver, "exact" or "cg"; for "auto" by cost, as the NumPy runtime chooses: exact
    while a factorisation stays small (n <= exact_max_n) when cheap Hessian-vector products are
    at hand too; JAX always has both (``jax.hessian``, jvp of grad): exact iff n <= exact_max_n.
    """
    if subproblem not in ("exact", "cg", "auto"):
        raise ValueError(f"unknown subproblem {subproblem!r}; use 'exact', 'cg' or 'auto'")
    if not (has_hess or has_hessp):
        raise ValueError("a trust-region Newton method needs hess or hessp")
    if subproblem == "exact" and not has_hess:
        raise ValueError('subproblem="exact" needs the dense Hessian (hess)')
    if subproblem != "auto":
        return subproblem
    return "exact" if has_hess and (not has_hessp or n <= exact_max_n) else "cg"


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
    holds the radius rule's hyperparameters, already checked.

    Non-finite values, as in the NumPy driver: f or g not finite at the current point, or a
    Hessian (or Hessian-vector product) there that is not, stop with status 3; a trial point
    where f or g is not finite is rejected like a failed step, and the radius shrinks.
    """
    require_x64()
    x = jnp.asarray(x0, dtype=jnp.float64)
    if x.ndim != 1:
        raise ValueError(f"x0 must be a 1-D array, got shape {x.shape}")
    n = x.size
    max_iter = 200 * n if max_iter is None else max_iter
    # the dense Hessian (jax.hessian) and Hessian-vector products (jvp of grad) are both at hand
    subproblem = choose_subproblem(subproblem, n, True, True, method.exact_max_n)
    hessp = hessian_vector_product(fun) if hessp is None else hessp
    nhev = nhessp = 0
    f = float(_value(fun, x))
    g = _grad(fun, x)
    nfev = ngev = 1
    g0_norm = float(norm(g))
    # The radius is unlimited until the model is unbounded below (then radius0 max(1, ||x||))
    # or a step fails (then shrink ||d||): while Newton's steps work they are taken whole.
    radius = math.inf
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
        x_scale = max(1.0, float(norm(x)))
        if radius < method.min_radius * x_scale:
            status = 2
            message = f"trust radius collapsed to {radius:.1e} at iteration {k} (f = {f:.6g})"
            break
        if h is None and subproblem == "exact":
            h = _hess(fun, x)
            nhev += 1
            if not bool(_finite(h)):
                status, message = 3, f"non-finite Hessian at iteration {k}"
                break
        # H v: f's (counted) for "cg", the dense H's for "exact"
        hv, at = (hessp, x) if subproblem == "cg" else (jnp.matmul, h)
        tol = cg_tolerance(g_norm, g0_norm, method.cg_forcing)
        step = None
        if radius == math.inf:
            # no radius yet: the model's minimiser while the model is bounded below
            step, products = model_minimiser(method, g, h, hv, at, tol)
            nhessp += products if subproblem == "cg" else 0
            if step is None:
                radius = hyper["radius0"] * x_scale
        if step is None and subproblem == "exact":
            step = exact_step(method, g, h, radius, lam_lb_hint=lam_lb_hint)
        elif step is None:
            step, products = steihaug_run(method, g, hv, at, radius, tol)
            nhessp += products
            if step is None:
                status, message = 3, f"non-finite Hessian-vector product at iteration {k}"
                break
        x_new, scalars = _trial(method, x, g, step.d, step.hd)
        pred, step_norm = scalars.tolist()
        f_new = float(_value(fun, x_new))
        nfev += 1
        rho = ratio(f, f_new, pred, method.rounding)
        g_new = None
        if rho > hyper["eta"]:
            g_new = _grad(fun, x_new)
            ngev += 1
            if not bool(_finite(g_new)):
                rho, g_new = -math.inf, None  # a trial point without a finite gradient
        new_radius = update_radius(radius, rho, step_norm, step.on_boundary, x_scale, hyper)
        if g_new is not None:
            x, f, g = x_new, f_new, g_new
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

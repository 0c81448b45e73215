"""What the dense second-order modules of symopt_c (Newton, trust region) share: the ctypes
structures of the C runtime (include/symopt/runtime.h), the bindings of a module's C functions,
and the Python side of each function. A generated module binds its spec's prefix, constants and
hyperparameters, and documents its functions; the algorithms are in src/runtime_*.c."""

from __future__ import annotations

import ctypes
import math
from dataclasses import dataclass

import numpy as np

from . import _lib
from ._second_order import NotPositiveDefiniteError, Objective, matrix, pointer, vector

#: minimize's status codes beyond the NumPy version's 0..4 (never in a returned Result).
STOPPED, OUT_OF_MEMORY = 5, 6
_size, _ptr, _dbl, _int, _long = (
    ctypes.c_size_t,
    ctypes.c_void_p,
    ctypes.c_double,
    ctypes.c_int,
    ctypes.c_long,
)
#: The C functions symopt_NAME_KEY of each kind of module: (restype, argtypes).
SIGNATURES = {
    "newton": {
        "cholesky": (_int, [_size, _ptr, _ptr, _ptr]),
        "solve": (None, [_size, _ptr, _ptr, _ptr]),
        "is_positive_semidefinite": (_int, [_size, _ptr, _int, _ptr]),
        "step": (_int, [_size, _ptr, _ptr, _ptr, _ptr, _ptr]),
        "minimize": (_int, [_size, _ptr, _ptr, _ptr, _int, _int, _dbl, _long, _ptr, _ptr]),
    },
    "radius": {
        "cholesky": (_int, [_size, _ptr, _dbl, _ptr, _ptr]),
        "solve": (None, [_size, _ptr, _ptr, _ptr]),
        "is_positive_semidefinite": (_int, [_size, _ptr, _int, _ptr]),
        "predicted": (_dbl, [_size, _ptr, _ptr, _ptr]),
        "update_radius": (_dbl, [_ptr, _dbl, _dbl, _dbl, _int, _dbl]),
        "step": (_int, [_size, _ptr, _ptr, _dbl, _dbl, _dbl, _dbl, _int, *[_ptr] * 5]),
        "cg_step": (_int, [_size, _ptr, _ptr, _dbl, _dbl, _long, _ptr, _ptr, _ptr, _ptr]),
        "minimize": (_int, [_size, _ptr, _ptr, _ptr, _ptr, _int, _int, _dbl, _long, _ptr, _ptr]),
    },
}
_bound: dict = {}


def functions(prefix: str, kind: str) -> dict:
    """key -> the C function ``PREFIX_KEY`` with its signature; builds the library if needed."""
    if prefix not in _bound:
        lib = _lib.library()
        bound = {}
        for key, (restype, argtypes) in SIGNATURES[kind].items():
            function = getattr(lib, f"{prefix}_{key}")
            function.restype = restype
            function.argtypes = argtypes
            bound[key] = function
        _bound[prefix] = bound
    return _bound[prefix]


class NewtonResultC(ctypes.Structure):
    """symopt_runtime_newton_result."""

    _fields_ = [
        ("fun", _dbl),
        ("grad_norm", _dbl),
        ("pivot", _dbl),
        ("column", _long),
        ("nit", _long),
        ("nfev", _long),
        ("ngev", _long),
        ("nhev", _long),
        ("n_fallback", _long),
        ("maximum", _int),
        ("status", _int),
    ]


class RadiusHyper(ctypes.Structure):
    """symopt_runtime_radius_hyper."""

    _fields_ = [
        (name, _dbl)
        for name in ("eta", "shrink_below", "shrink", "expand_above", "expand", "radius0")
    ] + [("max_radius", _dbl)]


class StepInfo(ctypes.Structure):
    """symopt_runtime_radius_step_info."""

    _fields_ = [("lam_lower", _dbl), ("on_boundary", _int), ("hard_case", _int), ("inner", _int)]


class RadiusResultC(ctypes.Structure):
    """symopt_runtime_radius_result."""

    _fields_ = [
        ("fun", _dbl),
        ("grad_norm", _dbl),
        ("radius", _dbl),
        ("nit", _long),
        ("nfev", _long),
        ("ngev", _long),
        ("nhev", _long),
        ("status", _int),
        ("not_finite", _int),
    ]


#: The trust region's status 3 messages by symopt_runtime_radius_result.not_finite.
NOT_FINITE = {1: "f or gradient", 2: "Hessian", 3: "Hessian-vector product"}


@dataclass
class NewtonResult:
    """Outcome of Newton's ``minimize``; the fields follow scipy.optimize.OptimizeResult."""

    x: np.ndarray
    fun: float
    grad_norm: float
    nit: int  # Newton (or fallback) steps taken
    nfev: int
    ngev: int
    nhev: int  # dense Hessian evaluations (the final second-order check included)
    nhessp: int  # always 0: Newton here needs the dense Hessian
    success: bool
    status: int  # 0 converged, 1 max_iter, 2 H not positive definite, 3 non-finite, 4 saddle
    message: str
    n_fallback: int = 0  # iterations that took the on_indefinite fallback step


@dataclass
class RadiusResult:
    """Outcome of the trust region's ``minimize``; the fields follow scipy's OptimizeResult."""

    x: np.ndarray
    fun: float
    grad_norm: float
    nit: int  # trust-region iterations, rejected steps included (as scipy counts them)
    nfev: int
    ngev: int
    nhev: int  # dense Hessian evaluations (one more for the final second-order check)
    nhessp: int  # always 0: the C version uses the dense Hessian
    success: bool
    status: int  # 0 converged, 1 max_iter, 2 radius collapsed, 3 non-finite, 4 saddle point
    message: str


@dataclass
class Step:
    """A subproblem's solution: the fields of symopt_numpy's Step, and what C reports besides."""

    d: np.ndarray
    hd: np.ndarray  # H d
    on_boundary: bool
    lam: float  # the multiplier d was computed with; NaN for CG
    lam_lb: float  # a lower bound on the multiplier for any smaller radius (0 for CG)
    inner: int  # Cholesky factorisations (exact) or CG iterations
    predicted: float  # m(0) - m(d)
    hard_case: bool  # d was finished along an approximate eigenvector (exact)
    converged: bool  # a tolerance was met before the factorisations ran out (exact)


def cholesky(c: dict, H, *lam: float) -> tuple[np.ndarray, int, float]:
    """(L, k, pivot) as symopt_numpy's cholesky: k = -1 on success, else the failing column."""
    H = matrix("H", H)
    n = H.shape[0]
    low = np.empty((n, n))
    pivot = ctypes.c_double()
    fail = c["cholesky"](n, pointer(H), *map(float, lam), pointer(low), ctypes.byref(pivot))
    return low, fail - 1, pivot.value


def solve(c: dict, low, g) -> np.ndarray:
    low = matrix("L", low)
    g = vector("g", g, low.shape[0])
    d = np.empty(g.size)
    c["solve"](g.size, pointer(low), pointer(g), pointer(d))
    return d


def is_positive_semidefinite(c: dict, H) -> bool:
    H = matrix("H", H)
    n = H.shape[0]
    work = np.empty(n * n + 4 * n + 1)  # kept alive through the call
    return bool(c["is_positive_semidefinite"](n, pointer(H), 0, pointer(work)))


def newton_step(c: dict, H, g) -> np.ndarray:
    H = matrix("H", H)
    g = vector("g", g, H.shape[0])
    n = g.size
    d = np.empty(n)
    pivot = ctypes.c_double()
    work = np.empty(n * n + 1)
    fail = c["step"](n, pointer(H), pointer(g), pointer(d), pointer(work), ctypes.byref(pivot))
    if fail:
        raise NotPositiveDefiniteError(fail - 1, pivot.value)
    return d


def _radius(radius: float) -> float:
    if not (math.isfinite(radius) and radius > 0):
        raise ValueError(f"radius must be positive and finite, got {radius!r}")
    return float(radius)


def exact_step(c, H, g, radius, lam_lb_hint, k_easy, k_hard, max_iter) -> Step:
    H = matrix("H", H)
    g = vector("g", g, H.shape[0])
    radius = _radius(radius)
    n = g.size
    d = np.empty(n)
    lam, predicted, info = ctypes.c_double(), ctypes.c_double(), StepInfo()
    work = np.empty(n * n + 4 * n + 1)  # kept alive through the call
    status = c["step"](
        *(n, pointer(H), pointer(g), radius, float(lam_lb_hint), float(k_easy), float(k_hard)),
        *(int(max_iter), pointer(d), ctypes.byref(lam), ctypes.byref(predicted), pointer(work)),
        ctypes.byref(info),
    )
    on_boundary, hard_case = bool(info.on_boundary), bool(info.hard_case)
    return Step(
        d, H @ d, on_boundary, lam.value, info.lam_lower, info.inner, predicted.value, hard_case,
        status == 0,
    )  # fmt: skip


def cg_step(c, H, g, radius, tol, max_iter) -> Step | None:
    H = matrix("H", H)
    g = vector("g", g, H.shape[0])
    radius = _radius(radius)
    n = g.size
    max_iter = 2 * n if max_iter is None else int(max_iter)
    d = np.empty(n)
    predicted, info = ctypes.c_double(), StepInfo()
    work = np.empty(n * n + 4 * n + 1)  # kept alive through the call
    failed = c["cg_step"](
        *(n, pointer(H), pointer(g), radius, float(tol), max_iter, pointer(d)),
        *(ctypes.byref(predicted), pointer(work), ctypes.byref(info)),
    )
    if failed:
        return None  # a product p^T H p was not finite, as symopt_numpy's steihaug_step
    on_boundary = bool(info.on_boundary)
    return Step(d, H @ d, on_boundary, math.nan, 0.0, info.inner, predicted.value, False, True)


def _start(fun, grad, x0, hess, callback, max_iter, what):
    if hess is None:
        raise ValueError(f"{what} needs the dense Hessian (hess)")
    x = vector("x0", np.array(x0, dtype=np.float64))
    max_iter = 200 * x.size if max_iter is None else int(max_iter)
    return x, max_iter, Objective(fun, grad, hess, callback)


def _finish(objective, status, n):
    objective.check()
    if status == OUT_OF_MEMORY:
        raise MemoryError(f"no memory for the workspace of n = {n}")


def newton_minimize(c, fun, grad, x0, hess, gtol, max_iter, mode, check, callback):
    """Newton's minimize; mode is the on_indefinite code (0 fail, 1 gradient, 2 solve)."""
    x, max_iter, objective = _start(fun, grad, x0, hess, callback, max_iter, "Newton's method")
    out = NewtonResultC()
    status = c["minimize"](
        *(x.size, pointer(x), objective.c, None, mode, int(bool(check)), float(gtol), max_iter),
        *(None, ctypes.byref(out)),
    )
    _finish(objective, status, x.size)
    k = out.nit
    if status == 2 and out.column == 0:
        message = f"the Hessian is singular at iteration {k}"
    elif status == 2:
        message = (
            f"the Hessian is not positive definite at iteration {k} (Cholesky pivot "
            f"{out.pivot:.3g} in column {out.column - 1}): the Newton step would not minimise "
            "the model"
        )
    elif status == 4:
        kind = "a maximum" if out.maximum else "a saddle point"
        message = (
            f"stopped at {kind} x = {np.array2string(x, precision=4)} after {k} "
            "iterations: the gradient vanishes but the Hessian is not positive semidefinite"
        )
    else:
        message = {
            0: f"gradient norm {out.grad_norm:.2e} <= gtol after {k} iterations",
            1: f"maximum number of iterations ({max_iter}) reached",
            3: f"non-finite f or gradient at iteration {k}",
        }[status]
    counts = (k, out.nfev, out.ngev, out.nhev, 0)
    return NewtonResult(
        x, out.fun, out.grad_norm, *counts, status == 0, status, message, out.n_fallback
    )


def radius_minimize(c, fun, grad, x0, hess, gtol, max_iter, mode, check, callback, hyper):
    """The trust region's minimize; mode is the subproblem code (0 auto, 1 exact, 2 cg)."""
    what = "the C trust-region method"
    if callback is not None:
        grad, callback = _accepted_only(grad, callback)
    x, max_iter, objective = _start(fun, grad, x0, hess, callback, max_iter, what)
    out = RadiusResultC()
    status = c["minimize"](
        *(x.size, pointer(x), objective.c, None, ctypes.byref(RadiusHyper(**hyper)), mode),
        *(int(bool(check)), float(gtol), max_iter, None, ctypes.byref(out)),
    )
    _finish(objective, status, x.size)
    k = out.nit
    message = {
        0: f"gradient norm {out.grad_norm:.2e} <= gtol after {k} iterations",
        1: f"maximum number of iterations ({max_iter}) reached",
        2: f"trust radius collapsed to {out.radius:.1e} at iteration {k} (f = {out.fun:.6g})",
        3: f"non-finite {NOT_FINITE.get(out.not_finite)} at iteration {k}",
        4: (
            f"stopped at a saddle point after {k} iterations: the gradient vanishes "
            "but the Hessian is not positive semidefinite"
        ),
    }[status]
    counts = (k, out.nfev, out.ngev, out.nhev, 0)
    return RadiusResult(x, out.fun, out.grad_norm, *counts, status == 0, status, message)


def _accepted_only(grad, callback):
    """(grad, callback) for the C trust region, which asks for g at a trial point before it
    accepts it (only where g is finite): callback(x) then runs for accepted points only."""
    finite = [True]

    def grad_seen(x):
        g = grad(x)
        finite[0] = bool(np.isfinite(g).all())
        return g

    def accepted(x):
        if finite[0]:
            callback(x)

    return grad_seen, accepted


def update_radius(c, defaults, radius, rho, step_norm, on_boundary, x_scale, hyper) -> float:
    values = {**defaults, **(hyper or {})}
    c_hyper = RadiusHyper(**{name: float(values[name]) for name in defaults})
    args = (float(radius), float(rho), float(step_norm), int(bool(on_boundary)), float(x_scale))
    return float(c["update_radius"](ctypes.byref(c_hyper), *args))


def predicted(c, g, d, Hd) -> float:
    g = vector("g", g)
    d, Hd = vector("d", d, g.size), vector("Hd", Hd, g.size)
    return float(c["predicted"](g.size, pointer(g), pointer(d), pointer(Hd)))

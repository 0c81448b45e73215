"""What the diagonal Newton modules of symopt_c share: the ctypes bindings of the kernels, the
class API over them (step with one curvature diagonal per parameter array, state_dict) and the
NumPy version's minimiser stepping through C. A generated module binds its spec's name, damping
and hyperparameters."""

from __future__ import annotations

import ctypes
import math
from dataclasses import dataclass

import numpy as np

from . import _arrays, _lib
from ._api import check_state_dict_keys

_bound: dict = {}


class NotPositiveDefiniteError(np.linalg.LinAlgError):
    """The damped diagonal diag(c) + lam I is not positive definite (a ValueError too)."""


@dataclass
class Result:
    """Outcome of ``minimize``; the fields follow scipy.optimize.OptimizeResult."""

    x: np.ndarray
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


def kernels(prefix: str, hypers: int) -> dict:
    """dtype -> (single-tensor step, multi-tensor step, check) ctypes functions ``PREFIX_*``;
    builds the library if needed."""
    if prefix not in _bound:
        lib = _lib.library()
        ptr, size, dbl = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_double
        out = {}
        for dtype, suffix in ((np.dtype(np.float32), "f32"), (np.dtype(np.float64), "f64")):
            single = getattr(lib, f"{prefix}_step_{suffix}")
            single.argtypes = [ptr, ptr, ptr, size, *[dbl] * hypers]
            single.restype = None
            multi = getattr(lib, f"{prefix}_step_multi_{suffix}")
            multi.argtypes = [size, ptr, ptr, ptr, ptr, *[dbl] * hypers]
            multi.restype = None
            check = getattr(lib, f"{prefix}_check_{suffix}")
            check.argtypes = [ptr, size, dbl]
            check.restype = size
            out[dtype] = (single, multi, check)
        _bound[prefix] = out
    return _bound[prefix]


def check_curvature(functions: dict, name: str, c, at: int, damping: str, value: float) -> None:
    """Every c_i + damping must be positive (in c's dtype), checked in C on the data at ``at``
    (c's, or an aligned copy's)."""
    bad = functions[c.dtype][2](at, c.size, value)
    if bad:
        entry = float(c.reshape(-1)[bad - 1] + c.dtype.type(value))
        raise NotPositiveDefiniteError(
            f"{name} + {damping} must be positive everywhere (the damped diagonal must be "
            f"positive definite), but entry {bad - 1} gives {entry!r}"
        )


def step_in_place(cls, w, g, c, hyper: dict) -> None:
    """One step of cls's method on one tensor, in place (aliasing and alignment as in _arrays:
    g and c may share memory with w, the step reads their values from before it)."""
    _arrays.check_array("w", w, w)
    _arrays.check_array("g", g, w, writeable=False)
    _arrays.check_array("c", c, w, writeable=False)
    values = [float(hyper[name]) for name in cls.DEFAULTS]
    cls.check_hyper(*values)
    functions = cls.kernels()
    staging = _arrays.Staging()
    w_at, g_at, c_at = _arrays.addresses([("w", w)], [("g", g), ("c", c)], staging)
    staging.before()
    check_curvature(functions, "c", c, c_at, cls.DAMPING, float(hyper[cls.DAMPING]))
    functions[w.dtype][0](w_at, g_at, c_at, w.size, *values)
    staging.after()


class DiagonalOptimizer:
    """Diagonal Newton over a list of float32/float64 NumPy arrays, updated in place: ``step(grads,
    diagonals)`` takes one gradient and one curvature diagonal per parameter array. Subclasses
    set PREFIX, DEFAULTS and DAMPING (the damping's name) and define ``check_hyper``."""

    PREFIX: str
    DEFAULTS: dict
    DAMPING: str

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        cls.hyperparameters = tuple(cls.DEFAULTS)

    def __init__(self, params, **hyper) -> None:
        self.params = list(params)
        for i, p in enumerate(self.params):
            _arrays.check_array(f"params[{i}]", p, p)
        for name, value in hyper.items():
            setattr(self, name, value)
        self.check_hyper(*(float(hyper[name]) for name in self.DEFAULTS))
        self._kernels = self.kernels()  # builds the library now if needed, so errors show early
        #: Steps taken so far.
        self.steps = 0

    @classmethod
    def kernels(cls) -> dict:
        return kernels(cls.PREFIX, len(cls.DEFAULTS))

    @staticmethod
    def check_hyper(*hyper: float) -> None:
        raise NotImplementedError

    def step(self, grads, diagonals) -> None:
        """Apply one step given one gradient and one curvature diagonal per parameter array."""
        grads, diagonals = list(grads), list(diagonals)
        for name, arrays in (("gradient", grads), ("diagonal", diagonals)):
            if len(arrays) != len(self.params):
                raise ValueError(f"expected {len(self.params)} {name} arrays, got {len(arrays)}")
        hyper = [float(getattr(self, name)) for name in self.DEFAULTS]
        self.check_hyper(*hyper)
        for i, p in enumerate(self.params):
            _arrays.check_array(f"params[{i}]", p, p)
        _arrays.check_arrays("grads", grads, self.params, writeable=False)
        _arrays.check_arrays("diagonals", diagonals, self.params, writeable=False)
        outputs = [(f"params[{i}]", p) for i, p in enumerate(self.params)]
        inputs = [(f"grads[{i}]", g) for i, g in enumerate(grads)]
        inputs += [(f"diagonals[{i}]", c) for i, c in enumerate(diagonals)]
        staging = _arrays.Staging()
        at = _arrays.addresses(outputs, inputs, staging)
        staging.before()
        damping = float(getattr(self, self.DAMPING))
        n = len(self.params)
        for i, c in enumerate(diagonals):
            name = f"diagonals[{i}]"
            check_curvature(self._kernels, name, c, at[2 * n + i], self.DAMPING, damping)
        by_dtype: dict = {}
        for i, p in enumerate(self.params):
            by_dtype.setdefault(p.dtype, []).append(i)
        for dtype, index in by_dtype.items():
            tables = [np.array([at[k * n + i] for i in index], dtype=np.uintp) for k in range(3)]
            sizes = np.array([self.params[i].size for i in index], dtype=np.uintp)
            addresses = [t.ctypes.data for t in tables]
            multi = self._kernels[dtype][1]
            multi(len(index), *addresses, sizes.ctypes.data, *hyper)
        staging.after()
        self.steps += 1

    def state_dict(self) -> dict:
        """Everything needed to resume: the step count and the hyperparameters."""
        return {
            "steps": self.steps,
            "hyper": {name: getattr(self, name) for name in self.hyperparameters},
        }

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore a :meth:`state_dict` (checked before anything changes)."""
        check_state_dict_keys(state_dict, ("steps", "hyper"))
        steps = _lib.check_steps(state_dict["steps"], 0)
        for name in state_dict["hyper"]:
            if name not in self.DEFAULTS:
                raise ValueError(f"unknown hyperparameter {name!r} in state_dict")
        for name, value in state_dict["hyper"].items():
            setattr(self, name, value)
        self.steps = steps


def minimize(cls, step, fun, grad, x0, hess, hessp, gtol, max_iter, callback, hyper) -> Result:
    """The NumPy version's minimiser: damped diagonal Newton steps by ``step(x, g, c, **hyper)``
    with the diagonal of hess(x) (or of n Hessian-vector products), no line search."""
    hyper = {name: float(value) for name, value in hyper.items()}
    cls.check_hyper(*hyper.values())
    if hess is None and hessp is None:
        raise ValueError("the diagonal Newton method needs hess or hessp")
    x = np.array(x0, dtype=float).reshape(-1)
    max_iter = 200 * x.size if max_iter is None else int(max_iter)
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
        if hess is not None:
            c = np.diag(np.asarray(hess(x), dtype=float)).copy()
            nhev += 1
        else:
            eye = np.eye(x.size)
            c = np.array([np.asarray(hessp(x, e), dtype=float)[i] for i, e in enumerate(eye)])
            nhessp += x.size
        x_new = x.copy()
        try:
            step(x_new, g, c, **hyper)
        except NotPositiveDefiniteError as exc:
            status, message = 2, f"{cls.NOT_POSITIVE_DEFINITE} at iteration {k}: {exc}"
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

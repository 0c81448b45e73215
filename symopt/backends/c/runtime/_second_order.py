"""What the second-order modules of symopt_c share: the objective behind the C callback, array
checks and the error of a failed Cholesky factorisation."""

from __future__ import annotations

import ctypes

import numpy as np

#: int objective(size_t n, const double *x, double *f, double *g, double *H, void *user)
OBJECTIVE = ctypes.CFUNCTYPE(
    ctypes.c_int,
    ctypes.c_size_t,
    ctypes.c_void_p,
    ctypes.c_void_p,
    ctypes.c_void_p,
    ctypes.c_void_p,
    ctypes.c_void_p,
)


class NotPositiveDefiniteError(np.linalg.LinAlgError):
    """The Cholesky factorisation failed: the pivot of ``column`` (0-based) is ``pivot`` <= 0."""

    def __init__(self, column: int, pivot: float) -> None:
        super().__init__(
            f"the matrix is not positive definite: Cholesky pivot {pivot:.3g} in column {column}"
        )
        self.column = column
        self.pivot = pivot


def aligned(a: np.ndarray) -> np.ndarray:
    """``a``, or a copy when its data address is not a multiple of 8 (C may not load doubles
    from there; np.ascontiguousarray keeps such an array, from np.frombuffer at an offset)."""
    return a if a.flags.aligned else a.copy()


def vector(name: str, a, n: int | None = None) -> np.ndarray:
    """``a`` as a C-contiguous, aligned float64 vector (of n elements when n is given)."""
    out = aligned(np.ascontiguousarray(a, dtype=np.float64))
    if out.ndim != 1 or (n is not None and out.size != n):
        want = "a vector" if n is None else f"a vector of {n}"
        raise ValueError(f"{name} must be {want}, got shape {out.shape}")
    return out


def matrix(name: str, a, n: int | None = None) -> np.ndarray:
    """``a`` as a C-contiguous, aligned float64 n x n matrix."""
    out = aligned(np.ascontiguousarray(a, dtype=np.float64))
    if out.ndim != 2 or out.shape[0] != out.shape[1] or (n is not None and out.shape[0] != n):
        want = "square" if n is None else f"{n} x {n}"
        raise ValueError(f"{name} must be a {want} matrix, got shape {out.shape}")
    return out


def pointer(a: np.ndarray) -> int:
    return a.ctypes.data


def _view(address: int, shape: tuple[int, ...]) -> np.ndarray:
    count = int(np.prod(shape))
    if count == 0:
        return np.zeros(shape)
    return np.ctypeslib.as_array((ctypes.c_double * count).from_address(address)).reshape(shape)


class Objective:
    """fun, grad and hess behind the C callback. The first exception stops the C driver (the
    callback returns 1) and is re-raised by :meth:`check`. ``callback(x)`` runs after every
    accepted step: the C drivers ask for g at x0 and then once per new iterate."""

    def __init__(self, fun, grad, hess, callback=None) -> None:
        self.fun, self.grad, self.hess, self.callback = fun, grad, hess, callback
        self.error: BaseException | None = None
        self.calls = 0
        self.c = OBJECTIVE(self._call)

    def _call(self, n, x, f, g, h, user) -> int:
        try:
            point = _view(x, (n,)).copy()
            if f:
                ctypes.c_double.from_address(f).value = float(self.fun(point.copy()))
            if g:
                _view(g, (n,))[...] = vector("grad(x)", self.grad(point.copy()), n)
            if h:
                _view(h, (n, n))[...] = matrix("hess(x)", self.hess(point.copy()), n)
            if g and self.calls and self.callback is not None:
                self.callback(point.copy())
            self.calls += 1
            return 0
        except BaseException as exc:  # re-raised by check()
            self.error = exc
            return 1

    def check(self) -> None:
        """Re-raise the exception that stopped the C driver, if any."""
        if self.error is not None:
            error, self.error = self.error, None
            raise error

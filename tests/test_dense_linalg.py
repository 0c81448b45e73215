"""The dense linear algebra under the second-order minimisers, in every target: NumPy
(symopt/backends/numpy/runtime/_dense.py), PyTorch (symopt/backends/torch/runtime/_dense.py) and
C (symopt/backends/c/runtime/runtime_dense.c, compiled here with a small model). All are blocked
or call LAPACK; the oracles are the column loops below (the algorithms as defined: the failing
column and its pivot), numpy.linalg and scipy.linalg. Sizes cross the block boundaries (64 in C,
128 in NumPy's Cholesky, 64 in its solves)."""

from __future__ import annotations

import ctypes
import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg

from symopt.backends.c.elementwise import CFLAGS
from symopt.backends.numpy.runtime import _dense as numpy_dense

torch = pytest.importorskip("torch")
from symopt.backends.torch.runtime import _dense as torch_dense  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ROOT = Path(__file__).resolve().parents[1]
C_RUNTIME = ROOT / "symopt" / "backends" / "c" / "runtime"
STRICT = ["-Wall", "-Wextra", "-Werror", "-pedantic"]
SIZES = [0, 1, 2, 7, 63, 64, 65, 128, 129, 200, 300]


# The column loops: the definitions the blocked versions must meet up to rounding.
def ref_cholesky(a):
    n = a.shape[0]
    low = np.zeros((n, n))
    for k in range(n):
        pivot = a[k, k] - low[k, :k] @ low[k, :k]
        if not pivot > 0.0:
            return low, k, float(pivot)
        low[k, k] = math.sqrt(pivot)
        low[k + 1 :, k] = (a[k + 1 :, k] - low[k + 1 :, :k] @ low[k, :k]) / low[k, k]
    return low, -1, 0.0


def ref_singular_pair(low):
    n = low.shape[0]
    p, w = np.zeros(n), np.empty(n)
    for k in range(n):
        wp, wm = (1.0 - p[k]) / low[k, k], (-1.0 - p[k]) / low[k, k]
        pp, pm = p[k + 1 :] + low[k + 1 :, k] * wp, p[k + 1 :] + low[k + 1 :, k] * wm
        if abs(wp) + np.abs(pp).sum() >= abs(wm) + np.abs(pm).sum():
            w[k], p[k + 1 :] = wp, pp
        else:
            w[k], p[k + 1 :] = wm, pm
    v = scipy.linalg.solve_triangular(low, w, lower=True, trans="T")
    return np.linalg.norm(w) / np.linalg.norm(v), v / np.linalg.norm(v)


def spd(rng, n):
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    return (q * rng.uniform(1.0, 10.0, n)) @ q.T


def failing_at(rng, n, k):
    """A symmetric matrix whose column loop fails first at column k, with pivot -1."""
    a = spd(rng, n)
    low = np.linalg.cholesky(a)
    a[k, k] -= low[k, k] ** 2 + 1.0  # the pivot a_kk - sum_{j<k} L_kj^2 becomes -1
    return a


def with_garbage_above(rng, low):
    """L with random numbers above the diagonal: the solvers read the lower triangle only."""
    return low + np.triu(rng.standard_normal(low.shape), 1)


# The C runtime's dense solvers, compiled with a model whose system is H + s I and b = g.
SHIM = r"""
#include "symopt/runtime.h"
#ifdef _OPENMP
#include <omp.h>
#endif
static double shim_system(size_t n, const double *H, double s, size_t i, size_t j)
{
    return H[i * n + j] + (i == j ? s : 0.0);
}
static double shim_rhs(size_t n, const double *g, size_t i)
{
    (void)n;
    return g[i];
}
static symopt_runtime_model shim_model = {.system = shim_system, .rhs = shim_rhs};
const symopt_runtime_model *shim(double psd_tol)
{
    shim_model.psd_tol = psd_tol;
    return &shim_model;
}
long shim_threads(int t)
{
#ifdef _OPENMP
    omp_set_num_threads(t);
    return (long)_OPENMP;
#else
    (void)t;
    return 0;
#endif
}
"""


def compiler() -> str:
    cc = next((c for c in ("cc", "gcc", "clang") if shutil.which(c)), None)
    if cc is None:
        pytest.skip("no C compiler")
    return cc


def build_c(folder: Path, flags: list[str]) -> ctypes.CDLL:
    (folder / "include" / "symopt").mkdir(parents=True, exist_ok=True)
    shutil.copy(C_RUNTIME / "runtime.h", folder / "include" / "symopt" / "runtime.h")
    for name in ("runtime_dense.c", "runtime_internal.h"):
        shutil.copy(C_RUNTIME / name, folder / name)
    (folder / "shim.c").write_text(SHIM)
    sources = [str(folder / "runtime_dense.c"), str(folder / "shim.c")]
    out = folder / "libdense.so"
    command = [compiler(), *CFLAGS, *STRICT, f"-I{folder / 'include'}", "-shared"]
    done = subprocess.run(
        [*command, "-o", str(out), *sources, *flags, "-lm"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    lib = ctypes.CDLL(str(out))
    lib.shim.restype = ctypes.c_void_p
    lib.shim.argtypes = [ctypes.c_double]
    lib.shim_threads.restype = ctypes.c_long
    return lib


def openmp_flags(tmp: Path) -> list[str]:
    probe = tmp / "probe.c"
    probe.write_text("int main(void) { return 0; }\n")
    done = subprocess.run([compiler(), "-fopenmp", str(probe), "-o", str(tmp / "probe")])
    return ["-fopenmp"] if done.returncode == 0 else []


class CDense:
    """The C functions with the NumPy module's signatures (the ones runtime_dense.c has)."""

    def __init__(self, lib: ctypes.CDLL):
        self.lib = lib

    @staticmethod
    def _ptr(a: np.ndarray) -> ctypes.c_void_p:
        return ctypes.c_void_p(a.ctypes.data)

    def cholesky(self, a, lam=0.0):
        a = np.ascontiguousarray(a, dtype=float)
        n = a.shape[0]
        low, pivot = np.full((n, n), np.pi), ctypes.c_double()  # pi: L must be overwritten
        model = ctypes.c_void_p(self.lib.shim(0.0))
        args = (model, ctypes.c_size_t(n), self._ptr(a), ctypes.c_double(lam), self._ptr(low))
        fail = self.lib.symopt_runtime_cholesky(*args, ctypes.byref(pivot))
        return low, fail - 1, pivot.value

    def solve_lower(self, low, b):
        low, y = np.ascontiguousarray(low, dtype=float), np.array(b, dtype=float)
        self.lib.symopt_runtime_forward(ctypes.c_size_t(y.size), self._ptr(low), self._ptr(y))
        return y

    def solve_upper_t(self, low, y):
        low, x, n = np.ascontiguousarray(low, dtype=float), np.array(y, dtype=float), y.size
        size = ctypes.c_size_t(n)
        self.lib.symopt_runtime_backward(size, size, self._ptr(low), self._ptr(x))
        return x

    def solve_cholesky(self, low, b):
        low, b = np.ascontiguousarray(low, dtype=float), np.array(b, dtype=float)
        d, model = np.empty_like(b), ctypes.c_void_p(self.lib.shim(0.0))
        args = (model, ctypes.c_size_t(b.size), self._ptr(low), self._ptr(b), self._ptr(d))
        self.lib.symopt_runtime_solve(*args)
        return d

    def is_positive_semidefinite(self, h, psd_tol):
        h = np.ascontiguousarray(h, dtype=float)
        n, scratch = h.shape[0], np.empty(h.shape)
        model = ctypes.c_void_p(self.lib.shim(psd_tol))
        args = (model, ctypes.c_size_t(n), self._ptr(h), 0, self._ptr(scratch))
        return bool(self.lib.symopt_runtime_is_positive_semidefinite(*args))


class TorchDense:
    """The torch module on NumPy arrays (tensors on the device, results back as arrays)."""

    def __init__(self, device: str):
        self.device = device

    def __getattr__(self, name):
        function = getattr(torch_dense, name)

        def call(*args):
            args = [
                torch.tensor(a, device=self.device) if isinstance(a, np.ndarray) else a
                for a in args
            ]
            out = function(*args)
            if isinstance(out, tuple):
                return tuple(o.cpu().numpy() if isinstance(o, torch.Tensor) else o for o in out)
            return out.cpu().numpy() if isinstance(out, torch.Tensor) else out

        return call


@pytest.fixture(scope="module")
def c_lib(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dense_c")
    return build_c(folder, openmp_flags(folder))


DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]
BACKENDS = ["numpy", *(f"torch-{d}" for d in DEVICES), "c"]
PYTHON_BACKENDS = [b for b in BACKENDS if b != "c"]


@pytest.fixture(params=BACKENDS)
def dense(request):
    if request.param == "numpy":
        return numpy_dense
    if request.param == "c":
        return CDense(request.getfixturevalue("c_lib"))
    return TorchDense(request.param.removeprefix("torch-"))


@pytest.fixture(params=PYTHON_BACKENDS)
def py_dense(request):
    return numpy_dense if request.param == "numpy" else TorchDense(request.param[6:])


def assert_factor_matches(got, want, scale=1.0):
    """(L, k, pivot) equal to the column loop's: k exactly, the pivot and the leading k columns
    to rounding, every other entry zero."""
    (low, k, pivot), (ref, ref_k, ref_pivot) = got, want
    assert k == ref_k
    cols = low.shape[0] if k < 0 else k
    if math.isnan(ref_pivot):
        assert math.isnan(pivot)
    else:
        assert pivot == pytest.approx(ref_pivot, rel=1e-9, abs=1e-12 * scale)
    finite = np.isfinite(ref[:, :cols]).all(axis=1)  # a NaN row may spread along its columns
    np.testing.assert_allclose(low[finite, :cols], ref[finite, :cols], rtol=0, atol=1e-12 * scale)
    assert not low[:, cols:].any() and not np.triu(low, 1).any()


@pytest.mark.parametrize("n", SIZES)
def test_cholesky_of_positive_definite_matrices(dense, n):
    a = spd(np.random.default_rng(n), n)
    got = dense.cholesky(a)
    assert_factor_matches(got, ref_cholesky(a), scale=10.0)
    if n:
        np.testing.assert_allclose(got[0], scipy.linalg.cholesky(a, lower=True), atol=1e-12)


@pytest.mark.parametrize(("n", "k"), [(1, 0), (7, 3), (64, 63), (65, 64), (129, 127), (129, 128),
                                      (300, 0), (300, 150), (300, 299)])  # fmt: skip
def test_cholesky_finds_the_failing_column_and_its_pivot(dense, n, k):
    a = failing_at(np.random.default_rng(10 * n + k), n, k)
    got = dense.cholesky(a)
    assert_factor_matches(got, ref_cholesky(a), scale=10.0)
    assert got[2] == pytest.approx(-1.0, abs=1e-9)
    # the leading k x k minor is positive definite, the (k+1) x (k+1) one is not
    assert np.linalg.eigvalsh(a[: k + 1, : k + 1])[0] < 0.0
    assert k == 0 or np.linalg.eigvalsh(a[:k, :k])[0] > 0.0


@pytest.mark.parametrize(("i", "j"), [(0, 0), (5, 2), (130, 3), (200, 150), (250, 250)])
def test_cholesky_stops_at_the_row_of_a_nan(dense, i, j):
    a = spd(np.random.default_rng(i + j), 300)
    a[i, j] = np.nan
    got = dense.cholesky(a)
    assert_factor_matches(got, ref_cholesky(a), scale=10.0)
    assert got[1] == i and math.isnan(got[2])


def test_cholesky_with_damping_in_c(c_lib):
    """The C factorisation reads the model's entries: H + lam I."""
    a = failing_at(np.random.default_rng(3), 150, 100)
    got = CDense(c_lib).cholesky(a, 2.0)
    assert_factor_matches(got, ref_cholesky(a + 2.0 * np.eye(150)), scale=10.0)


def test_c_cholesky_is_bit_identical_for_any_thread_count(c_lib):
    """The block updates split rows between OpenMP threads; each entry's sum keeps its order."""
    c = CDense(c_lib)
    a = spd(np.random.default_rng(4), 400)
    if not c_lib.shim_threads(1):
        pytest.skip("built without OpenMP")
    one = c.cholesky(a)[0]
    c_lib.shim_threads(3)
    three = c.cholesky(a)[0]
    c_lib.shim_threads(1)
    assert np.array_equal(one, three)


@pytest.mark.parametrize("n", SIZES)
def test_triangular_solves(dense, n):
    rng = np.random.default_rng(20 + n)
    low = np.linalg.cholesky(spd(rng, n)) if n else np.zeros((0, 0))
    b = rng.standard_normal(n)
    garbage = with_garbage_above(rng, low)
    want = scipy.linalg.solve_triangular(low, b, lower=True)
    np.testing.assert_allclose(dense.solve_lower(garbage, b), want, rtol=1e-12, atol=1e-14)
    want = scipy.linalg.solve_triangular(low, b, lower=True, trans="T")
    np.testing.assert_allclose(dense.solve_upper_t(garbage, b), want, rtol=1e-12, atol=1e-14)
    want = scipy.linalg.cho_solve((low, True), b) if n else b
    np.testing.assert_allclose(dense.solve_cholesky(garbage, b), want, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("n", SIZES)
def test_solve_pivoted(py_dense, n):
    rng = np.random.default_rng(30 + n)
    a, b = rng.standard_normal((n, n)), rng.standard_normal(n)
    x = py_dense.solve_pivoted(a, b)
    assert x.shape == (n,)
    if n:
        np.testing.assert_allclose(x, np.linalg.solve(a, b), rtol=1e-9, atol=1e-11)


def test_solve_pivoted_refuses_singular_matrices(py_dense):
    rng = np.random.default_rng(5)
    a = rng.standard_normal((150, 150))
    a[:, 149] = a[:, :149] @ rng.standard_normal(149)  # rank 149: a pivot below n eps max|a|
    assert py_dense.solve_pivoted(a, rng.standard_normal(150)) is None
    assert py_dense.solve_pivoted(np.array([[1.0, 2.0], [2.0, 4.0]]), np.ones(2)) is None


def test_positive_semidefinite_test(dense):
    rng = np.random.default_rng(6)
    a = rng.standard_normal((200, 150))
    assert dense.is_positive_semidefinite(a @ a.T, 1e-9)  # singular, positive semidefinite
    q, _ = np.linalg.qr(rng.standard_normal((200, 200)))
    negative = (q * np.concatenate([[-1e-3], rng.uniform(1.0, 5.0, 199)])) @ q.T
    assert not dense.is_positive_semidefinite(negative, 1e-9)
    assert dense.is_positive_semidefinite(np.zeros((3, 3)), 1e-9)
    assert dense.is_positive_semidefinite(np.zeros((0, 0)), 1e-9)
    with_nan = a @ a.T
    with_nan[170, 20] = np.nan
    assert not dense.is_positive_semidefinite(with_nan, 1e-9)


@pytest.mark.parametrize(("n", "k"), [(5, 0), (5, 3), (300, 200)])
def test_negative_curvature_bound(py_dense, n, k):
    """pivot / (1 + ||L_k^-T l||^2), an upper bound on the smallest eigenvalue."""
    a = failing_at(np.random.default_rng(n + k), n, k)
    low, fail, pivot = py_dense.cholesky(a)
    ref, _, ref_pivot = ref_cholesky(a)
    w = scipy.linalg.solve_triangular(ref[:k, :k], -ref[k, :k], lower=True, trans="T")
    bound = py_dense.negative_curvature_bound(low, fail, pivot)
    assert bound == pytest.approx(ref_pivot / (1.0 + w @ w), rel=1e-9)
    assert np.linalg.eigvalsh(a)[0] <= bound < 0.0


@pytest.mark.parametrize("n", [1, 2, 65, 300])
def test_smallest_singular_pair(py_dense, n):
    rng = np.random.default_rng(40 + n)
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    low = np.linalg.cholesky((q * np.geomspace(1e-6, 1.0, n)) @ q.T)
    s, z = py_dense.smallest_singular_pair(low)
    ref_s, ref_z = ref_singular_pair(low)
    assert s == pytest.approx(ref_s, rel=1e-9)
    np.testing.assert_allclose(z, ref_z, atol=1e-9)
    # z is a unit vector with ||L^T z|| = s >= sigma_min(L)
    assert np.linalg.norm(z) == pytest.approx(1.0, rel=1e-12)
    assert np.linalg.norm(low.T @ z) == pytest.approx(s, rel=1e-9)
    assert s >= np.linalg.svd(low, compute_uv=False)[-1] * (1 - 1e-9)


def test_boundary_taus(py_dense):
    rng = np.random.default_rng(7)
    z, d, radius = 0.1 * rng.standard_normal(6), rng.standard_normal(6), 2.0
    ta, tb = py_dense.boundary_taus(z, d, radius)
    roots = np.sort(np.roots([d @ d, 2 * z @ d, z @ z - radius**2]).real)
    np.testing.assert_allclose([ta, tb], roots, rtol=1e-12)
    assert ta < 0.0 < tb


def scipy_openblas() -> Path | None:
    """scipy's bundled OpenBLAS, which has LAPACK's dpotrf as scipy_dpotrf_."""
    folder = Path(scipy.__file__).resolve().parent.parent / "scipy.libs"
    for path in sorted(folder.glob("libscipy_openblas*.so*")):
        try:
            if hasattr(ctypes.CDLL(str(path)), "scipy_dpotrf_"):
                return path
        except OSError:
            continue
    return None


def test_c_cholesky_through_lapack(tmp_path):
    """-DSYMOPT_LAPACK: dpotrf factors, the blocks find the failing column where it fails."""
    library = scipy_openblas()
    if library is None:
        pytest.skip("no LAPACK to link (scipy's bundled OpenBLAS not found)")
    flags = ["-DSYMOPT_LAPACK", "-DSYMOPT_LAPACK_DPOTRF=scipy_dpotrf_", str(library)]
    c = CDense(build_c(tmp_path, [*flags, f"-Wl,-rpath,{library.parent}"]))
    rng = np.random.default_rng(8)
    for a in (spd(rng, 300), failing_at(rng, 300, 170), failing_at(rng, 1, 0)):
        assert_factor_matches(c.cholesky(a), ref_cholesky(a), scale=10.0)
    a = spd(rng, 200)
    a[150, 40] = np.nan
    assert_factor_matches(c.cholesky(a), ref_cholesky(a), scale=10.0)

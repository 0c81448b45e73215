"""Benchmark: symopt's dense Cholesky and exact trust-region subproblem against scipy's LAPACK.

    python benchmarks/bench_dense_subproblem.py [--sizes 100,1000] [--repeats 5] [--markdown]
                                                [--generated generated]

For each n, three symmetric matrices H = Q diag(e) Q^T (Q from the QR factorisation of a Gaussian
matrix, fixed seeds) with a gradient g and a radius that makes the boundary active:

    pd          e in [1, 10], r = ||H^-1 g|| / 2
    indefinite  e in [-5, 5], r = 1
    hard        e_0 = -2 simple, the rest in [-1, 5], g orthogonal to q_0 (the hard case),
                r = 2 ||(H + 2 I)^+ g||

Rows: the Cholesky factorisation of the pd matrix (symopt NumPy ``_dense.cholesky``, symopt C
``trust_region.cholesky``, scipy ``linalg.lapack.dpotrf``), and the exact subproblem (symopt
NumPy ``trust_region.exact_step``, symopt C ``trust_region.trust_region_step``, scipy
trust-exact's ``IterativeSubproblem``, its construction included: it computes the Gershgorin
bounds and norms that symopt's solvers compute inside). All three get k_easy = 0.1,
k_hard = 0.2 and at most 25 factorisations. Columns: median wall time of --repeats rounds (each
round calls every solver once, in turn), the ratio to scipy's median in the same run,
factorisations, ||d|| / r, and the model value m(d) = g.d + d.H d / 2 relative to scipy's (a
solver that stops early shows a higher m).

The symopt packages are the generated ones under --generated (numpy/symopt_numpy and
c/symopt_c; the C library builds itself on first use). One thread everywhere
(OPENBLAS_NUM_THREADS, OMP_NUM_THREADS and MKL_NUM_THREADS default to 1; the C library's
OpenMP obeys OMP_NUM_THREADS): a single-core comparison.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import importlib  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from types import SimpleNamespace  # noqa: E402

import numpy as np  # noqa: E402
import scipy.linalg  # noqa: E402
from scipy.optimize._trustregion_exact import IterativeSubproblem  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
Array = np.ndarray
#: The subproblem's tolerances and factorisation budget, the same for every solver (scipy's).
TOLERANCES = {"k_easy": 0.1, "k_hard": 0.2}
MAX_ITER = 25


@dataclass
class Case:
    name: str
    h: Array
    g: Array
    radius: float


@dataclass
class Row:
    n: int
    case: str
    task: str
    solver: str
    ms: float
    ratio: float  # ms / scipy's ms in the same run
    factorisations: int | None = None
    d_over_r: float | None = None
    m_rel: float | None = None  # m(d) / m(d_scipy)


def _matrix(rng: np.random.Generator, e: Array) -> tuple[Array, Array]:
    q, _ = np.linalg.qr(rng.standard_normal((e.size, e.size)))
    h = (q * e) @ q.T
    return (h + h.T) / 2.0, q


def cases(n: int) -> list[Case]:
    """The pd, indefinite and hard-case instances of size n (fixed seeds)."""
    rng = np.random.default_rng(n)
    h, _ = _matrix(rng, rng.uniform(1.0, 10.0, n))
    g = rng.standard_normal(n)
    pd = Case("pd", h, g, 0.5 * float(np.linalg.norm(np.linalg.solve(h, g))))
    h, _ = _matrix(rng, rng.uniform(-5.0, 5.0, n))
    indefinite = Case("indefinite", h, rng.standard_normal(n), 1.0)
    e = np.concatenate([[-2.0], rng.uniform(-1.0, 5.0, n - 1)])
    h, q = _matrix(rng, e)
    c = rng.standard_normal(n)
    c[0] = 0.0
    g = q @ c  # orthogonal to q_0: (H + 2 I) d = -g has a solution of least norm
    d_min = q[:, 1:] @ (c[1:] / (e[1:] + 2.0))
    hard = Case("hard", h, g, 2.0 * float(np.linalg.norm(d_min)))
    return [pd, indefinite, hard]


def timed(solvers: dict[str, Callable[[], object]], repeats: int) -> dict[str, tuple]:
    """name -> (median wall time in ms, last result) of ``repeats`` rounds that call every
    solver once each, in turn: a change in the machine's load hits all of them alike."""
    times: dict[str, list[float]] = {name: [] for name in solvers}
    out: dict[str, object] = {}
    for _ in range(repeats):
        for name, fn in solvers.items():
            t0 = time.perf_counter()
            out[name] = fn()
            times[name].append(time.perf_counter() - t0)
    return {name: (1e3 * statistics.median(t), out[name]) for name, t in times.items()}


def model(case: Case, d: Array) -> float:
    return float(case.g @ d + 0.5 * d @ (case.h @ d))


def scipy_subproblem(case: Case):
    sub = IterativeSubproblem(
        np.zeros(case.g.size),
        lambda x: 0.0,
        lambda x: case.g,
        lambda x: case.h,
        maxiter=MAX_ITER,
        **TOLERANCES,
    )
    d, _ = sub.solve(case.radius)
    return SimpleNamespace(d=d, inner=sub.niter)


def measure(n: int, repeats: int, numpy_tr, numpy_dense, c_tr) -> list[Row]:
    rows = []
    pd = cases(n)[0]
    factor = {
        "symopt NumPy": lambda: numpy_dense.cholesky(pd.h),
        "symopt C": lambda: c_tr.cholesky(pd.h, 0.0),
        "scipy dpotrf": lambda: scipy.linalg.lapack.dpotrf(pd.h, lower=1),
    }
    found = timed(factor, repeats)
    ms_ref = found["scipy dpotrf"][0]
    rows += [Row(n, "pd", "cholesky", name, ms, ms / ms_ref) for name, (ms, _) in found.items()]
    for case in cases(n):
        solvers = {
            "symopt NumPy": lambda c=case: numpy_tr.exact_step(
                c.g, c.h, c.radius, max_iter=MAX_ITER, **TOLERANCES
            ),
            "symopt C": lambda c=case: c_tr.trust_region_step(
                c.h, c.g, c.radius, max_iter=MAX_ITER, **TOLERANCES
            ),
            "scipy trust-exact": lambda c=case: scipy_subproblem(c),
        }
        found = timed(solvers, repeats)
        ms_ref, ref = found["scipy trust-exact"]
        m_ref = model(case, ref.d)
        for name, (ms, step) in found.items():
            d = np.asarray(step.d)
            d_over_r = float(np.linalg.norm(d)) / case.radius
            m_rel = model(case, d) / m_ref
            rows.append(
                Row(
                    n,
                    case.name,
                    "subproblem",
                    name,
                    ms,
                    ms / ms_ref,
                    int(step.inner),
                    d_over_r,
                    m_rel,
                )
            )
    return rows


def table(rows: list[Row], markdown: bool) -> str:
    head = ["n", "matrix", "task", "solver", "ms", "/ scipy", "factorisations", "||d||/r"]
    head += ["m(d)/m_scipy"]

    def opt(v: float | int | None, fmt: str) -> str:
        return "" if v is None else format(v, fmt)

    cells = [
        [
            str(r.n),
            r.case,
            r.task,
            r.solver,
            f"{r.ms:.2f}",
            f"{r.ratio:.2f}",
            opt(r.factorisations, "d"),
            opt(r.d_over_r, ".3f"),
            opt(r.m_rel, ".4f"),
        ]
        for r in rows
    ]
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(c) + " |" for c in cells]
        return "\n".join(lines)
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(head)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*head)] + [fmt.format(*c) for c in cells])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000", help="comma-separated n")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument(
        "--generated", type=Path, default=ROOT / "generated", help="the generated packages' root"
    )
    args = parser.parse_args()
    sys.path[:0] = [str(args.generated / "numpy"), str(args.generated / "c")]
    numpy_tr = importlib.import_module("symopt_numpy.trust_region")
    numpy_dense = importlib.import_module("symopt_numpy._dense")
    c_tr = importlib.import_module("symopt_c.trust_region")
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        rows += measure(n, args.repeats, numpy_tr, numpy_dense, c_tr)
    print(table(rows, args.markdown))


if __name__ == "__main__":
    main()

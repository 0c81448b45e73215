"""Benchmark: symopt's generated trust-region and Newton minimisers against scipy, in one run.

    python benchmarks/bench_scipy_trust_region.py [--repeats 5] [--gtol 1e-8] [--markdown]
                                                  [--problems "Rosen n=2,Beale"]

Every method minimises the same Moré-Garbow-Hillstrom problems (symopt/problems.py) from the
standard start with the same exact derivatives and the same gradient tolerance: symopt's trust
region (default configuration) and pure Newton, scipy's trust-exact, trust-ncg, trust-krylov,
Newton-CG and dogleg. scipy gets options={"gtol": gtol}; Newton-CG has no gtol (it stops on
the step length), so a callback stops it once the gradient it has already evaluated at the new
iterate has norm <= gtol (any gradient the callback has to evaluate itself is counted).

Columns: nit (iterations, rejected trust-region steps included, as scipy counts), nfev, ngev,
nhev (dense Hessians), nhessp (Hessian-vector products; scipy reports nhev as the sum), final f,
final gradient norm, whether the run reached the known global minimum with ||g|| <= gtol, and
the median wall time of --repeats runs. The target line per problem compares symopt's trust
region with the fewest iterations of any scipy method that reached the global minimum.
The symopt rows run the generated NumPy minimisers (generated/numpy/symopt_numpy).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.optimize

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from symopt.problems import Problem, all_problems  # noqa: E402

sys.path.insert(0, str(ROOT / "generated" / "numpy"))
from symopt_numpy import newton, trust_region  # noqa: E402  (the generated minimisers)

GLOBAL_FTOL = 1e-6  # "reached the global minimum": f <= f_min + GLOBAL_FTOL


@dataclass
class Row:
    problem: str
    method: str
    nit: int
    nfev: int
    ngev: int
    nhev: int
    nhessp: int
    f: float
    grad_norm: float
    converged: bool  # ||g|| <= gtol and no failure reported
    global_min: bool
    ms: float
    note: str = ""


def run_symopt(module, p: Problem, gtol: float) -> tuple[dict, str]:
    r = module.minimize(p.f, p.grad, p.x0, hess=p.hess, hessp=p.hessp, gtol=gtol)
    counts = dict(nit=r.nit, nfev=r.nfev, ngev=r.ngev, nhev=r.nhev, nhessp=r.nhessp)
    return {"x": r.x, "success": r.success, **counts}, "" if r.success else r.message


def run_scipy(method: str, p: Problem, gtol: float) -> tuple[dict, str]:
    dense = method in ("trust-exact", "dogleg")
    derivs = {"hess": p.hess} if dense else {"hessp": p.hessp}
    options = {"gtol": gtol, "maxiter": 200 * p.n}
    callback = None
    extra_grads = [0]
    if method == "Newton-CG":
        # no gtol: stop from the callback on the gradient the line search already evaluated
        seen: dict[bytes, np.ndarray] = {}
        grad_fn = p.grad

        def jac(x):
            g = grad_fn(x)
            seen[x.tobytes()] = g
            return g

        def callback(intermediate_result):
            x = intermediate_result.x
            g = seen.get(x.tobytes())
            if g is None:
                extra_grads[0] += 1
                g = grad_fn(x)
            if np.linalg.norm(g) <= gtol:
                raise StopIteration

        options = {"xtol": 1e-300, "maxiter": 200 * p.n}
    else:
        jac = p.grad
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = scipy.optimize.minimize(
            p.f, p.x0, jac=jac, method=method, callback=callback, options=options, **derivs
        )
    nhev = int(getattr(r, "nhev", 0))
    counts = dict(
        nit=int(r.nit),
        nfev=int(r.nfev),
        ngev=int(r.njev) + extra_grads[0],
        nhev=nhev if dense else 0,
        nhessp=0 if dense else nhev,
    )
    ok = r.success or r.status in (5, 99)  # halted by our gtol callback
    note = "" if ok else f"status {r.status}: {r.message}"
    return {"x": r.x, "success": ok, **counts}, note


METHODS = {
    "symopt trust-region": lambda p, gtol: run_symopt(trust_region, p, gtol),
    "symopt Newton": lambda p, gtol: run_symopt(newton, p, gtol),
    "scipy trust-exact": lambda p, gtol: run_scipy("trust-exact", p, gtol),
    "scipy trust-ncg": lambda p, gtol: run_scipy("trust-ncg", p, gtol),
    "scipy trust-krylov": lambda p, gtol: run_scipy("trust-krylov", p, gtol),
    "scipy Newton-CG": lambda p, gtol: run_scipy("Newton-CG", p, gtol),
    "scipy dogleg": lambda p, gtol: run_scipy("dogleg", p, gtol),
}


def measure(p: Problem, method: str, gtol: float, repeats: int) -> Row:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out, note = METHODS[method](p, gtol)
        times.append(time.perf_counter() - t0)
    x = out["x"]
    f = float(p.f(x))
    g_norm = float(np.linalg.norm(p.grad(x)))
    converged = bool(out["success"]) and g_norm <= gtol
    return Row(
        p.name,
        method,
        out["nit"],
        out["nfev"],
        out["ngev"],
        out["nhev"],
        out["nhessp"],
        f,
        g_norm,
        converged,
        converged and f <= p.f_min + GLOBAL_FTOL,
        1e3 * statistics.median(times),
        note,
    )


def table(rows: list[Row], markdown: bool) -> str:
    head = ["problem", "method", "nit", "nfev", "ngev", "nhev", "nhessp", "f", "grad norm"]
    head += ["global", "ms", "note"]
    cells = [
        [
            r.problem,
            r.method,
            str(r.nit),
            str(r.nfev),
            str(r.ngev),
            str(r.nhev),
            str(r.nhessp),
            f"{r.f:.3g}",
            f"{r.grad_norm:.1e}",
            "yes" if r.global_min else ("no (local)" if r.converged else "no"),
            f"{r.ms:.1f}",
            r.note[:90],
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


def targets(rows: list[Row]) -> list[str]:
    """Per problem: symopt trust region vs the fewest scipy iterations reaching the global min."""
    lines = []
    for name in dict.fromkeys(r.problem for r in rows):
        mine = next(r for r in rows if r.problem == name and r.method == "symopt trust-region")
        rivals = [r for r in rows if r.problem == name and r.method.startswith("scipy")]
        winners = [r for r in rivals if r.global_min]
        if not winners:
            lines.append(f"{name}: no scipy method reached the global minimum")
            continue
        best = min(winners, key=lambda r: r.nit)
        met = mine.global_min and mine.nit <= best.nit
        verdict = "MET" if met else "MISSED"
        lines.append(
            f"{name}: symopt trust-region {mine.nit} it "
            f"({'global' if mine.global_min else 'not global'}) vs best scipy "
            f"{best.method.removeprefix('scipy ')} {best.nit} it -> {verdict}"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--gtol", type=float, default=1e-8)
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--problems", default="", help="comma-separated names (default: all)")
    parser.add_argument("--methods", default="", help="comma-separated names (default: all)")
    args = parser.parse_args()
    chosen = {s.strip() for s in args.problems.split(",") if s.strip()}
    methods = [m.strip() for m in args.methods.split(",") if m.strip()] or list(METHODS)
    rows = []
    for p in all_problems():
        if chosen and p.name not in chosen:
            continue
        for method in methods:
            rows.append(measure(p, method, args.gtol, args.repeats))
    print(
        f"gtol = {args.gtol:g}; median of {args.repeats} runs; symopt trust region defaults: "
        f"subproblem exact for n <= {trust_region.EXACT_MAX_N} else Steihaug-CG, "
        f"hyperparameters {trust_region.DEFAULTS}"
    )
    print(table(rows, args.markdown))
    print()
    if "symopt trust-region" in methods:
        for line in targets(rows):
            print(("- " if args.markdown else "") + line)


if __name__ == "__main__":
    main()

"""Benchmark: symopt's trust region against scipy on all 35 Moré-Garbow-Hillstrom problems.

    python benchmarks/bench_mgh.py [--repeats 3] [--markdown] [--problems "Bard,Meyer"]
                                   [--generated DIR] [--json FILE]

The problems are symopt.mgh.benchmark_problems(): the 35 of Moré, Garbow & Hillstrom (1981) at
their standard sizes and starts, then extended Rosenbrock n = 1000, an ill-conditioned quadratic
(n = 100, cond 1e6, f* = -4.4e4) and a chain of double wells (n = 20, a saddle-rich start).

Methods, all with the same exact derivatives and gradient tolerance GTOL = 1e-8, default maxiter:
symopt's generated NumPy trust region in its default configuration (minimize(fun, grad, x0,
hess=, hessp=, gtol=GTOL), nothing else); scipy's trust-exact (hess), trust-krylov and trust-ncg
(hessp, options gtol=GTOL) and Newton-CG (hessp). Newton-CG has no gtol (it stops on the step
length), so it gets xtol=1e-300 and a callback stops it once the gradient at the new iterate,
which its line search has already evaluated, has norm <= GTOL (a gradient the callback has to
evaluate itself is counted), as in benchmarks/bench_scipy_trust_region.py.

A method solves a problem when it reports success (Newton-CG: stopped by that callback) and
||grad(x_final)||, recomputed here, is <= GTOL. Counts are of calls to the problem's functions
(nfev f, ngev gradient, nhev dense Hessian, nhessp Hessian-vector products); nit is the method's
own iteration count (rejected trust-region steps included, as scipy counts); ms is the median
wall time of --repeats runs. The summary lists the problems some scipy method solves and symopt
does not, and over the problems symopt and at least one scipy method solve, symopt's nit divided
by the fewest iterations of a scipy method that solved it, with its geometric mean.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import statistics
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import scipy.optimize

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from symopt.mgh import benchmark_problems  # noqa: E402
from symopt.problems import Problem  # noqa: E402

GTOL = 1e-8
SYMOPT = "symopt trust-region"
SCIPY = ("trust-exact", "trust-krylov", "trust-ncg", "Newton-CG")


@dataclass
class Row:
    problem: str
    method: str
    solved: bool
    nit: int
    nfev: int
    ngev: int
    nhev: int
    nhessp: int
    f: float
    grad_norm: float
    ms: float
    note: str = ""


class Counted:
    """The problem's functions, counting their calls."""

    def __init__(self, p: Problem) -> None:
        self.p, self.nfev, self.ngev, self.nhev, self.nhessp = p, 0, 0, 0, 0

    def f(self, x: np.ndarray) -> float:
        self.nfev += 1
        return self.p.f(x)

    def grad(self, x: np.ndarray) -> np.ndarray:
        self.ngev += 1
        return self.p.grad(x)

    def hess(self, x: np.ndarray) -> np.ndarray:
        self.nhev += 1
        return self.p.hess(x)

    def hessp(self, x: np.ndarray, v: np.ndarray) -> np.ndarray:
        self.nhessp += 1
        return self.p.hessp(x, v)


def run_symopt(module, c: Counted) -> tuple[np.ndarray, int, bool, str]:
    r = module.minimize(c.f, c.grad, c.p.x0.copy(), hess=c.hess, hessp=c.hessp, gtol=GTOL)
    return r.x, r.nit, bool(r.success), "" if r.success else f"status {r.status}: {r.message}"


def run_scipy(method: str, c: Counted) -> tuple[np.ndarray, int, bool, str]:
    kwargs: dict = {"jac": c.grad, "options": {"gtol": GTOL}}
    if method == "trust-exact":
        kwargs["hess"] = c.hess
    else:
        kwargs["hessp"] = c.hessp
    halted: list[bool] = []  # Newton-CG: stopped by the gtol callback
    if method == "Newton-CG":
        seen: dict[bytes, np.ndarray] = {}

        def jac(x: np.ndarray) -> np.ndarray:
            g = c.grad(x)
            seen[x.tobytes()] = g
            return g

        def callback(intermediate_result) -> None:
            x = intermediate_result.x
            g = seen.get(x.tobytes())
            if np.linalg.norm(c.grad(x) if g is None else g) <= GTOL:
                halted.append(True)
                raise StopIteration

        kwargs.update(jac=jac, callback=callback, options={"xtol": 1e-300})
    r = scipy.optimize.minimize(c.f, c.p.x0.copy(), method=method, **kwargs)
    ok = bool(r.success) or bool(halted)
    return r.x, int(r.nit), ok, "" if ok else f"status {r.status}: {r.message}"


def warm_up(p: Problem) -> None:
    """Evaluate every function once: the SymPy-built problems compile on first use, which
    must not count in the first method's time."""
    p.f(p.x0)
    p.hess(p.x0)
    p.hessp(p.x0, p.grad(p.x0))


def measure(p: Problem, method: str, module, repeats: int) -> Row:
    times = []
    for _ in range(repeats):
        c = Counted(p)
        t0 = time.perf_counter()
        try:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                if method == SYMOPT:
                    x, nit, ok, note = run_symopt(module, c)
                else:
                    x, nit, ok, note = run_scipy(method.removeprefix("scipy "), c)
        except Exception as exc:  # a method that raises has not solved the problem
            line = (str(exc).strip().splitlines() or [""])[0]
            return Row(
                p.name,
                method,
                False,
                0,
                c.nfev,
                c.ngev,
                c.nhev,
                c.nhessp,
                math.nan,
                math.nan,
                math.nan,
                f"raised {type(exc).__name__}: {line}"[:200],
            )
        times.append(time.perf_counter() - t0)
    with np.errstate(all="ignore"):
        f, g_norm = float(p.f(x)), float(np.linalg.norm(p.grad(x)))
    solved = ok and g_norm <= GTOL
    if ok and not solved:
        note = f"reported success with grad norm {g_norm:.1e}"
    ms = 1e3 * statistics.median(times)
    return Row(p.name, method, solved, nit, c.nfev, c.ngev, c.nhev, c.nhessp, f, g_norm, ms, note)


def ratios(rows: list[Row]) -> dict[str, float]:
    """symopt's nit / the fewest nit of a scipy method that solved it, where symopt solved it."""
    out = {}
    for name in dict.fromkeys(r.problem for r in rows):
        mine = [r for r in rows if r.problem == name and r.method == SYMOPT and r.solved]
        best = [r.nit for r in rows if r.problem == name and r.method != SYMOPT and r.solved]
        if mine and best:
            out[name] = mine[0].nit / max(1, min(best))
    return out


def summary(rows: list[Row]) -> dict:
    problems = list(dict.fromkeys(r.problem for r in rows))
    methods = list(dict.fromkeys(r.method for r in rows))
    solved = {m: [r.problem for r in rows if r.method == m and r.solved] for m in methods}
    by_scipy = {r.problem for r in rows if r.method != SYMOPT and r.solved}
    missed = [p for p in problems if p in by_scipy and p not in solved.get(SYMOPT, [])]
    ratio = ratios(rows)
    geomean = math.exp(statistics.fmean(math.log(v) for v in ratio.values())) if ratio else None
    return {
        "problems": len(problems),
        "solved": {m: len(v) for m, v in solved.items()},
        "scipy_solves_symopt_does_not": missed,
        "unsolved_by_all": [p for p in problems if not any(p in v for v in solved.values())],
        "nit_ratio": ratio,
        "nit_ratio_geomean": geomean,
    }


def table(rows: list[Row], f_min: dict[str, float | None], markdown: bool) -> str:
    head = ["problem", "method", "solved", "nit", "nfev", "ngev", "nhev", "nhessp", "f", "f*"]
    head += ["grad norm", "ms", "note"]
    cells = []
    for r in rows:
        fm = f_min.get(r.problem)
        cells.append(
            [
                r.problem,
                r.method.removeprefix("scipy "),
                "yes" if r.solved else "no",
                str(r.nit),
                str(r.nfev),
                str(r.ngev),
                str(r.nhev),
                str(r.nhessp),
                f"{r.f:.6g}",
                "-" if fm is None else f"{fm:.6g}",
                f"{r.grad_norm:.1e}",
                f"{r.ms:.1f}",
                r.note[:80].replace("|", "/"),
            ]
        )
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        return "\n".join(lines + ["| " + " | ".join(c) + " |" for c in cells])
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(head)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*head)] + [fmt.format(*c) for c in cells])


def report(s: dict, markdown: bool) -> str:
    dash = "- " if markdown else ""
    solved = ", ".join(f"{m} {n}" for m, n in s["solved"].items())
    missed = s["scipy_solves_symopt_does_not"]
    lines = [
        f"{dash}problems: {s['problems']}; solved (of {s['problems']}): {solved}",
        f"{dash}some scipy method solves, symopt does not ({len(missed)}):"
        f" {', '.join(missed) or 'none'}",
        f"{dash}no method solves: {', '.join(s['unsolved_by_all']) or 'none'}",
    ]
    if s["nit_ratio_geomean"] is not None:
        lines.append(
            f"{dash}symopt nit / fewest scipy nit, geometric mean over {len(s['nit_ratio'])}"
            f" problems: {s['nit_ratio_geomean']:.3f}"
        )
        lines += [f"  {dash}{name}: {v:.3g}" for name, v in s["nit_ratio"].items()]
    return "\n".join(lines)


def finite(v):
    """JSON has no NaN: a float that is not finite becomes null."""
    return None if isinstance(v, float) and not math.isfinite(v) else v


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--markdown", action="store_true", help="print Markdown tables")
    parser.add_argument("--problems", default="", help="comma-separated names (default: all)")
    parser.add_argument(
        "--generated",
        type=Path,
        default=ROOT / "generated" / "numpy",
        help="folder holding the symopt_numpy package (default: generated/numpy)",
    )
    parser.add_argument("--json", type=Path, help="also write the rows and summary here")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if not (args.generated / "symopt_numpy" / "trust_region.py").is_file():
        parser.error(f"no symopt_numpy/trust_region.py under {args.generated}")
    sys.path.insert(0, str(args.generated.resolve()))
    module = importlib.import_module("symopt_numpy.trust_region")

    problems = benchmark_problems()
    chosen = [s.strip() for s in args.problems.split(",") if s.strip()]
    unknown = sorted(set(chosen) - {p.name for p in problems})
    if unknown:
        parser.error(f"unknown problems {unknown}; known: {[p.name for p in problems]}")
    if chosen:
        problems = [p for p in problems if p.name in chosen]

    rows = []
    for k, p in enumerate(problems, start=1):
        warm_up(p)
        for method in (SYMOPT, *(f"scipy {m}" for m in SCIPY)):
            print(f"[{k}/{len(problems)}] {p.name}: {method}", file=sys.stderr, flush=True)
            rows.append(measure(p, method, module, args.repeats))
    s = summary(rows)
    f_min = {p.name: p.f_min for p in problems}
    print(f"gtol = {GTOL:g}; median of {args.repeats} runs; symopt from {args.generated}")
    print(table(rows, f_min, args.markdown))
    print()
    print(report(s, args.markdown))
    if args.json:
        records = [{k: finite(v) for k, v in asdict(r).items()} for r in rows]
        args.json.write_text(json.dumps({"rows": records, "summary": s}, indent=1) + "\n")


if __name__ == "__main__":
    main()

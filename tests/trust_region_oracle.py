"""The generated NumPy trust-region minimiser as the oracle of another target's port.

A port takes NumPy's decisions in NumPy's order, but its dense linear algebra and dot products
round differently, so it agrees with NumPy to rounding: exactly in its statuses and counts, and
to RTOL in its iterates, wherever NumPy's own run is determined to that precision by its inputs.
On badly conditioned problems it is not: moving every value of the gradient, the Hessian and the
Hessian-vector products by at most half an ulp (:func:`rounding_runs`) moves NumPy's own path by
more than RTOL after some iterate (the horizon), and may change its counts or status. So
:func:`assert_same_run` asks of the port: NumPy's iterates up to that horizon; where no such
perturbation moves NumPy's iterates, the status and message NumPy gives under one of them, and
counts no farther from NumPy's than theirs (CG's counts near a singular minimiser vary by a
few); beyond the horizon, a status NumPy gives under one.

The non-finite cases (:func:`non_finite_problems`) are Rosenbrock's function with f, the gradient
or the Hessian NaN or inf near a few points of its path, or at the start.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from symopt import problems

RTOL = 1e-9  # iterates agree to RTOL relative to max(1, |x|)
SEEDS = (0, 1, 2)  # rounding perturbations: each seed once on g, once on H and H v


@contextlib.contextmanager
def rendered(root: Path, files: Iterable, packages: dict[str, str]) -> Iterator[None]:
    """Generated ``files`` written under ``root``, with an empty ``__init__.py`` in the package
    of each folder (``packages``: folder -> package), importable while the context lasts: the
    committed generated/ packages of those names leave sys.modules, and come back after."""
    for f in files:
        (root / f.path).parent.mkdir(parents=True, exist_ok=True)
        (root / f.path).write_text(f.text, encoding="utf-8")
    for folder, package in packages.items():
        (root / folder / package / "__init__.py").write_text("", encoding="utf-8")
    names = {p.split("/")[-1] for p in packages.values()}

    def own() -> list[str]:
        return [m for m in sys.modules if m.split(".")[0] in names]

    with pytest.MonkeyPatch.context() as mp:
        for name in own():
            mp.delitem(sys.modules, name)
        for folder in packages:
            mp.syspath_prepend(str(root / folder))
        yield
        for name in own():
            del sys.modules[name]


@dataclass
class Run:
    """A minimiser's result and the iterates its callback saw."""

    result: object
    path: list[np.ndarray]

    def outcome(self) -> dict:
        r = self.result
        counts = {key: getattr(r, key) for key in ("nit", "nfev", "ngev", "nhev", "nhessp")}
        return {"status": r.status, "message": masked(r.message), **counts}


def masked(message: str) -> str:
    """The message with its values (not its iteration counts) replaced by #: they are printed
    to 2 or 6 digits, which rounding may change."""
    return re.sub(r"-?\d+\.\d+(e[+-]\d+)?|(?<=f = )[^)]*", "#", message)


def deviation(a, b) -> float:
    """max |a - b| relative to max(1, max |b|)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b)) / max(1.0, float(np.max(np.abs(b)))))


def run_numpy(numpy_tr, p: problems.Problem, subproblem: str, **given) -> Run:
    """The NumPy minimiser on p (given: grad, hess or hessp replacing p's)."""
    derivatives = {"grad": p.grad, "hess": p.hess, "hessp": p.hessp, **given}
    path: list[np.ndarray] = []
    r = numpy_tr.minimize(
        p.f,
        derivatives["grad"],
        p.x0,
        hess=derivatives["hess"],
        hessp=derivatives["hessp"],
        subproblem=subproblem,
        callback=path.append,
    )
    return Run(r, path)


def half_ulp_noise(fn: Callable, seed: int) -> Callable:
    """fn with each value times 1 + e 2^-53, e in {-1, 0, 1} at random (a matrix's symmetric)."""
    rng = np.random.default_rng(seed)

    def noisy(*args):
        value = np.asarray(fn(*args), dtype=float)
        e = rng.integers(-1, 2, size=value.shape)
        if value.ndim == 2:
            e = np.triu(e) + np.triu(e, 1).T
        return value * (1.0 + e * 2.0**-53)

    return noisy


def rounding_runs(numpy_tr, p: problems.Problem, subproblem: str) -> list[Run]:
    """NumPy's runs with rounding-level noise on g, and on H and H v."""
    runs = []
    for seed in SEEDS:
        runs.append(run_numpy(numpy_tr, p, subproblem, grad=half_ulp_noise(p.grad, seed)))
        curvature = {"hess": half_ulp_noise(p.hess, seed), "hessp": half_ulp_noise(p.hessp, seed)}
        runs.append(run_numpy(numpy_tr, p, subproblem, **curvature))
    return runs


def horizon(expected: Run, others: list[Run]) -> int:
    """The first iterate that some perturbed run moves by more than RTOL (else the length)."""
    for k, x in enumerate(expected.path):
        if any(k >= len(o.path) or deviation(o.path[k], x) > RTOL for o in others):
            return k
    return len(expected.path)


def assert_same_run(got: Run, expected: Run, rounding: Callable[[], list[Run]]) -> str:
    """got (the port's run) is NumPy's expected run up to rounding (see the module docstring);
    rounding() gives NumPy's perturbed runs, computed only when got differs at all. Returns
    how it agreed: "same", "same up to rounding" or "chaotic after iterate k"."""
    devs = [deviation(a, b) for a, b in zip(got.path, expected.path, strict=False)]
    if len(got.path) == len(expected.path) and got.outcome() == expected.outcome():
        if max(devs, default=0.0) <= RTOL and deviation(got.result.x, expected.result.x) <= RTOL:
            return "same"
    others = rounding()
    k = horizon(expected, others)
    beyond = [i for i, d in enumerate(devs[:k]) if d > RTOL]
    assert not beyond, f"iterate {beyond[0]} differs by {devs[beyond[0]]:.1e} > {RTOL}"
    stable = k == len(expected.path) and all(len(o.path) == len(expected.path) for o in others)
    if stable:
        assert len(got.path) == len(expected.path)
        assert deviation(got.result.x, expected.result.x) <= RTOL
        for key, value in got.outcome().items():
            want, seen = expected.outcome()[key], [o.outcome()[key] for o in others]
            if isinstance(value, str) or key == "status":
                assert value in {want, *seen}, f"{key} {value!r}: NumPy's {want!r}, {seen}"
            else:  # a count: no farther from NumPy's than rounding takes NumPy's own
                spread = max(abs(v - want) for v in seen)
                assert abs(value - want) <= spread, f"{key} {value}: NumPy's {want}, {seen}"
        return "same up to rounding"
    statuses = {expected.result.status, *(o.result.status for o in others)}
    assert got.result.status in statuses, f"status {got.result.status}, NumPy's {statuses}"
    return f"chaotic after iterate {k}"


# --- non-finite values ---------------------------------------------------------------------------

#: Points of the paths of both solvers on Rosenbrock n = 2 from its start (rounded).
HOLES = np.array(
    [(-0.65, 0.38), (0.08, -0.01), (0.83, 0.69), (-0.67, 0.41), (0.06, -0.05), (0.61, 0.37)]
)


def _near(points: np.ndarray, radius: float) -> Callable[[np.ndarray], bool]:
    return lambda x: bool(np.min(np.hypot(*(points - x).T)) < radius)


def _spoilt(fn: Callable, where: Callable[[np.ndarray], bool], value: float) -> Callable:
    """fn, but all values are ``value`` where ``where(x)``."""

    def spoilt(x, *args):
        out = fn(x, *args)
        return np.full_like(np.asarray(out, dtype=float), value) if where(x) else out

    return spoilt


def non_finite_problems() -> dict[str, tuple[problems.Problem, int]]:
    """Name -> (Rosenbrock n = 2 with non-finite values somewhere, NumPy's status on it, the
    same for both solvers). Near a hole (0.02) trial points are rejected and the run goes
    around it; wider holes (0.05) block the valley until the radius collapses; a non-finite
    Hessian at an iterate, or f at the start, stops the run."""
    base = problems.rosenbrock(2)
    start = _near(base.x0[None, :], 1e-3)
    small, wide = _near(HOLES, 0.02), _near(HOLES, 0.05)

    def spoil(status: int, where: Callable, value: float, *names: str):
        fields = {name: _spoilt(getattr(base, name), where, value) for name in names}
        return dataclasses.replace(base, **fields), status

    return {
        "f inf near the path": spoil(0, small, math.inf, "f"),
        "f NaN near the path": spoil(0, small, math.nan, "f"),
        "gradient NaN near the path": spoil(0, small, math.nan, "grad"),
        "gradient -inf near the path": spoil(0, small, -math.inf, "grad"),
        "f inf across the valley": spoil(2, wide, math.inf, "f"),
        "Hessian NaN near the path": spoil(3, small, math.nan, "hess", "hessp"),
        "Hessian inf at the start": spoil(3, start, math.inf, "hess", "hessp"),
        "f NaN at the start": spoil(3, start, math.nan, "f"),
    }

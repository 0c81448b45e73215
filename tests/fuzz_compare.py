"""How the fuzz run compares targets: two steps of every element-wise target against the
reference stepper (``symopt.reference``), and a second-order spec's ``minimize`` on a convex
quadratic against its exact minimiser.

Tolerance policy (a wrong formula differs by far more than rounding): the same NaN/inf pattern
where the reference's is stable under perturbed arithmetic; finite values within FACTOR times the
spread of perturbed reference runs (float64 conditioning, cancellation included) and at least
FLOOR units of roundoff of the values' scale; an element that fails is compared again with the
reference evaluated in high precision (mpmath) before it counts.
"""

from __future__ import annotations

import importlib

import numpy as np


def line(exc: BaseException) -> str:
    """An exception as one ``Type: message`` string (capped)."""
    return f"{type(exc).__name__}: {exc}"[:3000]


class Disagreement(Exception):
    """Targets that disagree with the reference (or with each other) beyond rounding."""


#: Parameter shapes of the step problem (those a spec does not take are left out).
SHAPES = [(5,), (3, 4)]
STEPS = 2
#: The tolerance is FACTOR times the spread of perturbed reference runs, never below FLOOR units
#: of roundoff of the quantity's scale (a wrong formula differs by far more).
FACTOR, FLOOR, PERTURBED_RUNS = 64.0, 64.0, 3
U = 2.0**-53


def _problem(spec, seed: int):
    from symopt.reference import ReferenceStepper

    rng = np.random.default_rng(seed)
    shapes = []
    for shape in SHAPES:
        try:
            ReferenceStepper(spec, [np.zeros(shape)])
        except ValueError:
            continue
        shapes.append(shape)
    ws = [rng.standard_normal(s) for s in shapes]
    grads = [[rng.standard_normal(s) for s in shapes] for _ in range(STEPS)]
    return ws, grads


def _reference(spec, ws, grads, **options) -> list[np.ndarray]:
    from symopt.reference import ReferenceStepper

    ref = ReferenceStepper(spec, ws, **options)
    for gs in grads:
        ref.step(gs)
    return [np.asarray(p, dtype=np.float64) for p in ref.params]


def _run_numpy_like(cls, ws, grads):
    opt = cls([w.copy() for w in ws])
    for gs in grads:
        opt.step([g.copy() for g in gs])
    return [np.array(p, dtype=np.float64) for p in opt.params]


def _run_torch(cls, ws, grads):
    import torch

    params = [torch.nn.Parameter(torch.tensor(w, dtype=torch.float64)) for w in ws]
    opt = cls(params)
    for gs in grads:
        for p, g in zip(params, gs, strict=True):
            p.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
    return [p.detach().numpy().copy() for p in params]


def _run_jax(factory, ws, grads):
    import jax.numpy as jnp
    import optax

    tx = factory()
    params = [jnp.asarray(w) for w in ws]
    state = tx.init(params)
    for gs in grads:
        updates, state = tx.update([jnp.asarray(g) for g in gs], state, params)
        params = optax.apply_updates(params, updates)
    return [np.asarray(p, dtype=np.float64) for p in params]


RUNNERS = {"numpy": _run_numpy_like, "c": _run_numpy_like, "torch": _run_torch, "jax": _run_jax}


def _run_targets(name: str, packages: dict, run) -> tuple[dict, list[str]]:
    """Each target's result, or the ValueError it raised; a target refusing valid defaults
    while another runs is a disagreement."""
    results, raised = {}, {}
    for target, pkg in packages.items():
        maker = getattr(pkg, "OPTIMIZERS", {}).get(name) or getattr(pkg, "SECOND_ORDER", {}).get(
            name
        )
        if maker is None and not hasattr(pkg, "OPTIMIZERS"):
            continue
        if maker is None:
            raise Disagreement(f"{target} generated no optimizer {name!r}")
        try:
            results[target] = run(target, maker)
        except ValueError as exc:
            raised[target] = line(exc)
    if raised and results:
        raise Disagreement(
            f"some targets raise, others step: raised {raised}, stepped {sorted(results)}"
        )
    return results, [f"every target refuses the defaults: {raised}"] if raised else []


def compare_steps(spec, packages: dict, seed: int) -> list[str]:
    """Two steps of every target's default setting against the reference stepper."""
    from symopt.spec.family import variants
    from symopt.verify.tolerance import Perturbed

    ws, grads = _problem(spec, seed)
    if not ws:
        return ["no shape the spec takes"]
    results, notes = _run_targets(spec.name, packages, lambda t, cls: RUNNERS[t](cls, ws, grads))
    if not results:
        return notes
    default = variants(spec)[0]
    with np.errstate(all="ignore"):
        exact = _reference(default, ws, grads)
        rng = np.random.default_rng(seed)
        perturbed = [
            _reference(default, ws, grads, arith=Perturbed(4 * U, rng))
            for _ in range(PERTURBED_RUNS)
        ]
    precise = None
    for target, params in results.items():
        for i, (got, want) in enumerate(zip(params, exact, strict=True)):
            why = _differs(got, want, [p[i] for p in perturbed])
            if why and precise is None:
                precise = _reference(default, ws, grads, precision="mpmath")
            if why and _differs(got, precise[i], [p[i] for p in perturbed]):
                raise Disagreement(
                    f"{target} differs from the reference in w[{i}] (shape {want.shape}): {why}"
                )
    return notes


def _differs(got: np.ndarray, want: np.ndarray, perturbed: list[np.ndarray]) -> str | None:
    """Why ``got`` is not ``want`` up to rounding, or None; elements whose perturbed runs change
    their NaN/inf pattern, or beyond 1e300, are ill-conditioned and not compared."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    with np.errstate(all="ignore"):
        return _why(got, want, perturbed)


def _why(got: np.ndarray, want: np.ndarray, perturbed: list[np.ndarray]) -> str | None:
    if got.shape != want.shape:
        return f"shape {got.shape} != {want.shape}"
    stable = np.abs(np.nan_to_num(want, nan=0.0, posinf=1e308, neginf=1e308)) < 1e300
    for p in perturbed:
        stable &= (np.isnan(p) == np.isnan(want)) & (np.isinf(p) == np.isinf(want))
    pattern = lambda x: np.stack([np.isnan(x), np.isposinf(x), np.isneginf(x)])  # noqa: E731
    bad = (pattern(got) != pattern(want)).any(axis=0) & stable
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        return f"element {i}: {got.flat[i]!r} where the reference has {want.flat[i]!r}"
    finite = np.isfinite(want) & np.isfinite(got) & stable
    if not finite.any():
        return None
    spread = max(
        (float(np.nanmax(np.abs(p - want)[finite], initial=0.0)) for p in perturbed), default=0.0
    )
    scale = float(np.max(np.abs(want[finite])))
    tol = FACTOR * spread + FLOOR * U * scale + 1e-300
    err = np.abs(got - want)[finite]
    if float(err.max()) > tol:
        i = int(np.argmax(err))
        pair = f"got {got[finite][i]!r}, want {want[finite][i]!r}"
        return f"max error {float(err.max()):.3g} > tolerance {tol:.3g} ({pair})"
    return None


#: How close a successful ``minimize`` must end to the quadratic's minimiser (see compare_model).
SOLUTION_TOLERANCE = {"rtol": 1e-5, "atol": 1e-6}


def _quadratic(seed: int):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((4, 4))
    h, b = a @ a.T + 4 * np.eye(4), rng.standard_normal(4)
    return h, b, rng.standard_normal(4)


def compare_model(spec, packages: dict, seed: int) -> list[str]:
    """Every target's ``minimize`` on one strictly convex quadratic, run to its own stopping rule:
    the targets agree on success, and a target that succeeds is at the exact minimiser. Not the
    iterates, nor one target against another: the targets solve their subproblems differently
    (torch's trust region takes other steps than NumPy's), so only the end point is shared.
    Tolerance: H = A A^T + 4 I has eigenvalues >= 4, so the default gtol = 1e-8 puts x within
    ||grad|| / 4 = 2.5e-9 of the minimiser; SOLUTION_TOLERANCE leaves room for a mutated spec's
    looser stopping while a wrong step misses by O(1)."""
    h, b, x0 = _quadratic(seed)
    runs, raised = {}, {}
    for target, pkg in packages.items():
        try:
            module = importlib.import_module(f"{pkg.__name__}.{spec.name}")
        except ModuleNotFoundError:
            continue
        if not hasattr(module, "minimize"):
            continue
        try:
            runs[target] = _minimize(target, module, h, b, x0)
        except ValueError as exc:
            raised[target] = line(exc)
    if raised and runs:
        raise Disagreement(
            f"some targets raise, others minimise: raised {raised}, ran {sorted(runs)}"
        )
    if not runs:
        return [f"every target refuses: {raised}"] if raised else ["no minimize generated"]
    success = {t: ok for t, (ok, _) in runs.items()}
    if len(set(success.values())) > 1:
        raise Disagreement(f"targets disagree on success: {success}")
    solution = np.linalg.solve(h, -b)
    for target, (ok, x) in runs.items():
        if ok and not np.allclose(x, solution, **SOLUTION_TOLERANCE):
            away = f"x {x.tolist()} vs {solution.tolist()}"
            raise Disagreement(f"{target} reports success away from the minimiser: {away}")
    return []


def _minimize(target: str, module, h, b, x0) -> tuple[bool, np.ndarray]:
    if target == "torch":
        import torch

        ht, bt = torch.tensor(h), torch.tensor(b)
        r = module.minimize(lambda x: 0.5 * x @ ht @ x + bt @ x, torch.tensor(x0))
    elif target == "jax":
        import jax.numpy as jnp

        hj, bj = jnp.asarray(h), jnp.asarray(b)
        r = module.minimize(lambda x: 0.5 * x @ hj @ x + bj @ x, jnp.asarray(x0))
    else:
        r = module.minimize(
            lambda x: 0.5 * x @ h @ x + b @ x, lambda x: h @ x + b, x0.copy(), hess=lambda x: h
        )
    return bool(r.success), np.asarray(r.x, dtype=np.float64)

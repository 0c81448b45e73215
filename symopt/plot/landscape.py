"""Optimizer trajectories on a test function: the data (NumPy only), then the picture.

Every optimizer starts from the landscape's start point and follows the exact gradient (derived by
SymPy). The points plotted are the parameters after each step as the optimizer computes them; for a
look-ahead method with a generated look-ahead-free form (Nesterov) that is the stored point
p = w + rho v, the one torch.optim also stores.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from symopt.landscapes import Landscape
from symopt.plot.common import (
    Progress,
    colors,
    hyper_label,
    legend_label,
    new_figure,
    ordered,
    quiet,
    save_png,
)
from symopt.plot.steppers import Stepper
from symopt.spec import Spec

FIGSIZE = (12.0, 5.0)
DPI = 100
#: A point farther than this from the origin (or a non-finite one) ends a trajectory: diverged.
FAR = 1e6
#: Loss gaps below this are drawn at it: the log axis would otherwise stretch to 1e-30.
FLOOR = 1e-12
#: Seconds between "still running" lines for long runs.
REPORT_EVERY = 2.0


@dataclass(frozen=True)
class Trajectory:
    """One optimizer's path: the start, then the parameters after each step."""

    name: str
    label: str
    points: np.ndarray  # (k + 1, 2), all finite
    losses: np.ndarray  # f - f_min at each point
    hyper: Mapping[str, float]
    backend: str
    diverged_at: int | None = None  # the step that left the finite plane; it is not in points

    @property
    def steps(self) -> int:
        return len(self.points) - 1


def landscape_hyper(
    landscape: Landscape, spec: Spec, overrides: Mapping[str, float] | None = None
) -> dict[str, float]:
    """The spec's defaults, the landscape's learning rate for a built-in name, then overrides."""
    hyper = dict(spec.defaults)
    if "lr" in hyper and spec.name in landscape.lr:
        hyper["lr"] = landscape.lr[spec.name]
    hyper.update({k: float(v) for k, v in (overrides or {}).items()})
    return hyper


def run_trajectory(
    landscape: Landscape,
    spec: Spec,
    steps: int | None = None,
    overrides: Mapping[str, float] | None = None,
    start: Sequence[float] | None = None,
    progress: Progress = quiet,
) -> Trajectory:
    """Run ``spec`` on ``landscape`` for ``steps`` steps (the landscape's default when None)."""
    steps = landscape.steps if steps is None else steps
    hyper = landscape_hyper(landscape, spec, overrides)
    point = np.array(landscape.start if start is None else start, dtype=np.float64)
    if spec.kind == "second_order":
        return _minimizer_trajectory(landscape, spec, steps, hyper, point)
    stepper = Stepper(spec, [point], hyper)
    grad_at = lambda ps: [landscape.grad(ps[0])]  # noqa: E731
    points = [point.copy()]
    diverged = None
    clock = time.perf_counter()
    for k in range(1, steps + 1):
        stepper.step(grad_at)
        p = np.array(stepper.params[0], dtype=np.float64)
        if not (np.all(np.isfinite(p)) and np.max(np.abs(p)) < FAR and _finite_f(landscape, p)):
            diverged = k
            break
        points.append(p)
        if k % 100 == 0 and time.perf_counter() - clock > REPORT_EVERY:
            clock = time.perf_counter()
            progress(f"  {spec.name}: step {k}/{steps}")
    xy = np.array(points)
    losses = landscape.f(xy[:, 0], xy[:, 1]) - landscape.f_min
    label = " ".join(filter(None, [spec.name, hyper_label(spec, hyper)]))
    if diverged is not None:
        label += f" (diverged at step {diverged})"
    return Trajectory(spec.name, label, xy, losses, hyper, stepper.backend, diverged)


def _minimizer_trajectory(
    landscape: Landscape, spec, steps: int, hyper: Mapping[str, float], point: np.ndarray
) -> Trajectory:
    """A second-order method's accepted iterates (it stops early when it converges or fails;
    a failure, such as Newton meeting an indefinite Hessian, is said in the label)."""
    from symopt.plot.steppers import check_hyper, minimizer_module

    check_hyper(spec, hyper)
    module, backend = minimizer_module(spec)
    points = [point.copy()]
    f = lambda p: float(landscape.f(p[0], p[1]))  # noqa: E731
    result = module.minimize(
        f,
        landscape.grad,
        point,
        hess=landscape.hess,
        max_iter=steps,
        callback=points.append,
        **hyper,
    )
    xy = np.array(points)
    losses = landscape.f(xy[:, 0], xy[:, 1]) - landscape.f_min
    label = " ".join(filter(None, [spec.name, hyper_label(spec, hyper)]))
    if not result.success and result.status != 1:  # status 1: the step budget ran out
        label += f" ({_short_failure(result.message)})"
    return Trajectory(spec.name, label, xy, losses, dict(hyper), backend)


def _short_failure(message: str) -> str:
    if "not positive definite" in message:
        return "stopped: Hessian not positive definite"
    if "saddle" in message:
        return "stopped at a saddle point"
    return "stopped: " + message.split(":")[0]


def _finite_f(landscape: Landscape, p: np.ndarray) -> bool:
    return math.isfinite(float(landscape.f(p[0], p[1])))


def run_trajectories(
    landscape: Landscape,
    specs: Sequence[Spec],
    steps: int | None = None,
    overrides: Mapping[str, Mapping[str, float]] | None = None,
    start: Sequence[float] | None = None,
    progress: Progress = quiet,
) -> list[Trajectory]:
    """One trajectory per spec (in the legend's order), with a progress line after each."""
    out = []
    for spec in ordered(specs):
        began = time.perf_counter()
        tr = run_trajectory(
            landscape, spec, steps, (overrides or {}).get(spec.name), start, progress
        )
        end = tr.points[-1]
        fate = (
            f"diverged at step {tr.diverged_at}, stopped"
            if tr.diverged_at is not None
            else f"f - f* {tr.losses[-1]:.2e}, distance to minimum "
            f"{landscape.distance_to_minimum(end):.2g}"
        )
        progress(
            f"{tr.name} ({tr.backend}): {tr.steps} steps, {fate} "
            f"({time.perf_counter() - began:.2f} s)"
        )
        out.append(tr)
    return out


def landscape_figure(landscape: Landscape, trajectories: Sequence[Trajectory], dpi: int = DPI):
    """Contours with every trajectory and the minima; beside it, f - f* per step on a log axis."""
    fig = new_figure(FIGSIZE, dpi)
    ax, loss_ax = fig.subplots(1, 2, width_ratios=[1.15, 1.0])
    _contours(ax, landscape)
    start = trajectories[0].points[0] if trajectories else np.array(landscape.start)
    for tr, color in zip(trajectories, colors(len(trajectories)), strict=True):
        xs, ys = tr.points[:, 0], tr.points[:, 1]
        ax.plot(xs, ys, "-", color=color, lw=1.6, alpha=0.9, zorder=3, gid=f"path:{tr.name}")
        ax.plot(xs[-1:], ys[-1:], "x" if tr.diverged_at else "o", color=color, ms=6, zorder=4)
        steps = np.arange(len(tr.losses))
        loss = np.maximum(tr.losses, FLOOR)
        loss_ax.plot(
            steps,
            loss,
            color=color,
            lw=1.4,
            label=legend_label(tr, trajectories),
            gid=f"loss:{tr.name}",
        )
    mx, my = zip(*landscape.minima, strict=True)
    ax.plot(mx, my, "*", ms=15, color="gold", mec="black", zorder=5, label="minimum")
    ax.plot(start[:1], start[1:], "o", ms=7, color="white", mec="black", zorder=5, label="start")
    ax.legend(loc="best", fontsize=8, framealpha=0.9)
    ax.set_title(f"{landscape.title}, from ({start[0]:g}, {start[1]:g})", fontsize=11)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    loss_ax.set_yscale("log")
    if trajectories:  # a diverging run must not squash the others: clip 1000x above the start
        top = 1e3 * max(float(tr.losses[0]) for tr in trajectories)
        if max(float(np.max(tr.losses)) for tr in trajectories) > top:
            low = min(float(np.min(np.maximum(tr.losses, FLOOR))) for tr in trajectories)
            loss_ax.set_ylim(low / 3, top)
    loss_ax.set_xlabel("step")
    loss_ax.set_ylabel("f(x, y) - f*")
    loss_ax.set_title("Loss per step (log scale)", fontsize=11)
    loss_ax.grid(True, which="major", alpha=0.3)
    if trajectories:
        loss_ax.legend(loc="upper right", fontsize=8, framealpha=0.9)
    return fig


def _contours(ax, landscape: Landscape) -> None:
    """Log-spaced level lines of f - f*: the flat regions and the steep walls both show."""
    x0, x1, y0, y1 = landscape.box
    gx, gy = np.meshgrid(np.linspace(x0, x1, 241), np.linspace(y0, y1, 241))
    gap = np.maximum(landscape.f(gx, gy) - landscape.f_min, 0.0)
    hi = float(np.percentile(gap, 99))
    lo = max(float(np.percentile(gap, 0.2)), hi * 1e-6, 1e-12)
    levels = np.geomspace(lo, hi, 24)
    clipped = np.clip(gap, lo, hi)
    ax.contour(gx, gy, clipped, levels=levels, colors="0.62", linewidths=0.6)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)


def plot_landscape(
    landscape: Landscape,
    specs: Sequence[Spec],
    out: str | Path,
    steps: int | None = None,
    overrides: Mapping[str, Mapping[str, float]] | None = None,
    start: Sequence[float] | None = None,
    dpi: int = DPI,
    progress: Progress = quiet,
) -> tuple[Path, list[Trajectory]]:
    """Run every spec on ``landscape`` and write the picture to ``out`` (PNG)."""
    trajectories = run_trajectories(landscape, specs, steps, overrides, start, progress)
    fig = landscape_figure(landscape, trajectories, dpi)
    return save_png(fig, out), trajectories

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
    PER_STYLE,
    Progress,
    hyper_label,
    legend_label,
    line_styles,
    new_figure,
    ordered,
    quiet,
    save_png,
)
from symopt.plot.steppers import Stepper
from symopt.spec import Spec

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
    kind: str = "elementwise"  # the spec's kind: "second_order" runs are drawn in their own row
    stopped: str | None = None  # why a minimiser gave up (its curvature was not positive definite)
    converged: bool = False  # a minimiser met its tolerance, usually long before its budget

    @property
    def steps(self) -> int:
        return len(self.points) - 1

    @property
    def second_order(self) -> bool:
        return self.kind == "second_order"

    @property
    def ended_early(self) -> bool:
        """It did not take the steps asked for: it diverged, stopped or converged."""
        return self.diverged_at is not None or self.stopped is not None or self.converged


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
    return Trajectory(spec.name, label, xy, losses, hyper, stepper.backend, diverged, spec.kind)


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
    n = len(xy) - 1
    # status 0: converged, 1: the step budget ran out, 2 and 3: it gave up (see _second_order.py)
    stopped = _short_failure(result.message) if result.status not in (0, 1) else None
    converged = result.status == 0 and n < steps
    if stopped is not None:
        label += f"\n(stopped after {_plural(n, 'step')}: {stopped})"
    elif converged:
        label += f" (converged in {_plural(n, 'step')})"
    return Trajectory(
        spec.name,
        label,
        xy,
        losses,
        dict(hyper),
        backend,
        kind=spec.kind,
        stopped=stopped,
        converged=converged,
    )


#: Why a minimiser gave up, in a few words: a phrase of its message, then the words to show.
FAILURES = (
    ("the Hessian", "Hessian not positive definite"),
    ("diagonal", "damped diagonal not positive"),
    ("a block", "damped Hessian block not positive definite"),
    ("non-finite", "non-finite f or gradient"),
)


def _short_failure(message: str) -> str:
    for phrase, words in FAILURES:
        if phrase in message:
            return words
    return message.split(" at iteration")[0].split(":")[0]


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


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
        took = time.perf_counter() - began
        progress(f"{tr.name} ({tr.backend}): {_fate(landscape, tr)} ({took:.2f} s)")
        out.append(tr)
    return out


#: The figure's width (paths, loss, legend) and the height of one row; 100 dpi by default.
WIDTH = 14.0
ROW_HEIGHT = 4.6
#: Columns of a row: the paths, the loss per step, the legend (outside both panels).
WIDTHS = (1.15, 1.0, 0.8)
#: The rows: whether they hold the second-order methods, their title, the loss axis' unit.
ROWS = (
    (False, "First-order methods", "step"),
    (True, "Second-order methods (exact Hessian)", "iteration"),
)


def figure_size(rows: int) -> tuple[float, float]:
    """Inches: one row for first-order methods, one for second-order methods (when pictured)."""
    return WIDTH, ROW_HEIGHT * max(1, rows) + 0.4


def _fate(landscape: Landscape, tr: Trajectory) -> str:
    """How a run ended, for its progress line."""
    steps = _plural(tr.steps, "step")
    if tr.diverged_at is not None:
        return f"{steps}, diverged at step {tr.diverged_at}, stopped"
    where = (
        f"f - f* {tr.losses[-1]:.2e}, distance to minimum "
        f"{landscape.distance_to_minimum(tr.points[-1]):.2g}"
    )
    if tr.stopped is not None:
        return f"stopped after {steps}: {tr.stopped}; {where}"
    return f"converged in {steps}, {where}" if tr.converged else f"{steps}, {where}"


def landscape_figure(landscape: Landscape, trajectories: Sequence[Trajectory], dpi: int = DPI):
    """Per kind of method, a row: contours with the paths and minima, f - f* per step on a log
    axis, and the legend beside them (never over a panel).

    Second-order methods get their own row: they take a few iterations where first-order methods
    take hundreds (their loss needs its own step axis), and five more paths would bury the nine.
    Colours are tab10's, in order over the rows, and each row has its own line style, so no
    (colour, style) pair repeats; a run that ended before its budget has a mark at its end.
    """
    rows = [(row, [tr for tr in trajectories if tr.second_order == row[0]]) for row in ROWS]
    groups = [(row, group) for row, group in rows if group] or rows[:1]
    fig = new_figure(figure_size(len(groups)), dpi)
    grid = fig.add_gridspec(len(groups), 3, width_ratios=WIDTHS)
    start = trajectories[0].points[0] if trajectories else np.array(landscape.start)
    fig.suptitle(f"{landscape.title}, from ({start[0]:g}, {start[1]:g})", fontsize=12)
    colour = style = 0  # each row goes on with the colours, in a new line style
    for i, ((_, title, unit), group) in enumerate(groups):
        ax, loss_ax, key_ax = (fig.add_subplot(grid[i, j]) for j in range(3))
        _contours(ax, landscape)
        ends: list[tuple] = []  # runs that end at the same step and point get nested marks
        looks = zip(group, *line_styles(len(group), colour, style), strict=True)
        for tr, color, dashes in looks:
            ends.append((tr.steps, *tr.points[-1]))
            label = legend_label(tr, trajectories)
            _draw(ax, loss_ax, tr, color, dashes, label, nested=ends.count(ends[-1]) - 1)
        colour += len(group)
        style += max(1, math.ceil(len(group) / PER_STYLE))
        _mark_start_and_minima(ax, landscape, start)
        ax.set_title(title, fontsize=11)
        _loss_axis(loss_ax, group, unit)
        _legend(key_ax, ax, loss_ax, with_symbols=i == 0)
    return fig


def _draw(ax, loss_ax, tr: Trajectory, color, dashes: str, label: str, nested: int) -> None:
    """The path with a dot where it ended (a cross for a divergence, an X with a black edge for
    a failure) and the loss, which carries the same mark when the run ended before its budget.
    The ``nested``-th run to end at the same point gets a smaller mark, drawn on top."""
    marker, size, edge = _end_marker(tr)
    size = max(4.0, size - 3.0 * nested)
    last = [len(tr.points) - 1]
    xs, ys = tr.points[:, 0], tr.points[:, 1]
    common = dict(color=color, ls=dashes, marker=marker, ms=size, mec=edge, markevery=last)
    z = 6 + nested if tr.stopped is not None else 3  # a run that never moved: over the start
    ax.plot(xs, ys, lw=1.6, alpha=0.9, zorder=z, gid=f"path:{tr.name}", **common)
    if not tr.ended_early:
        common.update(marker=None)
    steps = np.arange(len(tr.losses))
    loss = np.maximum(tr.losses, FLOOR)
    loss_ax.plot(steps, loss, lw=1.4, label=label, gid=f"loss:{tr.name}", zorder=z, **common)


def _end_marker(tr: Trajectory) -> tuple[str, float, str | None]:
    if tr.diverged_at is not None:
        return "x", 8.0, None
    if tr.stopped is not None:
        return "X", 13.0, "black"
    return "o", 5.0, None


def _mark_start_and_minima(ax, landscape: Landscape, start: np.ndarray) -> None:
    mx, my = zip(*landscape.minima, strict=True)
    ax.plot(mx, my, "*", ms=15, color="gold", mec="black", zorder=5, label="minimum")
    ax.plot(start[:1], start[1:], "o", ms=7, color="white", mec="black", zorder=5, label="start")
    ax.set_xlabel("x")
    ax.set_ylabel("y")


def _loss_axis(loss_ax, group: Sequence[Trajectory], unit: str) -> None:
    """Log scale; a diverging run must not squash the others: clip 1000x above the start."""
    loss_ax.set_yscale("log")
    if group:
        top = 1e3 * max(float(tr.losses[0]) for tr in group)
        if max(float(np.max(tr.losses)) for tr in group) > top:
            low = min(float(np.min(np.maximum(tr.losses, FLOOR))) for tr in group)
            loss_ax.set_ylim(low / 3, top)
    loss_ax.set_xlabel(unit)
    loss_ax.set_ylabel("f(x, y) - f*")
    loss_ax.set_title(f"Loss per {unit} (log scale)", fontsize=11)
    loss_ax.grid(True, which="major", alpha=0.3)


def _legend(key_ax, ax, loss_ax, with_symbols: bool) -> None:
    """The row's legend in its own column: the methods (and, once, the start and minima)."""
    handles, labels = loss_ax.get_legend_handles_labels()
    if with_symbols:
        extra, names = ax.get_legend_handles_labels()
        handles, labels = [*handles, *extra], [*labels, *names]
    key_ax.set_axis_off()
    key_ax.set_gid("legend")
    if handles:
        key_ax.legend(handles, labels, loc="upper left", fontsize=8, frameon=False)


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

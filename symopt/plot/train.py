"""Training curves and decision boundaries of a small MLP on two moons, one run per optimizer.

Also the article's three gradient-descent variants, which are one update rule (the sgd spec) fed
different gradient estimates: batch gradient descent (the whole data set, one step per epoch),
stochastic gradient descent (one example per step) and mini-batch SGD (32 examples per step).
Losses are always the full training loss, recorded against epochs, so the variants compare at
equal numbers of gradient evaluations per example.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from symopt import moons
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

DPI = 100
N_POINTS = 200
NOISE = 0.2
SIZES = (2, 16, 16, 1)
EPOCHS = 100
#: Batch sizes by name: None is the whole data set.
BATCHES: dict[str, int | None] = {"full": None, "1": 1, "32": 32}
#: Learning rates under which each built-in trains this MLP in ~100 epochs of batch 32.
TRAIN_LR = {
    "sgd": 0.2,
    "momentum": 0.02,
    "nesterov": 0.02,
    "adagrad": 0.05,
    "rmsprop": 0.003,
    "adam": 0.005,
    "adamax": 0.02,
    "nadam": 0.005,
    "adabelief": 0.005,
}
#: One learning rate for the three variants, so they differ only in the gradient estimate.
VARIANT_LR = 0.1
VARIANTS = (("batch GD", None), ("SGD (batch 1)", 1), ("mini-batch SGD (32)", 32))
#: Full-loss records per epoch at most (SGD with batch 1 takes N_POINTS steps per epoch).
RECORDS_PER_EPOCH = 20
REPORT_EVERY = 2.0


@dataclass(frozen=True)
class Data:
    X: np.ndarray
    y: np.ndarray
    seed: int


@dataclass(frozen=True)
class TrainRun:
    """One training run: the full training loss against epochs, and the final parameters."""

    name: str
    label: str
    batch: int | None
    epochs: np.ndarray  # fractional epochs at which the loss was recorded, 0 first
    losses: np.ndarray
    params: list[np.ndarray]
    steps: int
    hyper: Mapping[str, float]
    backend: str
    accuracy: float
    diverged_at: int | None = None


def make_data(seed: int = 0, n: int = N_POINTS, noise: float = NOISE) -> Data:
    X, y = moons.make_moons(n, noise, seed)
    return Data(X, y, seed)


def batch_name(batch: int | None) -> str:
    return "full" if batch is None else str(batch)


def parse_batch(text: str) -> int | None:
    """``full`` (batch gradient descent) or a positive batch size; ValueError otherwise."""
    if text == "full":
        return None
    if text.isdigit() and int(text) > 0:
        return int(text)
    raise ValueError(f"batch must be 'full' or a positive integer such as 1 or 32, got {text!r}")


def train_hyper(spec: Spec, overrides: Mapping[str, float] | None = None) -> dict[str, float]:
    """The spec's defaults, this MLP's learning rate for a built-in name, then overrides."""
    hyper = dict(spec.defaults)
    if "lr" in hyper and spec.name in TRAIN_LR:
        hyper["lr"] = TRAIN_LR[spec.name]
    hyper.update({k: float(v) for k, v in (overrides or {}).items()})
    return hyper


def train(
    spec: Spec,
    data: Data,
    batch: int | None,
    epochs: int = EPOCHS,
    hyper: Mapping[str, float] | None = None,
    label: str | None = None,
    progress: Progress = quiet,
) -> TrainRun:
    """Train a fresh MLP (initialised from ``data.seed``) with ``spec``; batches are shuffled by
    their own seeded generator, so every optimizer sees the same batches."""
    hyper = dict(spec.defaults) | dict(hyper or {})
    X, y = data.X, data.y
    n = len(y)
    stepper = Stepper(spec, moons.init_mlp(SIZES, data.seed), hyper)
    rng = np.random.default_rng(data.seed + 1)
    per_epoch = 1 if batch is None else math.ceil(n / min(batch, n))
    every = max(1, per_epoch // RECORDS_PER_EPOCH)
    xs, losses = [0.0], [moons.loss_and_grads(stepper.params, X, y)[0]]
    steps, diverged, clock = 0, None, time.perf_counter()
    for epoch in range(epochs):
        for i, idx in enumerate(moons.minibatches(n, batch, rng)):
            xb, yb = X[idx], y[idx]
            stepper.step(lambda ps, xb=xb, yb=yb: moons.loss_and_grads(ps, xb, yb)[1])
            steps += 1
            if (i + 1) % every == 0 or i + 1 == per_epoch:
                loss = _full_loss(stepper.params, X, y)
                if not math.isfinite(loss):
                    diverged = steps
                    break
                xs.append(epoch + (i + 1) / per_epoch)
                losses.append(loss)
        if diverged is not None:
            break
        if time.perf_counter() - clock > REPORT_EVERY:
            clock = time.perf_counter()
            progress(f"  {spec.name}: epoch {epoch + 1}/{epochs}, loss {losses[-1]:.3g}")
    params = [np.array(p) for p in stepper.params]
    acc = moons.accuracy(params, X, y) if diverged is None else float("nan")
    text = label or " ".join(filter(None, [spec.name, hyper_label(spec, hyper)]))
    text += f" (diverged at step {diverged})" if diverged else f": {acc:.0%}"
    return TrainRun(
        spec.name,
        text,
        batch,
        np.array(xs),
        np.array(losses),
        params,
        steps,
        hyper,
        stepper.backend,
        acc,
        diverged,
    )


def _full_loss(params: Sequence[np.ndarray], X: np.ndarray, y: np.ndarray) -> float:
    with np.errstate(all="ignore"):
        logits, _ = moons.forward(params, X)
        return moons.bce(logits, y) if np.all(np.isfinite(logits)) else math.inf


def _report(run: TrainRun, began: float, progress: Progress, title: str = "") -> None:
    how = f"{run.steps} steps, batch {batch_name(run.batch)}"
    fate = (
        f"diverged at step {run.diverged_at}, stopped"
        if run.diverged_at
        else f"loss {run.losses[-1]:.3g}, accuracy {run.accuracy:.0%}"
    )
    who = f"{title or run.name} ({run.backend})"
    progress(f"{who}: {how}, {fate} ({time.perf_counter() - began:.2f} s)")


def train_variants(
    sgd: Spec, data: Data, epochs: int = EPOCHS, lr: float = VARIANT_LR, progress=quiet
) -> list[TrainRun]:
    """The article's three gradient-descent variants: one update, three gradient estimates."""
    runs = []
    for name, batch in VARIANTS:
        began = time.perf_counter()
        run = train(sgd, data, batch, epochs, {"lr": lr}, f"{name}, lr={lr:g}", progress)
        _report(run, began, progress, f"{name} with {sgd.name}")
        runs.append(run)
    return runs


def train_all(
    specs: Sequence[Spec],
    data: Data,
    batch: int | None,
    epochs: int = EPOCHS,
    overrides: Mapping[str, Mapping[str, float]] | None = None,
    progress: Progress = quiet,
) -> list[TrainRun]:
    """One run per spec (in the legend's order), with a progress line after each."""
    runs = []
    for spec in ordered(specs):
        began = time.perf_counter()
        hyper = train_hyper(spec, (overrides or {}).get(spec.name))
        run = train(spec, data, batch, epochs, hyper, progress=progress)
        _report(run, began, progress)
        runs.append(run)
    return runs


def figure_size(n_runs: int) -> tuple[float, float]:
    """Two loss panels on top, then one decision-boundary row per five optimizers."""
    return (14.0, 4.2 + 2.7 * max(1, math.ceil(n_runs / 5)))


def train_figure(
    variants: Sequence[TrainRun], runs: Sequence[TrainRun], data: Data, dpi: int = DPI
):
    """Loss curves of the variants and the optimizers; each optimizer's decision boundary."""
    fig = new_figure(figure_size(len(runs)), dpi)
    everything = [*variants, *runs]
    rows = max(1, math.ceil(len(runs) / 5))
    top, bottom = fig.subfigures(2, 1, height_ratios=[4.2, 2.7 * rows])
    var_ax, opt_ax = top.subplots(1, 2)
    for run, color in zip(variants, colors(3), strict=False):
        var_ax.plot(
            run.epochs,
            run.losses,
            color=color,
            lw=1.3,
            label=legend_label(run, everything),
            gid="variant",
        )
    var_ax.set_title("Gradient-descent variants (the sgd spec)", fontsize=11)
    palette = colors(len(runs))
    for run, color in zip(runs, palette, strict=True):
        opt_ax.plot(
            run.epochs,
            run.losses,
            color=color,
            lw=1.3,
            label=legend_label(run, everything),
            gid=run.name,
        )
    batch = batch_name(runs[0].batch) if runs else "32"
    opt_ax.set_title(f"Optimizers, batch {batch}", fontsize=11)
    for ax in (var_ax, opt_ax):
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel("training loss (cross-entropy)")
        ax.grid(True, which="major", alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8, loc="upper right", framealpha=0.9)
    if runs:
        axes = np.atleast_1d(bottom.subplots(rows, 5)).ravel()
        grid = _grid(data.X)
        for ax, run, color in zip(axes, runs, palette, strict=False):
            _boundary(ax, run, data, grid, color)
        for ax in axes[len(runs) :]:
            ax.set_axis_off()
    bottom.suptitle(
        f"Decision boundaries after {runs[0].epochs[-1]:g} epochs (two moons, "
        f"{len(data.y)} points, seed {data.seed})"
        if runs
        else "",
        fontsize=11,
    )
    return fig


def _grid(X: np.ndarray, n: int = 120):
    lo, hi = X.min(axis=0) - 0.5, X.max(axis=0) + 0.5
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], n), np.linspace(lo[1], hi[1], n))
    return gx, gy


def _boundary(ax, run: TrainRun, data: Data, grid, color) -> None:
    gx, gy = grid
    ax.set_title(run.name, fontsize=10, color=color)
    ax.set_xticks([])
    ax.set_yticks([])
    if run.diverged_at is None:
        proba = moons.predict_proba(run.params, np.column_stack([gx.ravel(), gy.ravel()]))
        proba = proba.reshape(gx.shape)
        ax.contourf(gx, gy, proba, levels=[0.0, 0.5, 1.0], colors=["#f6d2b8", "#c9d9ef"])
        ax.contour(gx, gy, proba, levels=[0.5], colors="0.2", linewidths=1.0)
        ax.text(0.02, 0.03, f"{run.accuracy:.0%}", transform=ax.transAxes, fontsize=8)
    else:
        ax.text(0.5, 0.5, "diverged", transform=ax.transAxes, ha="center", fontsize=9)
    cls = data.y > 0.5
    ax.scatter(*data.X[~cls].T, s=4, color="#d45f1e", linewidths=0)
    ax.scatter(*data.X[cls].T, s=4, color="#2a6fb5", linewidths=0)
    ax.set_xlim(gx.min(), gx.max())
    ax.set_ylim(gy.min(), gy.max())


def plot_train(
    specs: Sequence[Spec],
    sgd: Spec,
    out: str | Path,
    batch: int | None = 32,
    epochs: int = EPOCHS,
    overrides: Mapping[str, Mapping[str, float]] | None = None,
    seed: int = 0,
    dpi: int = DPI,
    progress: Progress = quiet,
) -> tuple[Path, list[TrainRun], list[TrainRun]]:
    """Train the variants and every spec, then write the picture to ``out`` (PNG)."""
    data = make_data(seed)
    variants = train_variants(sgd, data, epochs, progress=progress)
    runs = train_all(specs, data, batch, epochs, overrides, progress)
    fig = train_figure(variants, runs, data, dpi)
    return save_png(fig, out), variants, runs

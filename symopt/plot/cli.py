"""``symopt plot``: pictures of any spec at work, one command each.

Only click is imported here; NumPy, SymPy and matplotlib are imported when a command runs, so
``symopt --help`` stays fast and works without the ``plot`` extra.
"""

from __future__ import annotations

import functools
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import click


def _friendly(fn: Callable) -> Callable:
    """symopt's one-line errors (bad spec files, unwritable --out), plus a missing matplotlib."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from symopt.cli_support import friendly_errors
        from symopt.plot.common import MissingMatplotlib, require_matplotlib

        try:
            require_matplotlib().use("Agg")  # fail before the work; never open a window
        except MissingMatplotlib as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        return friendly_errors(fn)(*args, **kwargs)

    return wrapper


def _shared(fn: Callable) -> Callable:
    """The options both pictures take: which optimizers, their hyperparameters, the output."""
    options = [
        click.option(
            "--algorithm",
            "names",
            multiple=True,
            metavar="NAME",
            help="A built-in algorithm (repeatable; default: the nine classic first-order ones "
            "and the second-order built-ins).",
        ),
        click.option(
            "--spec",
            "spec_files",
            multiple=True,
            type=click.Path(dir_okay=False),
            help="A spec file of your own (repeatable); it replaces a same-named built-in.",
        ),
        click.option(
            "--hyper",
            "hypers",
            multiple=True,
            metavar="NAME.HYPER=VALUE",
            help="A hyperparameter of one algorithm (adam.lr=0.01), or of every algorithm "
            "that has it (lr=0.01); repeatable.",
        ),
        click.option("--dpi", default=100, show_default=True, type=click.IntRange(20, 600)),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _out_folder(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """``--out`` must name a file in a folder that exists: a typo must not create folders."""
    folder = Path(value).parent if value else Path(".")
    if folder.exists() and not folder.is_dir():
        raise click.BadParameter(f"{str(folder)!r} is not a folder", ctx, param)
    if not folder.is_dir():
        raise click.BadParameter(f"the folder {str(folder)!r} does not exist", ctx, param)
    return value


def choose_specs(names: Sequence[str], spec_files: Sequence[str]) -> list:
    """Specs to picture: built-ins by name (or all) plus user files, which replace a same-named
    built-in. Second-order specs (Newton, trust region) run their NumPy minimiser."""
    from symopt.cli_support import select_specs
    from symopt.landscapes import PICTURED

    chosen, _ = select_specs(names, spec_files)
    specs = list({spec.name: spec for spec in chosen}.values())
    if not names:  # by default the first-order built-ins with tuned learning rates
        builtin = _builtin_names()
        files = {str(f) for f in spec_files}
        specs = [
            s
            for s in specs
            if s.kind != "elementwise"
            or s.name in PICTURED
            or s.name not in builtin
            or s.source in files
        ]
    # A picture's parameters are vectors: a spec for 2-D parameters only (Muon) cannot run.
    matrix_only = [
        s.name
        for s in specs
        if s.kind == "elementwise" and s.applies_to != "any" and not s.otherwise
    ]
    named = [n for n in matrix_only if n in names or n not in _builtin_names()]
    if named:
        raise click.UsageError(
            f"{', '.join(named)}: applies to matrices only; the pictures step vectors"
        )
    if matrix_only:
        click.echo(f"skipping {', '.join(matrix_only)} (matrices only)", err=True)
    return [s for s in specs if s.name not in matrix_only]


def first_order(specs: Sequence, names: Sequence[str]) -> list:
    """The element-wise specs (training a network needs a stochastic first-order method); a
    second-order spec named on the command line is refused, the built-in ones skipped."""
    other = [s.name for s in specs if s.kind != "elementwise"]
    named = [n for n in other if n in names or n not in _builtin_names()]
    if named:
        raise click.UsageError(f"{', '.join(named)}: plot train runs first-order specs only")
    if other:
        click.echo(f"skipping {', '.join(other)} (second-order: see plot landscape)", err=True)
    return [s for s in specs if s.kind == "elementwise"]


def _builtin_names() -> set[str]:
    from symopt.resources import builtin_specs

    return set(builtin_specs())


def parse_hypers(items: Sequence[str], specs: Sequence) -> dict[str, dict[str, float]]:
    """``--hyper`` values by algorithm; a bad one is a usage error that says what is wrong."""
    from symopt.plot.steppers import check_hyper

    by_name = {spec.name: spec for spec in specs}
    out: dict[str, dict[str, float]] = {name: {} for name in by_name}
    for item in items:
        fail = lambda why, item=item: click.BadParameter(f"{item!r}: {why}", param_hint="--hyper")  # noqa: E731
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise fail("expected NAME.HYPER=VALUE, such as adam.lr=0.01")
        try:
            value = float(text)
        except ValueError:
            raise fail(f"{text.strip()!r} is not a number") from None
        if not math.isfinite(value):
            raise fail("the value must be finite")
        name, dot, hyper = key.strip().rpartition(".")
        if dot and name not in by_name:
            shown = ", ".join(by_name) or "nothing"
            raise fail(f"no algorithm {name!r} in this picture (it shows {shown})")
        targets = [by_name[name]] if dot else [s for s in specs if hyper in s.hyper_names]
        if not targets:
            raise fail(f"no algorithm in this picture has a hyperparameter {hyper!r}")
        for spec in targets:
            if hyper not in spec.hyper_names:
                has = ", ".join(spec.hyper_names) or "none"
                raise fail(f"{spec.name} has no hyperparameter {hyper!r} (it has {has})")
            try:
                check_hyper(spec, {hyper: value})
            except ValueError as exc:
                raise fail(str(exc)) from None
            out[spec.name][hyper] = value
    return out


def _wrote(path: Path, began: float) -> None:
    import struct

    with open(path, "rb") as fh:
        width, height = struct.unpack(">II", fh.read(24)[16:24])
    size = path.stat().st_size / 1024
    elapsed = time.perf_counter() - began
    click.echo(f"wrote {path} ({width}x{height} px, {size:.0f} KB) in {elapsed:.1f} s", err=True)


@click.group()
def plot() -> None:
    """Pictures: optimizer trajectories on test functions, training curves on two moons.

    Needs matplotlib: pip install 'symopt[plot]'.
    """


@plot.command()
@click.option(
    "--function",
    "function",
    default="beale",
    show_default=True,
    help="quadratic (bowl), valley, beale, rosenbrock, saddle or himmelblau.",
)
@click.option(
    "--steps",
    type=click.IntRange(1, 1_000_000),
    help="Steps per optimizer (default: the function's own, 100 to 1000).",
)
@click.option("--start", metavar="X,Y", help="Start point (default: the function's own).")
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    callback=_out_folder,
    help="PNG file to write, in a folder that exists (default: landscape-FUNCTION.png).",
)
@_shared
@_friendly
def landscape(
    function: str,
    steps: int | None,
    start: str | None,
    out: str | None,
    names: tuple[str, ...],
    spec_files: tuple[str, ...],
    hypers: tuple[str, ...],
    dpi: int,
) -> None:
    """Trajectories of every optimizer on a test function, and loss per step.

    Each optimizer starts from the same point and follows the exact gradient (SymPy derives it);
    the default learning rates are tuned per function so that every path is visible.
    """
    from symopt.landscapes import get_landscape
    from symopt.plot.common import stderr_progress
    from symopt.plot.landscape import plot_landscape

    began = time.perf_counter()
    try:
        ls = get_landscape(function)
    except KeyError as exc:
        raise click.BadParameter(exc.args[0], param_hint="--function") from None
    point = _point(start) if start else None
    specs = choose_specs(names, spec_files)
    overrides = parse_hypers(hypers, specs)
    path, _ = plot_landscape(
        ls,
        specs,
        out or f"landscape-{ls.name}.png",
        steps=steps,
        overrides=overrides,
        start=point,
        dpi=dpi,
        progress=stderr_progress,
    )
    _wrote(path, began)


def _point(text: str) -> tuple[float, float]:
    try:
        x, y = (float(v) for v in text.split(","))
    except ValueError:
        raise click.BadParameter(
            f"expected X,Y such as 1,1.5, got {text!r}", param_hint="--start"
        ) from None
    if not (math.isfinite(x) and math.isfinite(y)):
        raise click.BadParameter("the start point must be finite", param_hint="--start")
    return x, y


@plot.command()
@click.option(
    "--batch",
    default="32",
    show_default=True,
    metavar="full|1|32|N",
    help="Gradient estimate of the optimizer runs: the whole data set (batch gradient descent), "
    "one example (SGD) or N examples (mini-batch SGD).",
)
@click.option("--epochs", default=100, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--seed", default=0, show_default=True, type=int, help="Data and initialisation.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    default="train-moons.png",
    show_default=True,
    callback=_out_folder,
    help="PNG file to write, in a folder that exists.",
)
@_shared
@_friendly
def train(
    batch: str,
    epochs: int,
    seed: int,
    out: str,
    names: tuple[str, ...],
    spec_files: tuple[str, ...],
    hypers: tuple[str, ...],
    dpi: int,
) -> None:
    """Train a small MLP on two moons with every optimizer: loss curves, decision boundaries.

    A second panel trains with the sgd spec three ways, the article's gradient-descent variants:
    batch gradient descent, stochastic (batch 1) and mini-batch (32).
    """
    from symopt.plot.common import stderr_progress
    from symopt.plot.train import parse_batch, plot_train
    from symopt.resources import builtin_spec

    began = time.perf_counter()
    try:
        size = parse_batch(batch)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--batch") from None
    if seed < 0:
        raise click.BadParameter("the seed must be 0 or more", param_hint="--seed")
    specs = first_order(choose_specs(names, spec_files), names)
    overrides = parse_hypers(hypers, specs)
    sgd = next((s for s in specs if s.name == "sgd"), None) or builtin_spec("sgd")
    path, _, _ = plot_train(
        specs,
        sgd,
        out,
        batch=size,
        epochs=epochs,
        overrides=overrides,
        seed=seed,
        dpi=dpi,
        progress=stderr_progress,
    )
    _wrote(path, began)

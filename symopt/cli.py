"""The ``symopt`` command line: thin wrappers over the library, one-line errors, exit codes."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TypeVar

import click

from symopt import __version__
from symopt.cli_support import (
    friendly_errors,
    generation_options,
    generation_specs,
    one_of,
    regenerate_command,
    select_specs,
)
from symopt.errors import SpecError
from symopt.spec import load_spec

T = TypeVar("T")


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


@click.group()
@click.version_option(__version__, prog_name="symopt")
def main() -> None:
    """symopt: optimizers written once as SymPy equations, checked, and generated into code.

    Exit status: 0 all is well; 1 a check or verification failed, generated files are stale, or
    the work failed; 2 a usage error (an unknown name, a bad argument, a missing or invalid spec
    file); verify also exits 3 when the implementation raises.
    """


@main.command("list")
@friendly_errors
def list_cmd() -> None:
    """List the built-in algorithms."""
    from symopt.resources import builtin_specs

    rows = []
    for s in builtin_specs().values():
        family = s.family
        written = family.raw if family is not None else s
        options = [f"{h.name}={h.default:g}" for h in written.hypers]
        options += [f"{f.name}={f.default}" for f in getattr(written, "flags", ())]
        matches = family.api.matches if family is not None else ""
        rows.append([s.name, s.class_name, matches or "-", ", ".join(options)])
    headers = ["name", "class", "drop-in for", "hyperparameters and flags (defaults)"]
    click.echo(_table(rows, headers))


@main.command()
@click.argument("name", required=False)
@click.option(
    "--spec", "spec_file", type=click.Path(dir_okay=False), help="A spec file of your own."
)
@click.option("--kernel", is_flag=True, help="Also show the lowered kernel code is generated from.")
@friendly_errors
def show(name: str | None, spec_file: str | None, kernel: bool) -> None:
    """Show an algorithm's equations, hyperparameters and notes."""
    from symopt.lowering.kernel import describe_kernel, lower
    from symopt.lowering.program import describe_program, lower_tensor
    from symopt.show import describe
    from symopt.spec.domains import DOMAINS

    problem = one_of("NAME", name, "--spec FILE", spec_file)
    if problem:
        raise click.UsageError(problem)
    specs, _ = select_specs([name] if name else [], [spec_file] if spec_file else [])
    if kernel and specs[0].kind != "elementwise":
        raise click.UsageError(f"--kernel: {specs[0].name} is a second-order spec, with no kernel")
    click.echo(describe(specs[0], DOMAINS))
    if kernel and specs[0].elementwise:
        click.echo("\n" + describe_kernel(lower(specs[0])))
    elif kernel:
        click.echo("\n" + describe_program(lower_tensor(specs[0])))


@main.command()
@click.argument("names", nargs=-1)
@click.option(
    "--spec",
    "spec_files",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="Check a spec file of your own (repeatable).",
)
@friendly_errors
def check(names: tuple[str, ...], spec_files: tuple[str, ...]) -> None:
    """Run every symbolic check; exit 1 when any fails."""
    from symopt.checks import run_checks

    specs, known = select_specs(names, spec_files)
    start = time.perf_counter()
    failed = not_shown = 0
    counts: dict[str, int] = {}
    for number, spec in enumerate(specs, start=1):
        if len(specs) > 1:  # all specs take ~40 s: say where it is (on stderr, not in the report)
            click.echo(f"checking {spec.name} ({number}/{len(specs)})", err=True)
        results = run_checks(spec, known)
        click.echo(f"\n{spec.name} ({spec.source})")
        for r in results:
            if r.not_shown:
                not_shown += 1
            else:
                counts[r.method] = counts.get(r.method, 0) + 1
            failed += r.failed
            click.echo(f"  {r.status:4}  {r.method:8}  {r.name}")
            if r.detail and not r.passed:
                click.echo(f"        {r.detail}")
    total = sum(counts.values()) + not_shown
    how = ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or "none shown"
    elapsed = time.perf_counter() - start
    passed = total - failed - not_shown
    open_ = f", {not_shown} not shown" if not_shown else ""
    click.echo(
        f"\n{total} checks on {len(specs)} spec(s): {passed} passed, {failed} failed{open_} "
        f"({how}) in {elapsed:.1f} s"
    )
    sys.exit(1 if failed else 0)


@main.command()
@click.option(
    "--target", default="all", show_default=True, help="numpy, c, torch, jax, docs, or all."
)
@generation_options("generate", "Output folder.")
@friendly_errors
def generate(
    target: str,
    names: tuple[str, ...],
    spec_files: tuple[str, ...],
    builtins: bool,
    out: str,
    check_only: bool,
    force: bool,
) -> None:
    """Generate code and tests for every (or the chosen) algorithm."""
    from pathlib import Path

    from symopt import pipeline
    from symopt.files import sync as gen
    from symopt.resources import builtin_specs

    targets = pipeline.resolve_targets(target)
    specs = generation_specs(names, spec_files, builtins)
    # A run over every built-in owns its output folders: it may flag and remove stale files.
    full = builtins and not names
    progress = lambda msg: click.echo(msg, err=True)  # noqa: E731
    start = time.perf_counter()
    planned = pipeline.plan(
        targets,
        specs,
        builtin_specs(),
        force=force,
        explicit=[*names, *(s.name for s in specs if s.source in spec_files)],
        progress=progress,
    )
    for refused in planned.refused:
        click.echo(f"not generated: {refused}", err=True)
    files = planned.files
    root = Path(out)
    if check_only:
        report = gen.check(root, files, targets, full)
        for problem in report.problems:
            click.echo(problem)
        if report.problems:
            again = regenerate_command(target, names, spec_files, builtins, out)
            click.echo(
                f"{len(report.problems)} file(s) out of date in {out}/; to update them: {again}",
                err=True,
            )
            sys.exit(1)
        click.echo(f"{len(report.unchanged)} generated file(s) in {out}/ are up to date", err=True)
        return
    report = gen.write(root, files, targets, full, force)
    for rel in report.written:
        click.echo(f"wrote {out}/{rel}", err=True)
    for rel in report.removed:
        click.echo(f"removed {out}/{rel} (no longer generated)", err=True)
    for rel in report.cleaned:
        click.echo(f"removed {out}/{rel} (a temporary file of a killed run)", err=True)
    for rel in report.kept:
        click.echo(
            f"kept {out}/{rel} (no longer generated, edited by hand; --force removes it)", err=True
        )
    click.echo(
        f"{len(report.written)} written, {len(report.unchanged)} unchanged, "
        f"{len(report.removed)} removed in {time.perf_counter() - start:.1f} s",
        err=True,
    )


@main.command()
@click.argument("target")
@click.option("--against", "name", help="The built-in spec to verify against (a name).")
@click.option(
    "--spec",
    "spec_file",
    type=click.Path(dir_okay=False),
    help="Verify against a spec file of your own instead of a built-in (not with --against).",
)
@click.option(
    "--hyper",
    "hypers",
    multiple=True,
    metavar="NAME=VALUE",
    help="A hyperparameter, by the spec's or the implementation's name (repeatable): "
    "lr=0.01, betas=0.8,0.99, learning_rate=0.01; or an argument of the implementation only "
    "(weight_decay=0.1). For the class a spec's [api] matches, also its flags (amsgrad=true, "
    "maximize=true), which pick the spec's variant.",
)
@click.option(
    "--map",
    "maps",
    multiple=True,
    metavar="SPEC_NAME=IMPL_NAME",
    help="Which implementation argument carries a spec hyperparameter (lr=step_size), or which "
    "implementation state holds a spec state (m=exp_avg); repeatable.",
)
@click.option("--steps", default=40, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--seeds", default=1, show_default=True, type=click.IntRange(1, 100))
@click.option(
    "--long",
    default=1000,
    show_default=True,
    type=click.IntRange(0, 1_000_000),
    help="Steps of the long run (small tensors, regime-changing gradients); 0 for none.",
)
@click.option(
    "--dtype", default="float64", show_default=True, type=click.Choice(["float64", "float32"])
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def verify(
    ctx: click.Context,
    target: str,
    name: str | None,
    spec_file: str | None,
    hypers: tuple[str, ...],
    maps: tuple[str, ...],
    steps: int,
    seeds: int,
    long: int,
    dtype: str,
    as_json: bool,
) -> None:
    """Verify a hand-written optimizer (an import path: torch.optim.Adam, a NumPy-API class, a
    step function f(w, g, state, t, **hyper), or an optax factory such as optax.adam) against a
    spec. Exit 0 when it agrees, 1 when it differs, 2 for a usage error, 3 when the
    implementation raises."""
    import json

    from symopt import verify as v

    try:
        report = _verify(target, name, spec_file, hypers, maps, steps, seeds, long, dtype)
    except v.ImplementationError as exc:
        click.echo(f"error: {' '.join(str(exc).split())}", err=True)
        ctx.exit(3)
    except SpecError as exc:  # every bad input to verify is a usage error
        click.echo(f"error: {exc}", err=True)
        ctx.exit(2)
    click.echo(
        json.dumps(report.to_dict(), indent=2, default=_json) if as_json else report.summary()
    )
    ctx.exit(0 if report.passed else 1)


def _json(value: object) -> object:
    """Sets (of streams, of sizes) as sorted lists; NumPy scalars as numbers."""
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    return value.item() if hasattr(value, "item") else str(value)


def _verify(target, name, spec_file, hypers, maps, steps, seeds, long, dtype):
    from symopt import verify as v
    from symopt.errors import Unsupported
    from symopt.resources import builtin_spec

    problem = one_of("--against NAME", name, "--spec FILE", spec_file)
    if problem:
        raise Unsupported(problem)
    spec = load_spec(spec_file) if spec_file else builtin_spec(name)
    if spec.kind != "elementwise":
        raise Unsupported(
            f"{spec.name} is a second-order spec; verify compares element-wise optimizers "
            "(compare second-order methods with scipy: benchmarks/bench_mgh.py)",
            key="--against",
        )
    implementation = v.load_target(target)
    given = v.parse_assignments(hypers, "--hyper")
    if not v.uses_api(implementation, spec):  # else verify reads them by the [api] table
        given = {k: v.coerce(x) for k, x in given.items()}
    return v.verify(
        implementation,
        spec,
        target_name=target,
        hyper=given,
        state_map=v.parse_assignments(maps, "--map"),
        steps=steps,
        seeds=seeds,
        long=long,
        dtype=dtype,
        progress=lambda message: click.echo(message, err=True),
    )


@main.command()
@generation_options("document", "Output folder (the documents go to OUT/docs/).")
@click.option("--pdf", is_flag=True, help="Also compile OUT/docs/symopt.pdf (needs pdflatex).")
@click.pass_context
@friendly_errors
def docs(ctx: click.Context, pdf: bool, **options) -> None:
    """Generate the LaTeX and Markdown documentation of the update rules (and the PDF)."""
    from pathlib import Path

    from symopt.pdf import compile_pdf, pdflatex

    if pdf:
        _pdf_step(pdflatex)  # fail before the work when it is missing
    ctx.invoke(generate, target="docs", **options)
    if pdf:
        click.echo("compiling the PDF with pdflatex", err=True)
        build = _pdf_step(lambda: compile_pdf(Path(options["out"]) / "docs"))
        for warning in build.warnings:
            click.echo(f"warning: {warning}", err=True)
        click.echo(f"wrote {build.pdf} ({build.runs} pdflatex runs)", err=True)


def _pdf_step(step: Callable[[], T]) -> T:
    """No pdflatex, or a failed run, is work that failed (exit 1), not a usage error."""
    from symopt.errors import Failed

    try:
        return step()
    except SpecError as exc:
        raise Failed(exc.reason, file=exc.file, key=exc.key) from None


from symopt.plot.cli import plot  # noqa: E402  (after main, which it joins)

main.add_command(plot)

if __name__ == "__main__":
    main()

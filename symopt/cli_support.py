"""What the command lines share: one-line errors, exit codes and the choice of specs.

``symopt.cli`` and ``symopt.plot.cli`` both import from here (neither imports the other's helpers).
Every command exits 0 when all is well, 1 when a check or verification fails (or generated files
are stale, or the work fails on valid input), 2 for a usage error: an unknown name, a bad
argument, a missing or invalid spec file; ``symopt verify`` also exits 3 when the implementation
raises.
"""

from __future__ import annotations

import functools
import shlex
import sys
from collections.abc import Callable, Sequence

import click

from symopt.errors import Failed, SpecError
from symopt.resources import builtin_spec, builtin_specs
from symopt.spec import Spec, load_spec


def friendly_errors(fn: Callable) -> Callable:
    """Errors become one line, ``error: FILE: KEY: REASON``, never a traceback: exit 2 for bad
    input (a usage error), 1 when valid input's work fails (``Failed``)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Failed as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        except SpecError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except (FileNotFoundError, PermissionError, IsADirectoryError) as exc:
            click.echo(f"error: {exc.filename or ''}: {exc.strerror}", err=True)
            sys.exit(2)

    return wrapper


def one_of(first: str, first_value: object, second: str, second_value: object) -> str | None:
    """What is wrong when exactly one of two alternatives must be given, or None."""
    if first_value is not None and second_value is not None:
        return f"{first} and {second} were both given; give one of them"
    if first_value is None and second_value is None:
        return f"give {first} or {second}"
    return None


def regenerate_command(
    target: str, names: Sequence[str], spec_files: Sequence[str], builtins: bool, out: str
) -> str:
    """The ``symopt generate`` line that rewrites what ``--check`` found out of date: the same
    target, algorithms, spec files and output folder."""
    words = ["symopt", "generate", "--target", target]
    words += [w for name in names for w in ("--algorithm", name)]
    words += [w for path in spec_files for w in ("--spec", path)]
    words += [] if builtins else ["--no-builtins"]
    words += [] if out == "generated" else ["--out", out]
    return shlex.join(words)


def select_specs(
    names: Sequence[str], spec_files: Sequence[str]
) -> tuple[list[Spec], dict[str, Spec]]:
    """The specs to work on (built-ins by name, or all; plus user files) and all known specs."""
    known = dict(builtin_specs())
    user = [load_spec(path) for path in spec_files]
    for spec in user:
        known[spec.name] = spec
    chosen = [builtin_spec(n) for n in names]
    if not names and not user:
        chosen = list(builtin_specs().values())
    return chosen + user, known


def generation_specs(names: Sequence[str], spec_files: Sequence[str], builtins: bool) -> list[Spec]:
    """Built-ins (all, or those named) plus user specs; a user spec replaces a same-named one."""
    if names and not builtins:
        raise click.UsageError("--algorithm selects built-ins; it cannot go with --no-builtins")
    chosen: dict[str, Spec] = {}
    if builtins:
        chosen = {n: builtin_spec(n) for n in names} if names else dict(builtin_specs())
    for path in spec_files:
        spec = load_spec(path)
        chosen[spec.name] = spec
    if not chosen:
        raise click.UsageError("nothing to generate: give --spec FILE or drop --no-builtins")
    classes: dict[str, str] = {}
    for spec in chosen.values():
        if spec.class_name in classes:
            raise SpecError(
                f"class_name {spec.class_name!r} is also used by {classes[spec.class_name]!r}; "
                "generated classes must have distinct names",
                file=spec.source,
            )
        classes[spec.class_name] = spec.name
    return list(chosen.values())


def generation_options(verb: str, out_help: str) -> Callable:
    """The options ``generate`` and ``docs`` share: what to generate, where, and how."""
    options = [
        click.option(
            "--algorithm", "names", multiple=True, help="Only this built-in algorithm (repeatable)."
        ),
        click.option(
            "--spec",
            "spec_files",
            multiple=True,
            type=click.Path(dir_okay=False),
            help=f"Also {verb} a spec file of your own (repeatable); it replaces a "
            "same-named built-in.",
        ),
        click.option(
            "--builtins/--no-builtins",
            default=True,
            show_default=True,
            help=f"{verb.capitalize()} the built-in algorithms too (--no-builtins: only "
            "the --spec files).",
        ),
        click.option(
            "--out",
            default="generated",
            show_default=True,
            type=click.Path(file_okay=False),
            help=out_help,
        ),
        click.option(
            "--check",
            "check_only",
            is_flag=True,
            help="Write nothing; exit 1 listing stale, missing or extra files (files without "
            "symopt's do-not-edit header are yours and never count).",
        ),
        click.option(
            "--force",
            is_flag=True,
            help="Generate even from specs whose checks fail, and overwrite (or remove, when no "
            "longer generated) generated files that were edited by hand.",
        ),
    ]

    def apply(fn: Callable) -> Callable:
        for option in reversed(options):
            fn = option(fn)
        return fn

    return apply

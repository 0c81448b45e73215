"""What the command lines share: one-line errors and the choice of specs to work on.

``symopt.cli`` and ``symopt.plot.cli`` both import from here (neither imports the other's helpers).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Sequence

import click

from symopt.errors import SpecError, Unsupported
from symopt.resources import builtin_spec, builtin_specs
from symopt.spec import Spec, load_spec


def friendly_errors(fn: Callable) -> Callable:
    """Bad input becomes ``error: FILE: KEY: REASON`` and exit 1 (2 for a request the tool
    cannot serve as asked), never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Unsupported as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except SpecError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        except (FileNotFoundError, PermissionError, IsADirectoryError) as exc:
            click.echo(f"error: {exc.filename or ''}: {exc.strerror}", err=True)
            sys.exit(1)

    return wrapper


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

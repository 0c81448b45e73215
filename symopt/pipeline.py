"""The one pipeline every spec goes through:

    spec file --load--> Spec | ModelSpec --check (once per digest)--> results
              --lower (once per spec)--> kernel / derivation
              --backends render--> files --format (ruff)--> write (atomic, hashed headers)

Checks gate code generation: a spec with a failing check is refused (``force`` overrides); the
docs backend, which is not gated, lists the same results, failures included. A backend that
cannot generate a spec says why; a spec the user asked for by name is then refused, and one from
a full run is reported, never skipped silently.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from symopt.backends import BACKENDS
from symopt.checks import check_specs, failures
from symopt.checks.result import CheckResult
from symopt.errors import Failed, Unsupported
from symopt.files.format import format_python
from symopt.files.writer import GeneratedFile
from symopt.lowering.kernel import lower
from symopt.lowering.program import lower_tensor
from symopt.spec import AnySpec

Progress = Callable[[str], None]


@dataclass
class Plan:
    files: list[GeneratedFile] = field(default_factory=list)
    #: ``TARGET: NAME (reason)`` for every spec a backend does not generate
    refused: list[str] = field(default_factory=list)
    checks: dict[str, list[CheckResult]] = field(default_factory=dict)


def resolve_targets(name: str) -> list[str]:
    if name == "all":
        return list(BACKENDS)
    if name not in BACKENDS:
        raise Unsupported(
            f"unknown target {name!r}; choose from {', '.join([*BACKENDS, 'all'])}", key="--target"
        )
    return [name]


def plan(
    targets: Sequence[str],
    specs: Sequence[AnySpec],
    known: Mapping[str, AnySpec],
    *,
    force: bool = False,
    explicit: Sequence[str] = (),
    progress: Progress = lambda _: None,
) -> Plan:
    """Every file the targets generate for ``specs``, checked, rendered and formatted.

    ``explicit``: the names of the specs the user asked for (by name or file): one of those that
    a target cannot generate is an error, any other is reported in ``Plan.refused``."""
    result = Plan()
    chosen: dict[str, list[AnySpec]] = {}
    for target in targets:
        backend = BACKENDS[target]
        chosen[target] = []
        for spec in specs:
            reason = backend.unsupported(spec)
            if reason is None:
                chosen[target].append(spec)
            elif spec.name in explicit:
                able = [t for t in BACKENDS if t != target and not BACKENDS[t].unsupported(spec)]
                raise Unsupported(
                    f"the {target} target cannot generate {spec.name!r}: {reason}; "
                    f"try --target {' or '.join(able)}",
                    file=spec.source,
                )
            else:
                result.refused.append(f"{target}: {spec.name} ({reason})")
    result.checks = check_specs(specs, {**known, **{s.name: s for s in specs}}, progress)
    failed = failures(result.checks)
    if failed and not force and any(BACKENDS[t].gated for t in targets):
        raise Failed(
            f"refusing to generate code from specs whose checks fail: {'; '.join(failed)} "
            "(see 'symopt check'; --force generates anyway)",
            key="generate",
        )
    code_specs = {s.name: s for t in targets if BACKENDS[t].gated for s in chosen[t]}
    for spec in code_specs.values():  # lowered once here; every backend reuses it
        if spec.kind == "elementwise":
            lower(spec) if spec.elementwise else lower_tensor(spec)
    for target in targets:
        progress(f"{target}: rendering {len(chosen[target])} spec(s)")
        result.files += BACKENDS[target].files(chosen[target])
    progress(f"formatting {sum(f.path.endswith('.py') for f in result.files)} Python file(s)")
    result.files = format_python(result.files)
    return result

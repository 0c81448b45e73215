"""Every name the validator accepts works in every target; the names that broke one are refused.

The candidates are every reserved-looking name: symopt.spec.reserved's lists, the identifiers of
the committed generated code (Python names by ``ast``, C identifiers by a token pattern) and the
names issue 22 found breaking a target. Those the validator accepts become the hyperparameters,
states and intermediates of three specs (each name takes each role once) and the names of small
specs; all of them are generated for every target and the generated tests run.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from symopt import pipeline
from symopt.cli import main
from symopt.errors import SpecError
from symopt.resources import builtin_specs
from symopt.spec import load_spec_text, reserved
from symopt.spec.common import NAME, Loader

ROOT = Path(__file__).resolve().parents[1]
GENERATED = ROOT / "generated"
TARGETS = ("numpy", "torch", "c", "jax")
#: Names issue 22 found breaking a target (as hyperparameter, state, intermediate or spec name).
ISSUE_NAMES = """
    m__1 i steps step loss h t_start foreach count p group key range len zip dtype super
    state_dict
""".split()
LISTS = (
    reserved.PYTHON,
    reserved.C,
    reserved.MODULES,
    reserved.GENERATED,
    reserved.RUNTIME_IMPORTS,
    reserved.C_MACROS,
    reserved.RUNTIME_MODULES,
    reserved.SECOND_ORDER_MODULES,
    reserved.DAMPING,
)
#: Names per generated batch and per spec (a spec of many more terms is no optimizer whose
#: bfloat16 run the generated tests can follow).
BATCH, SPEC_SIZE = 225, 45
C_IDENTIFIER = re.compile(r"\b[a-z][a-z0-9_]*\b")
C_COMMENT = re.compile(r"/\*.*?\*/|//[^\n]*|\"(?:\\.|[^\"\\])*\"", re.S)


def spec(name: str, hypers=(), states=(), inters=(), class_name: str = "Probe") -> str:
    """An element-wise spec whose step uses every name: intermediate k is g times a
    hyperparameter, state k decays towards an intermediate, and w moves by their sum, in one
    small step (bfloat16 loses it, as it loses a small learning rate's: the generated tests
    compare bfloat16 with float64 relative to the size of w)."""
    hypers, states, inters = list(hypers) or ["lr"], list(states) or ["v"], list(inters) or ["gi"]
    size = max(len(hypers), len(states), len(inters))
    hyper = [hypers[k % len(hypers)] for k in range(size)]
    inter = [inters[k % len(inters)] for k in range(size)]
    lines = [f"{x} = g*{hyper[k]}" for k, x in enumerate(inters)]
    lines += [f"{s} = {s}/2 + {inter[k]}" for k, s in enumerate(states)]
    terms = [f"{hyper[k]}*{s}" for k, s in enumerate(states)]
    lines += [f"delta_w = ({' + '.join(terms)})/{1000 * len(states)}", "w = w - delta_w"]
    out = [
        f'name = "{name}"',
        f'class_name = "{class_name}"',
        'title = "Probe"',
        'summary = "Every reserved-looking name the validator accepts, in one role each."',
        'reference = "tests/test_reserved_names.py"',
        "update = [" + ", ".join(f'"{line}"' for line in lines) + "]",
    ]
    for k, h in enumerate(hypers):
        out += [f"[hyper.{h}]", f"default = 0.{k % 9 + 1}", 'domain = "positive"']
    out += [f'[state.{s}]\ninit = "0"' for s in states]
    return "\n".join(out) + "\n"


def generated_identifiers() -> set[str]:
    """The identifiers of the committed generated code, where a user's name could meet them."""
    names: set[str] = set()
    for path in sorted(GENERATED.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Name):
                names.add(node.id)
            elif isinstance(node, ast.arg):
                names.add(node.arg)
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                if node.value.id in ("self", "cls"):  # a hyperparameter is an attribute too
                    names.add(node.attr)
            elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                names.add(node.name)
    for path in sorted([*GENERATED.rglob("*.c"), *GENERATED.rglob("*.h")]):
        code = C_COMMENT.sub(" ", path.read_text(encoding="utf-8"))
        names.update(C_IDENTIFIER.findall(code))
    return names


def candidates() -> set[str]:
    names = set().union(*LISTS, generated_identifiers(), ISSUE_NAMES)
    return {n for n in names if NAME.fullmatch(n)}


def accepted(name: str) -> bool:
    """Whether the validator takes ``name`` as a hyperparameter, state or intermediate."""
    try:
        Loader({}, "probe.toml", "").identifier(name, "hyper")
    except SpecError:
        return False
    return True


@pytest.mark.parametrize(
    ("role", "name", "reason"),
    [
        ("hyper", "m__1", "contains '__', which generated code keeps for its own names"),
        ("hyper", "steps", "is a name the generated optimizers use"),
        ("state", "step", "is a name the generated optimizers use"),
        ("hyper", "loss", "is a name the generated optimizers use"),
        ("hyper", "i", "is a name the generated optimizers use"),
        ("hyper", "t_start", "is a name the generated optimizers use"),
        ("hyper", "foreach", "is a name the generated optimizers use"),
        ("state", "count", "is a name the generated optimizers use"),
        ("inter", "group", "is a name the generated optimizers use"),
        ("hyper", "state_dict", "is a name the generated optimizers use"),
        ("hyper", "range", "is a Python keyword or builtin"),
        ("state", "len", "is a Python keyword or builtin"),
        ("inter", "zip", "is a Python keyword or builtin"),
        ("hyper", "super", "is a Python keyword or builtin"),
        ("hyper", "isnan", "is a C keyword or a macro of the C headers"),
        ("hyper", "linux", "is a C keyword or a macro of the C headers"),
        ("state", "dtype", "is a name the generated optimizers use"),
        ("hyper", "np", "is a module the generated code imports"),
        ("hyper", "sqrt", "is a function of the spec language"),
        ("hyper", "h", "would name the C macro SYMOPT_<SPEC>_H, which the header defines"),
        ("state", "checked_hyper", "is a function the generated modules import"),
    ],
)
def test_names_that_broke_a_target_are_refused_with_the_reason(role, name, reason):
    kw = {"hyper": "hypers", "state": "states", "inter": "inters"}[role]
    with pytest.raises(SpecError) as info:
        load_spec_text(spec("probe", **{kw: [name]}), "probe.toml")
    assert f"{name!r} {reason}" in str(info.value)
    assert str(info.value).startswith("probe.toml: ")


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("name", "runtime", "is the name of a file of a target's runtime"),
        ("name", "api", "is the name of a file of a target's runtime"),
        ("name", "trust_region", "is the name of a file of a target's runtime"),
        ("name", "symopt", "is a module the generated code imports"),
        (
            "name",
            "state",
            "is a name the generated optimizers use (a parameter, method or state key)",
        ),
        ("class_name", "None", "is a Python keyword or builtin"),
        ("class_name", "True", "is a Python keyword or builtin"),
        ("class_name", "ValueError", "is a Python keyword or builtin"),
        ("class_name", "Optimizer", "is a name of the generated module"),
    ],
)
def test_spec_and_class_names_that_break_a_target_are_refused(field, value, reason):
    text = spec("probe").replace(
        f'{field} = "{"probe" if field == "name" else "Probe"}"', f'{field} = "{value}"'
    )
    with pytest.raises(SpecError) as info:
        load_spec_text(text, "probe.toml")
    assert str(info.value) == f"probe.toml: {field}: {value!r} {reason}; choose another"


def test_every_function_a_generated_spec_module_imports_is_refused():
    specs = set(builtin_specs())
    imported = set()
    for path in GENERATED.glob("*/symopt_*/*.py"):
        if path.stem.lstrip("_").split("__")[0] not in specs:
            continue  # a runtime module: spec names never reach its functions
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                imported.update(a.asname or a.name for a in node.names)
    steps = {n for n in imported if n.endswith("_step") and n.split("_")[0] in specs}
    names = {n for n in imported - steps if NAME.fullmatch(n)}
    assert {"checked_hyper", "step_arrays", "map_leaves", "zero_dim"} <= names
    assert [n for n in sorted(names) if accepted(n)] == []


def test_every_suffix_of_a_c_header_macro_is_refused():
    suffix = re.compile(r"SYMOPT_\{\{ ?upper ?\}\}_([A-Z0-9_]+)")
    templates = (ROOT / "templates" / "c").rglob("*.jinja")
    names = {m.lower() for path in templates for m in suffix.findall(path.read_text())}
    assert {"h", "cg", "t_start", "step_work"} <= names
    assert [n for n in sorted(names) if accepted(n)] == []


def names_to_run() -> list[str]:
    """The accepted candidates this run tries: all of them with ``SYMOPT_ALL_NAMES=1`` (about
    1,250 names, half an hour on two cores), else those of the reserved lists and the issue."""
    names = sorted(n for n in candidates() if accepted(n))
    if os.environ.get("SYMOPT_ALL_NAMES"):
        return names
    listed = set(ISSUE_NAMES).union(*LISTS)
    return [n for n in names if n in listed]


def generate_and_test(folder: Path, names: list[str], spec_names: list[str]) -> None:
    """Specs in which each name takes each role once (SPEC_SIZE names a spec), and a spec
    named by each of ``spec_names``; generated for every target, whose generated tests must
    pass."""
    files = []
    for start in range(0, len(names), SPEC_SIZE):
        chunk = names[start : start + SPEC_SIZE]
        thirds = [chunk[k::3] for k in range(3)]
        for k in range(3):
            roles = zip(("hypers", "states", "inters"), thirds[k:] + thirds[:k], strict=True)
            stem = f"roles{start // SPEC_SIZE}_{k}"
            files.append(
                (stem, spec(stem, class_name=f"Roles{start // SPEC_SIZE}x{k}", **dict(roles)))
            )
    files += [(n, spec(n, class_name=f"Named{k}")) for k, n in enumerate(spec_names)]
    args = []
    for stem, text in files:
        (folder / f"{stem}.toml").write_text(text, encoding="utf-8")
        args += ["--spec", str(folder / f"{stem}.toml")]
    out = folder / "out"
    generate = ["generate", "--target", "all", "--no-builtins", *args, "--out", str(out)]
    result = CliRunner().invoke(main, generate)
    assert result.exit_code == 0, result.output
    for target in TARGETS:
        pytest_args = ["-q", "-x", "-p", "no:cacheprovider", "-n", "0", str(out / target / "tests")]
        tests = subprocess.run(
            [sys.executable, "-m", "pytest", *pytest_args], capture_output=True, text=True, cwd=ROOT
        )
        assert tests.returncode == 0, f"{target}:\n{tests.stdout[-3000:]}"
        assert " passed" in tests.stdout


def test_every_accepted_name_works_in_every_target_and_role(tmp_path, monkeypatch):
    # The symbolic checks are about the update's mathematics, which these specs do not have
    # (and they are slow on a spec of hundreds of names): generation runs without them.
    monkeypatch.setattr(pipeline, "check_specs", lambda *args, **kw: {})
    names = names_to_run()
    assert {"p", "h", "key", "lr", "beta1"} <= set(candidates())  # the harvest really has names
    assert not {"i", "step", "loss", "range", "m__1"} & set(names)
    spec_names = [n for n in names if reserved.spec_name_problem(n, second_order=False) is None]
    spec_names = sorted(set(spec_names) & {*ISSUE_NAMES, "p", "h", "key"})
    for k in range(0, len(names), BATCH):
        folder = tmp_path / f"batch{k // BATCH}"
        folder.mkdir()
        generate_and_test(folder, names[k : k + BATCH], spec_names if k == 0 else [])

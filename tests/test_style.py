"""Lint, formatting and structure are part of the build: the tool, its tests, generated code."""

import ast
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "symopt"
#: The structure issue 14 set: small modules, short templates (programs live in runtime files).
MAX_MODULE_LINES = 400
MAX_TEMPLATE_LINES = 200


def ruff() -> str:
    found = shutil.which("ruff")
    if found is None:
        pytest.skip("ruff is not installed (it comes with the package)")
    return found


@pytest.mark.parametrize("command", [["check", "."], ["format", "--check", "."]])
def test_ruff(command):
    done = subprocess.run([ruff(), *command], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:]


def test_generated_python_is_ruff_format_clean():
    """Generated code is formatted as users format theirs (the settings of symopt.files.format)."""
    from symopt.files.format import RUFF_ARGS

    files = sorted(str(p) for p in (ROOT / "generated").rglob("*.py"))
    assert files, "generated/ holds no Python files"
    done = subprocess.run(
        [ruff(), "format", "--check", *RUFF_ARGS, *files], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout[-3000:]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def symopt_modules() -> dict[str, Path]:
    return {
        module_name(p): p
        for p in PACKAGE.rglob("*.py")
        if "runtime" not in p.relative_to(PACKAGE).parts  # shipped into generated packages
    }


def imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """Every symopt module ``path`` imports, at the top or inside a function (TYPE_CHECKING
    imports excluded: they never run)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for node in ast.walk(block)
    }
    own = module_name(path)
    package = own if path.name == "__init__.py" else own.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            names = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names
            ]
        else:
            continue
        found |= {n for n in names if n in modules and n != own}
    return found


def test_no_import_cycles():
    """No symopt module imports one that imports it back, directly or through others, counting
    imports hidden inside functions."""
    modules = symopt_modules()
    graph = {m: imports(p, modules) for m, p in modules.items()}
    cycles, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(" -> ".join([*stack[stack.index(nxt) :], nxt]))
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_modules_are_small():
    long = {
        str(p.relative_to(ROOT)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"


def test_templates_are_short():
    long = {
        str(p.relative_to(ROOT)): n
        for p in (ROOT / "templates").rglob("*.jinja")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_TEMPLATE_LINES
    }
    assert not long, f"templates over {MAX_TEMPLATE_LINES} lines: {long}"

"""The numbers and lists the README and the docs state about the tool, read back from the tool:
a change that makes a sentence false fails here (the benchmark tables are the output of their
scripts, and the verdict and parity tables are generated: tests/test_verify_doc.py and
tests/test_parity_doc.py)."""

from __future__ import annotations

import importlib.util
import math
import re
from pathlib import Path

import pytest

from symopt.backends import BACKENDS
from symopt.checks import check_specs
from symopt.checks.prove import DIGITS, SAMPLES
from symopt.checks.relations import UNROLL_STEPS
from symopt.lowering.kernel import lower
from symopt.resources import builtin_spec, builtin_specs
from symopt.spec import tensor as features
from symopt.verify import streams

ROOT = Path(__file__).resolve().parents[1]
NUMBERS = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight", 9: "nine"}


def words(path: str) -> str:
    """A document's text with its line breaks folded into spaces."""
    return " ".join((ROOT / path).read_text(encoding="utf-8").split())


def numpy_test_settings():
    path = ROOT / "generated/numpy/tests/_numpy_support.py"
    spec = importlib.util.spec_from_file_location("_numpy_support_facts", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_numpy_tests_are_described_by_their_settings():
    s = numpy_test_settings()
    claim = (
        f"over {s.STEPS} steps, {len(s.SEEDS)} seeds, {len(s.SHAPES)} shapes, "
        f"{'both' if len(s.DTYPES) == 2 else len(s.DTYPES)} dtypes"
    )
    assert claim in words("README.md")


def test_the_checks_paragraph_states_the_checkers_constants():
    text = words("README.md")
    assert f"held at {SAMPLES} random points in {DIGITS}-digit arithmetic" in text
    assert f"unrolling {NUMBERS[UNROLL_STEPS]} steps with an *uninterpreted*" in text


def test_the_second_order_claims_are_counted_from_the_checks():
    specs = [builtin_spec("newton"), builtin_spec("trust_region")]
    results = check_specs(specs, builtin_specs())
    proven = [r for rs in results.values() for r in rs if r.passed and r.method == "symbolic"]
    assert len(proven) == sum(len(rs) for rs in results.values())  # all of them, symbolically
    assert f"`symopt check newton trust_region` proves {len(proven)} claims" in words("README.md")


def test_what_verify_runs_is_its_streams_and_sizes():
    cases = streams.cases(builtin_spec("adam"), steps=40, seeds=1, long=streams.LONG)
    shapes = {shape for case in cases for group in case.layout for shape in group}
    sizes = sorted(math.prod(shape) for shape in shapes)
    groups = {len(case.layout) for case in cases}
    text = words("README.md")
    assert (
        f"({NUMBERS[len(streams.STREAMS)]} kinds, {NUMBERS[max(groups)]} parameter groups, "
        f"tensors of {sizes[0]} to {sizes[-1]:,} elements, 40 steps and one run of "
        f"{streams.LONG:,})"
    ) in text


def test_the_torch_adam_is_the_ops_and_scratch_it_states():
    from symopt.backends.torch.elementwise import template_data
    from symopt.spec.family import variants

    kernel_spec = variants(builtin_spec("adam"))[0]
    data = template_data(kernel_spec, lower(kernel_spec))
    ops, scratch = len(data["single_body"]), len(data["scratch"])
    assert f"Adam is {ops} ops and {scratch} scratch buffer" in words("README.md")


def test_every_target_is_listed_where_the_targets_are_named():
    targets = [t for t in BACKENDS if t != "docs"]
    readme = words("README.md")
    listed = re.search(r"symopt generate \[--target ([a-z|]+)\]", readme).group(1).split("|")
    assert sorted(listed) == sorted([*BACKENDS, "all"])
    folders = re.search(r"symopt/backends/\{([a-z,]+)\}", readme).group(1).split(",")
    assert sorted(folders) == sorted(BACKENDS)
    assert all(f"--target {t}" in readme for t in targets)


def construct_table() -> tuple[list[str], list[list[str]]]:
    text = (ROOT / "docs/spec-format.md").read_text(encoding="utf-8")
    block = text.split("### Which targets generate which constructs", 1)[1]
    rows = [line for line in block.split("\n\n", 2)[1].splitlines() if line.startswith("|")]
    header = [c.strip(" `") for c in rows[0].strip("|").split("|")]
    return header[1:], [[c.strip() for c in r.strip("|").split("|")] for r in rows[2:]]


def test_the_constructs_table_is_what_each_backend_supports():
    """A row named by a feature (in parentheses, as refusals print it) says yes exactly where
    the backend supports it; the other rows (names assigned again, flags) every backend has."""
    targets, rows = construct_table()
    assert sorted(targets) == sorted(BACKENDS)
    for construct, *cells in rows:
        named = re.findall(r"\(([^()]*)\)\s*$", construct)
        feature = named[0] if named and named[0] in features.ALL_FEATURES else None
        for target, cell in zip(targets, cells, strict=True):
            expected = feature is None or feature in BACKENDS[target].supports
            assert cell == ("yes" if expected else "no"), (construct, target)


@pytest.mark.parametrize("path", ["README.md", "docs/jax.md"])
def test_the_optax_cross_checks_listed_are_those_tested(path):
    from test_jax_target import CROSS_CHECKS

    jax_names = {"sgd momentum": "sgd(momentum)", "sgd nesterov": "sgd(momentum, nesterov)"}
    text = words(path)
    for case in CROSS_CHECKS:
        assert f"`{jax_names.get(case, case)}`" in text, case


def test_the_pictures_captions_count_what_the_plots_draw():
    from symopt.plot.cli import choose_specs

    specs = choose_specs([], [])  # the default set of symopt plot
    first = sum(s.kind == "elementwise" for s in specs)
    second = len(specs) - first
    text = words("README.md")
    assert (
        f"the {NUMBERS.get(first, first)} first-order optimizers (top) and the "
        f"{NUMBERS.get(second, second)} second-order methods (bottom)"
    ) in text
    assert f"the {NUMBERS.get(first, first)} optimizers training an MLP" in text


def test_the_spec_format_states_how_sampling_works():
    text = words("docs/spec-format.md")
    assert f"evaluated at {SAMPLES} points (exact rationals) with {DIGITS}-digit arithmetic" in text
    assert f"The other {SAMPLES - 1} are random" in text
    assert f"at least {SAMPLES // 2} of the {SAMPLES} must be defined" in text  # prove.py: half

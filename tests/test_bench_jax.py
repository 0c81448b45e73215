"""Smoke test of benchmarks/bench_jax.py: a tiny run prints every row, and the two
implementations it times compute the same parameters (else it would compare unlike steps)."""

import contextlib
import importlib.util
import io
import math
import sys
import warnings
from pathlib import Path

import pytest

pytest.importorskip("jax")
pytest.importorskip("optax")

import numpy as np  # noqa: E402

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_jax.py"
ARGV = ["--sizes", "1e3", "--repeats", "1", "--steps", "1", "--markdown"]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_jax", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def run(bench):
    """The results and the markdown output of one tiny run; a donation that XLA cannot honour
    (a step that would not run in place) fails it."""
    out = io.StringIO()
    with warnings.catch_warnings(record=True) as record, contextlib.redirect_stdout(out):
        warnings.simplefilter("always")
        results = bench.main(ARGV)
    donated = [w for w in record if "donated buffers" in str(w.message)]
    assert not donated, donated[0].message
    return results, out.getvalue()


def table_rows(output: str) -> list[list[str]]:
    lines = [line for line in output.splitlines() if line.startswith("| ")]
    return [line[2:-2].split(" | ") for line in lines]


def test_table_has_every_row(bench, run):
    _, output = run
    header, *rows = table_rows(output)
    assert header == bench.HEADER
    expected = [
        (algorithm, "1e+03", layout)
        for algorithm in ("adam", "sgd", "adabelief", "lion")
        for layout in ("1 tensor", "100 tensors")
    ]
    assert [tuple(row[:3]) for row in rows] == expected
    assert all(len(row) == len(header) for row in rows)
    assert "jax " in output and "optax " in output
    assert "`python benchmarks/bench_jax.py " + " ".join(ARGV) + "`" in output


def test_ratios_are_finite_and_positive(bench, run):
    results, output = run
    assert len(results) == 8
    for result in results:
        assert set(result.ms) == set(bench.IMPLEMENTATIONS)
        assert all(math.isfinite(ms) and ms > 0 for ms in result.ms.values())
        assert math.isfinite(result.ratio) and result.ratio > 0
    for row in table_rows(output)[1:]:
        assert all(float(cell) > 0 for cell in row[3:])


def test_the_run_left_both_implementations_with_the_same_parameters(run):
    results, _ = run
    assert max(result.max_diff for result in results) <= 1e-6


@pytest.mark.parametrize("algorithm", ["adam", "sgd", "adabelief", "lion"])
def test_both_implementations_step_to_the_same_parameters(bench, algorithm):
    """With a new gradient at every step (the benchmark's constant one would hide a wrong b2 in
    Adam, whose steps are then lr * sign(g) whatever b2 is)."""
    runners = bench.make_runners(bench.ALGORITHMS[algorithm], 1000, 10)
    for seed in range(10, 13):
        grads = bench.make_arrays(1000, 10, seed=seed, scale=1e-2)
        for runner in runners.values():
            runner.grads = grads
            runner.run(1)
    start = bench.make_arrays(1000, 10, seed=0)
    generated, reference = runners["generated"].params, runners["optax"].params
    assert bench.max_difference(generated, start) > 1e-5  # the steps moved the parameters
    for g, r in zip(generated, reference, strict=True):
        assert g.dtype == r.dtype == np.float32
        np.testing.assert_allclose(np.asarray(g), np.asarray(r), rtol=1e-6, atol=1e-6)

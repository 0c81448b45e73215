"""Spec fuzzing in CI: mutated built-in specs end in a one-line SpecError, an honest check verdict,
or generated code that compiles, imports and agrees with the reference; never another exception,
a hang or a disagreement. The harness is tests/fuzz_specs.py (with fuzz_mutate, fuzz_compare and
fuzz_pool); the long run (thousands of specs) is benchmarks/fuzz_specs.py. Derandomized: CI runs
the same specs every time (about a minute).
"""

from __future__ import annotations

import tomllib

import numpy as np
import pytest
from fuzz_compare import _differs
from fuzz_mutate import BUILTINS, mutated, to_toml
from fuzz_pool import Pool
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

#: The run's seed: hypothesis draws case indices and built-ins; the mutations follow from them.
SEED = 22


@pytest.fixture(scope="module")
def pool():
    with Pool(jobs=1, limit=150.0) as workers:
        yield workers


def run(pool: Pool, text: str):
    (_, outcome), *_ = list(pool.run([(0, SEED, text)]))
    return outcome


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_the_toml_writer_round_trips_every_builtin(name):
    data = tomllib.loads(BUILTINS[name])
    assert tomllib.loads(to_toml(data)) == data


def test_the_tolerance_takes_rounding_and_refuses_a_wrong_value():
    want = np.array([1.0, -2.0, 3e-8, np.nan, np.inf])
    assert _differs(want * (1 + 2e-16), want, []) is None
    assert "element 3" in _differs(np.array([1.0, -2.0, 3e-8, 0.0, np.inf]), want, [])
    assert "max error" in _differs(np.array([1.0, -2.0001, 3e-8, np.nan, np.inf]), want, [])
    # cancellation the perturbed reference runs show widens the tolerance
    assert _differs(want + [0, 0, 1e-9, 0, 0], want, [want + [0, 0, 1e-10, 0, 0]]) is None


def test_an_unmutated_builtin_runs_clean_through_every_target(pool):
    outcome = run(pool, BUILTINS["adam"])
    assert (outcome.kind, outcome.stage) == ("ok", "step"), outcome.detail


def test_a_wrong_spec_is_rejected_in_one_line_naming_the_file(pool):
    outcome = run(pool, BUILTINS["adam"].replace('domain = "positive"', 'domain = "bogus"', 1))
    assert outcome.kind == "rejected" and "hyper.lr.domain" in outcome.detail, outcome


@settings(
    max_examples=20,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(index=st.integers(0, 10**9), base=st.sampled_from(sorted(BUILTINS)))
def test_a_mutated_spec_ends_clean(pool, index, base):
    _, text, applied = mutated(SEED, index, base)
    outcome = run(pool, text)
    event(f"{outcome.kind} at {outcome.stage}")  # --hypothesis-show-statistics: what was reached
    assert not outcome.failed, (
        f"{base} {applied}: {outcome.kind} at {outcome.stage}\n{text}\n{outcome.detail}"
    )

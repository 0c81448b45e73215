"""symopt verify, with its default runs, on the corpus of tests/verify_corpus.py: every verdict
and every diagnosis, the four false passes of the old verify by name, and the corpus itself
checked against the reference stepper (so a wrong expectation cannot hide in it)."""

import math

import numpy as np
import pytest
from verify_corpus import CASES, PASS, UNEXPLAINED, Case, Needs, case

from symopt.reference import ReferenceStepper
from symopt.resources import elementwise_specs
from symopt.verify import verify

SPECS = elementwise_specs()
#: How closely a fitted constant must match, relative. In float32 a decay of lr*weight_decay =
#: 1e-6 per step is a few units of roundoff of w, rounded the same way at every step: measured,
#: torch's AdamW decays by 1.013e-6 (|w| = 1) to 1.07e-6 (|w| = 0.37) per step, optax's adamw by
#: 0.97e-6, so the constant is known only to a few percent.
FITTED_REL = {"float64": 1e-3, "float32": 0.1}


def target_of(c: Case) -> object:
    """The implementation; a library one is loaded here, or the test skips without it."""
    if isinstance(c.target, Needs):
        pytest.importorskip(c.target.package)
        return c.target.load()
    return c.target


def run(c: Case):
    return verify(target_of(c), SPECS[c.spec], hyper=dict(c.hyper), dtype=c.dtype)


def assert_verdict(c: Case, report) -> None:
    """Pass for a correct case; for a broken one, fail with the expected diagnosis."""
    if c.expect == PASS:
        assert report.passed, report.summary()
        return
    assert not report.passed, report.summary()
    diagnosis = report.diagnosis
    assert diagnosis is not None, report.summary()
    if c.expect == UNEXPLAINED:
        assert not diagnosis.explained, report.summary()
        assert diagnosis.rules == (), report.summary()
        return
    assert diagnosis.explained, report.summary()
    assert set(diagnosis.rules) == c.expect, report.summary()
    for name, value in c.fitted.items():
        assert name in diagnosis.fitted, report.summary()
        assert math.isclose(diagnosis.fitted[name], value, rel_tol=FITTED_REL[c.dtype]), (
            report.summary()
        )


#: The four false passes of the old verify, each run by a test of its own below.
FALSE_PASSES = (
    "adam_zeroes_tiny_gradients",
    "adam_large_array_fast_path",
    "adam_corrections_off_after_warmup",
    "torch_adamw_float32_small_decay",
    "optax_adamw_float32_small_decay",
)
OTHERS = [c for c in CASES if c.name not in FALSE_PASSES]


@pytest.mark.parametrize("c", OTHERS, ids=[c.name for c in OTHERS])
def test_verdict(c):
    assert_verdict(c, run(c))


def test_corpus_size_and_mix():
    names = [c.name for c in CASES]
    assert len(set(names)) == len(names)
    correct = [c for c in CASES if not c.broken]
    broken = [c for c in CASES if c.broken]
    explained = [c for c in broken if c.expect != UNEXPLAINED]
    assert len(CASES) >= 30 and len(correct) >= 10 and len(broken) >= 18
    assert sum(isinstance(c.expect, frozenset) and len(c.expect) == 2 for c in broken) >= 2
    assert sum(bool(c.fitted) for c in broken) >= 3
    assert len(explained) >= 0.9 * len(broken)
    assert any(c.dtype == "float32" for c in correct)


# --- the four false passes of the old verify ----------------------------------------------------


def test_false_pass_gradient_zeroed_in_place():
    """Zeroing |g| < 1e-6 in the caller's array: the reference must see the gradient as given."""
    c = case("adam_zeroes_tiny_gradients")
    assert_verdict(c, run(c))


def test_false_pass_wrong_only_above_64_elements():
    c = case("adam_large_array_fast_path")
    assert_verdict(c, run(c))


def test_false_pass_wrong_only_from_step_60():
    c = case("adam_corrections_off_after_warmup")
    assert_verdict(c, run(c))


@pytest.mark.parametrize(
    "name", ["torch_adamw_float32_small_decay", "optax_adamw_float32_small_decay"]
)
def test_false_pass_float32_adamw_small_weight_decay(name):
    """lr*weight_decay = 1e-6 per step hides under float32's tolerance in a short run."""
    c = case(name)
    assert_verdict(c, run(c))


# --- the corpus against the reference stepper, without verify -----------------------------------

#: Gradient streams for the oracle check: normal at a random scale, tiny (where eps dominates),
#: and half exact zeros; a small tensor and one above 64 elements; past step 60.
ORACLE_STREAMS = {
    "random": lambda rng, shape: rng.standard_normal(shape) * 10 ** rng.uniform(-2, 1),
    "tiny": lambda rng, shape: rng.standard_normal(shape) * 1e-9,
    "sparse": lambda rng, shape: rng.standard_normal(shape) * (rng.random(shape) < 0.5),
}
ORACLE_SHAPES = ((6,), (67,))
ORACLE_STEPS = 70
HAND_WRITTEN = [c for c in CASES if not isinstance(c.target, Needs)]


def drive(c: Case, stream: str, shape: tuple[int, ...], steps: int = ORACLE_STEPS) -> float:
    """Largest difference of w (relative to its largest magnitude) between ``c``'s target and the
    reference stepper of its spec on one stream."""
    spec = SPECS[c.spec]
    hyper = {**spec.defaults, **c.hyper}
    rng = np.random.default_rng(7)
    w0 = (rng.standard_normal(shape) * 0.5).astype(c.dtype)
    ref = ReferenceStepper(spec, [w0.astype(np.float64)], **hyper)
    if isinstance(c.target, type):
        opt = c.target([w0], **hyper)
    else:
        w, state = w0.copy(), {k: v.astype(c.dtype) for k, v in ref.state[0].items()}
    worst, scale = 0.0, 0.0
    for t in range(1, steps + 1):
        g = ORACLE_STREAMS[stream](rng, shape).astype(c.dtype)
        ref.step([g.astype(np.float64)])
        if isinstance(c.target, type):
            opt.step([g.copy()])
            w = opt.params[0]
        else:
            out = c.target(w, g.copy(), state, t, **hyper)
            w = w if out is None else out
        with np.errstate(all="ignore"):
            diff = np.abs(np.asarray(w, dtype=np.float64) - ref.params[0])
        worst = max(worst, float(np.nan_to_num(diff, nan=np.inf).max()))
        scale = max(scale, float(np.abs(ref.params[0]).max()))
    return worst / scale


@pytest.mark.parametrize("c", HAND_WRITTEN, ids=[c.name for c in HAND_WRITTEN])
def test_corpus_case_is_what_it_claims(c):
    """A correct case agrees with the reference on every stream; a broken one parts from it."""
    errors = {(s, shape): drive(c, s, shape) for s in ORACLE_STREAMS for shape in ORACLE_SHAPES}
    if c.broken:
        assert max(errors.values()) > 1e-6, errors
    else:
        assert max(errors.values()) < (1e-12 if c.dtype == "float64" else 1e-5), errors


def test_what_made_the_false_passes():
    """The old verify's runs were small (6 and 10 elements), short (40 steps) and gave the
    reference the array the implementation had written into."""
    fast_path = case("adam_large_array_fast_path")
    assert drive(fast_path, "random", (6,)) < 1e-12 < 1e-6 < drive(fast_path, "random", (67,))
    warmup = case("adam_corrections_off_after_warmup")
    assert drive(warmup, "random", (6,), steps=59) < 1e-12 < 1e-6 < drive(warmup, "random", (6,))
    g, state = np.array([1e-9, -3e-7, 0.5]), {"m": np.zeros(3), "v": np.zeros(3)}
    case("adam_zeroes_tiny_gradients").target(np.zeros(3), g, state, 1)
    assert g.tolist() == [0.0, 0.0, 0.5]

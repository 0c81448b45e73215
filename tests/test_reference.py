"""The reference stepper against values worked out by hand and against itself in 50 digits."""

import numpy as np
import pytest

from symopt.reference import ReferenceStepper, original_variables, relative_error
from symopt.resources import elementwise_specs

SPECS = elementwise_specs()


def test_adam_first_step_is_lr_times_sign_for_large_gradients():
    g = np.array([0.5, -2.0, 0.0])
    ref = ReferenceStepper(SPECS["adam"], [np.zeros(3)], lr=0.1, eps=1e-8)
    ref.step([g])
    expected = -0.1 * g / (np.abs(g) + 1e-8)
    np.testing.assert_allclose(ref.params[0], expected, rtol=1e-15, atol=0)
    np.testing.assert_allclose(ref.state[0]["m"], 0.1 * g, rtol=1e-15)
    np.testing.assert_allclose(ref.state[0]["v"], 0.001 * g**2, rtol=1e-12)


def test_momentum_by_hand():
    ref = ReferenceStepper(SPECS["momentum"], [np.array([1.0])], lr=0.5, rho=0.5)
    for g in (1.0, 2.0, -1.0):
        ref.step([np.array([g])])
    # v: 1, 2.5, 0.25; w: 1 - 0.5, then -1.25, then -0.125
    assert ref.state[0]["v"][0] == pytest.approx(0.25)
    assert ref.params[0][0] == pytest.approx(1 - 0.5 - 1.25 - 0.125)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_float64_agrees_with_50_digits(name):
    rng = np.random.default_rng(1)
    w = rng.standard_normal((2, 3))  # 2-D: every spec applies (some only to matrices)
    fast = ReferenceStepper(SPECS[name], [w])
    exact = ReferenceStepper(SPECS[name], [w], precision="mpmath")
    for _ in range(5):
        g = rng.standard_normal((2, 3))
        fast.step([g])
        exact.step([g])
    high = np.array([float(x) for x in exact.params[0].flat]).reshape(w.shape)
    assert relative_error(fast.params[0], high) < 1e-14


def test_nesterov_lookahead_form_tracks_the_original_update():
    spec = SPECS["nesterov"]
    grad = lambda x: 3.0 * x - 1.0  # noqa: E731
    original = ReferenceStepper(spec, [np.array([2.0, -1.0])])
    stored = ReferenceStepper(spec, [np.array([2.0, -1.0])])
    for _ in range(25):
        original.step(grad_fn=grad)
        stored.step([grad(stored.params[0])])
    mapped = original_variables(spec, stored.params[0], stored.state[0], spec.defaults)
    np.testing.assert_allclose(mapped["w"], original.params[0], rtol=1e-13)


def test_hyperparameter_names_are_checked():
    with pytest.raises(ValueError, match="unknown hyperparameter 'alpha'"):
        ReferenceStepper(SPECS["adam"], [np.zeros(2)], alpha=0.1)

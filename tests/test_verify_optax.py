"""The optax adapter of ``symopt verify``, checked against hand-written NumPy oracles."""

import subprocess
import sys

import numpy as np
import pytest

optax = pytest.importorskip("optax")
jax = pytest.importorskip("jax")
jnp = jax.numpy

from symopt.errors import Unsupported  # noqa: E402
from symopt.verify.adapters import ImplementationError  # noqa: E402
from symopt.verify.optax_adapter import OptaxAdapter, is_optax_factory  # noqa: E402

SHAPES = [(3,), (2, 2)]
STEPS = 5


@pytest.fixture(scope="module", autouse=True)
def restore_x64():
    """A float64 run turns jax's x64 mode on for the whole process: turn it back off after."""
    before = jax.config.jax_enable_x64
    yield
    jax.config.update("jax_enable_x64", before)


def tensors(dtype, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(dtype) for s in SHAPES]


def gradients(dtype) -> list[list[np.ndarray]]:
    return [tensors(dtype, seed) for seed in range(1, STEPS + 1)]


def run(target, dtype=np.float64, steps=None, **kwargs) -> OptaxAdapter:
    adapter = OptaxAdapter(target, [tensors(dtype)], [kwargs], [[{} for _ in SHAPES]])
    for t, grads in enumerate(steps if steps is not None else gradients(dtype), start=1):
        adapter.step([grads], t)
    return adapter


def numpy_adam(w, grads, lr, b1=0.9, b2=0.999, eps=1e-8):
    """Adam as optax computes it: eps outside the square root, no eps_root, update = -lr*step."""
    w = [np.array(p, dtype=np.float64) for p in w]
    m = [np.zeros_like(p) for p in w]
    v = [np.zeros_like(p) for p in w]
    for t, gs in enumerate(grads, start=1):
        for i, g in enumerate(gs):
            g = g.astype(np.float64)
            m[i] = (1 - b1) * g + b1 * m[i]
            v[i] = (1 - b2) * (g * g) + b2 * v[i]
            m_hat = m[i] / (1 - b1**t)
            v_hat = v[i] / (1 - b2**t)
            w[i] = w[i] + -lr * (m_hat / (np.sqrt(v_hat) + eps))
    return w, m, v


def assert_all_close(actual, expected, atol):
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected, strict=True):
        np.testing.assert_allclose(a, e, rtol=0, atol=atol)


# -- recognising an optax target ---------------------------------------------------------------


def annotated_factory(learning_rate: float = 0.1) -> optax.GradientTransformation:
    return optax.sgd(learning_rate)


def string_annotated_factory(learning_rate: float = 0.1) -> "optax.GradientTransformationExtraArgs":
    return optax.sgd(learning_rate)


def step_function(w, g, state, t, lr=0.1):
    return w - lr * g


class StepClass:
    def step(self, grads):
        pass


@pytest.mark.parametrize(
    "target",
    [
        optax.adam,
        optax.sgd,
        optax.inject_hyperparams(optax.adam),
        annotated_factory,
        string_annotated_factory,
        optax.adam(0.01),
    ],
    ids=["adam", "sgd", "inject", "annotated", "string-annotated", "built"],
)
def test_optax_targets_are_recognised(target):
    assert is_optax_factory(target) is True


@pytest.mark.parametrize(
    "target",
    [step_function, StepClass, optax.GradientTransformation, np.sqrt, 3.0],
    ids=["step-function", "class", "optax-class", "numpy-function", "number"],
)
def test_other_targets_are_not(target):
    assert is_optax_factory(target) is False


def test_recognising_a_step_function_imports_no_jax():
    """verify must work where jax is not installed: a plain target never imports it."""
    code = (
        "import sys\n"
        "from symopt.verify.optax_adapter import is_optax_factory\n"
        "def f(w, g, state, t, lr): return w\n"
        "class C:\n    def step(self): pass\n"
        "assert not is_optax_factory(f) and not is_optax_factory(C)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('jax', 'optax')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"


def test_signature_is_the_factorys_and_unknown_for_a_built_transformation():
    assert "learning_rate" in OptaxAdapter.signature(optax.adam).parameters
    assert OptaxAdapter.signature(optax.adam(0.01)) is None


# -- driving optax -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dtype", "atol"), [(np.float32, 1e-6), (np.float64, 1e-15)], ids=["float32", "float64"]
)
def test_adam_matches_numpy_adam(dtype, atol):
    adapter = run(optax.adam, dtype, learning_rate=0.01)
    w, m, v = numpy_adam(tensors(dtype), gradients(dtype), lr=0.01)
    [params] = adapter.params()
    assert [p.dtype for p in params] == [np.dtype(dtype)] * len(SHAPES)
    assert_all_close(params, w, atol)
    [state] = adapter.state()
    assert [sorted(s) for s in state] == [["mu", "nu"]] * len(SHAPES)
    assert_all_close([s["mu"] for s in state], m, atol)
    assert_all_close([s["nu"] for s in state], v, atol)


def test_adam_takes_its_own_hyperparameter_names():
    adapter = run(optax.adam, learning_rate=1e-3, b1=0.8, b2=0.99, eps=1e-6)
    w, _, _ = numpy_adam(tensors(np.float64), gradients(np.float64), 1e-3, 0.8, 0.99, 1e-6)
    assert_all_close(adapter.params()[0], w, 1e-15)


def test_sgd_momentum_keeps_a_trace():
    adapter = run(optax.sgd, learning_rate=0.1, momentum=0.9)
    w, trace = tensors(np.float64), [np.zeros(s) for s in SHAPES]
    for gs in gradients(np.float64):
        trace = [g + 0.9 * b for g, b in zip(gs, trace, strict=True)]
        w = [p - 0.1 * b for p, b in zip(w, trace, strict=True)]
    assert_all_close(adapter.params()[0], w, 1e-15)
    assert_all_close([s["trace"] for s in adapter.state()[0]], trace, 1e-15)


def test_adagrad_state_is_readable_before_the_first_step():
    adapter = run(optax.adagrad, steps=[], learning_rate=0.1)
    [state] = adapter.state()
    assert [sorted(s) for s in state] == [["sum_of_squares"]] * len(SHAPES)
    assert_all_close([s["sum_of_squares"] for s in state], [np.full(s, 0.1) for s in SHAPES], 0)
    [grads] = gradients(np.float64)[:1]
    adapter.step([grads], 1)
    expected = [0.1 + g * g for g in grads]
    assert_all_close([s["sum_of_squares"] for s in adapter.state()[0]], expected, 1e-15)


def test_a_field_name_met_again_in_a_chain_is_numbered():
    chain = optax.chain(optax.scale_by_adam(), optax.scale_by_adam())
    [grads] = gradients(np.float64)[:1]
    adapter = run(chain, steps=[grads])
    [state] = adapter.state()
    assert [sorted(s) for s in state] == [["mu", "mu_1", "nu", "nu_1"]] * len(SHAPES)
    # the second Adam sees the first one's first step, g / (|g| + eps)
    assert_all_close([s["mu"] for s in state], [0.1 * g for g in grads], 1e-15)
    assert_all_close([s["mu_1"] for s in state], [0.1 * g / (abs(g) + 1e-8) for g in grads], 1e-15)


def test_injected_hyperparameters_find_the_inner_state():
    adapter = run(optax.inject_hyperparams(optax.adam), learning_rate=0.01)
    w, m, _ = numpy_adam(tensors(np.float64), gradients(np.float64), lr=0.01)
    assert_all_close(adapter.params()[0], w, 1e-15)
    [state] = adapter.state()
    assert [sorted(s) for s in state] == [["mu", "nu"]] * len(SHAPES)  # no count, no lr
    assert_all_close([s["mu"] for s in state], m, 1e-15)


def test_a_masked_out_tensor_has_no_state():
    masked = optax.masked(optax.scale_by_adam(), [True, False])
    [state] = run(masked).state()
    assert [sorted(s) for s in state] == [["mu", "nu"], []]


def test_a_wholly_masked_out_transformation_takes_no_name():
    chain = optax.chain(optax.masked(optax.scale_by_adam(), [False, False]), optax.scale_by_adam())
    [state] = run(chain).state()
    assert [sorted(s) for s in state] == [["mu", "nu"]] * len(SHAPES)


def test_a_built_transformation_is_used_as_is():
    w, _, _ = numpy_adam(tensors(np.float64), gradients(np.float64), lr=0.01)
    assert_all_close(run(optax.adam(0.01)).params()[0], w, 1e-15)


def test_jitted_steps_agree_with_unjitted_optax():
    tx = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(0.01, weight_decay=0.1))
    adapter = run(tx)  # first: it turns x64 on, which the unjitted float64 run needs too
    params = [jnp.array(p) for p in tensors(np.float64)]
    state = tx.init(params)
    for gs in gradients(np.float64):
        updates, state = tx.update([jnp.array(g) for g in gs], state, params)
        params = optax.apply_updates(params, updates)
    assert_all_close(adapter.params()[0], [np.asarray(p) for p in params], 1e-14)
    assert_all_close(
        [s["nu"] for s in adapter.state()[0]], [np.asarray(v) for v in state[1][0].nu], 1e-14
    )


# -- errors --------------------------------------------------------------------------------------


def test_a_bad_argument_is_the_implementations_error():
    with pytest.raises(ImplementationError) as caught:
        run(optax.adam, learning_rate=0.01, nonsense=1)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("adam(learning_rate=0.01, nonsense=1) raised TypeError: ")
    assert "nonsense" in message.removeprefix("adam(learning_rate=0.01, nonsense=1)")


def test_a_factory_that_returns_no_transformation_is_the_implementations_error():
    with pytest.raises(ImplementationError, match=r"returned float, not an optax"):
        run(lambda learning_rate: learning_rate, learning_rate=0.1)


def raising_update(message: str) -> optax.GradientTransformation:
    def update(updates, state, params=None):
        raise ValueError(message)

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def value_dependent_update() -> optax.GradientTransformation:
    """Python control flow on a traced value: jax raises while jitting."""

    def update(updates, state, params=None):
        return (updates if updates[0][0] > 0 else updates), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def test_an_update_that_raises_is_the_implementations_error():
    with pytest.raises(ImplementationError) as caught:
        run(raising_update("first line\nsecond line"))
    assert (
        str(caught.value) == "GradientTransformation.update at step 1 raised ValueError: first line"
    )


def test_a_jax_error_in_an_update_is_one_line():
    with pytest.raises(ImplementationError) as caught:
        run(value_dependent_update())
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("GradientTransformation.update at step 1 raised Tracer")


def test_a_built_transformation_takes_no_arguments():
    with pytest.raises(Unsupported, match=r"already-built optax transformation .* learning_rate"):
        run(optax.adam(0.01), learning_rate=0.01)


# -- no aliasing -------------------------------------------------------------------------------


def test_inputs_and_outputs_are_copies():
    grads = gradients(np.float64)
    reference = run(optax.adam, steps=grads, learning_rate=0.01)

    start = tensors(np.float64)
    adapter = OptaxAdapter(optax.adam, [start], [{"learning_rate": 0.01}], [[{}, {}]])
    for p in start:
        p += 100.0
    for t, gs in enumerate(grads, start=1):
        mine = [g.copy() for g in gs]
        adapter.step([mine], t)
        for g in mine:
            g += 100.0
        for p in adapter.params()[0]:
            p += 100.0
        for s in adapter.state()[0]:
            s["mu"] += 100.0
    assert_all_close(adapter.params()[0], reference.params()[0], 0)
    assert_all_close(
        [s["mu"] for s in adapter.state()[0]], [s["mu"] for s in reference.state()[0]], 0
    )

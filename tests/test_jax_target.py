"""The JAX target: the generated optax transformations against optax's own, the mechanics of the
runtime (chain, inject_hyperparams, jit, schedules, pytrees, dtypes, refusals), and generation
(deterministic, and generated tests that fail on a wrong kernel).

The per-optimizer tests against the reference stepper are generated beside the package
(``generated/jax/tests``); here, what is shared, once.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

jax = pytest.importorskip("jax")
optax = pytest.importorskip("optax")
jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402

from symopt import moons  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "generated" / "jax"))
import symopt_jax  # noqa: E402

SHAPES = [(3,), (4, 5), (2, 3, 4), (1000,)]


def stream(seed: int, steps: int, dense: bool = False):
    """Gradient lists at varying scales; with exact zeros unless ``dense``."""
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        grads = []
        for shape in SHAPES:
            g = rng.standard_normal(shape) * 10.0 ** rng.uniform(-2, 1)
            if not dense:
                g[rng.random(shape) < 0.1] = 0.0
            grads.append(jnp.asarray(g))
        yield grads


def trajectory(tx, steps: int = 60, seed: int = 0, dense: bool = False) -> list[np.ndarray]:
    """The parameters after every step of ``tx`` on a fixed stream (float64)."""
    rng = np.random.default_rng(100 + seed)
    params = [jnp.asarray(rng.standard_normal(s)) for s in SHAPES]
    state = tx.init(params)
    update = jax.jit(tx.update)
    out = []
    for grads in stream(seed, steps, dense):
        updates, state = update(grads, state, params)
        params = optax.apply_updates(params, updates)
        out.append(np.concatenate([np.ravel(p) for p in params]))
    return out


def max_relative_difference(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    pairs = zip(a, b, strict=True)
    return max(float(np.max(np.abs(x - y)) / max(1.0, np.max(np.abs(y)))) for x, y in pairs)


# --- against optax's own implementations ------------------------------------------------------

#: (optax factory and arguments, symopt factory and arguments, the convention that differs or
#: None, arguments of both that take the convention out of play)
CROSS_CHECKS = {
    "sgd": (optax.sgd, {"learning_rate": 0.05}, "sgd", {"learning_rate": 0.05}, None, None),
    "sgd momentum": (
        optax.sgd,
        {"learning_rate": 0.05, "momentum": 0.9},
        "sgd",
        {"learning_rate": 0.05, "momentum": 0.9},
        None,
        None,
    ),
    "sgd nesterov": (
        optax.sgd,
        {"learning_rate": 0.05, "momentum": 0.9, "nesterov": True},
        "sgd",
        {"learning_rate": 0.05, "momentum": 0.9, "nesterov": True},
        None,
        None,
    ),
    "adagrad": (
        optax.adagrad,
        {"learning_rate": 0.1, "initial_accumulator_value": 0.1, "eps": 0.1},
        "adagrad",
        {"learning_rate": 0.1, "initial_accumulator_value": 0.1, "eps": 0.1},
        "eps inside the square root (optax: g/sqrt(sum + eps); torch and the spec: "
        "g/(sqrt(sum) + eps))",
        ({"eps": 1e-300}, {"eps": 1e-300}),
    ),
    "rmsprop": (
        optax.rmsprop,
        {"learning_rate": 0.01, "decay": 0.9, "eps": 1e-3},
        "rmsprop",
        {"learning_rate": 0.01, "alpha": 0.9, "eps": 1e-3},
        "eps inside the square root (optax's default eps_in_sqrt=True)",
        ({"eps_in_sqrt": False}, {}),
    ),
    "adam": (optax.adam, {"learning_rate": 0.01}, "adam", {"learning_rate": 0.01}, None, None),
    "adamax": (
        optax.adamax,
        {"learning_rate": 0.01, "eps": 0.1},
        "adamax",
        {"learning_rate": 0.01, "eps": 0.1},
        "eps inside the max (optax: u = max(b2 u, |g| + eps); the paper: u + eps outside)",
        ({"eps": 1e-300}, {"eps": 1e-300}),
    ),
    "nadam": (optax.nadam, {"learning_rate": 0.01}, "nadam", {"learning_rate": 0.01}, None, None),
    "adabelief": (
        optax.adabelief,
        # the paper adds eps to s at every step: optax's eps_root (its default, 1e-16, is eps's)
        {"learning_rate": 0.01, "eps": 1e-16, "eps_root": 1e-16},
        "adabelief",
        {"learning_rate": 0.01, "eps": 1e-16},
        None,
        None,
    ),
}


@pytest.mark.parametrize("case", list(CROSS_CHECKS))
def test_agrees_with_optax_or_names_the_convention(case):
    """float64, 60 steps on four leaves: equal to 1e-10 of the parameters' scale; where a
    convention differs, the two differ and the arguments that neutralise it agree (eps = 1e-300:
    the spec's domain has no eps = 0)."""
    optax_fn, optax_args, name, ours_args, convention, neutral = CROSS_CHECKS[case]
    ours = trajectory(symopt_jax.OPTIMIZERS[name](**ours_args), dense=True)
    theirs = trajectory(optax_fn(**optax_args), dense=True)
    if convention is None:
        assert max_relative_difference(ours, theirs) <= 1e-10
        return
    assert max_relative_difference(ours, theirs) > 1e-6, f"{convention} should show"
    theirs_neutral, ours_neutral = neutral
    ours = trajectory(symopt_jax.OPTIMIZERS[name](**{**ours_args, **ours_neutral}), dense=True)
    theirs = trajectory(optax_fn(**{**optax_args, **theirs_neutral}), dense=True)
    assert max_relative_difference(ours, theirs) <= 1e-10


def moons_losses(tx, steps: int = 200) -> np.ndarray:
    """Full-batch training of the two-moons MLP (2-16-16-1, tanh, logistic loss) in float64."""
    X, y = (jnp.asarray(a) for a in moons.make_moons(200, seed=0))
    params = [jnp.asarray(p) for p in moons.init_mlp((2, 16, 16, 1), seed=0)]

    def loss(params):
        h = X
        for W, b in zip(params[:-2:2], params[1:-2:2], strict=True):
            h = jnp.tanh(h @ W + b)
        logits = (h @ params[-2] + params[-1])[:, 0]
        return jnp.mean(jnp.logaddexp(0.0, logits) - y * logits)

    @jax.jit
    def step(params, state):
        value, grads = jax.value_and_grad(loss)(params)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state, value

    state, out = tx.init(params), []
    for _ in range(steps):
        params, state, value = step(params, state)
        out.append(float(value))
    return np.array(out)


def test_two_moons_loss_curve_equals_optax_adam():
    ours = moons_losses(symopt_jax.adam(learning_rate=0.01))
    theirs = moons_losses(optax.adam(learning_rate=0.01))
    assert ours[-1] < 0.5 * ours[0]  # it trains
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-10)


# --- the runtime's mechanics ------------------------------------------------------------------


def test_composes_with_chain_like_optax_adam():
    clip = optax.clip_by_global_norm(1.0)
    ours = trajectory(optax.chain(clip, symopt_jax.adam(0.01)))
    theirs = trajectory(optax.chain(clip, optax.adam(0.01)))
    assert max_relative_difference(ours, theirs) <= 1e-10


def test_inject_hyperparams_changes_the_learning_rate_between_steps():
    """The learning rate set in the injected state reaches the step, as with optax.adam."""

    def run(factory):
        tx = optax.inject_hyperparams(factory)(learning_rate=0.01)
        params = [jnp.ones(s) for s in SHAPES]
        state = tx.init(params)
        for k, grads in enumerate(stream(1, 30)):
            state.hyperparams["learning_rate"] = jnp.asarray(0.01 / (1 + k))
            updates, state = jax.jit(tx.update)(grads, state, params)
            params = optax.apply_updates(params, updates)
        return [np.concatenate([np.ravel(p) for p in params])]

    assert max_relative_difference(run(symopt_jax.adam), run(optax.adam)) <= 1e-10


def test_schedules_count_from_zero_like_optax():
    schedule = optax.exponential_decay(0.05, transition_steps=5, decay_rate=0.5)
    ours = trajectory(symopt_jax.sgd(schedule, momentum=0.9))
    theirs = trajectory(optax.sgd(schedule, momentum=0.9))
    assert max_relative_difference(ours, theirs) <= 1e-10


def test_init_and_update_are_jittable_and_pure():
    tx = symopt_jax.adam(0.01, amsgrad=True)
    params = {"w": jnp.ones((3, 4)), "b": jnp.zeros(4)}
    state = jax.jit(tx.init)(params)
    assert jax.tree.structure(state) == jax.tree.structure(tx.init(params))
    grads = jax.tree.map(lambda p: p + 0.5, params)
    first = jax.jit(tx.update)(grads, state, params)
    again = jax.jit(tx.update)(grads, state, params)
    for a, b in zip(jax.tree.leaves(first), jax.tree.leaves(again), strict=True):
        np.testing.assert_array_equal(a, b)
    assert int(first[1].count) == 1 and state.vmax is not None


def test_float32_stays_float32_with_x64_enabled():
    tx = symopt_jax.adam(0.01)
    params = [jnp.ones(5, dtype=jnp.float32)]
    updates, state = tx.update([jnp.ones(5, dtype=jnp.float32)], tx.init(params), params)
    assert updates[0].dtype == jnp.float32 and state.m[0].dtype == jnp.float32


def test_params_are_required_only_when_the_update_reads_them():
    grads = [jnp.ones(3)]
    plain = symopt_jax.adam(0.01)
    plain.update(grads, plain.init(grads))  # reads no w: optax's params=None works
    decayed = symopt_jax.adam(0.01, weight_decay=0.1)
    with pytest.raises(ValueError, match="pass params"):
        decayed.update(grads, decayed.init(grads))


def test_weight_decay_as_an_array_runs_the_general_setting():
    """A traced value cannot choose a setting: an array runs the weight-decay step, which at 0
    gives the plain step's numbers."""
    ours = trajectory(symopt_jax.adam(0.01, weight_decay=jnp.asarray(0.0)))
    plain = trajectory(symopt_jax.adam(0.01, weight_decay=0.0))
    assert max_relative_difference(ours, plain) <= 1e-14


def test_a_matrix_only_spec_refuses_vectors_and_factored_state_is_per_matrix():
    with pytest.raises(ValueError, match="2-D parameters only"):
        symopt_jax.muon().init([jnp.zeros(3)])
    state = symopt_jax.adafactor().init([jnp.zeros(7), jnp.zeros((3, 5))])
    assert state.r[0].shape == (0,) and state.r[1].shape == (3, 1)
    assert state.c[1].shape == (1, 5) and state.v[0].shape == (7,) and state.v[1].shape == (0,)


def test_a_number_outside_the_domain_is_refused_by_its_argument_name():
    with pytest.raises(ValueError, match=r"b1 must be in \[0, 1\), got 1.5"):
        symopt_jax.adam(b1=1.5)


# --- generation -----------------------------------------------------------------------------


def generate(out, *args: str, seed: str = "0") -> None:
    env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "symopt", "generate", "--target", "jax", "--out", str(out)]
    subprocess.run([*command, *args], check=True, env=env, capture_output=True, cwd=ROOT)


def test_generation_is_deterministic_and_its_tests_catch_a_wrong_step(tmp_path):
    trees = []
    for seed in ("0", "4242"):
        generate(tmp_path / seed, "--algorithm", "adam", seed=seed)
        folder = tmp_path / seed / "jax"
        trees.append({p.relative_to(folder): p.read_bytes() for p in folder.rglob("*.py")})
    assert trees[0] == trees[1]
    module = tmp_path / "0/jax/symopt_jax/adam.py"
    text = module.read_text()
    assert "m_new = beta1 * m + g * one_minus_beta1" in text
    module.write_text(text.replace("m_new = beta1 * m + g", "m_new = beta2 * m + g", 1))
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-p", "no:xdist"]
        + [str(tmp_path / "0/jax/tests/test_adam.py"), "-k", "matches_reference"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode == 1, done.stdout[-2000:]
    assert "exceeds the tolerance" in done.stdout


def test_the_training_loop_in_the_docs_runs_and_fits(capsys):
    text = (ROOT / "docs/jax.md").read_text(encoding="utf-8")
    block = text.split("<!-- jax-example -->\n```python\n", 1)[1].split("```", 1)[0]
    exec(compile(block, "docs/jax.md", "exec"), {})  # the project's own documentation
    loss = float(capsys.readouterr().out.split()[-1])
    assert loss < 1e-6


def test_the_generated_package_imports_only_jax_optax_and_the_standard_library():
    allowed = {"jax", "optax", *sys.stdlib_module_names}
    found = set()
    for path in (ROOT / "generated/jax/symopt_jax").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                found.add(node.module.split(".")[0])
    assert found and found <= allowed, sorted(found - allowed)
    assert {"jax", "optax"} <= found


@pytest.mark.parametrize("name", ["adam", "lamb", "rprop"])
def test_symopt_verify_passes_the_generated_transformations(name):
    """verify, an oracle of its own (its streams, sizes and tolerances), drives the generated
    factory as it drives optax's: an element-wise, a tensor-level and a conditional spec."""
    from symopt.resources import builtin_spec
    from symopt.verify.run import verify

    report = verify(symopt_jax.OPTIMIZERS[name], builtin_spec(name), large=False, long=100)
    assert report.passed, report
    assert report.worst_ratio <= 1


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (
            lambda: symopt_jax.adamw(1e-3, weight_decay=1e-4),
            lambda: optax.adamw(1e-3, weight_decay=1e-4),
        ),
        (
            lambda: symopt_jax.lion(1e-4, weight_decay=1e-3),
            lambda: optax.lion(1e-4, weight_decay=1e-3),
        ),
    ],
    ids=["adamw", "lion"],
)
def test_decoupled_weight_decay_in_float32_is_as_accurate_as_optax(ours, theirs):
    """The decay enters the update as (k - 1)*w with k - 1 = -lr*weight_decay from the prelude,
    not as k*w - w with k = 1 - lr*weight_decay rounded to float32 (1 - 1e-7 is 1 - 1.19e-7)."""

    def run(tx, dtype):
        rng = np.random.default_rng(0)
        params = [jnp.asarray(rng.standard_normal(2000), dtype=dtype)]
        state, update = tx.init(params), jax.jit(tx.update)
        for _ in range(100):
            grads = [jnp.asarray(rng.standard_normal(2000), dtype=dtype)]
            updates, state = update(grads, state, params)
            params = optax.apply_updates(params, updates)
        return np.asarray(params[0], dtype=np.float64)

    exact = run(ours(), jnp.float64)
    ours_error = np.max(np.abs(run(ours(), jnp.float32) - exact))
    optax_error = np.max(np.abs(run(theirs(), jnp.float32) - exact))
    assert np.max(np.abs(run(theirs(), jnp.float64) - exact)) < 1e-12  # the same method
    assert ours_error <= 1.2 * optax_error  # k*w - w: 4x (AdamW) and 1.4x (Lion) larger

"""Regressions the spec fuzz run (tests/fuzz_specs.py) found in the backends, each on a minimal
spec written here: generated into a temporary folder, imported, and run against the reference
stepper or against the other targets' answer to the same arguments.

* JAX refused only values outside a hyperparameter's domain; the other targets also run the
  checks of the library their API class matches ([api] checks, torch.optim's messages): a value
  every other target refuses was stepped with by JAX.
* An [api] check calling a function (``0 <= sqrt(weight_decay)``) printed ``math.sqrt`` into an
  API module that did not import math (NameError at construction).
* The NumPy target created a state the first step sets from the gradient (``init = "g"``) with
  the init printed as is (NameError: g); the array starts at 0, as in every other target.
* An integer constant past 2**53 (``1e308`` is parsed exactly) was printed as a 309-digit
  literal, which torch's and JAX's scalar conversions refuse (OverflowError) and a C compiler
  truncates (a wrong value, silently).
"""

from __future__ import annotations

import importlib
import sys

import numpy as np
import pytest

from symopt.backends import BACKENDS
from symopt.files import sync
from symopt.reference import ReferenceStepper
from symopt.spec import load_spec

jax = pytest.importorskip("jax")
torch = pytest.importorskip("torch")
jnp = pytest.importorskip("jax.numpy")
jax.config.update("jax_enable_x64", True)

PACKAGES = {"numpy": "symopt_numpy", "c": "symopt_c", "torch": "symopt_torch", "jax": "symopt_jax"}

#: An [api] check that is not a domain (d is positive, the library wants d >= 1).
CHECKED = """
name = "clipped"
class_name = "Clipped"
title = "SGD with a clipping threshold"
summary = "A test spec: an argument check of its library beyond the domain."
reference = "none"
update = ["w = w - lr*g/max(1, d)"]
[hyper.lr]
default = 0.1
domain = "positive"
[hyper.d]
default = 1.0
domain = "positive"
[api]
checks = [{ require = "1 <= d", message = "Clipping threshold d should be >= 1 but is: {d}" }]
"""
#: An [api] check that calls a function (printed as ``math.sqrt``).
ROOTED = CHECKED.replace("1 <= d", "1 <= sqrt(d)")
#: A constant that is an integer to SymPy and past every integer type of the targets.
HUGE = """
name = "huge"
class_name = "Huge"
title = "SGD with a huge threshold"
summary = "A test spec: a comparison with 1e308."
reference = "none"
update = ["w = w - where(g > 1e308, 2*lr, lr)*g", "m = where(abs(g) < 1e300, g, 0)"]
[hyper.lr]
default = 0.1
domain = "positive"
[state.m]
init = "0"
"""

#: A state the first step sets from the gradient (``init = "g"``): its array starts at 0.
FIRST = """
name = "first_grad"
class_name = "FirstGrad"
title = "Momentum started at the first gradient"
summary = "A test spec: a state set from the gradient by the first step."
reference = "none"
update = ["m = beta*m + (1 - beta)*g", "w = w - lr*m"]
[hyper.lr]
default = 0.1
domain = "positive"
[hyper.beta]
default = 0.9
domain = "unit_open"
[state.m]
init = "g"
"""


@pytest.fixture
def generate(tmp_path, monkeypatch):
    """Generate a spec text for the targets into tmp_path; each target's package, imported."""

    ours = [n for n in sys.modules if n.split(".")[0] in PACKAGES.values()]
    saved = {name: sys.modules.pop(name) for name in ours}  # the committed packages, say

    def make(text: str, targets=("numpy", "torch", "jax")) -> tuple[object, dict]:
        path = tmp_path / "spec.toml"
        path.write_text(text, encoding="utf-8")
        spec = load_spec(path)
        for target in targets:
            sync.write(tmp_path / target, BACKENDS[target].files([spec]), [target], False)
        packages = {}
        for target in targets:
            monkeypatch.syspath_prepend(str(tmp_path / target / target))
            packages[target] = importlib.import_module(PACKAGES[target])
        return spec, packages

    yield make
    for name in list(sys.modules):
        if name.split(".")[0] in PACKAGES.values():
            del sys.modules[name]
    sys.modules.update(saved)


def test_jax_refuses_a_value_the_library_check_refuses_as_the_other_targets_do(generate):
    _, packages = generate(CHECKED)
    numpy_cls = packages["numpy"].OPTIMIZERS["clipped"]
    torch_cls = packages["torch"].OPTIMIZERS["clipped"]
    factory = packages["jax"].OPTIMIZERS["clipped"]
    message = "Clipping threshold d should be >= 1 but is: 0.5"
    with pytest.raises(ValueError, match=message):
        numpy_cls([np.zeros(3)], d=0.5)
    with pytest.raises(ValueError, match=message):
        torch_cls([torch.zeros(3, requires_grad=True)], d=0.5)
    with pytest.raises(ValueError, match=message):
        factory(d=0.5)
    with pytest.raises(ValueError, match="d must be in"):  # the domain first, as before
        factory(d=-1.0)
    factory(d=1.0)
    factory(d=jnp.asarray(0.5))  # an array may be traced: no check runs on it


def test_an_api_check_that_calls_a_function_runs_in_every_target(generate):
    _, packages = generate(ROOTED)
    message = "Clipping threshold d should be >= 1 but is: 0.25"
    with pytest.raises(ValueError, match=message):
        packages["numpy"].OPTIMIZERS["clipped"]([np.zeros(3)], d=0.25)
    with pytest.raises(ValueError, match=message):
        packages["torch"].OPTIMIZERS["clipped"]([torch.zeros(3, requires_grad=True)], d=0.25)
    with pytest.raises(ValueError, match=message):
        packages["jax"].OPTIMIZERS["clipped"](d=0.25)
    packages["numpy"].OPTIMIZERS["clipped"]([np.zeros(3)], d=4.0)
    packages["jax"].OPTIMIZERS["clipped"](d=4.0)


def steps(spec, packages: dict, w: np.ndarray, grads: list[np.ndarray]) -> None:
    """Every target's steps from w with these gradients against the reference stepper's."""
    ref = ReferenceStepper(spec, [w.copy()])
    for g in grads:
        ref.step([g.copy()])
    want = np.asarray(ref.params[0])
    for target in ("numpy", "c"):
        opt = packages[target].OPTIMIZERS[spec.name]([w.copy()])
        for g in grads:
            opt.step([g.copy()])
        np.testing.assert_allclose(opt.params[0], want, rtol=4e-16, err_msg=target)
    p = torch.nn.Parameter(torch.tensor(w))
    opt = packages["torch"].OPTIMIZERS[spec.name]([p])
    for g in grads:
        p.grad = torch.tensor(g)
        opt.step()
    np.testing.assert_allclose(p.detach().numpy(), want, rtol=4e-16, err_msg="torch")
    tx = packages["jax"].OPTIMIZERS[spec.name]()
    params = jnp.asarray(w)
    state = tx.init(params)
    for g in grads:
        updates, state = tx.update(jnp.asarray(g), state, params)
        params = params + updates
    np.testing.assert_allclose(np.asarray(params), want, rtol=4e-16, err_msg="jax")


def test_an_integer_past_two_to_the_53_steps_in_every_target(generate):
    spec, packages = generate(HUGE, tuple(PACKAGES))
    rng = np.random.default_rng(22)
    w, g = rng.standard_normal(6), rng.standard_normal(6) * np.array([1, 1, 1, 1, 1e301, -1e301])
    steps(spec, packages, w, [g])


def test_a_state_the_first_gradient_sets_starts_at_zero_in_numpy(generate):
    spec, packages = generate(FIRST, tuple(PACKAGES))
    assert "(the first step sets it to g)" in packages["numpy"].OPTIMIZERS["first_grad"].__doc__
    rng = np.random.default_rng(22)
    steps(spec, packages, rng.standard_normal(6), [rng.standard_normal(6) for _ in range(3)])

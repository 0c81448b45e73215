"""Every target validates the same things at the same moment (issue 22, item 6).

The rules (symopt_numpy's ``_runtime`` states them; the other runtimes point there):

* aliasing: an array a step only reads (a gradient) may share memory with the arrays it writes,
  and the step reads its values from before the step; arrays a step writes (parameters, state)
  may not share memory with each other (ValueError at the step, before anything is written);
* step counters: t is an integer (TypeError otherwise) in [t_start, 2**63 - 1] (ValueError),
  checked at the step; a loaded count of steps taken is checked when it is loaded;
* ``load_state_dict`` refuses another optimizer's state (ValueError naming its keys) and
  changes nothing when it refuses.

Oracles: the same step on copies of the arrays (bit for bit: the aliased step must be the
unaliased one), torch.optim.Adam for a checkpoint of its own loaded into the drop-in, and the
counters' bounds written out here.
"""

import copy
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
GENERATED = ROOT / "generated"
for target in ("numpy", "c", "torch", "jax"):
    sys.path.insert(0, str(GENERATED / target))

import symopt_c  # noqa: E402
import symopt_numpy  # noqa: E402
import symopt_torch  # noqa: E402
import torch  # noqa: E402
from symopt_c._adamw__weight_decay import adamw__weight_decay_step as c_adamw_step  # noqa: E402
from symopt_c.adabelief import AdaBelief as CAdaBelief  # noqa: E402
from symopt_c.adabelief import adabelief_step as c_adabelief_step  # noqa: E402
from symopt_numpy._adamw__weight_decay import (  # noqa: E402
    adamw__weight_decay_step as np_adamw_step,
)
from symopt_numpy.adabelief import AdaBelief as NpAdaBelief  # noqa: E402
from symopt_numpy.adabelief import adabelief_step as np_adabelief_step  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

#: The array targets: their module (the classes with torch's arguments), the plain AdaBelief
#: class, the functional AdaBelief and AdamW (weight_decay != 0) steps.
ARRAY_TARGETS = {
    "numpy": (symopt_numpy, NpAdaBelief, np_adabelief_step, np_adamw_step),
    "c": (symopt_c, CAdaBelief, c_adabelief_step, c_adamw_step),
}
#: torch's paths through the element-wise kernels.
TORCH_PATHS = {"foreach": {"foreach": True}, "single": {"foreach": False}, "fused": {"fused": True}}
T_MAX = 2**63 - 1
OUT_OF_RANGE = [0, -1, -5, 2**63, 2**64 + 1]
NOT_INTEGERS = [1.5, 2.0, "3", True, None]
#: More elements than one chunk of the NumPy runtime (2**17 bytes), so that a shifted alias
#: crosses a chunk boundary.
N = 40_000


@pytest.fixture
def rng():
    return np.random.default_rng(22)


@pytest.fixture(params=list(ARRAY_TARGETS))
def target(request):
    return ARRAY_TARGETS[request.param]


def twin(opt):
    """A fresh optimizer of opt's class over copies of its arrays, with its state."""
    other = type(opt)([p.copy() for p in opt.params])
    other.load_state_dict(opt.state_dict())
    return other


def assert_same_arrays(opt, other) -> None:
    assert opt.steps == other.steps
    for p, q, s, r in zip(opt.params, other.params, opt.state, other.state, strict=True):
        np.testing.assert_array_equal(p, q)
        assert s.keys() == r.keys()
        for key in s:
            np.testing.assert_array_equal(s[key], r[key])


# Aliasing: a gradient that is (part of) an array the step writes is read as it was before.


def test_aliased_gradient_of_a_class_is_read_before_the_step(target, rng):
    """AdamW decays w before it reads g: read in place, g would be the decayed w."""
    module = target[0]
    buffer = rng.standard_normal(N + 2)
    opt = module.AdamW([buffer[1 : N + 1]], weight_decay=0.1)
    other = module.AdamW([buffer[1 : N + 1].copy()], weight_decay=0.1)
    for view in (opt.params[0], buffer[:N], buffer[2:]):  # w itself, one behind, one ahead
        g = view.copy()
        opt.step([view])
        other.step([g])
        assert_same_arrays(opt, other)
    g = opt.state[0]["exp_avg"].copy()
    opt.step([opt.state[0]["exp_avg"]])
    other.step([g])
    assert_same_arrays(opt, other)


def test_aliased_gradient_of_a_plain_class_is_read_before_the_step(target, rng):
    opt = target[1]([rng.standard_normal(N)])
    other = twin(opt)
    for g in (opt.params[0], opt.state[0]["m"], opt.state[0]["m"]):
        copy = g.copy()
        opt.step([g])
        other.step([copy])
        assert_same_arrays(opt, other)


def test_aliased_gradient_of_a_functional_step_is_read_before_the_step(target, rng):
    step = target[3]
    w, m, v = rng.standard_normal(N), np.zeros(N), np.zeros(N)
    copies = [w.copy(), w.copy(), m.copy(), v.copy()]
    for t in (1, 2):
        step(w, w, m, v, t)
        step(copies[0], copies[0].copy(), copies[2], copies[3], t)
    for a, b in zip((w, m, v), (copies[0], copies[2], copies[3]), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("path", list(TORCH_PATHS))
def test_aliased_gradient_in_torch_is_read_before_the_step(path):
    """p.grad shares p's memory (``p.detach()``), a state tensor's, or p's storage shifted by
    one element."""
    torch.manual_seed(22)
    buffer = torch.randn(2001, dtype=torch.float64)
    p = torch.nn.Parameter(buffer[1:].view(50, 40))
    q = torch.nn.Parameter(p.detach().clone())
    opt = symopt_torch.AdamW([p], weight_decay=0.1, **TORCH_PATHS[path])
    other = symopt_torch.AdamW([q], weight_decay=0.1, **TORCH_PATHS[path])
    for alias in (p.detach, lambda: opt.state[p]["exp_avg"], lambda: buffer[:2000].view(50, 40)):
        p.grad = alias()
        q.grad = p.grad.clone()
        opt.step()
        other.step()
        assert torch.equal(p, q)
        assert torch.equal(opt.state[p]["exp_avg"], other.state[q]["exp_avg"])


# Aliasing: arrays a step writes may not share memory (the array targets; torch keeps them).


def test_written_arrays_that_share_memory_are_refused(target, rng):
    cls, functional = target[1], target[2]
    message = "share memory, and each is updated in place"
    opt = cls([rng.standard_normal(8)])
    opt.step([np.ones(8)])
    saved = twin(opt)
    for key, value in [("s", opt.state[0]["m"]), ("m", opt.params[0])]:
        own = opt.state[0][key]
        opt.state[0][key] = value
        with pytest.raises(ValueError, match=message):
            opt.step([np.ones(8)])
        opt.state[0][key] = own
    assert_same_arrays(opt, saved)  # nothing was written
    buffer = np.zeros(9)
    with pytest.raises(ValueError, match=r"params\[0\] and params\[1\] share memory"):
        cls([buffer[:5], buffer[4:]]).step([np.ones(5)] * 2)
    w, m = np.ones(8), np.zeros(9)
    with pytest.raises(ValueError, match="w and m share memory"):
        functional(w, np.ones(8), w, np.zeros(8), 1)
    with pytest.raises(ValueError, match="m and s share memory"):
        functional(w, np.ones(8), m[:8], m[1:], 1)
    np.testing.assert_array_equal(w, np.ones(8))


# Step counters.


@pytest.mark.parametrize("t", OUT_OF_RANGE + NOT_INTEGERS)
def test_bad_counters_of_the_functional_steps_are_refused(target, t):
    arrays = [np.ones(4), np.ones(4), np.zeros(4), np.zeros(4)]
    if isinstance(t, bool) or not isinstance(t, int):
        error, message = TypeError, "the step counter t must be an integer"
    else:
        error, message = ValueError, rf"the step counter t must be in \[1, {T_MAX}\], got {t}"
    with pytest.raises(error, match=message):
        target[2](*arrays, t)
    np.testing.assert_array_equal(arrays[0], np.ones(4))


@pytest.mark.parametrize("t", [1, 7, np.int64(77), T_MAX])
def test_good_counters_of_the_functional_steps_agree(t):
    """The bias corrections at t, the same in both array targets."""
    rng = np.random.default_rng(22)
    arrays = [rng.standard_normal(6), rng.standard_normal(6), rng.standard_normal(6)]
    arrays.append(rng.random(6))
    copies = [a.copy() for a in arrays]
    np_adabelief_step(*arrays, t)
    c_adabelief_step(*copies, t)
    for a, b in zip(arrays, copies, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-14, atol=0)


@pytest.mark.parametrize(
    ("steps", "error", "message"),
    [
        (-5, ValueError, rf"must be in \[0, {T_MAX - 1}\], got -5"),
        (T_MAX, ValueError, rf"must be in \[0, {T_MAX - 1}\], got {T_MAX}"),
        (2.5, TypeError, "must be an integer"),
    ],
)
def test_bad_loaded_counters_are_refused_at_load(target, steps, error, message):
    module, cls = target[0], target[1]
    for opt in (cls([np.ones(3)]), module.Adam([np.ones(3)])):
        opt.step([np.ones(3)])
        saved = opt.state_dict()
        with pytest.raises(error, match=message):
            opt.load_state_dict({**saved, "steps": steps})
        assert opt.steps == 1
        opt.steps = -5  # set by hand: refused at the step
        with pytest.raises(ValueError, match=rf"step counter t must be in \[1, {T_MAX}\], got -4"):
            opt.step([np.ones(3)])


@pytest.mark.parametrize(("step", "error"), [(-5, ValueError), (2.5, TypeError)])
def test_bad_loaded_counters_in_torch_are_refused_at_load(step, error):
    p = torch.nn.Parameter(torch.ones(3))
    opt = symopt_torch.Adam([p])
    p.grad = torch.ones(3)
    opt.step()
    saved = copy.deepcopy(opt.state_dict())  # torch's shares the state's dicts
    saved["state"][0]["step"] = torch.tensor(float(step))
    with pytest.raises(error, match="steps taken"):
        opt.load_state_dict(saved)
    assert float(opt.state[p]["step"]) == 1.0
    opt.state[p]["step"] = torch.tensor(-5.0)  # set by hand: refused at the step
    with pytest.raises(ValueError, match=rf"step counter t must be in \[1, {T_MAX}\], got -4"):
        opt.step()


def test_bad_counters_in_jax_are_refused_at_update():
    jnp = pytest.importorskip("jax.numpy")
    symopt_jax = pytest.importorskip("symopt_jax")
    tx = symopt_jax.adam()
    params = {"w": jnp.ones(3)}
    state = tx.init(params)
    with pytest.raises(ValueError, match=r"count \(steps taken\) must be in \[0, 2147483647\]"):
        tx.update(params, state._replace(count=jnp.asarray(-5, jnp.int32)), params)


# Another optimizer's state, loaded: refused at load, naming its keys; nothing changes.


def test_foreign_state_dicts_are_refused_at_load(target):
    module, cls = target[0], target[1]
    adam = module.Adam([np.ones(3)])
    adam.step([np.ones(3)])
    sgd = module.SGD([np.ones(3)], lr=0.1, momentum=0.9)
    sgd.step([np.ones(3)])
    before = sgd.state_dict()
    with pytest.raises(ValueError, match="unknown hyperparameter 'betas' in state_dict"):
        sgd.load_state_dict(adam.state_dict())
    with pytest.raises(ValueError, match=r"state\[0\] has keys \['exp_avg', 'exp_avg_sq'\]"):
        sgd.load_state_dict({**adam.state_dict(), "hyper": before["hyper"]})
    plain = cls([np.ones(3)])
    plain.step([np.ones(3)])
    with pytest.raises(ValueError, match=r"state\[0\] has keys \['exp_avg', 'exp_avg_sq'\]"):
        plain.load_state_dict(adam.state_dict())
    missing = {k: v for k, v in plain.state_dict().items() if k != "steps"}
    with pytest.raises(ValueError, match=r"state_dict has keys \['hyper', 'state'\]"):
        plain.load_state_dict(missing)
    with pytest.raises(ValueError, match=r"state_dict has keys \['param_groups', 'state'\]"):
        plain.load_state_dict(torch.optim.SGD([torch.ones(3)], lr=0.1).state_dict())
    assert sgd.steps == 1
    momentum = before["state"][0]["momentum_buffer"]
    np.testing.assert_array_equal(sgd.state[0]["momentum_buffer"], momentum)


def torch_trained(cls, **arguments):
    torch.manual_seed(22)
    p = torch.nn.Parameter(torch.randn(4, 3))
    opt = cls([p], **arguments)
    p.grad = torch.randn(4, 3)
    opt.step()
    return opt, p


def test_foreign_state_dicts_in_torch_are_refused_at_load():
    adam, _ = torch_trained(torch.optim.Adam)
    sgd, p = torch_trained(symopt_torch.SGD, lr=0.1, momentum=0.9)
    before = sgd.state[p]["momentum_buffer"].clone()
    with pytest.raises(ValueError, match=r"has keys \['exp_avg', 'exp_avg_sq', 'step'\]"):
        sgd.load_state_dict(adam.state_dict())
    assert torch.equal(sgd.state[p]["momentum_buffer"], before)
    plain, _ = torch_trained(symopt_torch.adabelief.AdaBelief)
    with pytest.raises(ValueError, match=r"expected \['m', 's', 'step'\]"):
        plain.load_state_dict(adam.state_dict())
    ours, q = torch_trained(symopt_torch.Adam)
    saved = copy.deepcopy(adam.state_dict())
    saved["state"][0]["exp_avg"] = torch.zeros(5)
    with pytest.raises(ValueError, match=r"'exp_avg'\] has shape \(5,\), expected \(4, 3\)"):
        ours.load_state_dict(saved)


def test_torch_adam_checkpoints_load_into_the_drop_in():
    """torch.optim.Adam's state under its own keys: the drop-in continues as Adam does."""
    adam, p = torch_trained(torch.optim.Adam, amsgrad=True)
    ours, q = torch_trained(symopt_torch.Adam, amsgrad=True)
    ours.load_state_dict(copy.deepcopy(adam.state_dict()))  # as from a file: tensors of its own
    with torch.no_grad():
        q.copy_(p)
    for _ in range(3):
        g = torch.randn(4, 3)
        p.grad, q.grad = g, g.clone()
        adam.step()
        ours.step()
        torch.testing.assert_close(q, p, rtol=1e-6, atol=1e-7)


def test_foreign_states_in_jax_are_refused_at_update():
    jnp = pytest.importorskip("jax.numpy")
    optax = pytest.importorskip("optax")
    symopt_jax = pytest.importorskip("symopt_jax")
    params = {"w": jnp.ones(3)}
    tx = symopt_jax.adam()
    with pytest.raises(ValueError, match="expected the AdamState of adam's init"):
        tx.update(params, optax.adam(1e-3).init(params), params)
    with pytest.raises(ValueError, match=r"the state has no \['vmax'\]"):
        symopt_jax.adam(amsgrad=True).update(params, tx.init(params), params)


def second_order_optimizers() -> dict:
    """The second-order classes with a state_dict, on one 3x2 parameter (K-FAC: one layer)."""
    from symopt_c.diag_newton import DiagNewton as CDiagNewton
    from symopt_numpy.block_newton import BlockNewton
    from symopt_numpy.kfac import KFAC

    return {
        "numpy block_newton": lambda: BlockNewton([np.zeros((3, 2))]),
        "numpy kfac": lambda: KFAC([np.zeros((3, 2)), np.zeros(2)]),
        "c diag_newton": lambda: CDiagNewton([np.zeros(6)]),
    }


@pytest.mark.parametrize("name", ["numpy block_newton", "numpy kfac", "c diag_newton"])
@pytest.mark.parametrize(
    ("change", "error"),
    [
        (lambda sd: sd | {"steps": -5}, ValueError),
        (lambda sd: sd | {"steps": 2.5}, TypeError),
        (lambda sd: sd | {"param_groups": []}, ValueError),
        (lambda sd: {k: v for k, v in sd.items() if k != "hyper"}, ValueError),
    ],
)
def test_second_order_state_dicts_are_checked_before_anything_changes(name, change, error):
    opt = second_order_optimizers()[name]()
    good = opt.state_dict()
    bad = change(copy.deepcopy(good) | {"hyper": {**good["hyper"], "lr": 0.125}})
    with pytest.raises(error):
        opt.load_state_dict(bad)
    assert opt.state_dict()["steps"] == good["steps"] and opt.lr == good["hyper"]["lr"]
    opt.load_state_dict(copy.deepcopy(good) | {"steps": 7})
    assert opt.state_dict()["steps"] == 7

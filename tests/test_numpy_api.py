"""symopt_numpy's classes with torch.optim's arguments: ``symopt_numpy.X(params, **kwargs)``
gives the numbers of ``torch.optim.X(params, **kwargs)`` for every spec that is a drop-in for a
torch.optim class and every row of its flag matrix (each flag off and on, each ``off_at_zero``
hyperparameter at 0 and not, ``maximize``, the other hyperparameters moved): float64, 100
steps, three arrays, the state under torch's keys with torch's values. A row torch refuses is
refused with its message.

Then the class mechanics, on Adam: the caller's gradient is left alone under ``maximize``, state
a flag needs is created when the flag is turned on, arguments are attributes a schedule changes
(checked with torch's messages at every step), state_dict round trips, bad arrays and state
dicts are refused. test_c_api.py runs the same comparisons on symopt_c.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import symopt_numpy  # noqa: E402  (tests/conftest.py puts generated/numpy on sys.path)
from drop_ins import drop_ins, exact, library_class, shapes  # noqa: E402

from symopt.api_matrix import flag_matrix  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread", "float64_default")


STEPS = 100
TOLERANCE = 1e-10


def stream(spec, steps: int = STEPS, seed: int = 3):
    """Initial parameters and ``steps`` lists of gradients at scales from 1e-2 to 10."""
    rng = np.random.default_rng(seed)
    ws = [rng.standard_normal(s) for s in shapes(spec)]
    grads = [
        [rng.standard_normal(s) * 10.0 ** rng.uniform(-2, 1) for s in shapes(spec)]
        for _ in range(steps)
    ]
    return ws, grads


def run_torch(cls, spec, ws, grads, kwargs: dict, schedule=None):
    """torch.optim's parameters (as arrays) and optimizer after the steps; ``schedule(k)``:
    arguments set in the param group before step k."""
    params = [torch.nn.Parameter(torch.tensor(w)) for w in ws]
    opt = cls(params, **kwargs)
    for k, gs in enumerate(grads):
        for name, value in (schedule(k) if schedule else {}).items():
            opt.param_groups[0][name] = value
        for p, g in zip(params, gs, strict=True):
            p.grad = torch.tensor(g)
        with exact(spec):
            opt.step()
    return [p.detach().numpy() for p in params], opt


def run_ours(cls, ws, grads, kwargs: dict, schedule=None):
    """The generated class's parameters and optimizer after the same steps; checks that the
    gradients are left as they were."""
    opt = cls([w.copy() for w in ws], **kwargs)
    for k, gs in enumerate(grads):
        for name, value in (schedule(k) if schedule else {}).items():
            setattr(opt, name, value)
        before = [g.copy() for g in gs]
        opt.step(gs)
        for g, b in zip(gs, before, strict=True):
            np.testing.assert_array_equal(g, b, err_msg="the caller's gradient was changed")
    return opt.params, opt


def relative_error(expected, got) -> float:
    """max |expected - got| / max |expected| (or the absolute error when expected is 0)."""
    expected, got = np.asarray(expected, dtype=np.float64), np.asarray(got, dtype=np.float64)
    scale = max(float(np.max(np.abs(expected), initial=0.0)), 1e-300)
    return float(np.max(np.abs(expected - got), initial=0.0)) / scale


def compare_with_torch(spec, ours_cls, kwargs: dict, steps: int = STEPS) -> float:
    """Runs torch.optim's class and ours on the same stream; a row torch refuses must be
    refused with the same message. Compares the parameters and every state tensor torch keeps
    (by its keys, which must be ours); returns the largest relative error."""
    ws, grads = stream(spec, steps)
    try:
        expected, theirs = run_torch(library_class(spec), spec, ws, grads, kwargs)
    except ValueError as exc:  # a combination torch.optim refuses: so must we, in its words
        with pytest.raises(ValueError) as refused:
            run_ours(ours_cls, ws, grads, kwargs)
        assert str(refused.value) == str(exc)
        return 0.0
    got, ours = run_ours(ours_cls, ws, grads, kwargs)
    worst = max(relative_error(e, g) for e, g in zip(expected, got, strict=True))
    for i, p in enumerate(theirs.param_groups[0]["params"]):
        tensors = {
            k: v.numpy()
            for k, v in theirs.state[p].items()
            if isinstance(v, torch.Tensor) and k != "step"
        }
        assert set(ours.state[i]) == set(tensors), f"state[{i}] keys"
        for key, value in tensors.items():
            assert ours.state[i][key].shape == value.shape, f"state[{i}][{key!r}] shape"
            worst = max(worst, relative_error(value, ours.state[i][key]))
    assert worst <= TOLERANCE, f"relative error {worst:.2e}"
    return worst


def cases(names) -> list:
    return [
        pytest.param(name, dict(row), id=f"{name}-{row.label}")
        for name in sorted(names)
        for row in flag_matrix(drop_ins()[name])
    ]


@pytest.mark.parametrize(("name", "kwargs"), cases(drop_ins()))
def test_same_numbers_as_torch_optim(name, kwargs):
    spec = drop_ins()[name]
    compare_with_torch(spec, getattr(symopt_numpy, spec.class_name), kwargs)


def test_every_drop_in_is_exported_with_torchs_name():
    """Each drop-in's class is exported under torch's class name, with the default setting's
    functional step; the variants' modules are private."""
    for name, spec in drop_ins().items():
        cls = getattr(symopt_numpy, spec.class_name)
        assert spec.class_name == spec.family.api.matches.rpartition(".")[2]
        assert symopt_numpy.OPTIMIZERS[name] is cls
        assert cls.__module__ == f"symopt_numpy.{name}"
        assert all(k.__module__.startswith("symopt_numpy._") for k in cls.kernels.values())
    assert not [n for n in symopt_numpy.__all__ if n.startswith("_")]


@pytest.mark.parametrize("name", sorted(drop_ins()))
def test_schedules_change_the_arguments_between_steps(name):
    """Setting ``opt.lr`` before each step does what setting the param group's lr does in
    torch.optim (a one-cycle-like schedule)."""
    spec = drop_ins()[name]
    ws, grads = stream(spec, 30)
    lr = spec.family.raw.defaults["lr"]

    def schedule(k):
        return {"lr": lr * (1.5 + np.cos(k / 3))}

    expected, _ = run_torch(library_class(spec), spec, ws, grads, {}, schedule)
    got, _ = run_ours(getattr(symopt_numpy, spec.class_name), ws, grads, {}, schedule)
    for e, g in zip(expected, got, strict=True):
        assert relative_error(e, g) <= TOLERANCE


def test_tuples_and_flags_are_attributes_too():
    """betas is kept under torch's name; changing it, or a flag, between steps is followed
    (amsgrad's running maximum is created when amsgrad is turned on)."""
    spec = drop_ins()["adam"]
    ws, grads = stream(spec, 20)
    opt = symopt_numpy.Adam([w.copy() for w in ws], lr=0.01)
    assert opt.betas == (0.9, 0.999)
    for k, gs in enumerate(grads):
        if k == 10:
            opt.betas = (0.8, 0.99)
            opt.amsgrad = True
        opt.step(gs)
        if k == 10:
            state = opt.state[0]
            np.testing.assert_array_equal(state["max_exp_avg_sq"], state["exp_avg_sq"])
        keys = {"exp_avg", "exp_avg_sq"} | ({"max_exp_avg_sq"} if k >= 10 else set())
        assert set(opt.state[1]) == keys
    assert opt.state_dict()["hyper"]["betas"] == (0.8, 0.99)


def test_arguments_are_checked_with_torchs_messages_at_every_step():
    w = np.zeros(3)
    with pytest.raises(ValueError, match=r"^Invalid beta parameter at index 1: 1.0$"):
        symopt_numpy.Adam([w], betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="betas must be a tuple of 2 values"):
        symopt_numpy.Adam([w], betas=0.9)
    opt = symopt_numpy.Adam([w])
    opt.lr = -0.5
    with pytest.raises(ValueError, match=r"^Invalid learning rate: -0.5$"):
        opt.step([np.ones(3)])
    assert opt.steps == 0 and opt.state == [{}]
    with pytest.raises(TypeError):
        symopt_numpy.Adam([w], beta1=0.9)  # torch's names only


def test_arrays_are_checked():
    opt = symopt_numpy.Adam([np.zeros(3)])
    with pytest.raises(ValueError, match="expected 1 gradient"):
        opt.step([])
    with pytest.raises(ValueError, match=r"grads\[0\] has shape"):
        opt.step([np.zeros(4)])
    with pytest.raises(ValueError, match=r"grads\[0\] has shape"):
        opt.step([np.zeros(3, dtype=np.float32)])
    with pytest.raises(TypeError, match="float32 or float64"):
        symopt_numpy.Adam([np.zeros(3, dtype=np.int64)])
    with pytest.raises(ValueError, match="C-contiguous"):
        symopt_numpy.Adam([np.zeros((3, 4))[:, ::2]])
    frozen = np.zeros(3)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        symopt_numpy.Adam([frozen])


@pytest.mark.parametrize("kwargs", [{}, {"amsgrad": True, "weight_decay": 0.1, "maximize": True}])
def test_state_dict_resumes_identically(kwargs):
    spec = drop_ins()["adam"]
    ws, grads = stream(spec, 40)
    opt = symopt_numpy.Adam([w.copy() for w in ws], **kwargs)
    for gs in grads[:20]:
        opt.step(gs)
    saved = opt.state_dict()
    resumed = symopt_numpy.Adam([p.copy() for p in opt.params])
    for gs in grads[20:]:
        opt.step(gs)
    resumed.load_state_dict(saved)
    assert resumed.arguments() == {**resumed.defaults, **kwargs}
    for gs in grads[20:]:
        resumed.step(gs)
    for a, b in zip(resumed.params, opt.params, strict=True):
        np.testing.assert_array_equal(a, b)
    for s, t in zip(resumed.state, opt.state, strict=True):
        assert set(s) == set(t)
        for key in s:
            np.testing.assert_array_equal(s[key], t[key])
    assert saved["steps"] == 20, "state_dict must be a snapshot, not a live view"


def test_load_state_dict_rejects_what_does_not_fit():
    opt = symopt_numpy.Adam([np.zeros(3)])
    opt.step([np.ones(3)])
    good = opt.state_dict()
    with pytest.raises(ValueError, match="parameter states"):
        opt.load_state_dict({**good, "state": []})
    with pytest.raises(ValueError, match="keys"):
        opt.load_state_dict({**good, "state": [{"m": np.zeros(3)}]})
    with pytest.raises(ValueError, match="shape"):
        opt.load_state_dict({**good, "state": [{"exp_avg": np.zeros(4)}]})
    with pytest.raises(ValueError, match="unknown hyperparameter"):
        opt.load_state_dict({**good, "hyper": {"beta1": 0.9}})
    assert opt.steps == 1

"""Replacing ``torch.optim.X(params, **kwargs)`` by ``symopt_torch.X(params, **kwargs)`` changes
no number: every spec that is a drop-in for a torch.optim class, every row of its flag matrix
(each flag off and on, each ``off_at_zero`` hyperparameter at 0 and not, ``maximize``, the other
hyperparameters moved), both the foreach and the single-tensor paths, float64, 100 steps, three
tensors in two param groups. A row torch.optim refuses must be refused with its message.

The state dicts have torch's keys, so a checkpoint of torch.optim continues in the generated
class (and back), and torch's learning-rate schedulers drive the generated classes as they drive
torch's own.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "generated" / "torch"))

import symopt_torch  # noqa: E402
from drop_ins import drop_ins, exact, library_class, shapes  # noqa: E402

from symopt.api_matrix import flag_matrix  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread", "float64_default")


STEPS = 100
TOLERANCE = 1e-10


def run(cls, spec, kwargs: dict, foreach: bool | None, steps: int = STEPS, then=None):
    """Parameters after ``steps`` steps of ``cls`` on a seeded gradient stream, and the
    optimizer; two param groups, the second with its own learning rate. ``then``: a class that
    takes over half way, from the state dict of the first."""
    gen = torch.Generator().manual_seed(3)
    params = [
        torch.nn.Parameter(torch.randn(s, generator=gen, dtype=torch.float64)) for s in shapes(spec)
    ]
    lr = kwargs.get("lr", spec.family.raw.defaults.get("lr", 1e-3))
    extra = {} if foreach is None else {"foreach": foreach}

    def make(klass):
        return klass(
            [{"params": params[:2]}, {"params": params[2:], "lr": 0.5 * lr}], **kwargs, **extra
        )

    opt = make(cls)
    with exact(spec):
        for k in range(steps):
            if then is not None and k == steps // 2:
                saved = opt.state_dict()
                opt = make(then)
                opt.load_state_dict(saved)
            for p in params:
                scale = 10.0 ** (torch.rand((), generator=gen, dtype=torch.float64) * 3 - 2)
                p.grad = torch.randn(p.shape, generator=gen, dtype=torch.float64) * scale
            opt.step()
    return [p.detach().clone() for p in params], opt


def cases() -> list:
    out = []
    for name, spec in sorted(drop_ins().items()):
        for row in flag_matrix(spec):
            out.append(pytest.param(name, dict(row), id=f"{name}-{row.label}"))
    return out


def takes_foreach(spec) -> bool:
    return "foreach" in spec.family.api.framework


@pytest.mark.parametrize(("name", "kwargs"), cases())
def test_same_numbers_as_torch_optim(name, kwargs):
    spec = drop_ins()[name]
    theirs_cls = library_class(spec)
    ours_cls = getattr(symopt_torch, spec.class_name)
    try:
        expected, theirs = run(theirs_cls, spec, kwargs, None)
    except ValueError as exc:  # a combination torch.optim refuses: so must we, in its words
        with pytest.raises(ValueError) as ours:
            run(ours_cls, spec, kwargs, None)
        assert str(ours.value) == str(exc)
        return
    for foreach in (True, False) if takes_foreach(spec) else (None,):
        got, ours = run(ours_cls, spec, kwargs, foreach)
        for e, g in zip(expected, got, strict=True):
            error = float((e - g).abs().max() / e.abs().max().clamp(min=1e-300))
            assert error <= TOLERANCE, f"{name} foreach={foreach}: relative error {error:.2e}"
        keys = {k for s in theirs.state_dict()["state"].values() for k in s}
        # torch.optim.SGD alone keeps no step counter
        assert {k for s in ours.state_dict()["state"].values() for k in s} - {"step"} == keys - {
            "step"
        }
        group_keys = [set(g) for g in theirs.state_dict()["param_groups"]]
        assert [set(g) for g in ours.state_dict()["param_groups"]] == group_keys


@pytest.mark.parametrize("name", sorted(drop_ins()))
def test_checkpoints_move_between_torch_and_generated_class(name):
    """Half the steps in torch.optim, its state_dict loaded into the generated class, the rest
    there: the same numbers as all of them in torch.optim; and the other way round."""
    spec = drop_ins()[name]
    theirs, ours = library_class(spec), getattr(symopt_torch, spec.class_name)
    expected, _ = run(theirs, spec, {}, None, steps=20)
    for first, second in ((theirs, ours), (ours, theirs)):
        got, _ = run(first, spec, {}, None, steps=20, then=second)
        for e, g in zip(expected, got, strict=True):
            assert torch.allclose(e, g, rtol=TOLERANCE, atol=0), f"{first} -> {second}"


@pytest.mark.parametrize("name", sorted(drop_ins()))
def test_learning_rate_schedulers_drive_it_like_torch(name):
    """OneCycleLR changes lr (and the momentum or betas, where the class has them) in the param
    groups every step; the generated class follows as torch's does."""
    spec = drop_ins()[name]
    results = []
    for cls in (library_class(spec), getattr(symopt_torch, spec.class_name)):
        gen = torch.Generator().manual_seed(5)
        params = [
            torch.nn.Parameter(torch.randn(s, generator=gen, dtype=torch.float64))
            for s in shapes(spec)
        ]
        opt = cls(params)
        momentum = "betas" in opt.defaults or "momentum" in opt.defaults
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=0.01, total_steps=30, cycle_momentum=momentum
        )
        with exact(spec):
            for _ in range(30):
                for p in params:
                    p.grad = torch.randn(p.shape, generator=gen, dtype=torch.float64)
                opt.step()
                sched.step()
        results.append([p.detach() for p in params])
    for e, g in zip(*results, strict=True):
        assert torch.allclose(e, g, rtol=TOLERANCE, atol=1e-300)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch's own, while compiling
def test_a_compiled_training_step_gives_torch_optims_numbers():
    """torch.compile of the whole training step (forward, backward, optimizer step): the
    generated step runs eagerly inside it (a graph break), with the same numbers as an eager
    loop with torch.optim."""

    def train(cls, compiled: bool) -> list[float]:
        torch.manual_seed(0)
        model = torch.nn.Sequential(
            torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)
        ).double()
        opt = cls(model.parameters(), lr=0.01, amsgrad=True, weight_decay=0.1)
        x, y = torch.randn(32, 4, dtype=torch.float64), torch.randn(32, 1, dtype=torch.float64)

        def step():
            opt.zero_grad()
            loss = ((model(x) - y) ** 2).mean()
            loss.backward()
            opt.step()
            return loss.detach()

        run = torch.compile(step) if compiled else step
        return [float(run()) for _ in range(10)]

    torch._dynamo.reset()
    expected = train(torch.optim.Adam, compiled=False)
    got = train(symopt_torch.Adam, compiled=True)
    assert max(abs(a - b) for a, b in zip(expected, got, strict=True)) <= 1e-12


def bad_values(spec) -> list:
    """Each numeric argument (or part of a tuple argument) at values on both sides of torch's
    checks: -1, 0, 0.5, 1, 2 and NaN, one at a time."""
    out = []
    for a in spec.family.api.arguments:
        if a.kind not in ("hyper", "tuple"):
            continue
        for value in (-1.0, 0.0, 0.5, 1.0, 2.0, float("nan")):
            if a.kind == "hyper":
                out.append(pytest.param(spec, {a.name: value}, id=f"{spec.name}-{a.name}={value}"))
                continue
            default = next(r for r in flag_matrix(spec) if r.label == "plain")[a.name]
            for i in range(len(a.parts)):
                parts = tuple(value if j == i else d for j, d in enumerate(default))
                out.append(
                    pytest.param(spec, {a.name: parts}, id=f"{spec.name}-{a.name}{i}={value}")
                )
    return out


@pytest.mark.parametrize(
    ("spec", "kwargs"), [p for s in drop_ins().values() for p in bad_values(s)]
)
def test_arguments_are_refused_as_torch_refuses_them(spec, kwargs):
    """torch.optim's checks of argument values, with its messages: refused by both or by
    neither (NaN included)."""
    shape = shapes(spec)[0]
    theirs, ours = library_class(spec), getattr(symopt_torch, spec.class_name)
    outcomes = []
    for cls in (theirs, ours):
        param = torch.nn.Parameter(torch.zeros(shape, dtype=torch.float64))
        try:
            cls([param], **kwargs)
            outcomes.append(None)
        except ValueError as exc:
            outcomes.append(str(exc))
    assert outcomes[1] == outcomes[0], f"torch: {outcomes[0]!r}, generated: {outcomes[1]!r}"

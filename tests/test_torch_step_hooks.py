"""The generated PyTorch optimizers wrap ``step`` more cheaply than torch.optim (its profiler range
costs about 6 us a step) but keep what torch's wrapper does: step pre- and post-hooks, global and
per optimizer, in torch's order, a pre-hook's new arguments, and the profiler's range."""

import pickle
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "generated" / "torch"))

import symopt_torch  # noqa: E402
from symopt_torch._adam import Adam as AdamKernel  # noqa: E402
from torch.optim.optimizer import (  # noqa: E402
    register_optimizer_step_post_hook,
    register_optimizer_step_pre_hook,
)

MAKERS = {
    "torch.optim.Adam": torch.optim.Adam,
    "symopt_torch.Adam": symopt_torch.Adam,
    "symopt_torch._adam.Adam": AdamKernel,
}


def model():
    p = torch.nn.Parameter(torch.arange(4.0))
    p.grad = torch.ones(4)
    return [p]


def calls_of(make) -> list[str]:
    """What the hooks saw over two steps, one with a closure a pre-hook replaces."""
    seen: list[str] = []
    opt = make(model(), lr=0.1)
    handles = [
        register_optimizer_step_pre_hook(lambda o, a, k: seen.append("global pre")),
        register_optimizer_step_post_hook(lambda o, a, k: seen.append("global post")),
        opt.register_step_pre_hook(lambda o, a, k: seen.append("pre")),
        opt.register_step_post_hook(lambda o, a, k: seen.append("post")),
    ]
    try:
        opt.step()

        def replace(o, args, kwargs):
            return (o,), {"closure": lambda: seen.append("replaced closure") or 1.0}

        handles.append(opt.register_step_pre_hook(replace))
        loss = opt.step(lambda: seen.append("own closure") or 2.0)
        seen.append(f"loss {loss}")
    finally:
        for handle in handles:
            handle.remove()
    return seen


def test_hooks_run_as_torch_optim_runs_them():
    expected = calls_of(torch.optim.Adam)
    assert expected == [
        "global pre",
        "pre",
        "post",
        "global post",
        "global pre",
        "pre",
        "replaced closure",
        "post",
        "global post",
        "loss 1.0",
    ]
    for name in ("symopt_torch.Adam", "symopt_torch._adam.Adam"):
        assert calls_of(MAKERS[name]) == expected, name


def test_no_hook_left_behind_means_the_plain_step():
    opt = symopt_torch.Adam(model(), lr=0.1)
    handle = opt.register_step_post_hook(lambda o, a, k: None)
    handle.remove()
    opt.step()  # nothing registered: the step itself, and it still steps
    assert opt.state[opt.param_groups[0]["params"][0]]["step"] == 1


@pytest.mark.parametrize("name", MAKERS)
def test_the_profiler_sees_the_step(name):
    opt = MAKERS[name](model(), lr=0.1)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        opt.step()
    labels = {event.name for event in prof.events()}
    assert f"Optimizer.step#{type(opt).__name__}.step" in labels


def test_step_is_wrapped_once_through_pickling_and_new_instances():
    first = symopt_torch.Adam(model(), lr=0.1)
    wrapped = type(first).step
    symopt_torch.Adam(model(), lr=0.1)
    copy = pickle.loads(pickle.dumps(first))
    assert type(copy).step is wrapped and wrapped.hooked
    assert not hasattr(wrapped.__wrapped__, "hooked")  # one wrapper, not one per instance
    copy.step()

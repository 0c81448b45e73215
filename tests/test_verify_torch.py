"""symopt verify on torch optimizers nobody here wrote, beyond the verdict tables of
docs/verify.md (which tests/test_verify_doc.py checks): torch's names for hyperparameters, a
torch flag against another spec, Muon's bfloat16 cast, and pytorch_optimizer."""

import pytest

torch = pytest.importorskip("torch")

from symopt.resources import elementwise_specs  # noqa: E402
from symopt.verify import verify  # noqa: E402

SPECS = elementwise_specs()

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_adam_with_torch_names_for_hyperparameters():
    report = verify(
        torch.optim.Adam,
        SPECS["adam"],
        hyper={"betas": "0.8,0.99", "lr": 0.01},
        steps=20,
        seeds=1,
        long=0,
    )
    assert report.passed, report.summary()
    assert report.arguments["betas"] == (0.8, 0.99) and report.arguments["lr"] == 0.01


def test_adam_with_amsgrad_is_the_amsgrad_spec():
    """Not the class amsgrad's [api] matches: its hyperparameters are bound by name, amsgrad=True
    is passed through, and the running maximum is found by value."""
    report = verify(
        torch.optim.Adam, SPECS["amsgrad"], hyper={"amsgrad": True}, steps=30, seeds=1, long=0
    )
    assert report.passed and report.max_error < 1e-11, report.summary()
    assert report.compared_state["v_max"].startswith("max_exp_avg_sq")


def test_muon_differs_by_bfloat16_rounding_and_verify_says_so():
    report = verify(torch.optim.Muon, SPECS["muon"], steps=30, seeds=1, long=0)
    assert not report.passed
    assert 1e-5 < report.max_error < 1e-2
    assert "bfloat16 rounding" in report.summary()
    assert len(report.first_difference.shape) == 2  # 2-D parameters only


@pytest.mark.parametrize("cls", ["Lion", "Yogi", "Lamb", "LARS"])
def test_pytorch_optimizer_passes(cls):
    pytorch_optimizer = pytest.importorskip("pytorch_optimizer")
    report = verify(getattr(pytorch_optimizer, cls), SPECS[cls.lower()], steps=30, seeds=1, long=0)
    assert report.passed and report.max_error < 1e-11, report.summary()

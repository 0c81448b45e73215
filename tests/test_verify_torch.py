"""symopt verify on torch.optim, which nobody here wrote: the table in docs/verify.md."""

import pytest

torch = pytest.importorskip("torch")

from symopt.resources import elementwise_specs  # noqa: E402
from symopt.verify import verify  # noqa: E402

SPECS = elementwise_specs()

# (torch class, spec, expected variant or None for a pass)
TABLE = [
    ("SGD", "sgd", None),
    ("SGD", "momentum", None),
    ("SGD", "nesterov", None),
    ("Adagrad", "adagrad", None),
    ("RMSprop", "rmsprop", None),
    ("Adam", "adam", None),
    ("Adamax", "adamax", "eps_inside_max_u"),
    ("NAdam", "nadam", "momentum_schedule"),
    ("AdamW", "adam", "decoupled_weight_decay"),
    ("AdamW", "adamw", None),
    ("RAdam", "radam", None),
    ("Rprop", "rprop", None),
    ("Adafactor", "adafactor", None),
]


@pytest.mark.parametrize(("cls", "name", "variant"), TABLE)
def test_torch_optimizer_verdict(cls, name, variant):
    report = verify(getattr(torch.optim, cls), SPECS[name], steps=30, seeds=1)
    if variant is None:
        assert report.passed, report.summary()
        assert report.max_error < 1e-11
    else:
        assert not report.passed
        assert report.diagnosis.variant == variant, report.summary()
        assert report.diagnosis.exact, report.summary()


def test_adam_with_torch_names_for_hyperparameters():
    report = verify(
        torch.optim.Adam, SPECS["adam"], hyper={"betas": "0.8,0.99", "lr": 0.01}, steps=20, seeds=1
    )
    assert report.passed, report.summary()


def test_adam_with_amsgrad_is_the_amsgrad_spec():
    report = verify(torch.optim.Adam, SPECS["amsgrad"], hyper={"amsgrad": True}, steps=30, seeds=1)
    assert report.passed and report.max_error < 1e-11, report.summary()


def test_muon_differs_by_bfloat16_rounding_and_verify_says_so():
    report = verify(torch.optim.Muon, SPECS["muon"], steps=30, seeds=1)
    assert not report.passed
    assert 1e-5 < report.max_error < 1e-2
    assert "the size of float16 or bfloat16 rounding" in report.summary()
    assert report.first_difference.shape in ((2, 5), (6, 3))  # 2-D parameters only


@pytest.mark.parametrize("cls", ["Lion", "Yogi", "Lamb", "LARS"])
def test_pytorch_optimizer_passes(cls):
    pytorch_optimizer = pytest.importorskip("pytorch_optimizer")
    name = {"Lion": "lion", "Yogi": "yogi", "Lamb": "lamb", "LARS": "lars"}[cls]
    report = verify(getattr(pytorch_optimizer, cls), SPECS[name], steps=30, seeds=1)
    assert report.passed and report.max_error < 1e-11, report.summary()

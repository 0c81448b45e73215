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

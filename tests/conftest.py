"""Shared test helpers: the repository root and the generated NumPy package on sys.path."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "generated" / "numpy"))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/handwritten.py


@pytest.fixture(scope="module")
def one_torch_thread():
    """Small tensors: on a busy machine torch's intra-op thread pool only contends on them.
    A module that compares with torch uses it: ``pytestmark = usefixtures("one_torch_thread")``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def float64_default():
    """torch.optim keeps scalar state (NAdam's mu_product, ASGD's eta and mu, the step) in the
    default dtype; in float64 training it is float64, as the generated classes keep it."""
    import torch

    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(before)

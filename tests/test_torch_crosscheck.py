"""The generated NumPy optimizers reproduce torch.optim (and pytorch_optimizer) where the
mathematics agree (float64).

torch.optim is an implementation nobody here wrote; agreement to 1e-12 on the same gradient stream
is evidence that spec, generator and generated code are all right.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


import symopt_numpy as gen  # noqa: E402
from torch_cases import CASES  # noqa: E402

STEPS = 200
SHAPE = (37, 11)


@pytest.mark.parametrize("foreach", [False, True])
@pytest.mark.parametrize("name", sorted(CASES))
def test_generated_numpy_matches_torch(name, foreach):
    hyper, make_torch = CASES[name]
    rng = np.random.default_rng(11)
    w0 = rng.standard_normal(SHAPE)
    ours = gen.OPTIMIZERS[name]([w0.copy()], **hyper)
    param = torch.nn.Parameter(torch.tensor(w0, dtype=torch.float64))
    theirs = make_torch([param], hyper)
    for group in theirs.param_groups:
        if "foreach" in group:  # torch.optim.Muon has one path only
            group["foreach"] = foreach
    worst = 0.0
    for _ in range(STEPS):
        g = rng.standard_normal(SHAPE) * 10.0 ** rng.uniform(-2, 1)
        ours.step([g])
        param.grad = torch.tensor(g)
        theirs.step()
        expected = param.detach().numpy()
        error = np.max(np.abs(ours.params[0] - expected)) / np.max(np.abs(expected))
        worst = max(worst, float(error))
    assert worst <= 1e-12, f"{name}: relative error {worst:.2e} against torch.optim"

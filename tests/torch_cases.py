"""The torch.optim optimizers whose mathematics equal a spec, with hyperparameters that exercise
them: the cases both the NumPy and the PyTorch targets are compared with."""

import torch

# algorithm -> (our hyperparameters, torch constructor taking (params, our hyperparameters))
CASES = {
    "sgd": ({"lr": 0.05}, lambda p, h: torch.optim.SGD(p, lr=h["lr"])),
    "momentum": (
        {"lr": 0.02, "rho": 0.9},
        lambda p, h: torch.optim.SGD(p, lr=h["lr"], momentum=h["rho"]),
    ),
    # Our look-ahead-free Nesterov stores p = w + rho v, which torch's nesterov=True steps.
    "nesterov": (
        {"lr": 0.02, "rho": 0.9},
        lambda p, h: torch.optim.SGD(p, lr=h["lr"], momentum=h["rho"], nesterov=True),
    ),
    "adagrad": (
        {"lr": 0.1, "eps": 1e-10},
        lambda p, h: torch.optim.Adagrad(p, lr=h["lr"], eps=h["eps"]),
    ),
    "rmsprop": (
        {"lr": 0.01, "decay": 0.95, "eps": 1e-8},
        lambda p, h: torch.optim.RMSprop(p, lr=h["lr"], alpha=h["decay"], eps=h["eps"]),
    ),
    "adam": (
        {"lr": 0.01, "beta1": 0.8, "beta2": 0.99, "eps": 1e-8},
        lambda p, h: torch.optim.Adam(p, lr=h["lr"], betas=(h["beta1"], h["beta2"]), eps=h["eps"]),
    ),
}

"""The corpus ``symopt verify`` is judged on: optimizers as people write them, with the verdict
verify must reach on each (``tests/test_verify_corpus.py``).

A correct implementation, however unusual its algebra, must pass. A broken one must fail and be
explained by the rules of ``symopt/variants.py`` that reproduce it (one or two, with the constants
fitted to it), or be "unexplained" where no rule does. Each carries a one-line comment saying what
is unusual or wrong. Step functions take the spec's hyperparameters by the spec's names, with the
spec's defaults. Library targets (and the hand-written torch optimizer) are :class:`Needs`: loaded
when the test runs, so this module imports without torch, pytorch_optimizer or optax.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache

import numpy as np

PASS = "pass"
UNEXPLAINED = "unexplained"
State = dict[str, np.ndarray]


@dataclass(frozen=True)
class Needs:
    """A target from an optional package, loaded only when a test needs it."""

    package: str
    load: Callable[[], object]


@dataclass(frozen=True)
class Case:
    """An implementation, the spec it claims, and the verdict verify must reach."""

    name: str
    target: object
    spec: str
    expect: str | frozenset[str]  # PASS, UNEXPLAINED, or the rule ids of the explaining variant
    fitted: Mapping[str, float] = field(default_factory=dict)
    hyper: Mapping[str, object] = field(default_factory=dict)
    dtype: str = "float64"

    @property
    def broken(self) -> bool:
        return self.expect != PASS


def library(path: str) -> Needs:
    """``library("torch.optim.AdamW")``: that attribute, imported when the test runs."""
    module, _, attr = path.rpartition(".")
    return Needs(path.partition(".")[0], lambda: getattr(importlib.import_module(module), attr))


def rules(*ids: str) -> frozenset[str]:
    return frozenset(ids)


# --- correct implementations in unusual forms -------------------------------------------------


def adam_folded_step_size(
    w: np.ndarray, g: np.ndarray, state: State, t: int, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8
) -> np.ndarray:
    # correct: the bias corrections folded into a step size and a denominator sqrt(v)/sqrt(1-b2^t)
    state["m"] = beta1 * state["m"] + (1 - beta1) * g
    state["v"] = beta2 * state["v"] + (1 - beta2) * g * g
    step_size = lr / (1 - beta1**t)
    denom = np.sqrt(state["v"]) / np.sqrt(1 - beta2**t) + eps
    return w - step_size * state["m"] / denom


def adam_lerp_moments(
    w: np.ndarray, g: np.ndarray, state: State, t: int, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8
) -> np.ndarray:
    # correct: each moment moved toward its target by a fraction, m += (1 - b1)(g - m)
    state["m"] += (1 - beta1) * (g - state["m"])
    state["v"] += (1 - beta2) * (g * g - state["v"])
    m_hat = state["m"] / (1 - beta1**t)
    v_hat = state["v"] / (1 - beta2**t)
    return w - lr * m_hat / (np.sqrt(v_hat) + eps)


def adam_in_place(
    w: np.ndarray, g: np.ndarray, state: State, t: int, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8
) -> None:
    # correct: every array updated in place (out=, -=), w included; returns None
    m, v = state["m"], state["v"]
    np.multiply(m, beta1, out=m)
    np.add(m, (1 - beta1) * g, out=m)
    np.multiply(v, beta2, out=v)
    np.add(v, (1 - beta2) * np.square(g), out=v)
    denom = np.sqrt(v / (1 - beta2**t))
    denom += eps
    w -= lr / (1 - beta1**t) * m / denom


def rmsprop_reordered(
    w: np.ndarray, g: np.ndarray, state: State, t: int, lr=0.01, alpha=0.99, eps=1e-8
) -> np.ndarray:
    # correct: the sums written in the other order, the step as g times a reciprocal
    state["v"] = (1 - alpha) * (g * g) + alpha * state["v"]
    return w + (-lr) * g * (1 / (eps + np.sqrt(state["v"])))


def momentum_torch_form(
    w: np.ndarray, g: np.ndarray, state: State, t: int, lr=0.01, rho=0.9
) -> np.ndarray:
    # correct: torch.optim.SGD's form, the buffer is a copy of g at the first step
    if t == 1:
        state["v"] = g.copy()
    else:
        state["v"] = rho * state["v"] + g
    return w - lr * state["v"]


def nesterov_torch_form(
    w: np.ndarray, g: np.ndarray, state: State, t: int, lr=0.01, rho=0.9
) -> np.ndarray:
    # correct: PyTorch's look-ahead form, buffer b = rho b + g (b = -v/lr), step along g + rho b
    b = rho * state.get("momentum_buffer", np.zeros_like(w)) + g
    state["momentum_buffer"] = b
    return w - lr * (g + rho * b)


def adagrad_with_options(
    w: np.ndarray,
    g: np.ndarray,
    state: State,
    t: int,
    lr=0.01,
    lr_decay=0.0,
    initial_accumulator_value=0.0,
    eps=1e-10,
) -> np.ndarray:
    # correct: starts the sum at initial_accumulator_value itself and decays lr as torch does
    if t == 1:
        state["s"] = np.full_like(w, initial_accumulator_value)
    state["s"] = state["s"] + g * g
    clr = lr / (1 + (t - 1) * lr_decay)
    return w - clr * g / (np.sqrt(state["s"]) + eps)


def nadam_two_step_sizes(
    w: np.ndarray, g: np.ndarray, state: State, t: int, lr=0.002, beta1=0.9, beta2=0.999, eps=1e-8
) -> np.ndarray:
    # correct: Dozat's look-ahead momentum as two step sizes, one for m and one for g
    state["m"] = beta1 * state["m"] + (1 - beta1) * g
    state["v"] = beta2 * state["v"] + (1 - beta2) * g * g
    step_m = lr * beta1 / (1 - beta1 ** (t + 1))
    step_g = lr * (1 - beta1) / (1 - beta1**t)
    return w - (step_m * state["m"] + step_g * g) / (np.sqrt(state["v"] / (1 - beta2**t)) + eps)


def adam_float32(
    w: np.ndarray, g: np.ndarray, state: State, t: int, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8
) -> np.ndarray:
    # correct (in float32): every constant cast to float32, so nothing is promoted to float64
    b1, b2 = np.float32(beta1), np.float32(beta2)
    one = np.float32(1)
    state["m"] = b1 * state["m"] + (one - b1) * g
    state["v"] = b2 * state["v"] + (one - b2) * g * g
    m_hat = state["m"] / (one - b1 ** np.float32(t))
    v_hat = state["v"] / (one - b2 ** np.float32(t))
    return w - np.float32(lr) * m_hat / (np.sqrt(v_hat) + np.float32(eps))


class AdamaxNumpy:
    """Adamax with the generated NumPy API (a list of parameters, a state dict each): correct."""

    def __init__(self, params: list[np.ndarray], lr=0.002, beta1=0.9, beta2=0.999, eps=1e-8):
        self.params = [np.array(p, copy=True) for p in params]
        self.state = [{"m": np.zeros_like(p), "u": np.zeros_like(p)} for p in self.params]
        self.lr, self.beta1, self.beta2, self.eps = lr, beta1, beta2, eps
        self.t = 0

    def step(self, grads: list[np.ndarray]) -> None:
        self.t += 1
        for p, g, s in zip(self.params, grads, self.state, strict=True):
            s["m"] = self.beta1 * s["m"] + (1 - self.beta1) * g
            s["u"] = np.maximum(self.beta2 * s["u"], np.abs(g))
            p -= self.lr / (1 - self.beta1**self.t) * s["m"] / (s["u"] + self.eps)


@cache
def betas_adam() -> type:
    """A hand-written torch optimizer (built on first use: torch is optional)."""
    import torch

    class BetasAdam(torch.optim.Optimizer):
        """Adam as torch users write it, betas as a tuple: correct (lerp_ for m, addcdiv_)."""

        def __init__(self, params, lr=0.001, betas=(0.9, 0.999), eps=1e-8):
            super().__init__(params, {"lr": lr, "betas": betas, "eps": eps})

        @torch.no_grad()
        def step(self, closure=None):
            for group in self.param_groups:
                beta1, beta2 = group["betas"]
                for p in group["params"]:
                    state = self.state[p]
                    if not state:
                        state["step"] = 0
                        state["exp_avg"] = torch.zeros_like(p)
                        state["exp_avg_sq"] = torch.zeros_like(p)
                    state["step"] += 1
                    t = state["step"]
                    m, v = state["exp_avg"], state["exp_avg_sq"]
                    m.lerp_(p.grad, 1 - beta1)
                    v.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
                    denom = (v.sqrt() / (1 - beta2**t) ** 0.5).add_(group["eps"])
                    p.addcdiv_(m, denom, value=-group["lr"] / (1 - beta1**t))

    return BetasAdam


# --- broken: one catalogue rule each ----------------------------------------------------------


def adam_uphill(
    w: np.ndarray, g: np.ndarray, state: State, t: int, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8
) -> np.ndarray:
    # BUG: the loss is negated twice on the way in, so it climbs (every use of g sees -g)
    g = -g
    state["m"] = beta1 * state["m"] + (1 - beta1) * g
    state["v"] = beta2 * state["v"] + (1 - beta2) * g * g
    return w - lr * state["m"] / (1 - beta1**t) / (np.sqrt(state["v"] / (1 - beta2**t)) + eps)


def momentum_uphill(
    w: np.ndarray, g: np.ndarray, state: State, t: int, lr=0.01, rho=0.9
) -> np.ndarray:
    # BUG: subtracts g into the buffer and then subtracts the buffer again
    state["v"] = rho * state["v"] - g
    return w - lr * state["v"]


def adam_no_bias_correction_m(
    w: np.ndarray, g: np.ndarray, state: State, t: int, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8
) -> np.ndarray:
    # BUG: m is used without its bias correction 1/(1 - beta1^t)
    state["m"] = beta1 * state["m"] + (1 - beta1) * g
    state["v"] = beta2 * state["v"] + (1 - beta2) * g * g
    return w - lr * state["m"] / (np.sqrt(state["v"] / (1 - beta2**t)) + eps)


def adam_no_bias_correction_v(
    w: np.ndarray, g: np.ndarray, state: State, t: int, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8
) -> np.ndarray:
    # BUG: v is used without its bias correction 1/(1 - beta2^t)
    state["m"] = beta1 * state["m"] + (1 - beta1) * g
    state["v"] = beta2 * state["v"] + (1 - beta2) * g * g
    return w - lr * state["m"] / (1 - beta1**t) / (np.sqrt(state["v"]) + eps)


def adam_eps_inside_sqrt(
    w: np.ndarray, g: np.ndarray, state: State, t: int, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8
) -> np.ndarray:
    # BUG: eps inside the square root
    state["m"] = beta1 * state["m"] + (1 - beta1) * g
    state["v"] = beta2 * state["v"] + (1 - beta2) * g * g
    return w - lr * state["m"] / (1 - beta1**t) / np.sqrt(state["v"] / (1 - beta2**t) + eps)


def rmsprop_eps_inside_sqrt(
    w: np.ndarray, g: np.ndarray, state: State, t: int, lr=0.01, alpha=0.99, eps=1e-8
) -> np.ndarray:
    # BUG: eps inside the square root
    state["v"] = alpha * state["v"] + (1 - alpha) * g * g
    return w - lr * g / np.sqrt(state["v"] + eps)


def adam_eps_hat(
    w: np.ndarray, g: np.ndarray, state: State, t: int, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8
) -> np.ndarray:
    # BUG (Keras/TF's form): eps added to sqrt of the uncorrected v, corrections in the step size
    state["m"] = beta1 * state["m"] + (1 - beta1) * g
    state["v"] = beta2 * state["v"] + (1 - beta2) * g * g
    lr_t = lr * np.sqrt(1 - beta2**t) / (1 - beta1**t)
    return w - lr_t * state["m"] / (np.sqrt(state["v"]) + eps)


def adamax_eps_inside_max(
    w: np.ndarray, g: np.ndarray, state: State, t: int, lr=0.002, beta1=0.9, beta2=0.999, eps=1e-8
) -> np.ndarray:
    # BUG: eps inside the max (u = max(b2 u, |g| + eps)) and not in the denominator
    state["m"] = beta1 * state["m"] + (1 - beta1) * g
    state["u"] = np.maximum(beta2 * state["u"], np.abs(g) + eps)
    return w - lr / (1 - beta1**t) * state["m"] / state["u"]


def adabelief_eps_not_accumulated(
    w: np.ndarray, g: np.ndarray, state: State, t: int, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-16
) -> np.ndarray:
    # BUG: eps is not added into s at every step
    state["m"] = beta1 * state["m"] + (1 - beta1) * g
    state["s"] = beta2 * state["s"] + (1 - beta2) * (g - state["m"]) ** 2
    m_hat = state["m"] / (1 - beta1**t)
    return w - lr * m_hat / (np.sqrt(state["s"] / (1 - beta2**t)) + eps)


def adam_eps_accumulated_in_v(
    w: np.ndarray, g: np.ndarray, state: State, t: int, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8
) -> np.ndarray:
    # BUG: eps added into v at every step (AdaBelief's habit copied into Adam)
    state["m"] = beta1 * state["m"] + (1 - beta1) * g
    state["v"] = beta2 * state["v"] + (1 - beta2) * g * g + eps
    return w - lr * state["m"] / (1 - beta1**t) / (np.sqrt(state["v"] / (1 - beta2**t)) + eps)


def adam_step_ahead(
    w: np.ndarray, g: np.ndarray, state: State, t: int, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8
) -> np.ndarray:
    # BUG: the step counter is incremented once more before the bias corrections (t + 1)
    t = t + 1
    state["m"] = beta1 * state["m"] + (1 - beta1) * g
    state["v"] = beta2 * state["v"] + (1 - beta2) * g * g
    return w - lr * state["m"] / (1 - beta1**t) / (np.sqrt(state["v"] / (1 - beta2**t)) + eps)


def adamax_step_ahead(
    w: np.ndarray, g: np.ndarray, state: State, t: int, lr=0.002, beta1=0.9, beta2=0.999, eps=1e-8
) -> np.ndarray:
    # BUG: the bias correction uses beta1^(t + 1)
    state["m"] = beta1 * state["m"] + (1 - beta1) * g
    state["u"] = np.maximum(beta2 * state["u"], np.abs(g))
    return w - lr / (1 - beta1 ** (t + 1)) * state["m"] / (state["u"] + eps)


def momentum_dampened(
    w: np.ndarray, g: np.ndarray, state: State, t: int, lr=0.01, rho=0.9
) -> np.ndarray:
    # BUG: the buffer averages g (rho v + (1 - rho) g) instead of summing it
    state["v"] = rho * state["v"] + (1 - rho) * g
    return w - lr * state["v"]


def adam_m_undampened(
    w: np.ndarray, g: np.ndarray, state: State, t: int, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8
) -> np.ndarray:
    # BUG: m sums g (beta1 m + g) without the (1 - beta1) factor
    state["m"] = beta1 * state["m"] + g
    state["v"] = beta2 * state["v"] + (1 - beta2) * g * g
    return w - lr * state["m"] / (1 - beta1**t) / (np.sqrt(state["v"] / (1 - beta2**t)) + eps)


def adam_betas_swapped(
    w: np.ndarray, g: np.ndarray, state: State, t: int, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8
) -> np.ndarray:
    # BUG: beta1 and beta2 swapped everywhere
    state["m"] = beta2 * state["m"] + (1 - beta2) * g
    state["v"] = beta1 * state["v"] + (1 - beta1) * g * g
    return w - lr * state["m"] / (1 - beta2**t) / (np.sqrt(state["v"] / (1 - beta1**t)) + eps)


def nadam_betas_swapped(
    w: np.ndarray, g: np.ndarray, state: State, t: int, lr=0.002, beta1=0.9, beta2=0.999, eps=1e-8
) -> np.ndarray:
    # BUG: beta1 and beta2 swapped everywhere
    state["m"] = beta2 * state["m"] + (1 - beta2) * g
    state["v"] = beta1 * state["v"] + (1 - beta1) * g * g
    m_bar = beta2 * state["m"] / (1 - beta2 ** (t + 1)) + (1 - beta2) * g / (1 - beta2**t)
    return w - lr * m_bar / (np.sqrt(state["v"] / (1 - beta1**t)) + eps)


def lion_betas_swapped(
    w: np.ndarray,
    g: np.ndarray,
    state: State,
    t: int,
    lr=0.0001,
    beta1=0.9,
    beta2=0.99,
    weight_decay=0.0,
) -> np.ndarray:
    # BUG: beta2 in the interpolation and beta1 in the momentum (the paper has it the other way)
    w = w * (1 - lr * weight_decay)
    c = beta2 * state["m"] + (1 - beta2) * g
    state["m"] = beta1 * state["m"] + (1 - beta1) * g
    return w - lr * np.sign(c)


def adam_v_not_updated(
    w: np.ndarray, g: np.ndarray, state: State, t: int, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8
) -> np.ndarray:
    # BUG: v is never updated (it stays 0)
    state["m"] = beta1 * state["m"] + (1 - beta1) * g
    m_hat = state["m"] / (1 - beta1**t)
    return w - lr * m_hat / (np.sqrt(state["v"] / (1 - beta2**t)) + eps)


# --- broken: a constant the diagnosis fits ------------------------------------------------------


def adam_l2_hard_coded(
    w: np.ndarray, g: np.ndarray, state: State, t: int, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8
) -> np.ndarray:
    # BUG: an L2 penalty of 0.01 hard-coded into the gradient
    g = g + 0.01 * w
    state["m"] = beta1 * state["m"] + (1 - beta1) * g
    state["v"] = beta2 * state["v"] + (1 - beta2) * g * g
    return w - lr * state["m"] / (1 - beta1**t) / (np.sqrt(state["v"] / (1 - beta2**t)) + eps)


def rmsprop_warm_start(
    w: np.ndarray, g: np.ndarray, state: State, t: int, lr=0.01, alpha=0.99, eps=1e-8
) -> np.ndarray:
    # BUG: the square average starts at 0.1 (hard-coded), not 0
    if t == 1:
        state["v"] = np.full_like(w, 0.1)
    state["v"] = alpha * state["v"] + (1 - alpha) * g * g
    return w - lr * g / (np.sqrt(state["v"]) + eps)


def adam_hard_coded_lr_decay(
    w: np.ndarray, g: np.ndarray, state: State, t: int, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8
) -> np.ndarray:
    # BUG: Keras' old `decay` hard-coded, lr/(1 + 0.01 (t - 1))
    lr = lr / (1 + 0.01 * (t - 1))
    state["m"] = beta1 * state["m"] + (1 - beta1) * g
    state["v"] = beta2 * state["v"] + (1 - beta2) * g * g
    return w - lr * state["m"] / (1 - beta1**t) / (np.sqrt(state["v"] / (1 - beta2**t)) + eps)


def adam_ignores_eps(
    w: np.ndarray, g: np.ndarray, state: State, t: int, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8
) -> np.ndarray:
    # BUG: ignores its eps argument and uses 1e-6
    state["m"] = beta1 * state["m"] + (1 - beta1) * g
    state["v"] = beta2 * state["v"] + (1 - beta2) * g * g
    return w - lr * state["m"] / (1 - beta1**t) / (np.sqrt(state["v"] / (1 - beta2**t)) + 1e-6)


# --- broken: two rules at once ------------------------------------------------------------------


def adam_eps_inside_sqrt_no_bias_correction_m(
    w: np.ndarray, g: np.ndarray, state: State, t: int, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8
) -> np.ndarray:
    # BUG x2: eps inside the square root, and m without its bias correction
    state["m"] = beta1 * state["m"] + (1 - beta1) * g
    state["v"] = beta2 * state["v"] + (1 - beta2) * g * g
    return w - lr * state["m"] / np.sqrt(state["v"] / (1 - beta2**t) + eps)


def adamax_eps_inside_max_no_bias_correction(
    w: np.ndarray, g: np.ndarray, state: State, t: int, lr=0.002, beta1=0.9, beta2=0.999, eps=1e-8
) -> np.ndarray:
    # BUG x2: eps inside the max, and m without its bias correction
    state["m"] = beta1 * state["m"] + (1 - beta1) * g
    state["u"] = np.maximum(beta2 * state["u"], np.abs(g) + eps)
    return w - lr * state["m"] / state["u"]


def adabelief_eps_moved_into_sqrt(
    w: np.ndarray, g: np.ndarray, state: State, t: int, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-16
) -> np.ndarray:
    # BUG x2: eps not accumulated into s, and added inside the square root instead
    state["m"] = beta1 * state["m"] + (1 - beta1) * g
    state["s"] = beta2 * state["s"] + (1 - beta2) * (g - state["m"]) ** 2
    m_hat = state["m"] / (1 - beta1**t)
    return w - lr * m_hat / np.sqrt(state["s"] / (1 - beta2**t) + eps)


def adam_keras_legacy(
    w: np.ndarray, g: np.ndarray, state: State, t: int, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8
) -> np.ndarray:
    # BUG x2 (old Keras Adam): epsilon-hat, and `decay` = 0.01 hard-coded into lr
    lr_t = lr / (1 + 0.01 * (t - 1)) * np.sqrt(1 - beta2**t) / (1 - beta1**t)
    state["m"] = beta1 * state["m"] + (1 - beta1) * g
    state["v"] = beta2 * state["v"] + (1 - beta2) * g * g
    return w - lr_t * state["m"] / (np.sqrt(state["v"]) + eps)


# --- broken: nothing in the catalogue explains it (the false passes of the old verify) ---------


def adam_zeroes_tiny_gradients(
    w: np.ndarray, g: np.ndarray, state: State, t: int, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8
) -> np.ndarray:
    # BUG: zeroes entries with |g| < 1e-6 in the caller's gradient array, so it skips them
    g[np.abs(g) < 1e-6] = 0
    state["m"] = beta1 * state["m"] + (1 - beta1) * g
    state["v"] = beta2 * state["v"] + (1 - beta2) * g * g
    return w - lr * state["m"] / (1 - beta1**t) / (np.sqrt(state["v"] / (1 - beta2**t)) + eps)


def adam_large_array_fast_path(
    w: np.ndarray, g: np.ndarray, state: State, t: int, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8
) -> np.ndarray:
    # BUG: arrays of more than 64 elements take a "fast path" that forgets m's bias correction
    state["m"] = beta1 * state["m"] + (1 - beta1) * g
    state["v"] = beta2 * state["v"] + (1 - beta2) * g * g
    m_hat = state["m"] if w.size > 64 else state["m"] / (1 - beta1**t)
    return w - lr * m_hat / (np.sqrt(state["v"] / (1 - beta2**t)) + eps)


def adam_corrections_off_after_warmup(
    w: np.ndarray, g: np.ndarray, state: State, t: int, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8
) -> np.ndarray:
    # BUG: drops the bias corrections from step 60 on ("negligible"; yet 1 - beta2^60 = 0.06)
    state["m"] = beta1 * state["m"] + (1 - beta1) * g
    state["v"] = beta2 * state["v"] + (1 - beta2) * g * g
    if t >= 60:
        return w - lr * state["m"] / (np.sqrt(state["v"]) + eps)
    return w - lr * state["m"] / (1 - beta1**t) / (np.sqrt(state["v"] / (1 - beta2**t)) + eps)


def of(fn: Callable, spec: str, expect: str | frozenset[str], **options) -> Case:
    """The case of a step function or class, named after it."""
    return Case(fn.__name__, fn, spec, expect, **options)


_HAND_WRITTEN = [
    of(adam_folded_step_size, "adam", PASS),
    of(adam_lerp_moments, "adam", PASS),
    of(adam_in_place, "adam", PASS),
    of(rmsprop_reordered, "rmsprop", PASS),
    of(momentum_torch_form, "momentum", PASS),
    of(nesterov_torch_form, "nesterov", PASS),
    of(
        adagrad_with_options,
        "adagrad",
        PASS,
        hyper={"lr_decay": 0.01, "initial_accumulator_value": 0.1},
    ),
    of(nadam_two_step_sizes, "nadam", PASS),
    of(adam_float32, "adam", PASS, dtype="float32"),
    of(AdamaxNumpy, "adamax", PASS),
    of(adam_uphill, "adam", rules("sign")),
    of(momentum_uphill, "momentum", rules("sign")),
    of(adam_no_bias_correction_m, "adam", rules("no_bias_correction_beta1")),
    of(adam_no_bias_correction_v, "adam", rules("no_bias_correction_beta2")),
    of(adam_eps_inside_sqrt, "adam", rules("eps_inside_sqrt")),
    of(rmsprop_eps_inside_sqrt, "rmsprop", rules("eps_inside_sqrt")),
    of(adam_eps_hat, "adam", rules("eps_hat")),
    of(adamax_eps_inside_max, "adamax", rules("eps_inside_max_u")),
    of(adabelief_eps_not_accumulated, "adabelief", rules("eps_state_s")),
    of(adam_eps_accumulated_in_v, "adam", rules("eps_state_v")),
    of(adam_step_ahead, "adam", rules("t_plus_1")),
    of(adamax_step_ahead, "adamax", rules("t_plus_1")),
    of(momentum_dampened, "momentum", rules("dampening_v")),
    of(adam_m_undampened, "adam", rules("dampening_m")),
    of(adam_betas_swapped, "adam", rules("swap_beta1_beta2")),
    of(nadam_betas_swapped, "nadam", rules("swap_beta1_beta2")),
    of(lion_betas_swapped, "lion", rules("swap_beta1_beta2")),
    of(adam_v_not_updated, "adam", rules("frozen_v")),
    of(adam_l2_hard_coded, "adam", rules("l2_weight_decay"), fitted={"weight_decay": 0.01}),
    of(rmsprop_warm_start, "rmsprop", rules("initial_v"), fitted={"v": 0.1}),
    of(adam_hard_coded_lr_decay, "adam", rules("lr_decay"), fitted={"lr_decay": 0.01}),
    of(adam_ignores_eps, "adam", rules("hyper_eps"), fitted={"eps": 1e-6}),
    of(
        adam_eps_inside_sqrt_no_bias_correction_m,
        "adam",
        rules("eps_inside_sqrt", "no_bias_correction_beta1"),
    ),
    of(
        adamax_eps_inside_max_no_bias_correction,
        "adamax",
        rules("eps_inside_max_u", "no_bias_correction_beta1"),
    ),
    of(adabelief_eps_moved_into_sqrt, "adabelief", rules("eps_state_s", "eps_inside_sqrt")),
    of(adam_keras_legacy, "adam", rules("eps_hat", "lr_decay"), fitted={"lr_decay": 0.01}),
    of(adam_zeroes_tiny_gradients, "adam", UNEXPLAINED),
    of(adam_large_array_fast_path, "adam", UNEXPLAINED),
    of(adam_corrections_off_after_warmup, "adam", UNEXPLAINED),
]

_LIBRARY = [
    Case(
        "BetasAdam",
        Needs("torch", betas_adam),
        "adam",
        PASS,
        hyper={"lr": 0.01, "beta1": 0.8, "beta2": 0.99},
    ),
    Case("torch_adam", library("torch.optim.Adam"), "adam", PASS),
    Case("torch_rmsprop", library("torch.optim.RMSprop"), "rmsprop", PASS),
    Case("pytorch_optimizer_lion", library("pytorch_optimizer.Lion"), "lion", PASS),
    Case("pytorch_optimizer_yogi", library("pytorch_optimizer.Yogi"), "yogi", PASS),
    Case("optax_sgd", library("optax.sgd"), "sgd", PASS),
    Case("optax_adam", library("optax.adam"), "adam", PASS),
    # torch's AdamW decays w by lr*weight_decay (0.01 by default) before the Adam step
    Case(
        "torch_adamw_against_adam",
        library("torch.optim.AdamW"),
        "adam",
        rules("decoupled_weight_decay"),
        fitted={"weight_decay": 0.01},
    ),
    # torch's NAdam schedules the momentum, mu_t = beta1 (1 - 0.5 * 0.96^(0.004 t))
    Case(
        "torch_nadam_against_nadam",
        library("torch.optim.NAdam"),
        "nadam",
        rules("momentum_schedule"),
        fitted={"momentum_decay": 0.004},
    ),
    # torch's and optax's Adamax put eps inside the max
    Case("torch_adamax", library("torch.optim.Adamax"), "adamax", rules("eps_inside_max_u")),
    Case("optax_adamax", library("optax.adamax"), "adamax", rules("eps_inside_max_u")),
    # a decay of lr*weight_decay = 1e-6 per step: under float32's tolerance for the first steps
    Case(
        "torch_adamw_float32_small_decay",
        library("torch.optim.AdamW"),
        "adam",
        rules("decoupled_weight_decay"),
        fitted={"weight_decay": 1e-3},
        hyper={"weight_decay": 1e-3},
        dtype="float32",
    ),
    Case(
        "optax_adamw_float32_small_decay",
        library("optax.adamw"),
        "adam",
        rules("decoupled_weight_decay"),
        fitted={"weight_decay": 1e-3},
        hyper={"weight_decay": 1e-3},
        dtype="float32",
    ),
]

CASES: list[Case] = _HAND_WRITTEN + _LIBRARY


def case(name: str) -> Case:
    """The case called ``name``."""
    (found,) = (c for c in CASES if c.name == name)
    return found

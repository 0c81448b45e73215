"""Optimizers written by hand, the way people write them: the subjects of the verify tests.

Each is a step function f(w, g, state, t, **hyper) that updates ``state`` in place and returns
the new w. ``CORRECT`` follow the specs; ``BROKEN`` each carry one classic mistake.
"""

import numpy as np


def sgd(w, g, state, t, lr):
    return w - lr * g


def momentum(w, g, state, t, lr, rho):
    state["v"] = rho * state["v"] + g
    return w - lr * state["v"]


def nesterov(w, g, state, t, lr, rho):
    # PyTorch's form: the stored w is the look-ahead point; g is the gradient there.
    state["v"] = rho * state["v"] - lr * g
    return w + rho * state["v"] - lr * g


def adagrad(w, g, state, t, lr, eps, lr_decay, initial_accumulator_value):
    # the accumulator starts at initial_accumulator_value: the caller makes the state
    state["s"] += g * g
    return w - lr / (1 + (t - 1) * lr_decay) * g / (np.sqrt(state["s"]) + eps)


def rmsprop(w, g, state, t, lr, alpha, eps):
    state["v"] = alpha * state["v"] + (1 - alpha) * g * g
    return w - lr * g / (np.sqrt(state["v"]) + eps)


def adam(w, g, state, t, lr, beta1, beta2, eps):
    state["m"] = beta1 * state["m"] + (1 - beta1) * g
    state["v"] = beta2 * state["v"] + (1 - beta2) * g * g
    m_hat = state["m"] / (1 - beta1**t)
    v_hat = state["v"] / (1 - beta2**t)
    return w - lr * m_hat / (np.sqrt(v_hat) + eps)


def adamax(w, g, state, t, lr, beta1, beta2, eps):
    state["m"] = beta1 * state["m"] + (1 - beta1) * g
    state["u"] = np.maximum(beta2 * state["u"], np.abs(g))
    return w - lr / (1 - beta1**t) * state["m"] / (state["u"] + eps)


def nadam(w, g, state, t, lr, beta1, beta2, eps):
    state["m"] = beta1 * state["m"] + (1 - beta1) * g
    state["v"] = beta2 * state["v"] + (1 - beta2) * g * g
    m_bar = beta1 * state["m"] / (1 - beta1 ** (t + 1)) + (1 - beta1) * g / (1 - beta1**t)
    return w - lr * m_bar / (np.sqrt(state["v"] / (1 - beta2**t)) + eps)


def adabelief(w, g, state, t, lr, beta1, beta2, eps):
    state["m"] = beta1 * state["m"] + (1 - beta1) * g
    state["s"] = beta2 * state["s"] + (1 - beta2) * (g - state["m"]) ** 2 + eps
    m_hat = state["m"] / (1 - beta1**t)
    s_hat = state["s"] / (1 - beta2**t)
    return w - lr * m_hat / (np.sqrt(s_hat) + eps)


CORRECT = {
    f.__name__: f
    for f in (sgd, momentum, nesterov, adagrad, rmsprop, adam, adamax, nadam, adabelief)
}


def adam_uphill(w, g, state, t, lr, beta1, beta2, eps):
    return adam(w, -g, state, t, lr, beta1, beta2, eps)


def adam_no_bias_correction_m(w, g, state, t, lr, beta1, beta2, eps):
    state["m"] = beta1 * state["m"] + (1 - beta1) * g
    state["v"] = beta2 * state["v"] + (1 - beta2) * g * g
    return w - lr * state["m"] / (np.sqrt(state["v"] / (1 - beta2**t)) + eps)


def adam_eps_inside_sqrt(w, g, state, t, lr, beta1, beta2, eps):
    state["m"] = beta1 * state["m"] + (1 - beta1) * g
    state["v"] = beta2 * state["v"] + (1 - beta2) * g * g
    return w - lr * state["m"] / (1 - beta1**t) / np.sqrt(state["v"] / (1 - beta2**t) + eps)


def adam_betas_swapped(w, g, state, t, lr, beta1, beta2, eps):
    return adam(w, g, state, t, lr, beta2, beta1, eps)


def adam_step_off_by_one(w, g, state, t, lr, beta1, beta2, eps):
    return adam(w, g, state, t + 1, lr, beta1, beta2, eps)


def adam_v_not_updated(w, g, state, t, lr, beta1, beta2, eps):
    state["m"] = beta1 * state["m"] + (1 - beta1) * g
    m_hat = state["m"] / (1 - beta1**t)
    return w - lr * m_hat / (np.sqrt(state["v"] / (1 - beta2**t)) + eps)


def adamax_eps_inside_max(w, g, state, t, lr, beta1, beta2, eps):
    state["m"] = beta1 * state["m"] + (1 - beta1) * g
    state["u"] = np.maximum(beta2 * state["u"], np.abs(g) + eps)
    return w - lr / (1 - beta1**t) * state["m"] / state["u"]


def momentum_dampened(w, g, state, t, lr, rho):
    state["v"] = rho * state["v"] + (1 - rho) * g
    return w - lr * state["v"]


def rmsprop_eps_inside_sqrt(w, g, state, t, lr, alpha, eps):
    state["v"] = alpha * state["v"] + (1 - alpha) * g * g
    return w - lr * g / np.sqrt(state["v"] + eps)


def adabelief_eps_not_accumulated(w, g, state, t, lr, beta1, beta2, eps):
    state["m"] = beta1 * state["m"] + (1 - beta1) * g
    state["s"] = beta2 * state["s"] + (1 - beta2) * (g - state["m"]) ** 2
    m_hat = state["m"] / (1 - beta1**t)
    return w - lr * m_hat / (np.sqrt(state["s"] / (1 - beta2**t)) + eps)


#: broken implementation -> (spec, the variant the diagnosis must name)
BROKEN = {
    adam_uphill: ("adam", "sign"),
    adam_no_bias_correction_m: ("adam", "no_bias_correction_beta1"),
    adam_eps_inside_sqrt: ("adam", "eps_inside_sqrt"),
    adam_betas_swapped: ("adam", "swap_beta1_beta2"),
    adam_step_off_by_one: ("adam", "t_plus_1"),
    adam_v_not_updated: ("adam", "frozen_v"),
    adamax_eps_inside_max: ("adamax", "eps_inside_max_u"),
    momentum_dampened: ("momentum", "dampening_v"),
    rmsprop_eps_inside_sqrt: ("rmsprop", "eps_inside_sqrt"),
    adabelief_eps_not_accumulated: ("adabelief", "eps_state_s"),
}

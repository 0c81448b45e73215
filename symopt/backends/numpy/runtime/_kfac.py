"""The K-FAC bookkeeping of the generated NumPy optimizers: the Kronecker factors, their
running averages and eigendecompositions, the KL clipping, the argument checks, state_dict, and
the minimiser on a function of one vector. Depends on NumPy only.

A generated module binds what its spec derives (the per-entry damped step in the factors'
eigenbases, ``kronecker_step``) and its hyperparameters' check on a subclass of
:class:`KroneckerOptimizer`; this module runs it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from ._api import check_state_dict_keys, check_steps
from ._runtime import check_array
from ._second_order import NotPositiveDefiniteError, Result, minimize_damped

Array = np.ndarray

#: Per layer: the running factors A and G, and the eigendecompositions A = QA diag(sA) QA^T,
#: G = QG diag(sG) QG^T last computed.
STATE = ("A", "G", "QA", "sA", "QG", "sG")
#: minimize's message when the curvature cannot be used (status 2).
NOT_POSITIVE_DEFINITE = "the Kronecker factors are not finite"


def input_factor(a: Array, bias: bool = True) -> Array:
    """A = 1/n sum abar abar^T over the rows of a (n, fan_in), abar = [a, 1] (or a), in float64."""
    a = np.asarray(a, dtype=np.float64)
    if bias:
        a = np.concatenate([a, np.ones((a.shape[0], 1))], axis=1)
    return a.T @ a / a.shape[0]


def output_factor(u: Array, n: int) -> Array:
    """G = n sum u u^T over the rows of u (m, fan_out): the rows scaled by 1/n like the gradients of
    a mean loss over n data, in float64."""
    u = np.asarray(u, dtype=np.float64)
    return n * (u.T @ u)


def eigen(M: Array) -> tuple[Array, Array]:
    """(Q, s) with M = Q diag(s) Q^T (numpy.linalg.eigh), negative eigenvalues of the
    positive semidefinite factor (rounding) clipped to 0."""
    if not np.all(np.isfinite(M)):
        raise NotPositiveDefiniteError(NOT_POSITIVE_DEFINITE)
    s, Q = np.linalg.eigh(M)
    return Q, np.maximum(s, 0.0)


class KroneckerOptimizer:
    """K-FAC over ``[W1, b1, W2, b2, ...]`` (``bias=False``: ``[W1, W2, ...]``), updated in
    place. A generated subclass sets ``hyperparameters`` (attribute names, in its check's order),
    ``damping_name``, ``check_hyper`` and ``kronecker_step`` (the derived layer step)."""

    hyperparameters: tuple[str, ...] = ()
    damping_name: str
    check_hyper: Callable[..., None]
    kronecker_step: Callable[..., Array]

    def _setup(self, params, bias: bool) -> None:
        """Check and keep the parameters; no step taken yet."""
        self.params = list(params)
        self.bias = bool(bias)
        for i, p in enumerate(self.params):
            check_array(f"params[{i}]", p, p)
        per_layer = 2 if self.bias else 1
        if len(self.params) % per_layer:
            raise ValueError("with bias=True the parameters are [W1, b1, W2, b2, ...]")
        #: (weight index, bias index or None) per layer.
        self.layers = [
            (i, i + 1 if self.bias else None) for i in range(0, len(self.params), per_layer)
        ]
        for w, b in self.layers:
            W = self.params[w]
            if W.ndim != 2:
                raise ValueError(f"params[{w}] must be a weight matrix (fan_in, fan_out)")
            if b is not None:
                check_array(f"params[{b}]", self.params[b], np.empty(W.shape[1], W.dtype))
        #: Steps taken so far; eigendecompositions are refreshed when steps % inverse_every == 0.
        self.steps = 0
        self.state: list[dict] = [dict.fromkeys(STATE) for _ in self.layers]
        self.kl_scale = 1.0

    def hyper(self) -> dict[str, float]:
        """The current hyperparameters by name."""
        return {name: getattr(self, name) for name in self.hyperparameters}

    def _shapes(self, layer: int) -> tuple[int, int]:
        """(rows of A, rows of G) of a layer."""
        fan_in, fan_out = self.params[self.layers[layer][0]].shape
        return fan_in + self.bias, fan_out

    def step(self, grads, inputs, output_grads) -> None:
        """One step given one gradient per parameter array and, per layer, its inputs (n, fan_in)
        and output-side rows (m, fan_out) (see the generated module's docstring)."""
        inputs, output_grads = list(inputs), list(output_grads)
        for name, arrays in (("inputs", inputs), ("output_grads", output_grads)):
            if len(arrays) != len(self.layers):
                raise ValueError(f"expected {len(self.layers)} {name} arrays, got {len(arrays)}")
        factors = []
        for layer, (a, u) in enumerate(zip(inputs, output_grads, strict=True)):
            W = self.params[self.layers[layer][0]]
            a, u = np.asarray(a), np.asarray(u)
            if a.ndim != 2 or a.shape[1] != W.shape[0] or a.shape[0] == 0:
                raise ValueError(f"inputs[{layer}] must have shape (n, {W.shape[0]}), n > 0")
            if u.ndim != 2 or u.shape[1] != W.shape[1]:
                raise ValueError(f"output_grads[{layer}] must have shape (m, {W.shape[1]})")
            factors.append((input_factor(a, self.bias), output_factor(u, a.shape[0])))
        self.step_factors(grads, factors)

    def step_factors(self, grads, factors) -> None:
        """One step given one gradient per parameter array and this step's factors (A, G) per
        layer; they enter the running averages."""
        grads, factors = list(grads), list(factors)
        if len(grads) != len(self.params):
            raise ValueError(f"expected {len(self.params)} gradient arrays, got {len(grads)}")
        if len(factors) != len(self.layers):
            raise ValueError(f"expected {len(self.layers)} factor pairs, got {len(factors)}")
        for i, (p, g) in enumerate(zip(self.params, grads, strict=True)):
            check_array(f"grads[{i}]", g, p, writeable=False)
        for layer, (A, G) in enumerate(factors):
            rows_a, rows_g = self._shapes(layer)
            if np.shape(A) != (rows_a, rows_a) or np.shape(G) != (rows_g, rows_g):
                raise ValueError(
                    f"factors[{layer}] must have shapes ({rows_a}, {rows_a}) and "
                    f"({rows_g}, {rows_g}), got {np.shape(A)} and {np.shape(G)}"
                )
        hyper = {name: float(value) for name, value in self.hyper().items()}
        self.check_hyper(**hyper)
        lr, decay, kl_clip = hyper["lr"], hyper["decay"], hyper["kl_clip"]
        damping = hyper[self.damping_name]
        refresh = self.steps % int(hyper["inverse_every"]) == 0
        updated = []
        for state, (A, G) in zip(self.state, factors, strict=True):
            new = dict(state)
            for key, batch in (("A", A), ("G", G)):
                batch = np.asarray(batch, dtype=np.float64)
                if state[key] is None:  # the running average starts from the first factor
                    new[key] = batch.copy()
                else:
                    new[key] = decay * state[key] + (1.0 - decay) * batch
            if refresh or state["QA"] is None:
                new["QA"], new["sA"] = eigen(new["A"])
                new["QG"], new["sG"] = eigen(new["G"])
            updated.append(new)
        steps, vg = [], 0.0
        for (w, b), state in zip(self.layers, updated, strict=True):
            V = self._matrix(grads, w, b)
            D = self.kronecker_step(state["QA"], state["sA"], state["QG"], state["sG"], V, damping)
            steps.append(D)
            vg += float(np.sum(V * D))  # g.D = -g^T (A (x) G + damping I)^-1 g
        # KL clipping: nu = min(1, sqrt(kl_clip / (lr^2 |g.D|)))
        nu = 1.0
        if kl_clip > 0.0 and vg != 0.0:
            nu = min(1.0, math.sqrt(kl_clip / (lr * lr * abs(vg))))
        for (w, b), D in zip(self.layers, steps, strict=True):
            delta = (lr * nu) * D
            W = self.params[w]
            W += delta[: W.shape[0]].astype(W.dtype)
            if b is not None:
                self.params[b] += delta[W.shape[0]].astype(W.dtype)
        self.state = updated
        self.kl_scale = nu
        self.steps += 1

    def _matrix(self, grads: list, w: int, b: int | None) -> Array:
        """V = [dW; db] of a layer, in float64."""
        V = np.asarray(grads[w], dtype=np.float64)
        if b is None:
            return V
        return np.concatenate([V, np.asarray(grads[b], dtype=np.float64)[None, :]])

    def state_dict(self) -> dict:
        """A deep copy of everything needed to resume: steps, hyperparameters and state."""
        return {
            "steps": self.steps,
            "hyper": self.hyper(),
            "state": [
                {k: None if v is None else np.array(v) for k, v in s.items()} for s in self.state
            ],
        }

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore a :meth:`state_dict` (arrays are copied), checked before anything changes."""
        check_state_dict_keys(state_dict)
        steps = check_steps(state_dict["steps"], 0)
        states = state_dict["state"]
        if len(states) != len(self.layers):
            raise ValueError(
                f"state_dict has {len(states)} layer states, expected {len(self.layers)}"
            )
        for layer, s in enumerate(states):
            if set(s) != set(STATE):
                raise ValueError(f"state[{layer}] has keys {sorted(s)}, expected {sorted(STATE)}")
        for name, value in state_dict["hyper"].items():
            if name not in self.hyperparameters:
                raise ValueError(f"unknown hyperparameter {name!r} in state_dict")
            setattr(self, name, value)
        self.state = [
            {k: None if v is None else np.array(v, dtype=np.float64) for k, v in s.items()}
            for s in states
        ]
        self.steps = steps


def minimize(
    cls: type[KroneckerOptimizer],
    fun: Callable[[Array], float],
    grad: Callable[[Array], Array],
    x0: Array,
    hess: Callable[[Array], Array] | None,
    hessp: Callable[[Array, Array], Array] | None,
    *,
    gtol: float,
    max_iter: int | None,
    callback: Callable[[Array], None] | None,
    hyper: dict[str, float],
) -> Result:
    """K-FAC's minimiser (the generated module's ``minimize`` documents it): x is the bias of
    one ``cls`` layer without inputs; ``hyper`` already checked."""
    if hess is None and hessp is None:
        raise ValueError("K-FAC's minimize needs hess or hessp")
    x = np.array(x0, dtype=float).reshape(-1)
    max_iter = 200 * x.size if max_iter is None else int(max_iter)
    layer = cls([np.zeros((0, x.size)), x.copy()], **hyper)
    one = np.ones((1, 1))

    def damped_step(x: Array, g: Array, h: Array) -> Array:
        layer.params[1] = x.copy()
        layer.step_factors([layer.params[0], g], [(one, h)])
        return layer.params[1]

    return minimize_damped(
        fun,
        grad,
        x,
        hess,
        hessp,
        damped_step,
        gtol=gtol,
        max_iter=max_iter,
        callback=callback,
        not_positive_definite=NOT_POSITIVE_DEFINITE,
    )

"""The runtime of generated NumPy optimizers whose specs work on whole tensors (norms, row and
column statistics, matrix products): each parameter's update is one generated function of
whole-array statements, run parameter by parameter. Depends on NumPy only."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ._runtime import Optimizer, check_array

#: ``update(w, g, state, scalars)``: one parameter's step, w and the state arrays in place.
Update = Callable[[np.ndarray, np.ndarray, dict, tuple], None]


SHAPE_WORDS = {"any": "all", "matrix": "2-D", "multidim": "multi-dimensional"}


def takes_update(applies_to: str, ndim: int) -> bool:
    """Whether a parameter of ``ndim`` dimensions takes a spec's update (else ``otherwise``)."""
    return applies_to == "any" or ndim == 2 or (applies_to == "multidim" and ndim > 2)


def state_array(shape: str, p: np.ndarray, value: float) -> np.ndarray:
    """A state array of one of the spec's shapes (full, scalar, rows, cols) for parameter ``p``."""
    size = {
        "full": p.shape,
        "scalar": (),
        "rows": p.shape[:-1] + (1,),  # per row (and per matrix of a stack of them)
        "cols": p.shape[:-2] + (1,) + p.shape[-1:],
    }[shape]
    return np.full(size, value, dtype=p.dtype)


def run_update(update: Update, w, g, state: dict, scalars: tuple) -> None:
    """One parameter's update; a ``where`` computes both branches, so the one not taken may
    divide by zero without it mattering: those warnings are silenced, nothing else."""
    with np.errstate(divide="ignore", invalid="ignore"):
        update(w, g, state, scalars)


class TensorOptimizer(Optimizer):
    """An optimizer over a list of float32/float64 arrays whose update needs whole tensors.

    A generated subclass sets ``update`` (every parameter's step, or that of 2-D parameters
    when ``matrix_only``), ``update_other`` (the other parameters' step, or None when the spec
    refuses them) and ``initial_state``.
    """

    #: Which parameters take ``update``: "any", "matrix" (2-D) or "multidim" (2-D or more).
    applies_to = "any"
    update: Update
    update_other: Update | None = None

    def __init__(self, params: Sequence[np.ndarray], **hyper: float) -> None:
        for i, p in enumerate(params):
            if type(self).update_other is None and not self.is_matrix(np.asarray(p)):
                raise ValueError(
                    f"{type(self).__name__} applies to {SHAPE_WORDS[self.applies_to]} "
                    f"parameters only; params[{i}] has shape {np.shape(p)}"
                )
        super().__init__(params, **hyper)

    def is_matrix(self, p: np.ndarray) -> bool:
        """Whether ``p`` takes ``update`` (every parameter does when ``applies_to`` is "any")."""
        return takes_update(self.applies_to, p.ndim)

    def update_for(self, p: np.ndarray) -> Update:
        cls = type(self)
        return cls.update if self.is_matrix(p) else cls.update_other  # type: ignore[return-value]

    def step(self, grads) -> None:
        """Apply one step given one gradient array per parameter array."""
        grads = list(grads)
        hyper = self.hyper()
        self.check_inputs([grads], hyper)
        scalars = type(self).prelude(self.t_start + self.steps, **hyper)
        for p, g, state in zip(self.params, grads, self.state, strict=True):
            run_update(self.update_for(p), p, g, state, scalars)
        self.steps += 1

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore a :meth:`state_dict`; every array must have this optimizer's keys and shapes."""
        states = state_dict.get("state", [])
        if len(states) != len(self.params):
            raise ValueError(
                f"state_dict has {len(states)} parameter states, expected {len(self.params)}"
            )
        for i, (own, s) in enumerate(zip(self.state, states, strict=True)):
            if sorted(s) != sorted(own):
                raise ValueError(f"state[{i}] has keys {sorted(s)}, expected {sorted(own)}")
            for k, v in s.items():
                check_array(f"state[{i}][{k!r}]", np.asarray(v, dtype=own[k].dtype), own[k])
        for name in state_dict["hyper"]:
            if name not in self.defaults:
                raise ValueError(f"unknown hyperparameter {name!r} in state_dict")
        for own, s in zip(self.state, states, strict=True):
            for k, v in s.items():
                np.copyto(own[k], v)
        for name, value in state_dict["hyper"].items():
            setattr(self, name, value)
        self.steps = int(state_dict["steps"])

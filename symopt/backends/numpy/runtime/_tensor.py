"""The runtime of generated NumPy optimizers whose specs work on whole tensors (norms, row and
column statistics, matrix products): each parameter's update is one generated function of
whole-array statements, run parameter by parameter. Depends on NumPy only."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ._api import check_counter
from ._runtime import Optimizer, unaliased

#: ``update(w, g, state, scalars)``: one parameter's step, w and the state arrays in place.
Update = Callable[[np.ndarray, np.ndarray, dict, tuple], None]


SHAPE_WORDS = {"any": "all", "matrix": "2-D", "multidim": "multi-dimensional"}


def takes_update(applies_to: str, ndim: int) -> bool:
    """Whether a parameter of ``ndim`` dimensions takes a spec's update (else ``otherwise``)."""
    return applies_to == "any" or ndim == 2 or (applies_to == "multidim" and ndim > 2)


def state_size(shape: str, size: tuple[int, ...]) -> tuple[int, ...]:
    """The shape of a state array of one of the spec's shapes (full, scalar, rows, cols) for a
    parameter of shape ``size``."""
    if shape == "scalar":
        return ()
    if shape == "rows":  # per row (and per matrix of a stack of them)
        return size[:-1] + (1,)
    if shape == "cols":
        return size[:-2] + (1,) + size[-1:]
    return size


def state_array(shape: str, p: np.ndarray, value: float) -> np.ndarray:
    """A state array of one of the spec's shapes (full, scalar, rows, cols) for parameter ``p``."""
    return np.full(state_size(shape, p.shape), value, dtype=p.dtype)


def run_update(update: Update, w, g, state: dict, scalars: tuple) -> None:
    """One parameter's update; a ``where`` computes both branches, so the one not taken may
    divide by zero without it mattering: those warnings are silenced, nothing else."""
    with np.errstate(divide="ignore", invalid="ignore"):
        update(w, g, state, scalars)


class TensorOptimizer(Optimizer):
    """An optimizer over a list of float32/float64 arrays whose update needs whole tensors.

    A generated subclass sets ``update`` (every parameter's step, or that of 2-D parameters
    when ``matrix_only``), ``update_other`` (the other parameters' step, or None when the spec
    refuses them), the states each of them keeps (``main_states``, ``other_states``), the
    states' shapes (``state_shapes``: full, scalar, rows or cols) and ``new_state``.
    """

    #: Which parameters take ``update``: "any", "matrix" (2-D) or "multidim" (2-D or more).
    applies_to = "any"
    update: Update
    update_other: Update | None = None
    main_states: tuple[str, ...] = ()
    other_states: tuple[str, ...] = ()
    state_shapes: dict[str, str] = {}

    def __init__(self, params: Sequence[np.ndarray], **hyper: float) -> None:
        self.check_shapes(params)
        super().__init__(params, **hyper)

    @classmethod
    def check_shapes(cls, params: Sequence[np.ndarray]) -> None:
        """ValueError for a parameter this spec has no update for."""
        for i, p in enumerate(params):
            if cls.update_other is None and not cls.is_matrix(np.asarray(p)):
                raise ValueError(
                    f"{cls.__name__} applies to {SHAPE_WORDS[cls.applies_to]} "
                    f"parameters only; params[{i}] has shape {np.shape(p)}"
                )

    @classmethod
    def is_matrix(cls, p: np.ndarray) -> bool:
        """Whether ``p`` takes ``update`` (every parameter does when ``applies_to`` is "any")."""
        return takes_update(cls.applies_to, p.ndim)

    @classmethod
    def update_for(cls, p: np.ndarray) -> Update:
        return cls.update if cls.is_matrix(p) else cls.update_other  # type: ignore[return-value]

    @classmethod
    def state_names_for(cls, p: np.ndarray) -> tuple[str, ...]:
        """The state arrays of ``p``: those of the update it takes."""
        return cls.main_states if cls.is_matrix(p) else cls.other_states

    @classmethod
    def state_shape(cls, name: str, p: np.ndarray) -> tuple[int, ...]:
        return state_size(cls.state_shapes.get(name, "full"), p.shape)

    def step(self, grads) -> None:
        """Apply one step given one gradient array per parameter array."""
        grads = list(grads)
        hyper = self.hyper()
        self.check_inputs([grads], hyper)
        cache = self.__dict__.setdefault("_cache", {})
        self.apply(self.params, [grads], self.state, self.t_start + self.steps, hyper, cache)
        self.steps += 1

    @classmethod
    def apply(cls, params, inputs, states, t: int, hyper, cache: dict | None = None) -> None:
        """One step at counter ``t``, checked as ``Optimizer.apply`` checks it."""
        scalars = cls.prelude(check_counter(t, cls.t_start), **hyper)
        written = cls.written(params, states, {} if cache is None else cache)
        grads = unaliased(written, inputs[0])
        for p, g, state in zip(params, grads, states, strict=True):
            run_update(cls.update_for(p), p, g, state, scalars)

"""The runtime of the generated optax transformations: what every generated module shares.

A generated module prints, per setting of its spec's flags, a step ``(t, hyper, grads, params,
states) -> (updates, states)`` from the spec's equations; :func:`transformation` makes the
``optax.GradientTransformation`` around it (the step counter, hyperparameters as numbers, arrays
or schedules, the state's initial values). Depends on jax and optax only.

The rules of every target (symopt_numpy's ``_runtime`` states them), as far as they apply to a
pure function of immutable arrays: there is no aliasing to guard against; ``update`` refuses a
state that is not its transformation's (another optimizer's, or one without a state the
current setting keeps) and, outside ``jax.jit``, a count (the steps taken) outside
[0, 2**31 - 1] (ValueError), as the other targets refuse such a state when it is loaded.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

#: ``step(t, hyper, grads, params, states) -> (updates, states)``.
Step = Callable[..., tuple[Any, tuple]]

#: The largest count: optax's counters are int32 (and saturate there).
COUNT_MAX = 2**31 - 1

NO_PARAMS = "this step reads the parameters: pass params to update(updates, state, params)"


@dataclass(frozen=True)
class Variant:
    """The step of one setting of a spec's flags, and the state it keeps.

    ``main``: the states of a parameter that takes the spec's update; ``other``: those of any
    other parameter (None: the spec refuses other parameters).
    """

    step: Step
    states: tuple[str, ...]
    main: tuple[str, ...]
    other: tuple[str, ...] | None
    needs_params: bool
    #: hyperparameters' values -> each state's value before the first step
    initial_values: Callable[[Mapping[str, Any]], dict[str, Any]]


def is_number(value: Any) -> bool:
    """A Python number, which a setting may be chosen by and a domain checked on (an array or a
    schedule may be traced under ``jax.jit``: it selects the general variant)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def numbers(*values: Any) -> bool:
    """Whether every value is a Python number or bool: an argument check runs on those only (an
    array or a schedule may be traced under ``jax.jit``)."""
    return all(isinstance(v, (int, float)) for v in values)


def check(name: str, value: Any, ok: Callable[[float], bool], interval: str) -> None:
    """ValueError for a number outside the argument's domain (arrays and schedules pass)."""
    if is_number(value) and not (math.isfinite(value) and ok(value)):
        raise ValueError(f"{name} must be in {interval}, got {value!r}")


def nonzero(value: Any) -> bool:
    """Whether an ``off_at_zero`` hyperparameter's terms run: not for a Python 0."""
    return not is_number(value) or value != 0


def at_count(hyper: Mapping[str, Any], count: jax.Array) -> dict[str, Any]:
    """Each hyperparameter's value at step ``count`` (from 0, as optax's schedules count)."""
    return {k: v(count) if callable(v) else v for k, v in hyper.items()}


SHAPE_WORDS = {"any": "all", "matrix": "2-D", "multidim": "multi-dimensional"}


def takes_update(applies_to: str, ndim: int) -> bool:
    """Whether a parameter of ``ndim`` dimensions takes a spec's update (else ``otherwise``)."""
    return applies_to == "any" or ndim == 2 or (applies_to == "multidim" and ndim > 2)


def state_size(shape: str, size: tuple[int, ...]) -> tuple[int, ...]:
    """A state array's shape (full, scalar, rows or cols) for a parameter of shape ``size``."""
    if shape == "scalar":
        return ()
    if shape == "rows":
        return size[:-1] + (1,)
    if shape == "cols":
        return size[:-2] + (1,) + size[-1:]
    return size


def like(values: Sequence[Any], x: jax.Array) -> tuple[jax.Array, ...]:
    """The step's scalars in the dtype of the leaf they scale (float32 stays float32)."""
    return tuple(jnp.asarray(v, dtype=x.dtype) for v in values)


def map_leaves(leaf: Callable, grads, params, states: Sequence) -> tuple[Any, tuple]:
    """``leaf(g, w, *state) -> (update, *state)`` on every leaf: the updates and the new states,
    each a tree like ``grads``."""
    treedef = jax.tree.structure(grads)
    g_leaves = treedef.flatten_up_to(grads)
    w_leaves = [None] * len(g_leaves) if params is None else treedef.flatten_up_to(params)
    s_leaves = [treedef.flatten_up_to(s) for s in states]
    outs = [leaf(g, w, *s) for g, w, *s in zip(g_leaves, w_leaves, *s_leaves, strict=True)]
    columns = list(zip(*outs, strict=True)) if outs else [()] * (1 + len(states))
    trees = [treedef.unflatten(list(c)) for c in columns]
    return trees[0], tuple(trees[1:])


def by_shape(applies_to: str, main: Callable, other: Callable | None) -> Callable:
    """The leaf update for a parameter's shape: the spec's, or ``otherwise``'s."""

    def leaf(g, w, *states):
        return (main if takes_update(applies_to, g.ndim) else other)(g, w, *states)

    return leaf


def initial_state(
    params,
    variant: Variant,
    shapes: Mapping[str, str],
    values: Mapping[str, Any],
    applies_to: str,
    name: str,
) -> dict[str, Any]:
    """Every state of ``variant`` as a tree like ``params``; a state a parameter does not keep
    (Adafactor's factored moments of a vector) is an empty array there."""
    for p in jax.tree.leaves(params):
        if variant.other is None and not takes_update(applies_to, jnp.ndim(p)):
            raise ValueError(
                f"{name} applies to {SHAPE_WORDS[applies_to]} parameters only, "
                f"got one of shape {jnp.shape(p)}"
            )

    def one(state: str, p: jax.Array) -> jax.Array:
        kept = variant.main if takes_update(applies_to, jnp.ndim(p)) else variant.other
        dtype = jnp.result_type(p)
        if state not in kept:
            return jnp.zeros((0,), dtype=dtype)
        return jnp.full(state_size(shapes[state], jnp.shape(p)), values[state], dtype=dtype)

    return {s: jax.tree.map(lambda p, s=s: one(s, p), params) for s in variant.states}


def safe_increment(count: jax.Array) -> jax.Array:
    """count + 1, saturating at the largest int32 (as optax's own counters do)."""
    return jnp.where(count < jnp.iinfo(jnp.int32).max, count + 1, count)


def step_counter(count: jax.Array, t_start: int) -> jax.Array:
    """The spec's t for optax's count (0 before the first update), as a float of the widest
    enabled precision: the scalars of a step are computed once in it."""
    return jnp.asarray(count + t_start, dtype=jnp.result_type(float))


def check_state(name: str, state: Any, state_class: type, variant: Variant) -> None:
    """ValueError for a state ``update`` cannot run from: another transformation's, one that
    lacks a state of the current setting, or (where it is a number, outside ``jax.jit``) a
    count outside [0, COUNT_MAX]."""
    if not isinstance(state, state_class):
        raise ValueError(
            f"{name}: the state is a {type(state).__name__}, expected the "
            f"{state_class.__name__} of {name}'s init"
        )
    missing = [s for s in variant.states if getattr(state, s) is None]
    if missing:
        raise ValueError(f"{name}: the state has no {missing} (init it with these arguments)")
    count = state.count
    if not isinstance(count, jax.core.Tracer):
        value = int(count)
        if not 0 <= value <= COUNT_MAX:
            raise ValueError(
                f"{name}: count (steps taken) must be in [0, {COUNT_MAX}], got {value}"
            )


def transformation(
    name: str,
    state_class: type[NamedTuple],
    variant: Variant,
    hyper: Mapping[str, Any],
    shapes: Mapping[str, str],
    applies_to: str,
    t_start: int,
) -> optax.GradientTransformation:
    """The optax transformation of one variant: ``init`` builds its state, ``update`` runs its
    step with the hyperparameters' values at the current count."""
    absent = {f: None for f in state_class._fields if f != "count" and f not in variant.states}

    def init_fn(params):
        values = variant.initial_values(at_count(hyper, jnp.zeros([], jnp.int32)))
        states = initial_state(params, variant, shapes, values, applies_to, name)
        return state_class(count=jnp.zeros([], jnp.int32), **states, **absent)

    def update_fn(updates, state, params=None):
        if params is None and variant.needs_params:
            raise ValueError(f"{name}: {NO_PARAMS}")
        check_state(name, state, state_class, variant)
        values = at_count(hyper, state.count)
        t = step_counter(state.count, t_start)
        old = tuple(getattr(state, s) for s in variant.states)
        updates, new = variant.step(t, values, updates, params, old)
        count = safe_increment(state.count)
        return updates, state._replace(count=count, **dict(zip(variant.states, new, strict=True)))

    return optax.GradientTransformation(init_fn, update_fn)

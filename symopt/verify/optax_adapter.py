"""An optax ``GradientTransformation`` (or the factory that builds one, like ``optax.adam``) as an
implementation under test.

optax has no parameter groups: verify gives it one group, whose tensors form a list pytree. jax and
optax are imported only when an optax target is driven, so verify works without them installed.
"""

from __future__ import annotations

import functools
import inspect
from collections import Counter
from collections.abc import Callable, Iterator, Mapping

import numpy as np

from symopt.errors import Unsupported
from symopt.verify.adapters import Adapter, Groups, ImplementationError, States, _kwargs, _name


def is_optax_factory(target: object) -> bool:
    """Whether ``target`` builds (or is) an optax transformation, decided without calling it:
    a factory may need arguments, and a plain step function must not pull in jax."""
    if inspect.isclass(target):
        return False
    if _is_transformation(target):
        return True
    if not callable(target):
        return False
    module = getattr(target, "__module__", None) or ""
    return module.split(".")[0] == "optax" or "GradientTransformation" in _returns(target)


def _is_transformation(target: object) -> bool:
    """An already-built transformation: optax's is a NamedTuple of ``init`` and ``update``."""
    return (
        not callable(target)
        and callable(getattr(target, "init", None))
        and callable(getattr(target, "update", None))
    )


def _returns(target: object) -> str:
    """The return annotation as written (a string under postponed evaluation), never evaluated."""
    try:
        annotation = inspect.signature(target).return_annotation
    except (TypeError, ValueError):
        return ""
    return annotation if isinstance(annotation, str) else repr(annotation)


class OptaxAdapter(Adapter):
    """``tx.update`` then ``optax.apply_updates`` on one group of tensors, jitted once."""

    takes_groups = False

    def __init__(self, target, params, kwargs, initial_state):
        (group,) = params
        (kw,) = kwargs
        self.dtype = np.dtype(group[0].dtype)
        jax = _jax(self.dtype)
        self.label, tx, self.update = _compiled(target, _frozen(kw), self.dtype.str, jax)
        self.tensors = [_device(p, self.dtype) for p in group]
        self.opt_state = _call(f"{self.label}.init", tx.init, self.tensors)

    def step(self, grads, t):
        (group,) = grads
        self.tensors, self.opt_state = _call(
            f"{self.label}.update at step {t}",
            self.update,
            self.tensors,
            self.opt_state,
            [_device(g, self.dtype) for g in group],
        )

    def params(self) -> Groups:
        return [[np.array(p, dtype=self.dtype, copy=True) for p in self.tensors]]

    def state(self) -> States:
        """Per tensor, every per-tensor field of the (possibly nested) optax state by field
        name; a name met again later in a chain becomes ``name_1``, ``name_2``."""
        out = [{} for _ in self.tensors]
        seen: Counter[str] = Counter()
        for name, values in _per_tensor_fields(self.opt_state, len(self.tensors)):
            key = f"{name}_{seen[name]}" if seen[name] else name
            seen[name] += 1
            for tensor, value in zip(out, values, strict=True):
                if _is_float_array(value):
                    tensor[key] = np.array(value, copy=True)
        return [out]


def _jax(dtype: np.dtype):
    """jax, in x64 mode for a float64 run (before any array is made, or it would be float32)."""
    import jax

    if dtype == np.float64:
        jax.config.update("jax_enable_x64", True)
    return jax


@functools.lru_cache(maxsize=32)
def _compiled(target, kwargs: tuple, dtype: str, jax):
    """(label, transformation, jitted step) per target, arguments and dtype: the cases of one
    verify share one compilation (jax re-traces only for new shapes)."""
    label, tx = _build(target, dict(kwargs))
    return label, tx, jax.jit(_update_and_apply(tx))


def _frozen(kwargs: Mapping[str, object]) -> tuple:
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in kwargs.items()))


def _build(target, kwargs: Mapping[str, object]):
    """(a label for messages, the transformation): ``target(**kwargs)``, or target itself when
    it is already built (it then takes no arguments: they were fixed when it was built)."""
    if _is_transformation(target):
        if kwargs:
            raise Unsupported(
                f"{type(target).__name__} is an already-built optax transformation and takes no "
                f"arguments (got {_kwargs(kwargs)}); pass its factory, like optax.adam",
                key="TARGET",
            )
        return type(target).__name__, target
    label = f"{_name(target)}({_kwargs(kwargs)})"
    tx = _call(label, target, **kwargs)
    if not _is_transformation(tx):
        raise ImplementationError(
            f"{label} returned {type(tx).__name__}, not an optax GradientTransformation"
        )
    return label, tx


def _call(label: str, fn: Callable, *args, **kwargs):
    """``fn(*args, **kwargs)``; what it raises is the implementation's error, on one line."""
    try:
        return fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001  (anything optax or jax raises)
        lines = [line for line in str(exc).splitlines() if line.strip()]
        reason = f": {lines[0].strip()}" if lines else ""
        raise ImplementationError(f"{label} raised {type(exc).__name__}{reason}") from exc


def _device(array: np.ndarray, dtype: np.dtype):
    """A jax copy in the run's dtype (``jnp.array`` copies): the caller may reuse its arrays."""
    import jax.numpy as jnp

    return jnp.array(array, dtype=dtype, copy=True)


def _update_and_apply(tx) -> Callable:
    """One step as a pure function of (params, state, grads), for ``jax.jit``."""
    import optax

    def step(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    return step


def _per_tensor_fields(state: object, n: int) -> Iterator[tuple[str, list]]:
    """(field name, one entry per tensor) for each NamedTuple field holding a list like the
    params, depth first in the state's own order (chains, inner states, dicts of states)."""
    if isinstance(state, tuple) and hasattr(state, "_fields"):
        for name, value in zip(state._fields, state, strict=True):
            if _is_per_tensor(value, n):
                yield name, value
            else:
                yield from _per_tensor_fields(value, n)
    elif isinstance(state, Mapping):
        for value in state.values():
            yield from _per_tensor_fields(value, n)
    elif isinstance(state, tuple | list):
        for value in state:
            yield from _per_tensor_fields(value, n)


def _is_per_tensor(value: object, n: int) -> bool:
    """A list with one array per tensor; ``optax.masked`` leaves a MaskedNode for skipped ones."""
    from optax import MaskedNode

    return (
        isinstance(value, list)
        and len(value) == n
        and all(_is_float_array(v) or isinstance(v, MaskedNode) for v in value)
        and any(_is_float_array(v) for v in value)
    )


def _is_float_array(value: object) -> bool:
    import jax.numpy as jnp

    return isinstance(value, np.ndarray | jnp.ndarray) and jnp.issubdtype(value.dtype, jnp.floating)

"""The damped block-diagonal Newton method of the generated NumPy optimizers: the block solve
(LAPACK's Cholesky, then two triangular solves in the block's dtype), the argument checks, the
optimizer class's machinery and the minimiser's step. Depends on NumPy only.

The damped block is factorised by numpy.linalg.cholesky (LAPACK), which also tests that it is
positive definite (only its lower triangle is read), and the two triangular solves are column
loops over the factor: NumPy has no triangular solver, and numpy.linalg.solve on the factor
would redo an O(n^3) LU where the substitutions cost O(n^2). LAPACK rather than the Newton
module's own column-loop Cholesky (which maps to the C target's): blocks are hundreds of rows
for a network layer, and there is no C version of this method to stay in step with.

A generated module binds what its spec derives (the damped system of a block, the step's
right-hand side) in a :class:`DampedBlocks`; this module runs it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ._api import check_state_dict_keys, check_steps
from ._runtime import check_array
from ._second_order import NotPositiveDefiniteError

Array = np.ndarray


@dataclass(frozen=True)
class DampedBlocks:
    """What a spec derives: the damped system of a block and the right-hand side of its step."""

    damped_system: Callable[[Array, float], Array]  # H, damping -> H + damping I (H's dtype)
    rhs: Callable[[Array], Array]  # g -> the right-hand side
    damping: str  # the damping's name, for messages


def solve_lower(low: Array, b: Array) -> Array:
    """y with L y = b (forward substitution, column oriented)."""
    y = np.array(b, dtype=low.dtype)
    for k in range(low.shape[0]):
        y[k] /= low[k, k]
        y[k + 1 :] -= low[k + 1 :, k] * y[k]
    return y


def solve_upper_t(low: Array, y: Array) -> Array:
    """x with L^T x = y (back substitution)."""
    x = np.array(y, dtype=low.dtype)
    for k in range(low.shape[0] - 1, -1, -1):
        x[k] = (x[k] - low[k + 1 :, k] @ x[k + 1 :]) / low[k, k]
    return x


def solve_damped(method: DampedBlocks, low: Array, g: Array) -> Array:
    """The step, given the Cholesky factor L L^T of the damped matrix."""
    return solve_upper_t(low, solve_lower(low, method.rhs(g)))


def damped_newton_step(
    method: DampedBlocks, g: Array, H: Array, damping: float, what: str = "the block"
) -> Array:
    """The damped Newton step of one block (1-D, in H's dtype); NotPositiveDefiniteError when
    the damped block has no Cholesky factor."""
    try:
        low = np.linalg.cholesky(method.damped_system(H, damping))
    except np.linalg.LinAlgError:
        low = None
    # LAPACK passes NaN through; a NaN or inf in the lower triangle reaches the diagonal
    if low is None or not np.all(np.isfinite(np.diagonal(low))):
        raise NotPositiveDefiniteError(
            f"{what} + {method.damping} I is not positive definite (no Cholesky factor)"
        )
    return solve_damped(method, low, g.reshape(-1))


def check_block(name: str, H: Array, size: int, dtype: np.dtype) -> None:
    if not isinstance(H, np.ndarray) or H.dtype not in (np.float32, np.float64):
        raise TypeError(f"{name} must be a float32 or float64 numpy array")
    if H.shape != (size, size) or H.dtype != dtype:
        raise ValueError(
            f"{name} has shape {H.shape} and dtype {H.dtype}, expected {(size, size)} {dtype}"
        )


def check_blocks(blocks: list[list[int]], params: list) -> None:
    """Blocks must partition the parameter arrays, each block of one dtype."""
    seen = sorted(i for block in blocks for i in block)
    if seen != list(range(len(params))) or any(not block for block in blocks):
        raise ValueError(
            f"blocks must partition the {len(params)} parameter arrays (each index once, no "
            f"empty block), got {blocks}"
        )
    for b, block in enumerate(blocks):
        if len({params[i].dtype for i in block}) > 1:
            raise ValueError(f"block {b} mixes float32 and float64 arrays")


def step_blocks(
    method: DampedBlocks,
    params: list[Array],
    blocks: list[list[int]],
    sizes: list[int],
    grads: list,
    curvature_blocks: list,
    lr: float,
    damping: float,
) -> None:
    """One step of every block in place; every block is solved before any array is written."""
    if len(grads) != len(params):
        raise ValueError(f"expected {len(params)} gradient arrays, got {len(grads)}")
    if len(curvature_blocks) != len(blocks):
        raise ValueError(f"expected {len(blocks)} curvature blocks, got {len(curvature_blocks)}")
    for i, (p, g) in enumerate(zip(params, grads, strict=True)):
        check_array(f"grads[{i}]", g, p, writeable=False)
    steps = []
    for b, (block, size, H) in enumerate(zip(blocks, sizes, curvature_blocks, strict=True)):
        dtype = params[block[0]].dtype
        check_block(f"curvature_blocks[{b}]", H, size, dtype)
        g = np.concatenate([grads[i].reshape(-1) for i in block])
        steps.append(damped_newton_step(method, g, H, damping, f"curvature_blocks[{b}]"))
    for block, d in zip(blocks, steps, strict=True):
        start = 0
        for i in block:
            p = params[i]
            p += p.dtype.type(lr) * d[start : start + p.size].reshape(p.shape)
            start += p.size


def coordinate_blocks(x: Array, blocks) -> list[Array]:
    """minimize's blocks of coordinates (default: one block), checked to partition x."""
    index = [np.arange(x.size)] if blocks is None else [np.asarray(b, dtype=int) for b in blocks]
    if sorted(np.concatenate(index).tolist()) != list(range(x.size)):
        raise ValueError(f"blocks must partition the {x.size} coordinates of x0")
    return index


def damped_step(
    method: DampedBlocks,
    x: Array,
    g: Array,
    h: Array,
    blocks: list[Array],
    lr: float,
    damping: float,
) -> Array:
    """minimize's step: x_b + lr d_b for every block b of coordinates, d_b from h's block."""
    x = x.copy()
    steps = [
        damped_newton_step(method, g[index], h[np.ix_(index, index)], damping, f"block {b} of H")
        for b, index in enumerate(blocks)
    ]
    for index, d in zip(blocks, steps, strict=True):
        x[index] += lr * d
    return x


class BlockOptimizer:
    """The generated optimizer class's bookkeeping: its hyperparameters are attributes named in
    ``hyperparameters``; ``steps`` counts the steps taken."""

    hyperparameters: tuple[str, ...] = ()
    steps: int

    def hyper(self) -> dict[str, float]:
        """The current hyperparameters by name."""
        return {name: getattr(self, name) for name in self.hyperparameters}

    def state_dict(self) -> dict:
        """Everything needed to resume: the step count and the hyperparameters."""
        return {"steps": self.steps, "hyper": self.hyper()}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore a :meth:`state_dict`, checked before anything changes."""
        check_state_dict_keys(state_dict, ("steps", "hyper"))
        steps = check_steps(state_dict["steps"], 0)
        for name in state_dict["hyper"]:
            if name not in self.hyperparameters:
                raise ValueError(f"unknown hyperparameter {name!r} in state_dict")
        for name, value in state_dict["hyper"].items():
            setattr(self, name, value)
        self.steps = steps

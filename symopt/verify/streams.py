"""What an implementation and the reference are driven with: gradient streams, parameter layouts
and the horizon.

Streams: random at varying scales, sparse with exact zeros, tiny (1e-9, where eps dominates), huge
(1e8), sign-alternating, *regimes* (the scale jumps between those at random steps, so that state
built in one regime is used in another), and a Rosenbrock gradient that depends on the
parameters, so a trajectory feeds back into its gradients.

Layouts: every case steps several tensors in two parameter groups (the second with its own
learning rate): sizes small (6), odd (2 x 5, 67, 3 x 37), above SIMD widths and the 64-element
blocks of hand-vectorised loops; one case adds a tensor of 70,000 elements, above torch's
multi-tensor chunk (65,536).

Horizon: every case runs ``steps`` (40) steps; one case, on the *regimes* stream, runs ``LONG``
(1,000) steps on one small tensor: a difference that appears by step 1,000 (a schedule, a switch
at step 50, a counter) is found; one that appears only later is not (``--long`` moves it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

#: The steps of the long case: cheap (small tensors), and long enough for every threshold of a
#: built-in spec (RAdam's rectification switches at step 6, Adam's bias corrections are within
#: 1e-3 of 1 by step 7,000 and do not switch anything) and for a hand-written step switch.
LONG = 1000
#: The size of the large tensor (above torch's multi-tensor-apply chunk of 2**16 elements).
LARGE = 70_000


def _rosenbrock_grad(w: np.ndarray) -> np.ndarray:
    """Gradient of sum over pairs (x, y) of (1 - x)^2 + 10 (y - x^2)^2 (mild, so runs stay tame);
    a trailing odd element gets (1 - x)^2."""
    flat = w.reshape(-1)
    n = flat.size - flat.size % 2
    x, y = flat[0:n:2], flat[1:n:2]
    g = np.empty_like(flat)
    with np.errstate(all="ignore"):  # a broken optimizer may run off to infinity
        g[0:n:2] = -2 * (1 - x) - 40 * x * (y - x**2)
        g[1:n:2] = 20 * (y - x**2)
        if n < flat.size:
            g[-1] = -2 * (1 - flat[-1])
    return g.reshape(w.shape)


StreamFn = Callable[[np.random.Generator, tuple[int, ...], int, np.ndarray], np.ndarray]

#: Scales the *regimes* stream jumps between.
_REGIME_SCALES = (1e-9, 1e-3, 1.0, 10.0, 1e8)


def _regime(k: int) -> tuple[float, float]:
    """The scale and the fraction of exact zeros at step ``k``: they change at steps drawn once
    (gaps of 5 to 45 steps), so state built in one regime is used in the next."""
    block = int(np.searchsorted(_CHANGES, k, side="right"))
    pick = np.random.default_rng(7919 + block)
    return float(pick.choice(_REGIME_SCALES)), float(pick.choice((0.0, 0.0, 0.5)))


_CHANGES = np.cumsum(np.random.default_rng(2024).integers(5, 46, size=4000))


def _regimes(rng: np.random.Generator, shape, k: int, w) -> np.ndarray:
    scale, zeros = _regime(k)
    return rng.standard_normal(shape) * scale * (rng.random(shape) >= zeros)


STREAMS: dict[str, StreamFn] = {
    "random": lambda rng, shape, k, w: rng.standard_normal(shape) * 10 ** rng.uniform(-2, 1),
    "sparse": lambda rng, shape, k, w: rng.standard_normal(shape) * (rng.random(shape) < 0.5),
    "tiny": lambda rng, shape, k, w: rng.standard_normal(shape) * 1e-9,
    "huge": lambda rng, shape, k, w: rng.standard_normal(shape) * 1e8,
    "alternating": lambda rng, shape, k, w: (-1.0) ** k * np.abs(rng.standard_normal(shape)),
    "regimes": _regimes,
    "rosenbrock": lambda rng, shape, k, w: _rosenbrock_grad(w),
}
PARAMETER_DEPENDENT = {"rosenbrock"}

Shape = tuple[int, ...]
#: Parameter groups of tensor shapes.
Layout = tuple[tuple[Shape, ...], ...]

VECTOR_LAYOUT: Layout = (((6,), (2, 5), (67,)), ((3, 37), (130,)))
#: For specs that take matrices only: wide, tall, square-ish and one above 64 per side.
MATRIX_LAYOUT: Layout = (((2, 5), (6, 3)), ((7, 9), (3, 70)))
MULTIDIM_LAYOUT: Layout = (((2, 5), (6, 3), (2, 2, 3)), ((7, 9), (3, 70)))
#: One tensor above the multi-tensor chunk, as a vector or a matrix.
LARGE_SHAPES = {"vector": (LARGE,), "matrix": (250, 280)}


@dataclass(frozen=True)
class Case:
    """One run: a stream, a seed, the parameter groups and the steps."""

    stream: str
    seed: int
    layout: Layout
    steps: int

    @property
    def label(self) -> str:
        sizes = sum(int(np.prod(s)) for group in self.layout for s in group)
        return f"{self.stream} stream, seed {self.seed}, {self.steps} steps, {sizes} elements"


def layout_for(spec) -> tuple[Layout, str]:
    """The layout a spec is verified on (those shapes it takes, when it refuses others), and the
    kind of its large tensor."""
    if spec.kind == "elementwise" and not spec.otherwise:
        if spec.applies_to == "matrix":
            return MATRIX_LAYOUT, "matrix"
        if spec.applies_to == "multidim":
            return MULTIDIM_LAYOUT, "matrix"
    return VECTOR_LAYOUT, "vector"


def cases(
    spec, steps: int, seeds: int, long: int, streams=tuple(STREAMS), large: bool = True
) -> list[Case]:
    """Every stream x seed with the spec's layout; the large tensor joins the random stream's
    first seed; one long case on the regimes stream, with one small tensor (67 elements or a
    matrix)."""
    layout, kind = layout_for(spec)
    out = [Case(stream, seed, layout, steps) for stream in streams for seed in range(seeds)]
    if large and "random" in streams:
        with_large = (layout[0], (*layout[1], LARGE_SHAPES[kind]))
        out[list(streams).index("random") * seeds] = Case("random", 0, with_large, steps)
    if long > steps and "regimes" in streams:
        out.append(Case("regimes", seeds, ((layout[0][-1],),), long))
    return out


def single_group(case: Case) -> Case:
    """The case with every tensor in one group, for implementations without groups (optax)."""
    return Case(case.stream, case.seed, (sum(case.layout, ()),), case.steps)

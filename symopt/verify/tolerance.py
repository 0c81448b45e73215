"""How far an implementation may honestly differ from the reference: estimated from the spec's own
sensitivity to rounding, per quantity, per step and per dtype.

The reference is run again with every arithmetic result of its expression trees (each sum,
product, power, root, exp, log, reduction) and every hyperparameter multiplied by ``1 + u r``, r
uniform in [-1, 1] and u the unit roundoff of the run's dtype (Monte Carlo arithmetic, Parker
1997). The spread of those runs from the exact one is what rounding at that precision does to
*this* update on *these* gradients: small where the update is well conditioned, large where it
cancels (``1 - beta2`` for beta2 near 1 in float32, ``v - m^2``). An implementation may evaluate
in another order, so the bound is ``FACTOR`` times the spread, never below ``FLOOR_ULPS`` units
of roundoff. It is sampled, not proven: an estimate of the condition, not a worst case.
"""

from __future__ import annotations

import numpy as np

from symopt.reference import _Float64

#: Unit roundoff of the dtypes verify runs in.
UNIT_ROUNDOFF = {"float64": 2.0**-53, "float32": 2.0**-24}
#: Perturbed runs per case: the tolerance is the largest spread of these.
RUNS = 2
#: Safety factor over the spread: another evaluation order, and the gap between the spread of
#: two samples and the largest rounding effect.
FACTOR = 16.0
#: No tolerance is below this many units of roundoff (relative to the quantity's scale).
FLOOR_ULPS = 8.0


class Perturbed(_Float64):
    """float64 arithmetic whose every result is perturbed at the unit roundoff ``u``: multiplied
    by factors drawn once into a pool and taken in turn (drawing per operation costs more than
    the operation)."""

    POOL = 1 << 18

    def __init__(self, u: float, rng: np.random.Generator) -> None:
        self.factors = 1.0 + u * rng.uniform(-1.0, 1.0, self.POOL)
        self.at = int(rng.integers(self.POOL))

    def _take(self, n: int) -> np.ndarray:
        if n > self.POOL:
            return np.resize(self.factors, n)
        if self.at + n > self.POOL:
            self.at = 0
        out = self.factors[self.at : self.at + n]
        self.at += n
        return out

    def rounded(self, x):
        if isinstance(x, np.ndarray):
            return x * self._take(x.size).reshape(x.shape)
        if isinstance(x, (float, np.floating)):
            return x * float(self._take(1)[0])
        return x


def perturbed_hyper(hyper: dict[str, float], u: float, rng: np.random.Generator) -> dict:
    """Hyperparameters as the implementation may hold them: rounded to the dtype."""
    return {k: v * (1.0 + u * rng.uniform(-1.0, 1.0)) for k, v in hyper.items()}


def bound(spread: float, dtype: str) -> float:
    """The tolerance for a quantity whose perturbed runs spread by ``spread`` (relative)."""
    return max(FACTOR * spread, FLOOR_ULPS * UNIT_ROUNDOFF[dtype])

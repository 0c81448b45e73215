"""Test functions of two variables on which optimizers are compared, as SymPy expressions.

Each landscape is a SymPy expression in ``x`` and ``y`` with its known minima, a start point, a
plotting box and learning rates under which every built-in algorithm visibly moves and reaches the
neighbourhood of a minimum (the specs' defaults are tuned for networks: Adam's lr = 1e-3 barely
moves on Beale). The numeric function and its gradient are derived from the expression, so the
gradient is exact, not a finite difference.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import sympy

x, y = sympy.symbols("x y", real=True)


@dataclass(frozen=True)
class Landscape:
    """A test function, where it is minimal, where to start and how to look at it."""

    name: str
    title: str
    expr: sympy.Expr
    minima: tuple[tuple[float, float], ...]
    start: tuple[float, float]
    box: tuple[float, float, float, float]  # xmin, xmax, ymin, ymax
    lr: Mapping[str, float]  # per built-in algorithm; the others keep their spec's defaults
    steps: int = 300
    convex: bool = False
    about: str = ""
    aliases: tuple[str, ...] = field(default=())

    @cached_property
    def _f(self):
        return sympy.lambdify((x, y), self.expr, "numpy")

    @cached_property
    def _grad(self):
        return sympy.lambdify((x, y), [sympy.diff(self.expr, v) for v in (x, y)], "numpy")

    @cached_property
    def _hess(self):
        return sympy.lambdify((x, y), sympy.hessian(self.expr, (x, y)).tolist(), "numpy")

    def hess(self, point: np.ndarray) -> np.ndarray:
        """The exact Hessian at ``point`` (for second-order methods)."""
        with np.errstate(all="ignore"):
            return np.array(self._hess(float(point[0]), float(point[1])), dtype=np.float64)

    def f(self, px, py):
        """The function, element-wise over arrays (for contours) or at one point."""
        with np.errstate(all="ignore"):
            return np.asarray(self._f(px, py), dtype=np.float64) + 0.0 * np.asarray(px)

    def grad(self, point: np.ndarray) -> np.ndarray:
        """The exact gradient at ``point`` (shape (2,)), as a new float64 array."""
        with np.errstate(all="ignore"):
            gx, gy = self._grad(float(point[0]), float(point[1]))
        return np.array([gx, gy], dtype=np.float64)

    @cached_property
    def f_min(self) -> float:
        """The smallest value (at the minima); loss curves plot f - f_min."""
        return min(float(self.f(mx, my)) for mx, my in self.minima)

    def distance_to_minimum(self, point) -> float:
        """Distance from ``point`` to the nearest known minimum."""
        p = np.asarray(point, dtype=np.float64)
        return min(float(np.hypot(*(p - np.asarray(m)))) for m in self.minima)


#: The first-order built-ins pictured by default: each landscape has a learning rate tuned for
#: them (the others are pictured when named, with their spec's defaults).
PICTURED = (
    "sgd",
    "momentum",
    "nesterov",
    "adagrad",
    "rmsprop",
    "adam",
    "adamax",
    "nadam",
    "adabelief",
)


def _lr(sgd, momentum, adagrad, rmsprop, adam, adamax, nadam, adabelief) -> dict[str, float]:
    """Learning rates per built-in algorithm; Nesterov takes momentum's (the same friction)."""
    return dict(
        sgd=sgd,
        momentum=momentum,
        nesterov=momentum,
        adagrad=adagrad,
        rmsprop=rmsprop,
        adam=adam,
        adamax=adamax,
        nadam=nadam,
        adabelief=adabelief,
    )


LANDSCAPES: dict[str, Landscape] = {
    ls.name: ls
    for ls in (
        Landscape(
            "quadratic",
            "Quadratic bowl  $f = x^2/2 + 2y^2$",
            x**2 / 2 + 2 * y**2,
            minima=((0.0, 0.0),),
            start=(-4.0, 2.5),
            box=(-5.0, 5.0, -3.5, 3.5),
            lr=_lr(0.1, 0.05, 0.5, 0.05, 0.1, 0.1, 0.1, 0.1),
            steps=100,
            convex=True,
            about="convex; every optimizer must end closer to the minimum than it started",
            aliases=("bowl",),
        ),
        Landscape(
            "valley",
            "Long narrow valley  $f = x^2/20 + 5y^2$",
            x**2 / 20 + 5 * y**2,
            minima=((0.0, 0.0),),
            start=(-9.0, 1.5),
            box=(-10.0, 2.0, -2.0, 2.0),
            lr=_lr(0.19, 0.02, 1.0, 0.1, 0.2, 0.3, 0.2, 0.1),
            steps=300,
            convex=True,
            about="convex, curvatures 0.1 and 10: SGD zig-zags across and crawls along",
        ),
        Landscape(
            "beale",
            "Beale function",
            (sympy.Rational(3, 2) - x + x * y) ** 2
            + (sympy.Rational(9, 4) - x + x * y**2) ** 2
            + (sympy.Rational(21, 8) - x + x * y**3) ** 2,
            minima=((3.0, 0.5),),
            start=(1.0, 1.5),
            box=(-0.5, 4.0, -1.5, 2.0),
            lr=_lr(0.02, 0.001, 1.0, 0.02, 0.1, 0.5, 0.1, 0.1),
            steps=500,
            about="flat plateaus and steep walls; one minimum at (3, 0.5)",
        ),
        Landscape(
            "rosenbrock",
            "Rosenbrock function  $f = (1 - x)^2 + 100(y - x^2)^2$",
            (1 - x) ** 2 + 100 * (y - x**2) ** 2,
            minima=((1.0, 1.0),),
            start=(-1.5, 2.0),
            box=(-2.0, 2.0, -1.0, 3.0),
            lr=_lr(0.002, 0.001, 1.0, 0.005, 0.1, 0.5, 0.04, 0.1),
            steps=1000,
            about="a curved, flat-bottomed valley; minimum at (1, 1)",
        ),
        Landscape(
            "saddle",
            "Saddle point  $f = x^2/2 + y^4/4 - y^2/2$",
            x**2 / 2 + y**4 / 4 - y**2 / 2,
            minima=((0.0, 1.0), (0.0, -1.0)),
            start=(-2.0, 1e-3),
            box=(-2.5, 2.5, -2.0, 2.0),
            lr=_lr(0.1, 0.05, 0.5, 0.05, 0.1, 0.1, 0.1, 0.1),
            steps=150,
            about="a saddle at (0, 0) between minima at (0, 1) and (0, -1); starts on the ridge",
        ),
        Landscape(
            "himmelblau",
            "Himmelblau function",
            (x**2 + y - 11) ** 2 + (x + y**2 - 7) ** 2,
            minima=(
                (3.0, 2.0),
                (-2.805118086952745, 3.131312518250573),
                (-3.779310253377747, -3.283185991286170),
                (3.584428340330492, -1.848126526964404),
            ),
            start=(-0.5, -0.5),
            box=(-5.0, 5.0, -5.0, 5.0),
            lr=_lr(0.01, 0.002, 0.5, 0.05, 0.1, 0.1, 0.1, 0.1),
            steps=200,
            about="four minima of value 0",
        ),
    )
}

ALIASES = {alias: ls.name for ls in LANDSCAPES.values() for alias in ls.aliases}


def get_landscape(name: str) -> Landscape:
    """The landscape called ``name`` (or an alias); KeyError with the choices otherwise."""
    key = ALIASES.get(name, name)
    if key in LANDSCAPES:
        return LANDSCAPES[key]
    hint = difflib.get_close_matches(name, [*LANDSCAPES, *ALIASES], n=1)
    extra = f" (did you mean {hint[0]!r}?)" if hint else ""
    raise KeyError(f"unknown function {name!r}{extra}; choose from {', '.join(LANDSCAPES)}")

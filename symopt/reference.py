"""The reference stepper: runs a spec straight from its SymPy equations, the oracle of every test.

It walks each expression tree and evaluates it with NumPy float64 (or mpmath, for high precision).
It shares nothing with code generation: no printer, no CSE, no hoisting, no templates, so a bug
there cannot hide by being repeated here.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping, Sequence
from functools import reduce

import numpy as np
import sympy

from symopt.errors import SpecError
from symopt.spec import Assignment, G, Spec, T, W, symbol_table
from symopt.spec.common import COLS, ROWS
from symopt.spec.parse import Grad
from symopt.spec.tensor import MatProduct, ReductionBase, Transposed

GradientFn = Callable[[np.ndarray], np.ndarray]


class _Float64:
    def number(self, x: sympy.Expr):
        return float(x)

    def sqrt(self, x):
        return np.sqrt(x)

    def power(self, x, e):
        return np.power(x, e)

    abs = staticmethod(np.abs)
    exp = staticmethod(np.exp)
    log = staticmethod(np.log)
    sign = staticmethod(np.sign)
    maximum = staticmethod(np.maximum)
    minimum = staticmethod(np.minimum)

    def array(self, x) -> np.ndarray:
        return np.array(x, dtype=np.float64)

    def tensor_sqrt(self, x):
        return math.sqrt(x)

    def rounded(self, x):
        """The result of one operation: exact here; a perturbed arithmetic rounds it
        (:mod:`symopt.verify.tolerance`)."""
        return x


class _Mpmath:
    """Element-wise mpmath arithmetic on object arrays (slow; for precision studies)."""

    def __init__(self, digits: int = 50):
        import mpmath

        self.mp = mpmath.mp
        self.mp.dps = digits
        self.mpmath = mpmath
        ufunc = lambda f, n=1: np.frompyfunc(f, n, 1)  # noqa: E731
        # a root of a negative is nan, as in float64 (not complex): RAdam's rectification
        # before rho_t > 5 is computed and then not chosen
        self.sqrt = ufunc(self._sqrt)
        self.power = ufunc(lambda a, b: self.mp.power(a, b), 2)
        self.abs = ufunc(abs)
        self.exp = ufunc(self.mp.exp)
        self.log = ufunc(self.mp.log)
        self.sign = ufunc(self.mp.sign)
        self.maximum = ufunc(lambda a, b: a if a >= b else b, 2)
        self.minimum = ufunc(lambda a, b: a if a <= b else b, 2)

    def _sqrt(self, x):
        return self.mp.sqrt(x) if x >= 0 else self.mp.nan

    rounded = _Float64.rounded  # exact

    def tensor_sqrt(self, x):
        return self._sqrt(x)

    def number(self, x: sympy.Expr):
        return (
            self.mp.mpf(sympy.Rational(x).p) / self.mp.mpf(sympy.Rational(x).q)
            if x.is_Rational
            else self.mp.mpf(str(sympy.N(x, self.mp.dps + 5)))
        )

    def array(self, x) -> np.ndarray:
        arr = np.asarray(x)
        out = np.empty(arr.shape, dtype=object)
        out.flat = [
            self.mp.mpf(float(v)) if not isinstance(v, self.mpmath.mpf) else v for v in arr.flat
        ]
        return out


def evaluate(expr: sympy.Expr, env: Mapping[sympy.Symbol, object], arith, grad=None):
    """Evaluate a SymPy expression tree over arrays/scalars bound in ``env``."""
    return compile_tree(expr, arith)(env, grad)


Compiled = Callable[[Mapping, object], object]


def compile_tree(expr: sympy.Expr, arith) -> Compiled:
    """The tree as nested closures ``f(env, grad)``: the same walk as interpreting it, with the
    dispatch on node types done once instead of at every step."""
    if expr.is_Symbol:
        return lambda env, grad: env[expr]
    if expr.is_Number or expr.is_NumberSymbol:
        value = arith.number(expr)
        return lambda env, grad: value
    operation = _operation(expr, arith)
    if isinstance(expr, ROUNDED):
        rounded = arith.rounded
        return lambda env, grad: rounded(operation(env, grad))
    return operation


def _operation(expr: sympy.Expr, arith) -> Compiled:  # noqa: C901  (one case per node type)
    """One node of an expression tree, over its compiled arguments."""
    if isinstance(expr, sympy.Piecewise):
        return _piecewise(expr, arith)
    kids = [compile_tree(a, arith) for a in expr.args]
    first = kids[0] if kids else None
    if isinstance(expr, sympy.Add):
        return lambda env, grad: reduce(operator.add, [k(env, grad) for k in kids])
    if isinstance(expr, sympy.Mul):
        return lambda env, grad: reduce(operator.mul, [k(env, grad) for k in kids])
    if isinstance(expr, sympy.Pow):
        e = expr.args[1]
        if e == sympy.S.Half:
            return lambda env, grad: arith.sqrt(first(env, grad))
        if e == -sympy.S.Half:
            return lambda env, grad: 1.0 / arith.sqrt(first(env, grad))
        if e.is_Integer:
            n = int(e)
            if n > 0:
                return lambda env, grad: first(env, grad) ** n
            return lambda env, grad: 1.0 / first(env, grad) ** (-n)
        power = kids[1]
        return lambda env, grad: arith.power(first(env, grad), power(env, grad))
    unary = {
        sympy.Abs: arith.abs,
        sympy.exp: arith.exp,
        sympy.log: arith.log,
        sympy.sign: arith.sign,
        sympy.Not: np.logical_not,
        Transposed: np.transpose,
    }
    for kind, fn in unary.items():
        if isinstance(expr, kind):
            return lambda env, grad, fn=fn: fn(first(env, grad))
    folds = {
        sympy.Max: arith.maximum,
        sympy.Min: arith.minimum,
        sympy.And: np.logical_and,
        sympy.Or: np.logical_or,
    }
    for kind, fn in folds.items():
        if isinstance(expr, kind):
            return lambda env, grad, fn=fn: reduce(fn, [k(env, grad) for k in kids])
    if isinstance(expr, ReductionBase):
        return lambda env, grad: _reduce(expr, first(env, grad), arith)
    if isinstance(expr, MatProduct):
        return lambda env, grad: np.matmul(first(env, grad), kids[1](env, grad))
    if isinstance(expr, sympy.core.relational.Relational):
        relation = RELATIONS[type(expr)]
        return lambda env, grad: relation(first(env, grad), kids[1](env, grad))
    if expr in (sympy.true, sympy.false):
        value = bool(expr)
        return lambda env, grad: value
    if isinstance(expr, Grad):
        return lambda env, grad: _grad(grad)(first(env, grad))
    raise TypeError(f"the reference stepper cannot evaluate {type(expr).__name__}: {expr}")


def _piecewise(expr: sympy.Piecewise, arith) -> Compiled:
    """Both branches are evaluated, then chosen element by element (np.where's semantics): the
    unchosen branch may hold inf or nan, which the choice drops."""
    last = compile_tree(expr.args[-1].expr, arith)
    branches = [(compile_tree(b.cond, arith), compile_tree(b.expr, arith)) for b in expr.args[:-1]]

    def run(env, grad):
        out = last(env, grad)
        for cond, value in reversed(branches):
            out = np.where(cond(env, grad), value(env, grad), out)
        return out[()] if isinstance(out, np.ndarray) and out.ndim == 0 else out

    return run


def _grad(grad):
    if grad is None:
        raise ValueError("grad(...) needs a gradient function; pass grad_fn to step()")
    return grad


#: The operations whose results a floating-point implementation rounds.
ROUNDED = (sympy.Add, sympy.Mul, sympy.Pow, sympy.exp, sympy.log, ReductionBase, MatProduct)

RELATIONS = {
    sympy.StrictLessThan: np.less,
    sympy.LessThan: np.less_equal,
    sympy.StrictGreaterThan: np.greater,
    sympy.GreaterThan: np.greater_equal,
    sympy.Equality: np.equal,
    sympy.Unequality: np.not_equal,
}
#: ReductionBase axes over the last two dimensions (a stack of matrices): rows -> one value per row
#: (reduce over the last axis), cols -> one per column (reduce over the one before).
AXES = {None: None, "rows": -1, "cols": -2}


def _reduce(node: ReductionBase, x, arith):
    """A reduction in the arithmetic of ``arith`` (object arrays for mpmath)."""
    x = np.asarray(x)
    if node.axis is not None and x.ndim < 2:
        raise ValueError(f"{type(node).__name__} needs a 2-D value, got shape {x.shape}")
    axis = AXES[node.axis]
    keep = axis is not None
    if node.op == "sum":
        return np.sum(x, axis=axis, keepdims=keep)
    if node.op == "mean":
        return np.sum(x, axis=axis, keepdims=keep) / (x.size if axis is None else x.shape[axis])
    if node.op == "norm":
        return arith.tensor_sqrt(np.sum(x * x))
    return np.max(x)


def state_shape(shape: str, p_shape: tuple[int, ...]) -> tuple[int, ...]:
    """The array shape of a state of the given kind (full, scalar, rows, cols) for a parameter."""
    if shape == "full":
        return p_shape
    if shape == "scalar":
        return ()
    if shape == "rows":  # one per row of each matrix in the last two dimensions
        return (*p_shape[:-1], 1)
    return (*p_shape[:-2], 1, p_shape[-1])


class ReferenceStepper:
    """Steps a spec on a list of arrays, in float64 (or mpmath), straight from its equations.

    ``step(grads)`` runs the spec's executable update (its look-ahead-free form when it has one)
    on a given gradient stream. ``step(grad_fn=f)`` runs the spec's own update with ``g = f(w)`` and
    ``grad(x) = f(x)``, so look-ahead methods are exercised as written.
    """

    def __init__(
        self,
        spec: Spec,
        params: Sequence[np.ndarray],
        *,
        precision: str = "float64",
        arith=None,
        **hyper: float,
    ):
        """``arith`` overrides ``precision``: an arithmetic object (the perturbed float64 of
        :mod:`symopt.verify.tolerance`)."""
        self.spec = spec
        self.arith = arith or (_Mpmath() if precision == "mpmath" else _Float64())
        self.hyper = dict(spec.defaults)
        self.set_hyper(**hyper)
        self.params = [self.arith.array(p) for p in params]
        self.steps = 0
        self.symbols = symbol_table(spec)
        for form in (spec.update, spec.executable_update):
            for a in form:
                self.symbols.setdefault(a.target, sympy.Symbol(a.target, real=True))
        for p in self.params:
            if not spec.takes_update(p.ndim) and not spec.otherwise:
                raise ValueError(
                    f"{spec.name} applies to {spec.shapes_taken} parameters only, "
                    f"got one of shape {p.shape}"
                )
        self._trees: dict[int, tuple[sympy.Expr, Compiled]] = {}
        self.state = [self._initial_state(p) for p in self.params]

    def _compiled(self, expr: sympy.Expr) -> Compiled:
        """``expr`` compiled once per stepper (keyed by identity: the spec keeps it alive)."""
        hit = self._trees.get(id(expr))
        if hit is None or hit[0] is not expr:
            hit = self._trees[id(expr)] = (expr, compile_tree(expr, self.arith))
        return hit[1]

    def set_hyper(self, **hyper: float) -> None:
        for k, v in hyper.items():
            if k not in self.hyper:
                raise SpecError(
                    f"unknown hyperparameter {k!r}; {self.spec.name} has {', '.join(self.hyper)}"
                )
            self.hyper[k] = float(v)

    @property
    def t(self) -> int:
        """The step counter of the most recent step (t_start for the first)."""
        return self.spec.t_start + self.steps - 1

    def _scalars(self) -> dict[sympy.Symbol, object]:
        env = {
            self.symbols[k]: self.arith.number(sympy.Rational(repr(v)))
            if not isinstance(self.arith, _Float64)
            else v
            for k, v in self.hyper.items()
        }
        return env

    def _update_for(self, p: np.ndarray, update: Sequence[Assignment]) -> Sequence[Assignment]:
        """``update`` for a parameter of the shapes the spec's update is for, else ``otherwise``."""
        return update if self.spec.takes_update(p.ndim) else self.spec.otherwise

    def _initial_state(self, p: np.ndarray, g: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """The state a parameter's update assigns; state set from g or w waits for the step."""
        env = self._scalars()
        env[self.symbols[W]] = p
        if g is not None:
            env[self.symbols[G]] = g
        first_step = {self.symbols[W], self.symbols[G]}
        out = {}
        for s in self.spec.states_of(self._update_for(p, self.spec.update)):
            if s.init.free_symbols & first_step and g is None:
                continue
            value = evaluate(s.init, env, self.arith)
            out[s.name] = self.arith.array(np.broadcast_to(value, state_shape(s.shape, p.shape)))
        return out

    def step(
        self,
        grads: Sequence[np.ndarray] | None = None,
        *,
        grad_fn: GradientFn | None = None,
        **hyper: float,
    ) -> None:
        self.set_hyper(**hyper)
        self.steps += 1
        if grad_fn is not None:
            update: Sequence[Assignment] = self.spec.update
            grads = [None] * len(self.params)
        else:
            update = self.spec.executable_update
            if grads is None or len(grads) != len(self.params):
                raise ValueError(f"expected {len(self.params)} gradient arrays")
        for i, g in enumerate(grads):
            self.params[i], self.state[i] = self._step_one(
                self.params[i], g, self.state[i], update, grad_fn
            )

    def _step_one(self, w, g, state, update, grad_fn):
        env = self._scalars()
        env[self.symbols[T]] = self.t
        env[self.symbols[W]] = w
        env[self.symbols[G]] = self.arith.array(grad_fn(w) if grad_fn is not None else g)
        if w.ndim >= 2:
            env[self.symbols[ROWS]], env[self.symbols[COLS]] = w.shape[-2:]
        update = self._update_for(w, update)
        shapes = {s.name: state_shape(s.shape, w.shape) for s in self.spec.states_of(update)}
        shapes[W] = w.shape
        with np.errstate(all="ignore"):
            if len(state) < len(shapes) - 1:  # the first step: state set from g and w
                state = {**self._initial_state(w, env[self.symbols[G]]), **state}
            for name, value in state.items():
                env[self.symbols[name]] = value
            for a in update:
                value = self._compiled(a.expr)(env, grad_fn)
                if a.target in shapes:  # w and the state keep their shapes
                    value = np.broadcast_to(value, shapes[a.target])
                env[self.symbols[a.target]] = self.arith.array(value)
        return env[self.symbols[W]], {k: env[self.symbols[k]] for k in shapes if k != W}


def relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    """max |a - e| / max(|e|), the scale-aware error the generated tests bound."""
    expected = np.asarray(expected, dtype=np.float64)
    scale = float(np.max(np.abs(expected))) if expected.size else 0.0
    diff = (
        float(np.max(np.abs(np.asarray(actual, dtype=np.float64) - expected)))
        if expected.size
        else 0.0
    )
    if scale == 0.0 or not math.isfinite(scale):
        return diff
    return diff / scale


def original_variables(
    spec: Spec, w: np.ndarray, state: Mapping[str, np.ndarray], hyper: Mapping[str, float]
) -> dict[str, np.ndarray]:
    """Map a look-ahead-free form's variables back to the spec's own (Nesterov: w = p - rho v)."""
    symbols = symbol_table(spec)
    env: dict[sympy.Symbol, object] = {symbols[k]: float(v) for k, v in hyper.items()}
    env[symbols[W]] = np.asarray(w, dtype=np.float64)
    env.update({symbols[k]: np.asarray(v, dtype=np.float64) for k, v in state.items()})
    variables = spec.lookahead_free.variables if spec.lookahead_free else {}
    names = (W, *spec.state_names)
    return {n: evaluate(variables.get(n, symbols[n]), env, _Float64()) for n in names}

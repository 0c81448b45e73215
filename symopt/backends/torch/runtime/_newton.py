"""Newton's method shared by the generated PyTorch Newton optimizers: the dense Hessian by
double backward, a Cholesky solve of the derived system, and the fallbacks where the Hessian is
not positive definite (fail, an LU solve, or steepest descent with Armijo backtracking); and the
line-search variant, which shifts H until it is positive definite and backtracks along the step.

A generated subclass binds what is derived from its spec (the hyperparameters' domains, the
system ``newton_system(g, H) -> (A, b)``, or ``newton_system(g, H, tau)`` and the slope
``model_slope(g, d)`` for the line search, and ``predicted_reduction``) and the constants.

Depends on torch only.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.optim import Optimizer

from ._second_order import (
    add_flat,
    check_params,
    dense_hessian,
    host_scalars,
    loss_and_gradient,
    positive_semidefinite,
)

__all__ = ["STATUS", "NewtonOptimizer", "NotPositiveDefiniteError", "Result", "minimize"]
__all__ += ["LineSearchError", "LineSearchOptimizer", "LineSearchResult"]

#: What to do where H is not positive definite; the line search always shifts it (MODIFY).
ON_INDEFINITE = ("fail", "gradient", "solve")
MODIFY = "modify"
#: Most parameters the optimizer accepts by default: H has n^2 entries (32 MB in float64 here).
MAX_PARAMS = 2000
#: step() takes no step once ||g|| <= gtol; the gtol option overrides it.
GTOL = 1e-8

STATUS = {
    0: "converged: ||g|| <= gtol, at a minimum (H positive semidefinite)",
    1: "not converged (in minimize: maximum number of iterations reached)",
    2: "the Hessian is not positive definite (on_indefinite 'fail'), or singular ('solve')",
    3: "non-finite loss or gradient",
    4: "stopped at a saddle point or maximum: ||g|| <= gtol but H is not positive semidefinite",
}


@dataclass
class Result:
    """Outcome of :func:`minimize`; the fields follow scipy.optimize.OptimizeResult."""

    x: torch.Tensor  # the last point (detached, dtype and device of x0)
    fun: float  # the loss there
    grad_norm: float  # ||g|| there
    nit: int  # steps taken
    nfev: int  # loss evaluations (closure calls: one per step, and the line search's trials)
    ngev: int  # gradient evaluations
    nhev: int  # dense Hessian evaluations (the check at a stationary point included)
    nhessp: int  # always 0: the Hessian is formed densely
    success: bool
    status: int  # see STATUS (the line search's in its generated module)
    message: str
    n_fallback: int = 0  # steps that took the on_indefinite fallback (line search: tau > 0)


@dataclass
class LineSearchResult(Result):
    """Outcome of :func:`minimize` for the line search."""

    n_backtracks: int = 0  # trial step lengths the Armijo test rejected, in all


class NotPositiveDefiniteError(ArithmeticError):
    """The Hessian is not positive definite where the Newton step needs it to be."""


class LineSearchError(ArithmeticError):
    """No step length passed the Armijo test (or no shift made H + tau I positive definite)."""


def stationary_kind(H: torch.Tensor, psd_tol: float) -> str | None:
    """None at a minimum (H positive semidefinite), else "a maximum" or "a saddle point"."""
    if positive_semidefinite(H, psd_tol):
        return None
    return "a maximum" if positive_semidefinite(-H, psd_tol) else "a saddle point"


class NewtonOptimizer(Optimizer):
    """One Newton iteration per ``step(closure)``; see the generated subclass.

    A subclass sets ``hyperparameters`` (the spec's), ``check_hyper(*hyper)``,
    ``newton_system(g, H)``, ``on_indefinite`` (the spec's default), ``psd_tol`` (the check at
    a stationary point) and the "gradient" fallback's ``armijo_c1``, ``backtrack`` and
    ``max_backtracks``.
    """

    hyperparameters: tuple[str, ...] = ()
    check_hyper: Callable[..., None]
    newton_system: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
    on_indefinite: str = "fail"
    psd_tol: float = 1e-8
    armijo_c1: float = 1e-4
    backtrack: float = 0.5
    max_backtracks: int = 60
    #: the choices of on_indefinite, and the counters the state keeps besides the evaluations
    choices: tuple[str, ...] = ON_INDEFINITE
    counters: tuple[str, ...] = ("n_fallback",)
    result_type: type = Result

    def __init__(
        self,
        params,
        hyper: dict,
        *,
        on_indefinite: str,
        gtol: float = GTOL,
        max_params: int = MAX_PARAMS,
    ) -> None:
        options = {"on_indefinite": on_indefinite, "gtol": gtol, "max_params": max_params}
        super().__init__(params, {**hyper, **options})

    def add_param_group(self, param_group: dict) -> None:
        if self.param_groups:
            raise ValueError(
                f"{type(self).__name__} takes one parameter group: its step couples all "
                "parameters through the Hessian"
            )
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        self._check_options(group)
        check_params(group["params"], type(self).__name__)
        n = sum(p.numel() for p in group["params"])
        if n > group["max_params"]:
            raise ValueError(
                f"{type(self).__name__} forms the dense n x n Hessian: n = {n} parameters is "
                f"more than max_params = {group['max_params']}; use the trust-region optimizer "
                "(Hessian-vector products only), or raise max_params"
            )

    def _state(self) -> dict:
        """The optimizer's state: one per instance, kept with the first parameter (as LBFGS)."""
        state = self.state[self.param_groups[0]["params"][0]]
        if not state:
            state.update(iteration=0, nfev=0, ngev=0, nhev=0, **dict.fromkeys(self.counters, 0))
            state.update(loss=math.nan, grad_norm=math.nan, status=1)
        return state

    def _evaluate(self, closure) -> tuple[torch.Tensor, tuple | None]:
        """L(w), and (g, H, L(w), ||g||^2) or None once ||g|| <= gtol (status 0, or 4)."""
        if closure is None:
            raise ValueError(f"{type(self).__name__}.step needs a closure that returns the loss")
        group = self.param_groups[0]
        self._check_options(group)
        params = group["params"]
        state = self._state()
        k = state["iteration"]
        loss, g_graph = loss_and_gradient(closure, params, type(self).__name__)  # L(w), g = dL/dw
        g = g_graph.detach()
        state["nfev"] += 1
        state["ngev"] += 1
        f, gg = host_scalars(loss, g.dot(g))  # L(w), ||g||^2
        g_norm = math.sqrt(gg)  # ||g||
        state["loss"], state["grad_norm"] = f, g_norm
        if not (math.isfinite(f) and math.isfinite(g_norm)):
            state["status"] = 3
            raise FloatingPointError(
                f"{type(self).__name__}: the loss ({f}) or its gradient (norm {g_norm}) is not "
                f"finite at the parameters of step {k}"
            )
        H = dense_hessian(g_graph, params)  # H = d^2 L / dw^2
        del g_graph  # frees the graph of g
        state["nhev"] += 1
        if g_norm <= group["gtol"]:  # ||g|| <= gtol: stationary; a minimum where H >= 0
            kind = stationary_kind(H, self.psd_tol)
            if kind is None:
                state["status"] = 0
                return loss, None
            state["status"] = 4
            if group["on_indefinite"] == "fail":
                raise NotPositiveDefiniteError(
                    f"{type(self).__name__} step {k}: stopped at {kind}, not a minimum: the "
                    f"gradient vanishes (||g|| = {g_norm:.3g} <= gtol) but the Hessian is not "
                    "positive semidefinite"
                )
            return loss, None
        state["status"] = 1
        return loss, (g, H, f, gg)

    @torch.no_grad()
    def step(self, closure=None):
        """One Newton iteration; returns the loss at the point it started from."""
        loss, point = self._evaluate(closure)
        if point is None:
            return loss.detach()
        g, H, f, gg = point
        group = self.param_groups[0]
        params = group["params"]
        state = self._state()
        k, g_norm = state["iteration"], math.sqrt(gg)
        A, b = self.newton_system(g, H)  # the derived system A d = b
        factor, info = torch.linalg.cholesky_ex(A)  # A = L L^T, where A is positive definite
        if int(info) == 0:
            d = torch.cholesky_solve(b.unsqueeze(1), factor).squeeze(1)  # d = A^-1 b
            add_flat(params, d)  # w <- w + d
            state["iteration"] += 1
            return loss.detach()
        if group["on_indefinite"] == "fail":
            state["status"] = 2
            raise NotPositiveDefiniteError(
                f"{type(self).__name__} step {k}: the Hessian is not positive definite (Cholesky "
                f"failed at its leading minor of order {int(info)}; ||g|| = {g_norm:.3g}), so "
                "the Newton step H d = -g would not minimise the model; start nearer a minimum, "
                "or use the trust-region optimizer"
            )
        state["n_fallback"] += 1
        if group["on_indefinite"] == "solve":  # A d = b by LU with partial pivoting
            lu, pivots, info = torch.linalg.lu_factor_ex(A)  # P A = L U
            smallest, largest = host_scalars(lu.diagonal().abs().min(), A.abs().max())
            if int(info) != 0 or smallest <= A.shape[0] * torch.finfo(A.dtype).eps * max(
                1.0, largest
            ):  # a pivot |U_kk| <= n eps max(1, max |A_ij|): A is singular
                state["status"] = 2
                raise NotPositiveDefiniteError(
                    f"{type(self).__name__} step {k}: the Hessian is singular (and not positive "
                    "definite): no Newton step"
                )
            d = torch.linalg.lu_solve(lu, pivots, b.unsqueeze(1)).squeeze(1)  # d = A^-1 b
            add_flat(params, d)  # w <- w + d
            state["iteration"] += 1
            return loss.detach()
        # "gradient": steepest descent d = -t g with Armijo backtracking
        (ghg,) = host_scalars(g.dot(H @ g))  # g.H g
        t = gg / ghg if ghg > 0.0 else 1.0 / g_norm  # the Cauchy length, else ||d|| = 1
        saved = [p.clone() for p in params]  # w
        for i in range(self.max_backtracks):
            if i > 0:
                for p, s in zip(params, saved, strict=True):  # back to w
                    p.copy_(s)
            add_flat(params, -t * g)  # w <- w - t g
            (f_new,) = host_scalars(closure())  # L(w - t g), under no_grad
            state["nfev"] += 1
            if f_new <= f - self.armijo_c1 * t * gg:  # Armijo: L(w - t g) <= L(w) - c1 t ||g||^2
                break
            t *= self.backtrack  # t <- backtrack t
        state["iteration"] += 1
        return loss.detach()

    def _check_options(self, group: dict) -> None:
        if group["on_indefinite"] not in self.choices:
            raise ValueError(
                f"on_indefinite must be one of {self.choices}, not {group['on_indefinite']!r}"
            )
        self.check_hyper(*(float(group[name]) for name in self.hyperparameters))
        if not group["gtol"] >= 0.0:
            raise ValueError(f"gtol must be >= 0, got {group['gtol']!r}")
        if not (isinstance(group["max_params"], int) and group["max_params"] >= 1):
            raise ValueError(f"max_params must be an int >= 1, got {group['max_params']!r}")


def shifted_cholesky(system, g: torch.Tensor, H: torch.Tensor, beta: float, max_shifts: int):
    """Algorithm 3.3 (the generated module's (1)): (L, b, tau), L L^T = H + tau I, or None."""
    scale, smallest = host_scalars(H.abs().max(), H.diagonal().min())  # s = max_ij |H_ij|
    shift = beta * (scale if scale > 0.0 else 1.0)
    tau = 0.0 if smallest > 0.0 else shift - smallest
    for _ in range(max_shifts):
        A, b = system(g, H, tau)  # the derived system (H + tau I) d = -g
        factor, info = torch.linalg.cholesky_ex(A)
        if int(info) == 0:
            return factor, b, tau
        tau = max(2.0 * tau, shift)
    return None


class LineSearchOptimizer(NewtonOptimizer):
    """Newton's method with a line search, one iteration per ``step(closure)``; the generated
    subclass sets NewtonOptimizer's attributes (c1, rho, beta; newton_system(g, H, tau)),
    model_slope(g, d), max_shifts and rounding (|g^T d| <= rounding eps max(1, |L|): too small)."""

    on_indefinite = MODIFY
    max_shifts: int = 2100
    rounding: float = 10.0
    choices = (MODIFY,)
    counters = ("n_fallback", "n_backtracks")
    result_type = LineSearchResult

    @torch.no_grad()
    def step(self, closure=None):
        """One iteration; returns the loss at the point it started from."""
        loss, point = self._evaluate(closure)
        if point is None:
            return loss.detach()
        g, H, f, _ = point
        group, state, name = self.param_groups[0], self._state(), type(self).__name__
        params, k = group["params"], state["iteration"]
        if not bool(torch.isfinite(H).all()):
            state["status"] = 3
            raise FloatingPointError(f"{name}: the Hessian is not finite at step {k}'s parameters")
        shifted = shifted_cholesky(self.newton_system, g, H, group["beta"], self.max_shifts)
        if shifted is None:
            state["status"] = 2
            raise LineSearchError(f"{name} step {k}: no shift made H + tau I positive definite")
        factor, b, tau = shifted
        state["n_fallback"] += tau > 0.0  # H itself was not used: shifted
        d = torch.cholesky_solve(b.unsqueeze(1), factor).squeeze(1)  # d = -(H + tau I)^-1 g
        (slope,) = host_scalars(self.model_slope(g, d))  # g^T d < 0: a descent direction
        unmeasurable = -slope <= self.rounding * torch.finfo(g.dtype).eps * max(1.0, abs(f))
        saved = [p.clone() for p in params]  # w
        t, why = 1.0, f"none of {self.max_backtracks} trials passed"
        for trial in range(self.max_backtracks):
            t *= group["rho"] if trial else 1.0
            for p, s in zip(params, saved, strict=True):  # back to w (at first: it is there)
                p.copy_(s)
            add_flat(params, t * d)  # w <- w + t d
            if all(torch.equal(p, s) for p, s in zip(params, saved, strict=True)):
                why = f"t d fell below the rounding of w at t = {t:.3g}"
                break
            (f_new,) = host_scalars(closure())  # L(w + t d), under no_grad
            state["nfev"] += 1
            if math.isfinite(f_new) and (unmeasurable or f_new <= f + group["c1"] * t * slope):
                state["iteration"] += 1
                return loss.detach()
            state["n_backtracks"] += 1
        for p, s in zip(params, saved, strict=True):  # no step: back to w
            p.copy_(s)
        state["status"] = 2
        raise LineSearchError(f"{name} step {k}: no step length passed the Armijo test ({why})")


def minimize(
    cls: type[NewtonOptimizer],
    fun: Callable[[torch.Tensor], torch.Tensor],
    x0: torch.Tensor,
    *,
    gtol: float = GTOL,
    max_iter: int | None = None,
    on_indefinite: str | None = None,
    max_params: int = MAX_PARAMS,
    **hyper: float,
) -> Result | LineSearchResult:
    """Minimise fun (a tensor x -> a scalar tensor, differentiable twice) from x0 with
    ``cls`` (a generated Newton optimizer) until ||g|| <= gtol.

    x keeps the dtype and device of x0; max_iter defaults to 200 n, on_indefinite to the
    spec's (``cls.on_indefinite``), the hyperparameters to the spec's. Status: STATUS (the
    line search's: in its module); success only for status 0.
    """
    x = x0.detach().clone().requires_grad_(True)
    max_iter = 200 * x.numel() if max_iter is None else max_iter
    on_indefinite = cls.on_indefinite if on_indefinite is None else on_indefinite
    opt = cls([x], **hyper, on_indefinite=on_indefinite, gtol=gtol, max_params=max_params)
    state = opt._state()

    def closure() -> torch.Tensor:
        return fun(x)

    status = None
    message = ""
    while status is None:
        try:
            opt.step(closure)
        except (NotPositiveDefiniteError, FloatingPointError, LineSearchError) as exc:
            if state["status"] == 1:
                raise
            status, message = state["status"], str(exc)
            break
        if state["status"] != 1:
            status = state["status"]
        elif state["iteration"] >= max_iter:
            status = 1
    if status == 1:  # the last step moved: L and g where it ended
        loss, g = loss_and_gradient(closure, [x], "minimize")
        state["nfev"] += 1
        state["ngev"] += 1
        f, gg = host_scalars(loss, g.dot(g))
        state["loss"], state["grad_norm"] = f, math.sqrt(gg)
    if not message:
        message = {
            0: f"gradient norm {state['grad_norm']:.2e} <= gtol after {state['iteration']} "
            "iterations",
            1: f"maximum number of iterations ({max_iter}) reached",
            4: f"stopped at a saddle point or maximum after {state['iteration']} iterations: "
            "the gradient vanishes but the Hessian is not positive semidefinite",
        }[status]
    return cls.result_type(
        x=x.detach(),
        fun=state["loss"],
        grad_norm=state["grad_norm"],
        nit=state["iteration"],
        nfev=state["nfev"],
        ngev=state["ngev"],
        nhev=state["nhev"],
        nhessp=0,
        success=status == 0,
        status=status,
        message=message,
        **{name: state[name] for name in cls.counters},
    )

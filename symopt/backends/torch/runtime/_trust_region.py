"""The trust-region driver of the generated PyTorch optimizers (the subproblem solvers are in
``_subproblem.py``): ``step(closure)`` and :func:`minimize`, a port of the NumPy runtime's
driver: its decisions in the same order, its counters, statuses and messages. One closure call
per iteration: L at the trial point, and where rho > eta its gradient (create_graph) from the
same graph, kept with the graph as the next point's (state_dict keeps L and g, not the graph).

A generated subclass binds the spec's derived pieces and constants (``method``) and its
hyperparameters. Depends on torch only.
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
    closure_loss,
    dense_hessian,
    flat,
    gradient,
    hessian_vector_product,
    host_scalars,
    parameters_copied_when_saved,
    positive_semidefinite,
)
from ._subproblem import (
    Step,
    TrustRegion,
    cg_tolerance,
    choose_subproblem,
    exact_step,
    model_minimiser,
    steihaug_step,
)

__all__ = ["STATUS", "Result", "TrustRegionOptimizer", "minimize", "ratio", "update_radius"]

GTOL = 1e-8  # step() takes no step once ||g|| <= gtol (the gtol option)
CHECK_MAX_PARAMS = 2000  # minimize()'s final check forms the dense H for at most this many
#: Status codes (the same in every target); minimize's Result.message says more.
STATUS = {
    0: "converged",
    1: "maximum number of iterations reached",
    2: "trust radius collapsed",
    3: "non-finite f, gradient or Hessian at the current point",
    4: "stopped at a saddle point",
}


@dataclass
class Result:
    """Outcome of :func:`minimize`; the fields follow scipy.optimize.OptimizeResult."""

    x: torch.Tensor  # the last accepted point (detached, dtype and device of x0)
    fun: float  # the loss there
    grad_norm: float  # ||g|| there
    nit: int  # trust-region iterations, rejected steps included (as scipy counts them)
    nfev: int  # loss evaluations (closure calls)
    ngev: int  # gradient evaluations (at the start and at trial points with rho > eta)
    nhev: int  # dense Hessians (one per point the exact solver steps from, and the check's)
    nhessp: int  # Hessian-vector products
    success: bool
    status: int  # see STATUS
    message: str


def update_radius(
    radius: float, rho: float, step_norm: float, on_boundary: bool, x_scale: float, hyper: dict
) -> float:
    """Next radius from rho = actual / predicted reduction and the step length ||d||.

    Shrinking to a fraction of ||d|| (not of r) lets a failed interior step cut the radius
    below its own length at once; expansion is to a multiple of ||d||, only on the boundary,
    and at most max_radius x_scale, x_scale = max(1, ||x||): the bound scales with the point.
    """
    if rho < hyper["shrink_below"]:
        return hyper["shrink"] * step_norm
    if rho > hyper["expand_above"] and on_boundary:
        return min(max(radius, hyper["expand"] * step_norm), hyper["max_radius"] * x_scale)
    return radius


def ratio(f: float, f_new: float, predicted: float, rounding: float, eps: float) -> float:
    """rho = (f(x) - f(x + d) + delta) / (m(0) - m(d) + delta), delta = rounding eps |f(x)|.

    Conn, Gould & Toint (2000), section 17.4.2: near a minimiser both differences fall to the
    rounding error of f, and the plain ratio is noise that collapses the radius; delta makes it
    tend to 1 there (relative to |f|, not CGT's max(1, |f|): invariant to the scale of f). A
    step without a positive finite predicted decrease, or to a non-finite f(x + d), gets -inf
    (rejected, the radius shrinks). eps: the loss dtype's.
    """
    if not (predicted > 0.0 and math.isfinite(predicted) and math.isfinite(f_new)):
        return -math.inf
    delta = rounding * eps * abs(f)
    return ((f - f_new) + delta) / (predicted + delta)


@dataclass
class _Point:
    """The current point's graph (not saved by state_dict): the gradient g with create_graph,
    the dense Hessian once formed, and the parameters' versions when they were last set."""

    g_graph: torch.Tensor
    h: torch.Tensor | None
    versions: list[int]


Outcome = tuple[int, str] | None  # a status and its message when the iteration stops


class TrustRegionOptimizer(Optimizer):
    """One trust-region iteration per ``step(closure)``; see the generated subclass.

    A subclass sets ``hyperparameters`` (the spec's, in order), ``check_hyper(*hyper)`` and
    ``method`` (the derived pieces and constants).
    """

    hyperparameters: tuple[str, ...] = ()
    check_hyper: Callable[..., None]
    method: TrustRegion

    def __init__(
        self,
        params,
        hyper: dict,
        *,
        subproblem: str = "auto",
        max_cg_iter: int | None = None,
        cg_forcing: float | None = None,
        gtol: float = GTOL,
    ) -> None:
        forcing = self.method.cg_forcing if cg_forcing is None else cg_forcing
        options = {"subproblem": subproblem, "max_cg_iter": max_cg_iter, "cg_forcing": forcing}
        self._point: _Point | None = None
        super().__init__(params, {**hyper, **options, "gtol": gtol})

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

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
        self._point = None  # the graph is rebuilt at the loaded point by the next step

    def _state(self) -> dict:
        """The optimizer's state: one per instance, kept with the first parameter (as LBFGS)."""
        group = self.param_groups[0]
        state = self.state[group["params"][0]]
        if not state:  # the radius is unlimited until the model is unbounded or a step fails
            counts = ("iteration", "accepted", "nfev", "ngev", "nhev", "nhessp", "inner")
            state.update(dict.fromkeys(counts, 0), radius=math.inf, lam_lb=0.0, grad=None)
            unknown = ("grad_norm0", "loss", "grad_norm", "rho", "step_norm")
            state.update(dict.fromkeys(unknown, math.nan), on_boundary=False, status=1)
        return state

    @property
    def radius(self) -> float:
        """The trust radius of the next step."""
        return self._state()["radius"]

    @torch.no_grad()
    def step(self, closure=None):
        """One trust-region iteration; returns the loss at the point it started from.

        Raises FloatingPointError where the loss, gradient, Hessian or a Hessian-vector product
        at the current point is not finite (status 3); takes no step once ||g|| <= gtol (status
        0) or the radius has collapsed (status 2).
        """
        if closure is None:
            raise ValueError(
                f"{type(self).__name__}.step needs a closure that returns the loss (it evaluates "
                "the loss at trial points)"
            )
        self._check_options(self.param_groups[0])
        state = self._state()
        outcome = self._prepare(closure)
        param = self._params()[0]
        loss = torch.tensor(state["loss"], dtype=param.dtype, device=param.device)
        if outcome is None:
            outcome = self._iterate(closure)
        if outcome is not None and outcome[0] == 3:
            raise FloatingPointError(f"{type(self).__name__}: {outcome[1]}")
        return loss

    def _params(self) -> list[torch.Tensor]:
        return self.param_groups[0]["params"]

    def _versions(self) -> list[int]:
        return [p._version for p in self._params()]

    def _evaluate(self, closure) -> None:
        """L and g at the current point from one closure call: a new point."""
        params, state = self._params(), self._state()
        with parameters_copied_when_saved(params):
            loss = closure_loss(closure, params, type(self).__name__)
            g_graph = gradient(loss, params)
        state["nfev"] += 1
        state["ngev"] += 1
        f, gg = host_scalars(loss, g_graph.dot(g_graph))
        state.update(loss=f, grad=g_graph.detach(), grad_norm=math.sqrt(gg))
        if not state["grad_norm0"] > 0.0:
            state["grad_norm0"] = state["grad_norm"]
        self._point = _Point(g_graph, None, self._versions())

    def _prepare(self, closure) -> Outcome:
        """L and g at the current point (from the last accepted trial, else one closure call)
        and the tests on them: status 3 (not finite) or 0 (||g|| <= gtol)."""
        state, group = self._state(), self.param_groups[0]
        stale = self._point is not None and self._point.versions != self._versions()
        if state["grad"] is None or stale:  # the parameters were set from outside
            self._evaluate(closure)
        k, f, g_norm = state["iteration"], state["loss"], state["grad_norm"]
        if not (math.isfinite(f) and math.isfinite(g_norm)):
            state["status"] = 3
            return 3, f"non-finite f or gradient at iteration {k}"
        if g_norm <= group["gtol"]:
            state["status"] = 0
            return 0, f"gradient norm {g_norm:.2e} <= gtol after {k} iterations"
        state["status"] = 1
        return None

    def _iterate(self, closure, on_accept: Callable[[], None] | None = None) -> Outcome:
        """One trust-region iteration from the prepared point (status 2 or 3 where it stops)."""
        group, params, state = self.param_groups[0], self._params(), self._state()
        method, k, f, radius = self.method, state["iteration"], state["loss"], state["radius"]
        x = flat([p.detach() for p in params], params)
        x_scale = max(1.0, math.sqrt(float(x.dot(x))))
        if radius < method.min_radius * x_scale:
            state["status"] = 2
            return 2, f"trust radius collapsed to {radius:.1e} at iteration {k} (f = {f:.6g})"
        if self._point is None:  # resumed from a state_dict: the graph at the loaded point
            self._evaluate(closure)
        point, g = self._point, state["grad"]
        exact = choose_subproblem(group["subproblem"]) == "exact"
        if exact:
            if point.h is None:
                point.h = dense_hessian(point.g_graph, params).double()
                state["nhev"] += 1
                if not bool(point.h.isfinite().all()):
                    state["status"] = 3
                    return 3, f"non-finite Hessian at iteration {k}"
            g, hv = g.double(), point.h.__matmul__  # the dense solves in float64
        else:
            product = hessian_vector_product(point.g_graph, params)

            def hv(v: torch.Tensor) -> torch.Tensor:
                state["nhessp"] += 1
                return product(v)

        tol = cg_tolerance(state["grad_norm"], state["grad_norm0"], group["cg_forcing"])
        max_cg, step = group["max_cg_iter"], None
        if radius == math.inf:
            # no radius yet: the model's minimiser while the model is bounded below
            step = model_minimiser(method, g, point.h if exact else None, hv, tol, max_iter=max_cg)
            if step is None:
                radius = state["radius"] = group["radius0"] * x_scale
        if step is None and exact:
            step = exact_step(method, g, point.h, radius, lam_lb_hint=state["lam_lb"])
        elif step is None:
            step = steihaug_step(method, g, hv, radius, tol, max_iter=max_cg)
            if step is None:
                state["status"] = 3
                return 3, f"non-finite Hessian-vector product at iteration {k}"
        self._trial(closure, g, step, x_scale, on_accept)
        return None

    def _trial(self, closure, g: torch.Tensor, step: Step, x_scale: float, on_accept) -> None:
        """Evaluate x + d (one closure call; its gradient only where rho > eta), then accept or
        restore x, and update the radius."""
        group, params, state = self.param_groups[0], self._params(), self._state()
        pred = self.method.predicted_reduction(g, step.d, step.hd)
        saved = [p.detach().clone() for p in params]
        dtype = params[0].dtype
        add_flat(params, step.d.to(dtype))
        with parameters_copied_when_saved(params):
            loss_new = closure_loss(closure, params, type(self).__name__)
        state["nfev"] += 1
        f_new, predicted, dd = host_scalars(loss_new, pred, step.d.dot(step.d))
        rho = ratio(state["loss"], f_new, predicted, self.method.rounding, torch.finfo(dtype).eps)
        step_norm = math.sqrt(dd)
        accepted = None
        if rho > group["eta"]:
            with parameters_copied_when_saved(params):
                g_graph = gradient(loss_new, params)
            state["ngev"] += 1
            gg, finite = host_scalars(g_graph.dot(g_graph), g_graph.isfinite().all())
            if finite:
                accepted = g_graph
            else:
                rho = -math.inf  # a trial point without a finite gradient
        radius = state["radius"]
        new_radius = update_radius(radius, rho, step_norm, step.on_boundary, x_scale, group)
        if accepted is not None:
            state.update(loss=f_new, grad=accepted.detach(), grad_norm=math.sqrt(gg))
            self._point = _Point(accepted, None, self._versions())
            state["lam_lb"] = 0.0
            state["accepted"] += 1
            if on_accept is not None:
                on_accept()
        else:
            for p, s in zip(params, saved, strict=True):
                p.copy_(s)
            self._point.versions = self._versions()
            if new_radius < radius:
                state["lam_lb"] = step.lam_lb
        state["radius"] = new_radius
        state["iteration"] += 1
        state["rho"], state["step_norm"] = rho, step_norm
        state["inner"], state["on_boundary"] = step.inner, step.on_boundary

    def _check_options(self, group: dict) -> None:
        self.check_hyper(*(float(group[name]) for name in self.hyperparameters))
        choose_subproblem(group["subproblem"])  # a known name
        max_cg = group["max_cg_iter"]
        if max_cg is not None and not (isinstance(max_cg, int) and max_cg >= 1):
            raise ValueError(f"max_cg_iter must be None or an int >= 1, got {max_cg!r}")
        if not 0.0 < group["cg_forcing"] < 1.0:
            raise ValueError(f"cg_forcing must be in (0, 1), got {group['cg_forcing']!r}")
        if not group["gtol"] >= 0.0:
            raise ValueError(f"gtol must be >= 0, got {group['gtol']!r}")


def minimize(
    cls: type[TrustRegionOptimizer],
    fun: Callable[[torch.Tensor], torch.Tensor],
    x0: torch.Tensor,
    *,
    gtol: float = GTOL,
    max_iter: int | None = None,
    subproblem: str = "auto",
    max_cg_iter: int | None = None,
    cg_forcing: float | None = None,
    check_second_order: bool = True,
    callback: Callable[[torch.Tensor], None] | None = None,
    **hyper: float,
) -> Result:
    """Minimise fun (a tensor x -> a scalar tensor, twice differentiable) from x0 with ``cls``
    (a generated trust-region optimizer) until ||g|| <= gtol; the NumPy target's driver.

    x keeps the dtype and device of x0. max_iter defaults to 200 n; subproblem: "exact"
    (Moré-Sorensen on the dense Hessian, in float64), "cg" (Steihaug on Hessian-vector
    products) or "auto" (cg: see choose_subproblem). check_second_order: at convergence, for
    at most CHECK_MAX_PARAMS parameters, report a saddle point (status 4) where H is not
    positive semidefinite. callback(x) after every accepted step. The hyperparameters are the
    spec's (``cls.hyperparameters``). Status: STATUS.
    """
    x = x0.detach().clone().requires_grad_(True)
    n = x.numel()
    max_iter = 200 * n if max_iter is None else max_iter
    options = {"max_cg_iter": max_cg_iter, "cg_forcing": cg_forcing, "gtol": gtol}
    opt = cls([x], subproblem=subproblem, **options, **hyper)
    state = opt._state()

    def closure() -> torch.Tensor:
        return fun(x)

    def on_accept() -> None:
        callback(x.detach().clone())

    with torch.no_grad():  # the optimizer moves x in place
        while True:
            outcome = opt._prepare(closure)
            if outcome is not None:
                break
            if state["iteration"] >= max_iter:
                outcome = 1, f"maximum number of iterations ({max_iter}) reached"
                break
            outcome = opt._iterate(closure, None if callback is None else on_accept)
            if outcome is not None:
                break
    status, message = outcome
    k = state["iteration"]
    if status == 0 and check_second_order and n <= CHECK_MAX_PARAMS:
        point = opt._point
        if point.h is None:
            point.h = dense_hessian(point.g_graph, [x])
            state["nhev"] += 1
        if not positive_semidefinite(point.h, cls.method.psd_tol):
            status = 4
            message = (
                f"stopped at a saddle point after {k} iterations: the gradient vanishes "
                "but the Hessian is not positive semidefinite"
            )
    counters = [state[key] for key in ("nfev", "ngev", "nhev", "nhessp")]
    f, g_norm, success = state["loss"], state["grad_norm"], status == 0
    return Result(x.detach(), f, g_norm, k, *counters, success, status, message)

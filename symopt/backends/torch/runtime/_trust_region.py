"""The trust-region method shared by the generated PyTorch trust-region optimizers.

A generated subclass binds what is derived from its spec (the hyperparameters' domains and the
predicted decrease of the model, ``predicted_reduction(g, d, Hd)``) and the solver constants;
this module holds the rest: the radius update, the optimizer's step and :func:`minimize`, with
truncated conjugate gradients (Steihaug) on Hessian-vector products from ``_second_order``.

Depends on torch only.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.optim import Optimizer

from ._second_order import (
    CGStep,
    add_flat,
    check_params,
    dense_hessian,
    hessian_vector_product,
    host_scalars,
    loss_and_gradient,
    positive_semidefinite,
    steihaug,
)

__all__ = [
    "STATUS",
    "CGStep",
    "Result",
    "TrustRegionOptimizer",
    "cg_tolerance",
    "hessian_vector_product",
    "minimize",
    "steihaug",
    "update_radius",
]

#: CG's forcing constant (see cg_tolerance), unless a subclass or the cg_forcing option says.
CG_FORCING = 0.5
#: step() takes no step once ||g|| <= gtol; the gtol option overrides it.
GTOL = 1e-8
#: minimize()'s final check that H is positive semidefinite is dense, so for at most this many
#: parameters.
CHECK_MAX_PARAMS = 2000
STATUS = {
    0: "converged: ||g|| <= gtol",
    1: "not converged (in minimize: maximum number of iterations reached)",
    2: "trust radius collapsed",
    3: "non-finite loss or gradient",
    4: "stopped at a saddle point: ||g|| <= gtol but H is not positive semidefinite",
}


@dataclass
class Result:
    """Outcome of :func:`minimize`; the fields follow scipy.optimize.OptimizeResult."""

    x: torch.Tensor  # the last accepted point (detached, dtype and device of x0)
    fun: float  # the loss there
    grad_norm: float  # ||g|| there
    nit: int  # trust-region iterations, rejected steps included (as scipy counts them)
    nfev: int  # loss evaluations (closure calls)
    ngev: int  # gradient evaluations
    nhev: int  # dense Hessian evaluations (the final second-order check)
    nhessp: int  # Hessian-vector products
    success: bool
    status: int  # see STATUS
    message: str


def update_radius(
    radius: float,
    rho: float,
    step_norm: float,
    on_boundary: bool,
    shrink_below: float,
    shrink: float,
    expand_above: float,
    expand: float,
    max_radius: float,
) -> float:
    """The next radius from rho = actual / predicted decrease and the step length ||d||.

    Shrinking to a fraction of ||d|| (not of r) lets a failed interior step cut the radius below
    its own length at once; expanding needs a step on the boundary.
    """
    if rho < shrink_below:  # rho < rho_-: r <- gamma_- ||d||
        return shrink * step_norm
    # rho > rho_+ and ||d|| = r: r <- min(max(r, gamma_+ ||d||), r_max)
    if rho > expand_above and on_boundary:
        return min(max(radius, expand * step_norm), max_radius)
    return radius  # otherwise r is kept


def cg_tolerance(g_norm: float, g0_norm: float, forcing: float) -> float:
    """CG's residual target min(forcing, sqrt(||g|| / ||g_0||)) ||g||: it tends to 0 with ||g||
    (superlinear convergence, Dembo, Eisenstat & Steihaug 1982) and, unlike min(0.5,
    sqrt(||g||)), does not depend on the scale of the loss."""
    return min(forcing, math.sqrt(g_norm / g0_norm)) * g_norm


class TrustRegionOptimizer(Optimizer):
    """One trust-region iteration per ``step(closure)``; see the generated subclass.

    A subclass sets ``hyperparameters`` (the spec's, in order), ``check_hyper(*hyper)``,
    ``predicted_reduction(g, d, Hd)``, ``min_radius`` and ``psd_tol`` (used by
    :func:`minimize`).
    """

    hyperparameters: tuple[str, ...] = ()
    check_hyper: Callable[..., None]
    predicted_reduction: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
    min_radius: float = 1e-14
    psd_tol: float = 1e-8

    def __init__(
        self,
        params,
        hyper: dict,
        *,
        max_cg_iter: int | None = None,
        cg_forcing: float = CG_FORCING,
        gtol: float = GTOL,
    ) -> None:
        options = {"max_cg_iter": max_cg_iter, "cg_forcing": cg_forcing, "gtol": gtol}
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

    def _state(self) -> dict:
        """The optimizer's state: one per instance, kept with the first parameter (as LBFGS)."""
        group = self.param_groups[0]
        state = self.state[group["params"][0]]
        if not state:
            state.update(
                radius=float(group["radius0"]),
                iteration=0,
                accepted=0,
                nfev=0,
                ngev=0,
                nhessp=0,
                grad_norm0=math.nan,
                loss=math.nan,
                grad_norm=math.nan,
                rho=math.nan,
                step_norm=math.nan,
                cg_iterations=0,
                on_boundary=False,
                status=1,
            )
        return state

    @property
    def radius(self) -> float:
        """The trust radius of the next step."""
        return self._state()["radius"]

    @torch.no_grad()
    def step(self, closure=None):
        """One trust-region iteration; returns the loss at the point it started from."""
        if closure is None:
            raise ValueError(
                f"{type(self).__name__}.step needs a closure that returns the loss (it evaluates "
                "the loss at trial points)"
            )
        group = self.param_groups[0]
        self._check_options(group)
        params = group["params"]
        state = self._state()
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
                f"finite at the parameters of step {state['iteration']}"
            )
        if g_norm <= group["gtol"] or g_norm == 0.0:  # ||g|| <= gtol: w is stationary
            state["status"] = 0
            return loss.detach()
        state["status"] = 1
        if not state["grad_norm0"] > 0.0:
            state["grad_norm0"] = g_norm  # ||g_0||
        radius = state["radius"]  # r
        max_cg = group["max_cg_iter"] or 2 * g.numel()
        tol = cg_tolerance(g_norm, state["grad_norm0"], group["cg_forcing"])
        cg = steihaug(
            g,
            hessian_vector_product(g_graph, params),
            radius,
            tol,
            max_cg,
            self.predicted_reduction,
        )
        del g_graph  # frees the graph of g
        state["nhessp"] += cg.iterations
        pred = self.predicted_reduction(g, cg.d, cg.hd)  # m(0) - m(d)
        saved = [p.clone() for p in params]  # w, restored if the step is rejected
        add_flat(params, cg.d)  # w <- w + d, the trial point
        trial = closure()  # L(w + d), under no_grad
        state["nfev"] += 1
        pred_host, f_new, dd = host_scalars(pred, trial, cg.d.dot(cg.d))
        if pred_host > 0.0 and math.isfinite(f_new):
            rho = (f - f_new) / pred_host  # rho = (L(w) - L(w + d)) / (m(0) - m(d))
        else:
            rho = -math.inf  # no predicted decrease, or a non-finite loss: a failed step
        step_norm = math.sqrt(dd)  # ||d||
        state["radius"] = update_radius(
            radius,
            rho,
            step_norm,
            cg.on_boundary,
            group["shrink_below"],
            group["shrink"],
            group["expand_above"],
            group["expand"],
            group["max_radius"],
        )
        if rho > group["eta"]:  # rho > eta: keep w + d
            state["accepted"] += 1
        else:  # restore w exactly
            for p, s in zip(params, saved, strict=True):
                p.copy_(s)
        state["iteration"] += 1
        state["rho"], state["step_norm"] = rho, step_norm
        state["cg_iterations"], state["on_boundary"] = cg.iterations, cg.on_boundary
        return loss.detach()

    def _check_options(self, group: dict) -> None:
        self.check_hyper(*(float(group[name]) for name in self.hyperparameters))
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
    max_cg_iter: int | None = None,
    cg_forcing: float = CG_FORCING,
    check_second_order: bool = True,
    **hyper: float,
) -> Result:
    """Minimise fun (a tensor x -> a scalar tensor, differentiable twice) from x0 with
    ``cls`` (a generated trust-region optimizer) until ||g|| <= gtol.

    x keeps the dtype and device of x0. max_iter defaults to 200 n; the hyperparameters are
    the spec's (``cls.hyperparameters``). check_second_order: at convergence, for at most
    CHECK_MAX_PARAMS parameters, form H once and report a saddle point (status 4) where it is
    not positive semidefinite. Status: STATUS.
    """
    x = x0.detach().clone().requires_grad_(True)
    max_iter = 200 * x.numel() if max_iter is None else max_iter
    opt = cls([x], max_cg_iter=max_cg_iter, cg_forcing=cg_forcing, gtol=gtol, **hyper)
    state = opt._state()

    def closure() -> torch.Tensor:
        return fun(x)

    status = None
    while status is None:
        try:
            opt.step(closure)
        except FloatingPointError:
            if state["status"] != 3:
                raise
            status = 3
            break
        if state["status"] == 0:
            status = 0
        elif state["iteration"] >= max_iter:
            status = 1
        elif state["radius"] < cls.min_radius * max(1.0, float(x.detach().norm())):
            status = 2
    if status in (1, 2):  # the last step may have moved: L and g where it ended
        loss, g = loss_and_gradient(closure, [x], "minimize")
        state["nfev"] += 1
        state["ngev"] += 1
        f, gg = host_scalars(loss, g.dot(g))
        state["loss"], state["grad_norm"] = f, math.sqrt(gg)
        if state["grad_norm"] <= gtol:
            status = 0
    nhev = 0
    if status == 0 and check_second_order and x.numel() <= CHECK_MAX_PARAMS:
        _, g = loss_and_gradient(closure, [x], "minimize")
        state["nfev"] += 1
        state["ngev"] += 1
        nhev += 1
        if not positive_semidefinite(dense_hessian(g, [x]), cls.psd_tol):
            status = 4
    messages = {
        0: f"gradient norm {state['grad_norm']:.2e} <= gtol after {state['iteration']} iterations",
        1: f"maximum number of iterations ({max_iter}) reached",
        2: f"trust radius collapsed to {state['radius']:.1e} at iteration {state['iteration']}",
        3: f"non-finite loss or gradient at iteration {state['iteration']}",
        4: f"stopped at a saddle point after {state['iteration']} iterations: the gradient "
        "vanishes but the Hessian is not positive semidefinite",
    }
    return Result(
        x=x.detach(),
        fun=state["loss"],
        grad_norm=state["grad_norm"],
        nit=state["iteration"],
        nfev=state["nfev"],
        ngev=state["ngev"],
        nhev=nhev,
        nhessp=state["nhessp"],
        success=status == 0,
        status=status,
        message=messages[status],
    )

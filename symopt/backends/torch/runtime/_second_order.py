"""What the generated second-order PyTorch optimizers share: flat vectors over a model's
parameters, the loss and its differentiable gradient from a closure, Hessian-vector products
and the dense Hessian by double backward, a positive-semidefiniteness check, and truncated
conjugate gradients in a ball (Steihaug).

Depends on torch only.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

__all__ = [
    "CGStep",
    "add_flat",
    "check_params",
    "dense_hessian",
    "flat",
    "hessian_vector_product",
    "host_scalars",
    "loss_and_gradient",
    "positive_semidefinite",
    "steihaug",
]

#: Rows of H computed per batched backward pass.
HESSIAN_CHUNK = 256


def check_params(params: list[torch.Tensor], name: str) -> None:
    """One dtype and device for all parameters: the step is one flat vector over all of them."""
    if not params:
        raise ValueError(f"{name} got an empty parameter list")
    for i, p in enumerate(params):
        if not p.is_floating_point():
            raise TypeError(f"{name}: parameter {i} is {p.dtype}, not a real floating dtype")
        if not p.requires_grad:
            raise ValueError(f"{name}: parameter {i} does not require grad; leave it out")
        if p.dtype != params[0].dtype or p.device != params[0].device:
            raise TypeError(
                f"{name}: parameter {i} is {p.dtype} on {p.device}, parameter 0 is "
                f"{params[0].dtype} on {params[0].device}; all must share one dtype and device"
            )


def flat(parts, params: list[torch.Tensor]) -> torch.Tensor:
    """One vector from per-parameter tensors (None, for a parameter the loss does not use: 0)."""
    return torch.cat(
        [
            (torch.zeros_like(p) if t is None else t).reshape(-1)
            for t, p in zip(parts, params, strict=True)
        ]
    )


def add_flat(params: list[torch.Tensor], d: torch.Tensor) -> None:
    """w <- w + d, with d the flat step over all parameters (in place, under no_grad)."""
    for p, piece in zip(params, d.split([p.numel() for p in params]), strict=True):
        p.add_(piece.view_as(p))


def loss_and_gradient(
    closure, params: list[torch.Tensor], name: str = "loss_and_gradient"
) -> tuple[torch.Tensor, torch.Tensor]:
    """The loss L(w) from the closure and its gradient g with its graph (create_graph=True), so
    that differentiating g once more gives Hessian-vector products."""
    for p in params:
        p.grad = None
    with torch.enable_grad():
        loss = closure()
        if any(p.grad is not None for p in params):
            raise RuntimeError(
                f"{name}: the closure called backward(); it must only return the loss (the "
                "optimizer differentiates it twice itself, and calls it under no_grad for trial "
                "points)"
            )
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            raise TypeError(f"{name}: the closure must return the loss as a one-element tensor")
        if not loss.requires_grad:
            raise ValueError(
                f"{name}: the loss does not depend on the parameters (or was computed under "
                "no_grad)"
            )
        # g = dL/dw, itself differentiable: H v = d(g . v)/dw
        grads = torch.autograd.grad(loss, params, create_graph=True, allow_unused=True)
        return loss, flat(grads, params)  # recorded too: g is one differentiable vector


def host_scalars(*values: torch.Tensor) -> list[float]:
    """0-d tensors as Python floats, with one device-to-host copy for all of them."""
    dtype = values[0].dtype
    for v in values[1:]:
        dtype = torch.promote_types(dtype, v.dtype)
    return torch.stack([v.detach().reshape(()).to(dtype) for v in values]).tolist()


def dense_hessian(
    g: torch.Tensor, params: list[torch.Tensor], chunk: int = HESSIAN_CHUNK
) -> torch.Tensor:
    """H from the flat gradient g (built with create_graph=True): row i is e_i^T H = d(g . e_i)/dw,
    ``chunk`` rows per batched backward pass; symmetrised, as autograd's rows agree with the
    columns only up to rounding."""
    n = g.numel()
    if not g.requires_grad:  # g does not depend on w: the loss is linear, H = 0
        return g.new_zeros(n, n)
    eye = torch.eye(n, dtype=g.dtype, device=g.device)
    blocks = []
    for start in range(0, n, chunk):
        rows = eye[start : start + chunk]  # e_i for the rows of this block
        parts = torch.autograd.grad(
            g, params, rows, retain_graph=True, allow_unused=True, is_grads_batched=True
        )  # e_i^T H, one tensor per parameter, batched over i
        blocks.append(
            torch.cat(
                [
                    rows.new_zeros(len(rows), p.numel()) if t is None else t.reshape(len(rows), -1)
                    for t, p in zip(parts, params, strict=True)
                ],
                dim=1,
            )
        )
    hessian = torch.cat(blocks)
    return 0.5 * (hessian + hessian.T)  # H = (H + H^T) / 2


def positive_semidefinite(H: torch.Tensor, psd_tol: float) -> bool:
    """Whether H + psd_tol max(1, ||H||_inf) I has a Cholesky factor: H is positive
    semidefinite up to rounding (a minimum, where the gradient vanishes, not a saddle)."""
    shift = psd_tol * max(1.0, float(H.abs().sum(dim=1).max()))  # psd_tol max(1, ||H||_inf)
    eye = torch.eye(H.shape[0], dtype=H.dtype, device=H.device)
    return int(torch.linalg.cholesky_ex(H + shift * eye)[1]) == 0


def hessian_vector_product(
    g: torch.Tensor, params: list[torch.Tensor]
) -> Callable[[torch.Tensor], torch.Tensor]:
    """v -> H v, differentiating the flat gradient g (built with create_graph=True) once more:
    H v = d(g . v)/dw, one backward pass, the graph kept for the next product."""
    if not g.requires_grad:  # g does not depend on w: the loss is linear, H = 0
        return torch.zeros_like

    def hvp(v: torch.Tensor) -> torch.Tensor:
        parts = torch.autograd.grad(g, params, grad_outputs=v, retain_graph=True, allow_unused=True)
        return flat(parts, params)

    return hvp


@dataclass
class CGStep:
    """A trust-region step from :func:`steihaug`."""

    d: torch.Tensor  # the step
    hd: torch.Tensor  # H d, for the predicted decrease (no extra product)
    on_boundary: bool  # ||d|| = r (lam > 0), or an interior Newton step (lam = 0)
    iterations: int  # CG iterations = Hessian-vector products


def _boundary_taus(z: torch.Tensor, p: torch.Tensor, radius: float) -> tuple[float, float]:
    """The roots ta <= tb of ||z + t p|| = r, i.e. a t^2 + b t + c = 0 (z inside the ball)."""
    a, zp, zz = host_scalars(p.dot(p), z.dot(p), z.dot(z))
    b, c = 2.0 * zp, zz - radius * radius  # b = 2 z.p, c = z.z - r^2
    sq = math.sqrt(max(b * b - 4.0 * a * c, 0.0))  # sqrt(b^2 - 4 a c)
    aux = b + math.copysign(sq, b)  # b + sign(b) sqrt(...): no cancellation
    if aux == 0.0:
        return 0.0, 0.0
    ta, tb = -aux / (2.0 * a), -2.0 * c / aux  # the roots -aux / 2a and 2c / -aux
    return (ta, tb) if ta <= tb else (tb, ta)


def steihaug(
    g: torch.Tensor,
    hvp: Callable[[torch.Tensor], torch.Tensor],
    radius: float,
    tol: float,
    max_iter: int,
    predicted_reduction: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
) -> CGStep:
    """Truncated conjugate gradients on the model in ||d|| <= r (Steihaug 1983; Nocedal & Wright
    Algorithm 7.2).

    CG on H d = -g from d = 0 decreases the model at every iteration and moves away from 0, so
    the first iterate outside the ball is cut at the boundary; a direction of curvature <= 0
    goes to the boundary too (to the root with the larger decrease); CG stops inside once the
    residual ||H d + g|| <= tol. H d is carried along as r - g, so the predicted decrease (the
    derived ``predicted_reduction(g, d, Hd)``) costs no extra product.
    """
    z = torch.zeros_like(g)  # d_0 = 0
    r = g.clone()  # r_0 = H d_0 + g = g: the residual of (H + lam I) d = -g at lam = 0
    p = -r  # p_0 = -r_0
    rr = r.dot(r)  # ||r_0||^2
    for i in range(max_iter):
        hp = hvp(p)  # H p_j
        php = p.dot(hp)  # p_j^T H p_j, the curvature along p_j
        alpha = rr / php  # alpha_j = ||r_j||^2 / p_j^T H p_j
        z_next = z + alpha * p  # d_{j+1} = d_j + alpha_j p_j
        r_next = r + alpha * hp  # r_{j+1} = r_j + alpha_j H p_j
        rr_next = r_next.dot(r_next)  # ||r_{j+1}||^2
        curvature, zz, rr_host = host_scalars(php, z_next.dot(z_next), rr_next)
        if not curvature > 0.0:  # p_j^T H p_j <= 0: the model is unbounded along p_j
            best = None
            for t in _boundary_taus(z, p, radius):  # ||d_j + t p_j|| = r
                d = z + t * p  # d = d_j + t p_j
                hd = (r - g) + t * hp  # H d = H d_j + t H p_j, with H d_j = r_j - g
                decrease = float(predicted_reduction(g, d, hd))  # m(0) - m(d)
                if best is None or decrease > best[0]:
                    best = (decrease, d, hd)
            return CGStep(best[1], best[2], True, i + 1)
        if zz >= radius * radius:  # ||d_{j+1}|| >= r: stop where d_j + t p_j leaves the ball
            _, tb = _boundary_taus(z, p, radius)  # tb > 0: the root ahead
            return CGStep(z + tb * p, (r - g) + tb * hp, True, i + 1)  # d, H d = H d_j + t H p_j
        z, r = z_next, r_next
        if math.sqrt(rr_host) <= tol:  # ||r_{j+1}|| <= tol: d_{j+1} solves H d = -g well enough
            return CGStep(z, r - g, False, i + 1)  # H d = r - g
        # p_{j+1} = -r_{j+1} + beta_j p_j,  beta_j = ||r_{j+1}||^2 / ||r_j||^2
        p = -r + (rr_next / rr) * p
        rr = rr_next
    return CGStep(z, r - g, False, max_iter)  # out of iterations: the last (interior) iterate

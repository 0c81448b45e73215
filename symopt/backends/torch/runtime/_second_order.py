"""What the generated second-order PyTorch optimizers share: flat vectors over a model's
parameters, the loss and its differentiable gradient from a closure (with graphs that survive
in-place updates of the parameters), Hessian-vector products and the dense Hessian by double
backward, and a positive-semidefiniteness check.

Depends on torch only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch

__all__ = [
    "add_flat",
    "check_params",
    "closure_loss",
    "dense_hessian",
    "flat",
    "gradient",
    "hessian_vector_product",
    "host_scalars",
    "loss_and_gradient",
    "parameters_copied_when_saved",
    "positive_semidefinite",
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


def closure_loss(closure, params: list[torch.Tensor], name: str = "closure_loss") -> torch.Tensor:
    """The loss L(w) from the closure, with its graph (grad enabled), checked: a one-element
    tensor that depends on the parameters, the closure not having called backward()."""
    for p in params:
        p.grad = None
    with torch.enable_grad():
        loss = closure()
    if any(p.grad is not None for p in params):
        raise RuntimeError(
            f"{name}: the closure called backward(); it must only return the loss (the "
            "optimizer differentiates it twice itself)"
        )
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise TypeError(f"{name}: the closure must return the loss as a one-element tensor")
    if not loss.requires_grad:
        raise ValueError(
            f"{name}: the loss does not depend on the parameters (or was computed under no_grad)"
        )
    return loss


def gradient(loss: torch.Tensor, params: list[torch.Tensor]) -> torch.Tensor:
    """The flat gradient g = dL/dw with its graph (create_graph=True), so that differentiating
    g once more gives Hessian-vector products."""
    with torch.enable_grad():
        grads = torch.autograd.grad(loss, params, create_graph=True, allow_unused=True)
        return flat(grads, params)  # recorded too: g is one differentiable vector


def loss_and_gradient(
    closure, params: list[torch.Tensor], name: str = "loss_and_gradient"
) -> tuple[torch.Tensor, torch.Tensor]:
    """The loss L(w) from the closure and its gradient g with its graph (create_graph=True)."""
    loss = closure_loss(closure, params, name)
    return loss, gradient(loss, params)


@contextmanager
def parameters_copied_when_saved(params: list[torch.Tensor]) -> Iterator[None]:
    """Graphs recorded inside save copies of the parameters (and of views of them) instead of
    the parameters themselves: the graph of g at w still gives H v at w after the parameters
    were moved in place to a trial point and restored (autograd would refuse the modified
    tensors). Costs one copy of each parameter per use the graph saves."""
    storages = {p.untyped_storage().data_ptr() for p in params}

    def pack(t: torch.Tensor) -> torch.Tensor:
        if t.layout == torch.strided and t.untyped_storage().data_ptr() in storages:
            return t.detach().clone()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        yield


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

"""Damped block-diagonal Newton, shared by the generated PyTorch block Newton optimizers: the
exact diagonal blocks of the generalized Gauss-Newton matrix (torch.func, via ``_curvature``),
a Cholesky solve per block and the step.

A generated subclass binds what is derived from its spec: the hyperparameters' domains, the
damped system of one block and the predicted decrease.

Depends on torch only.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch.optim import Optimizer

from ._curvature import (
    NotPositiveDefiniteError,
    as_tuple,
    evaluate,
    loss_hessians,
    parameter_names,
    per_example_jacobians,
)

__all__ = ["MAX_BLOCK", "BlockOptimizer", "ggn_blocks"]

#: Most parameters a block may have by default: it is a dense n_b x n_b matrix.
MAX_BLOCK = 4096


def ggn_blocks(
    model: torch.nn.Module, loss_fn, blocks: list[list[torch.Tensor]], inputs, targets
) -> list[torch.Tensor]:
    """The exact diagonal blocks of the GGN of L = loss_fn(model(inputs), targets) (mean over
    the batch): C_bb = 1/N sum_n J_nb^T (d2c_n/df2) J_nb for every block (a list of parameters,
    flattened and concatenated in order)."""
    with torch.no_grad():
        outputs = model(*as_tuple(inputs))
    hessians = loss_hessians(loss_fn, outputs, targets)  # (N, k, k)
    params = [p for block in blocks for p in block]
    jacobians = iter(per_example_jacobians(model, params, inputs))  # (N, k, numel) each
    n, k = hessians.shape[0], hessians.shape[1]
    out = []
    for block in blocks:
        J = torch.cat([next(jacobians) for _ in block], dim=2)  # J_nb: (N, k, n_b)
        HJ = hessians @ J  # (d2c_n/df2) J_nb
        C = J.reshape(n * k, -1).mT @ HJ.reshape(n * k, -1) / n  # 1/N sum_n J_nb^T (...) J_nb
        out.append(0.5 * (C + C.mT))
    return out


class BlockOptimizer(Optimizer):
    """A damped block Newton step per ``step(...)``; see the generated subclass.

    A subclass sets ``hyperparameters`` (the spec's), ``damping`` (the name of the damping
    hyperparameter), ``check_hyper(*hyper)``, ``damped_system(g, C, damping)`` and
    ``predicted_reduction(g, d, Hd)``.
    """

    hyperparameters: tuple[str, ...] = ()
    damping: str = "lam"
    check_hyper: Callable[..., None]
    damped_system: Callable[..., tuple[torch.Tensor, torch.Tensor]]
    predicted_reduction: Callable[..., torch.Tensor]

    def __init__(
        self,
        params,
        hyper: dict,
        *,
        model: torch.nn.Module | None = None,
        loss_fn=None,
        blocks=None,
        max_block: int = MAX_BLOCK,
    ) -> None:
        super().__init__(params, hyper)
        if (model is None) != (loss_fn is None):
            raise ValueError(
                f"{type(self).__name__}: give both model and loss_fn (for the exact GGN blocks) or "
                "neither (and pass step(curvature=...))"
            )
        self.model, self.loss_fn = model, loss_fn
        params = self._params()
        if model is not None:
            parameter_names(model, params)
        if blocks is None:
            blocks = [[p] for p in params]
        #: The blocks: lists of parameters, partitioning the optimizer's parameters.
        self.blocks = [list(block) for block in blocks]
        order = {id(p): i for i, p in enumerate(params)}
        seen = [i for block in self.blocks for i in (order.get(id(p), -1) for p in block)]
        if sorted(seen) != list(range(len(params))) or any(not block for block in self.blocks):
            raise ValueError(
                f"{type(self).__name__}: blocks must partition the optimizer's parameters (every "
                "parameter in exactly one non-empty block)"
            )
        group_of = {id(p): i for i, group in enumerate(self.param_groups) for p in group["params"]}
        self._groups = []
        for b, block in enumerate(self.blocks):
            groups = {group_of[id(p)] for p in block}
            if len(groups) != 1:
                raise ValueError(f"{type(self).__name__}: block {b} spans several parameter groups")
            self._groups.append(groups.pop())
            size = sum(p.numel() for p in block)
            if size > max_block:
                raise ValueError(
                    f"{type(self).__name__}: block {b} has {size} parameters, more than max_block "
                    f"= {max_block} (its curvature is a dense {size} x {size} matrix); split it or "
                    "raise max_block"
                )

    def add_param_group(self, param_group: dict) -> None:
        if hasattr(self, "blocks"):
            raise ValueError(f"{type(self).__name__}: the blocks are fixed at construction")
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        self.check_hyper(*(float(group[name]) for name in self.hyperparameters))
        for i, p in enumerate(group["params"]):
            if not p.is_floating_point():
                raise TypeError(
                    f"{type(self).__name__}: parameter {i} is {p.dtype}, not real floating"
                )

    def _params(self) -> list[torch.Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    def _state(self) -> dict:
        """The counters, kept with the first parameter."""
        state = self.state[self.param_groups[0]["params"][0]]
        if "iteration" not in state:
            state.update(iteration=0, loss=None, predicted=math.nan)
        return state

    @torch.no_grad()
    def step(self, closure=None, *, inputs=None, targets=None, curvature=None):
        """One damped block Newton step, w_b <- w_b - lr (C_bb + damping I)^-1 g_b for every
        block, with the exact GGN blocks (``inputs`` and ``targets``) or given ones
        (``curvature``). Returns the loss where the step started (None for ``curvature``
        without a closure)."""
        params = self._params()
        name = type(self).__name__
        if curvature is not None:
            if inputs is not None or targets is not None:
                raise ValueError(
                    f"{name}.step takes inputs and targets (the exact GGN blocks) or "
                    "curvature, not both"
                )
            loss = None
            if closure is not None:
                with torch.enable_grad():
                    loss = closure()
            curvature = list(curvature)
            sizes = [sum(p.numel() for p in block) for block in self.blocks]
            if len(curvature) != len(self.blocks) or any(
                C.shape != (n, n) for C, n in zip(curvature, sizes, strict=True)
            ):
                raise ValueError(
                    f"{name}.step: curvature must hold one (n_b, n_b) matrix per "
                    f"block (sizes {sizes}, in order)"
                )
            g_of = {p: p.grad for p in params}
        elif inputs is not None and targets is not None:
            if closure is not None:
                raise ValueError(
                    f"{name}.step(inputs=..., targets=...) evaluates the loss itself: no closure"
                )
            if self.model is None:
                raise ValueError(
                    f"{name}: the exact GGN blocks need model and loss_fn at construction"
                )
            loss, grads, _ = evaluate(
                self.model, self.loss_fn, params, inputs, targets, name
            )  # L, g = dL/dw
            g_of = dict(zip(params, grads, strict=True))
            curvature = ggn_blocks(self.model, self.loss_fn, self.blocks, inputs, targets)  # C_bb
        else:
            raise ValueError(
                f"{name}.step needs inputs and targets (the exact GGN blocks, with "
                "model and loss_fn given) or curvature (blocks of your own, gradients in .grad)"
            )
        state = self._state()
        for group in self.param_groups:
            self.check_hyper(*(float(group[name]) for name in self.hyperparameters))
        work, infos = [], []  # (block, lr, g_b, C_bb, Cholesky factor, rhs)
        for block, group_index, C in zip(self.blocks, self._groups, curvature, strict=True):
            group = self.param_groups[group_index]
            if all(g_of[p] is None for p in block):  # the loss does not depend on the block
                continue
            g = torch.cat([or_zeros(g_of[p], p).reshape(-1) for p in block])  # g_b
            C = C.to(g.dtype)
            damping = float(group[self.damping])
            matrix, rhs = self.damped_system(g, C, damping)  # (C_bb + damping I) d = -g_b
            factor, info = torch.linalg.cholesky_ex(matrix)  # C_bb + damping I = L L^T
            work.append((block, float(group["lr"]), g, C, factor, rhs))
            infos.append(info)
        if not work:
            return loss
        failed = [i for i, info in enumerate(torch.stack(infos).tolist()) if info != 0]
        if failed:
            raise NotPositiveDefiniteError(
                f"{name} step {state['iteration']}: the damped curvature of block(s) "
                f"{failed} (of those with a gradient) is not positive definite (the loss is not "
                f"convex in the outputs, or the blocks are wrong); raise {self.damping}"
            )
        predicted = 0.0
        for block, lr, g, C, factor, rhs in work:
            d = torch.cholesky_solve(rhs.unsqueeze(1), factor).squeeze(1)  # d_b = (L L^T)^-1 rhs
            step = lr * d
            for p, piece in zip(block, step.split([p.numel() for p in block]), strict=True):
                p.add_(piece.view_as(p))  # w_b <- w_b + lr d_b
            predicted = predicted + self.predicted_reduction(g, step, C @ step)  # m(0) - m(lr d)
        state["iteration"] += 1
        state["loss"] = None if loss is None else float(loss)
        state["predicted"] = float(predicted)
        return loss if loss is None else loss.detach()


def or_zeros(t: torch.Tensor | None, p: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(p) if t is None else t

"""Curvature from a model: the exact generalized Gauss-Newton pieces by torch.func (per-example
Jacobians, loss Hessians, the GGN diagonal) and the step of the generated damped diagonal
Newton optimizers.

A generated subclass binds what is derived from its spec: the hyperparameters' domains, the
damped system and predicted decrease, and the element-wise update ``w <- w + lr d`` printed from
the same kernel as the first-order optimizers (``update(w, g, c, *scratch, scalars)``).

Depends on torch only.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch.optim import Optimizer

__all__ = [
    "DiagonalOptimizer",
    "NotPositiveDefiniteError",
    "evaluate",
    "ggn_diagonal",
    "loss_hessians",
    "parameter_names",
    "per_example_jacobians",
]


class NotPositiveDefiniteError(ArithmeticError):
    """The damped curvature is not positive definite where the step needs it to be."""


def parameter_names(model: torch.nn.Module, params: list[torch.Tensor]) -> list[str]:
    """The model's name of every parameter (for torch.func.functional_call)."""
    names = {id(p): name for name, p in model.named_parameters()}
    missing = [i for i, p in enumerate(params) if id(p) not in names]
    if missing:
        raise ValueError(
            f"parameter(s) {missing} of the optimizer are not parameters of the model; the "
            "exact GGN differentiates the model's outputs with respect to its own parameters"
        )
    return [names[id(p)] for p in params]


def as_tuple(inputs) -> tuple[torch.Tensor, ...]:
    return inputs if isinstance(inputs, tuple) else (inputs,)


def per_example_jacobians(
    model: torch.nn.Module, params: list[torch.Tensor], inputs
) -> list[torch.Tensor]:
    """J_n = df(x_n)/dw for every example n: one (N, k, numel) tensor per parameter, by torch.func
    (jacrev of the model on one example, vmapped over the N examples; the model's other
    parameters and its buffers held fixed). ``inputs``: a tensor, or a tuple of tensors the model
    takes, batched along dim 0. The examples must not interact (no batch normalisation in
    training mode), the model must be deterministic (no dropout) and carry no full backward
    hooks (BackPACK's ``extend`` adds them: pass its quantities to ``step`` instead)."""
    names = parameter_names(model, params)
    inputs = as_tuple(inputs)
    values = {name: p.detach() for name, p in zip(names, params, strict=True)}

    def outputs_of_one(values: dict, *x: torch.Tensor) -> torch.Tensor:
        out = torch.func.functional_call(model, values, tuple(t.unsqueeze(0) for t in x))
        return out.reshape(-1)  # f(x_n): the k outputs of one example

    in_dims = (None,) + (0,) * len(inputs)
    jac = torch.func.vmap(torch.func.jacrev(outputs_of_one), in_dims=in_dims)(values, *inputs)
    n = inputs[0].shape[0]
    return [jac[name].reshape(n, -1, p.numel()) for name, p in zip(names, params, strict=True)]


def loss_hessians(loss_fn, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """d2c_n/df2 for every example: (N, k, k), with c_n = loss_fn on the batch of example n alone
    (torch.func: jacrev of jacrev, vmapped over the examples).

    The GGN of L = loss_fn(outputs, targets) is 1/N sum_n J_n^T (d2c_n/df2) J_n only when L is
    the mean of the per-example losses (torch's reduction="mean"); that is checked here.
    """
    outputs = outputs.detach()
    n = outputs.shape[0]

    def loss_of_one(f: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return loss_fn(f.unsqueeze(0), t.unsqueeze(0))  # c_n

    per_example = torch.func.vmap(loss_of_one)(outputs, targets)
    batch = loss_fn(outputs, targets)
    tol = math.sqrt(torch.finfo(outputs.dtype).eps)
    mean = per_example.mean()  # 1/N sum_n c_n
    if not bool(torch.isclose(mean, batch, rtol=tol, atol=tol * float(per_example.abs().mean()))):
        raise ValueError(
            f"loss_fn must return the mean of the per-example losses (reduction='mean'): on this "
            f"batch it gives {float(batch):.6g}, the mean of the {n} per-example losses is "
            f"{float(mean):.6g}"
        )
    hessians = torch.func.vmap(torch.func.jacrev(torch.func.jacrev(loss_of_one)))(outputs, targets)
    return hessians.reshape(n, outputs[0].numel(), outputs[0].numel())


def evaluate(model, loss_fn, params: list[torch.Tensor], inputs, targets, name: str):
    """L = loss_fn(model(inputs), targets), its gradient (one tensor per parameter, None where
    the loss does not depend on it) and the model's outputs f (detached)."""
    with torch.enable_grad():
        outputs = model(*as_tuple(inputs))
        loss = loss_fn(outputs, targets)
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            raise TypeError(f"{name}: loss_fn must return the loss as a one-element tensor")
        if not loss.requires_grad:
            raise ValueError(f"{name}: the loss does not depend on the parameters")
        grads = torch.autograd.grad(loss, params, allow_unused=True)
    return loss.detach(), list(grads), outputs.detach()


def ggn_diagonal(
    model: torch.nn.Module, loss_fn, params: list[torch.Tensor], inputs, targets
) -> list[torch.Tensor]:
    """The exact diagonal of the GGN of L = loss_fn(model(inputs), targets) (mean over the
    batch), one tensor shaped like each parameter: 1/N sum_n diag(J_n^T (d2c_n/df2) J_n)."""
    with torch.no_grad():
        outputs = model(*as_tuple(inputs))
    hessians = loss_hessians(loss_fn, outputs, targets)  # (N, k, k)
    jacobians = per_example_jacobians(model, params, inputs)  # (N, k, numel) each
    n = outputs.shape[0]
    # sum_n sum_ab (J_n)_ai (d2c_n/df2)_ab (J_n)_bi / N
    return [
        ((J * (hessians @ J)).sum(dim=(0, 1)) / n).view_as(p)
        for J, p in zip(jacobians, params, strict=True)
    ]


class DiagonalOptimizer(Optimizer):
    """A damped diagonal Newton step per ``step(...)``; see the generated subclass.

    A subclass sets ``hyperparameters`` (the spec's), ``damping`` (the name of the damping
    hyperparameter), ``check_hyper(*hyper)``, ``damped_system(g, h, damping)``,
    ``predicted_reduction(g, d, Hd)``, ``scalars(*hyper)``, ``update(w, g, c, *scratch,
    scalars)`` and ``scratch`` (how many scratch tensors the update takes).
    """

    hyperparameters: tuple[str, ...] = ()
    damping: str = "lam"
    scratch: int = 0
    check_hyper: Callable[..., None]
    damped_system: Callable[..., tuple[torch.Tensor, torch.Tensor]]
    predicted_reduction: Callable[..., torch.Tensor]
    scalars: Callable[..., tuple[float, ...]]
    update: Callable[..., None]

    def __init__(
        self, params, hyper: dict, *, model: torch.nn.Module | None = None, loss_fn=None
    ) -> None:
        super().__init__(params, hyper)
        if (model is None) != (loss_fn is None):
            raise ValueError(
                f"{type(self).__name__}: give both model and loss_fn (for the exact GGN diagonal) "
                "or neither (and pass step(diag=...))"
            )
        self.model, self.loss_fn = model, loss_fn
        if model is not None:
            parameter_names(model, self._params())

    def add_param_group(self, param_group: dict) -> None:
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
    def step(self, closure=None, *, inputs=None, targets=None, diag=None):
        """One damped diagonal Newton step, w <- w - lr (diag(C) + damping)^-1 g, with the exact
        GGN diagonal (``inputs`` and ``targets``) or a given one (``diag``). Returns the loss
        where the step started (None for ``diag`` without a closure)."""
        params = self._params()
        name = type(self).__name__
        if diag is not None:
            if inputs is not None or targets is not None:
                raise ValueError(
                    f"{name}.step takes inputs and targets (the exact GGN diagonal) "
                    "or diag, not both"
                )
            loss = None
            if closure is not None:
                with torch.enable_grad():
                    loss = closure()
            diag = list(diag)
            if len(diag) != len(params) or any(
                h.shape != p.shape for h, p in zip(diag, params, strict=True)
            ):
                raise ValueError(
                    f"{name}.step: diag must hold one tensor shaped like each "
                    f"parameter ({len(params)} of them, in order)"
                )
            grads = [p.grad for p in params]
        elif inputs is not None and targets is not None:
            if closure is not None:
                raise ValueError(
                    f"{name}.step(inputs=..., targets=...) evaluates the loss itself: no closure"
                )
            if self.model is None:
                raise ValueError(
                    f"{name}: the exact GGN diagonal needs model and loss_fn at construction"
                )
            loss, grads, _ = evaluate(
                self.model, self.loss_fn, params, inputs, targets, name
            )  # L, g = dL/dw
            diag = ggn_diagonal(self.model, self.loss_fn, params, inputs, targets)  # diag(C)
        else:
            raise ValueError(
                f"{name}.step needs inputs and targets (the exact GGN diagonal, with "
                "model and loss_fn given) or diag (a diagonal of your own, gradients in .grad)"
            )
        state = self._state()
        h_of = dict(zip(params, diag, strict=True))
        g_of = dict(zip(params, grads, strict=True))
        work = []  # (parameter, lr, g, diag(C), diagonal of the damped matrix, rhs)
        for group in self.param_groups:
            self.check_hyper(*(float(group[name]) for name in self.hyperparameters))
            hyper = [float(group[name]) for name in self.hyperparameters]
            lr, damping = float(group["lr"]), float(group[self.damping])
            scalars = self.scalars(*hyper)
            for p in group["params"]:
                g = g_of[p]
                if g is None:  # the loss does not depend on p: no step
                    continue
                h = h_of[p].to(p.dtype)
                matrix, rhs = self.damped_system(g, h, damping)  # (diag(C) + damping) d = -g
                work.append((p, lr, scalars, g, h, matrix, rhs))
        if not work:
            return loss
        smallest = float(torch.stack([item[5].min() for item in work]).min())
        if not smallest > 0.0:
            raise NotPositiveDefiniteError(
                f"{name} step {state['iteration']}: a damped curvature entry "
                f"diag(C)_i + {self.damping} is {smallest:.3g} <= 0 (the loss is not convex in the "
                f"outputs, or the diagonal is wrong); raise {self.damping}"
            )
        predicted = 0.0
        for p, lr, scalars, g, h, matrix, rhs in work:
            step = lr * (rhs / matrix)  # lr d, d = -(diag(C) + damping)^-1 g
            scratch = [torch.empty_like(p) for _ in range(self.scratch)]
            self.update(p, g, h, *scratch, scalars)  # w <- w + lr d, the generated kernel
            predicted = predicted + self.predicted_reduction(
                g.reshape(-1), step.reshape(-1), (h * step).reshape(-1)
            )  # m(0) - m(lr d), with H (lr d) = diag(C) * lr d
        state["iteration"] += 1
        state["loss"] = None if loss is None else float(loss)
        state["predicted"] = float(predicted)
        return loss if loss is None else loss.detach()

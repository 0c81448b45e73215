"""K-FAC bookkeeping shared by the generated PyTorch K-FAC optimizers: forward hooks on the
model's torch.nn.Linear layers, the Kronecker factors' running averages and eigenbases, the
Fisher's vectors u (sampled, exact or empirical), the KL clipping and the step.

A generated subclass binds what is derived from its spec: the hyperparameters' domains and the
damped system, solved in the factors' eigenbases (``eigen_damped_step``).

Depends on torch only.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable

import torch
from torch.optim import Optimizer

__all__ = ["DEFAULT_FISHER", "FISHERS", "LOSSES", "KFACOptimizer", "loss_hessian_factors"]

#: Where the gradient factor's vectors u come from (see the module docstring), and the default.
FISHERS = ("sampled", "exact", "empirical")
DEFAULT_FISHER = "sampled"
#: The losses whose predictive distribution (for "sampled") and d2c/df2 (for "exact") are known.
LOSSES = ("cross_entropy", "bce", "mse")


def loss_hessian_factors(
    loss: str, outputs: torch.Tensor, fisher: str, generator: torch.Generator | None = None
) -> list[torch.Tensor]:
    """Vectors u_1, ..., u_m shaped like the outputs f (one row per example) with sum_j u_j u_j^T
    = d2c/df2 per example ("exact": the k columns of a square root S, S S^T = d2c/df2) or
    E[u u^T] = d2c/df2 ("sampled", m = 1: u = dc/df at a target drawn from the predictive
    distribution). c is the per-example loss of torch's mean reduction (see the module
    docstring)."""
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, not {loss!r}")
    if fisher not in ("sampled", "exact"):
        raise ValueError(f"fisher must be 'sampled' or 'exact' here, not {fisher!r}")
    n = outputs.shape[0]
    f = outputs.detach().reshape(n, -1)  # (N, k)
    k = f.shape[1]
    if loss == "cross_entropy":
        if outputs.dim() != 2:
            raise ValueError(
                f"loss 'cross_entropy' needs logits of shape (N, C), got {tuple(outputs.shape)}"
            )
        p = torch.softmax(f, dim=1)  # p = softmax(f); d2c/df2 = diag(p) - p p^T
        if fisher == "exact":
            r = p.sqrt()  # S = diag(r) - p r^T, r = sqrt(p): S S^T = diag(p) - 2 p p^T + p p^T r.r
            S = torch.diag_embed(r) - p[:, :, None] * r[:, None, :]
            columns = [S[:, :, j] for j in range(k)]
        else:
            y = torch.multinomial(p, 1, generator=generator)[:, 0]  # y ~ Categorical(p)
            columns = [p - torch.nn.functional.one_hot(y, k).to(p.dtype)]  # dc/df = p - e_y
    elif loss == "bce":
        s = torch.sigmoid(f)  # c = 1/k sum_j bce(f_j, y_j): d2c/df2 = diag(s (1 - s)) / k
        if fisher == "exact":
            root = (s * (1.0 - s) / k).sqrt()
            columns = [torch.diag_embed(root)[:, :, j] for j in range(k)]  # S = diag(root)
        else:
            y = torch.bernoulli(s, generator=generator)  # y_j ~ Bernoulli(s_j)
            # dc/df = (s - y) / k, times sqrt(k): E[u u^T] = diag(s (1 - s)) / k, the temperature
            # 1/k of the mean over the k logits undone once
            columns = [(s - y) / math.sqrt(k)]
    else:  # "mse": c = ||f - y||^2 / k, the negative log-likelihood of N(f, k/2 I); d2c/df2 = 2/k I
        if fisher == "exact":
            eye = torch.eye(k, dtype=f.dtype, device=f.device) * math.sqrt(2.0 / k)
            columns = [eye[j].expand(n, k) for j in range(k)]  # S = sqrt(2/k) I
        else:
            eps = torch.randn(f.shape, generator=generator, dtype=f.dtype, device=f.device)
            columns = [math.sqrt(2.0 / k) * eps]  # dc/df at y = f + sqrt(k/2) eps, up to sign
    return [u.reshape(outputs.shape) for u in columns]


def _forward_hook(ref: weakref.ref, module: torch.nn.Module, args: tuple, output: torch.Tensor):
    """A K-FAC layer's forward hook: while the optimizer runs its closure, record the input a
    and the output s; the network goes on with a copy of s, so that in-place operations after
    the layer leave s (whose gradient is the layer's dL/ds) intact."""
    opt = ref()
    if opt is None or not opt._capturing or module not in opt._records:
        return None
    a = args[0]
    if a.dim() != 2:
        raise ValueError(
            f"{type(opt).__name__}: layer {opt._names[module]} got an input of shape "
            f"{tuple(a.shape)}; K-FAC here handles torch.nn.Linear layers on (batch, features) "
            "inputs"
        )
    opt._records[module].append((a.detach(), output))
    return output.clone()


def _model_hook(ref: weakref.ref, module: torch.nn.Module, args: tuple, output) -> None:
    """The model's forward hook: record its output f while the optimizer runs its closure."""
    opt = ref()
    if opt is not None and opt._capturing:
        opt._model_outputs.append(output)


class KFACOptimizer(Optimizer):
    """One K-FAC step per ``step(closure)``; see the generated subclass.

    A subclass sets ``hyperparameters`` (the spec's: lr, decay, kl_clip, inverse_every and the
    damping), ``damping`` (the damping's name), ``check_hyper(*hyper)`` and
    ``eigen_damped_step(V, QA, sA, QG, sG, damping)``.
    """

    hyperparameters: tuple[str, ...] = ()
    damping: str = "lam"
    check_hyper: Callable[..., None]
    eigen_damped_step: Callable[..., torch.Tensor]

    def __init__(
        self,
        model: torch.nn.Module,
        hyper: dict,
        *,
        loss: str | None = None,
        fisher: str = DEFAULT_FISHER,
        generator: torch.Generator | None = None,
    ) -> None:
        if not isinstance(model, torch.nn.Module):
            raise TypeError(
                f"{type(self).__name__} takes the model (a torch.nn.Module), not its parameters: "
                "it hooks the model's torch.nn.Linear layers"
            )
        defaults = {**hyper, "loss": loss, "fisher": fisher}
        super().__init__([p for p in model.parameters() if p.requires_grad], defaults)
        self.generator = generator
        #: The K-FAC layers: the model's torch.nn.Linear modules with a trainable weight.
        self.layers = [
            module
            for module in model.modules()
            if isinstance(module, torch.nn.Linear) and module.weight.requires_grad
        ]
        if not self.layers:
            raise ValueError(
                f"{type(self).__name__}: the model has no torch.nn.Linear layer with a trainable "
                "weight (K-FAC would be plain SGD)"
            )
        self._names = {module: name for name, module in model.named_modules()}
        self._records: dict[torch.nn.Module, list] = {}
        self._model_outputs: list = []
        self._capturing = False
        ref = weakref.ref(self)
        self._handles = [
            module.register_forward_hook(lambda mod, args, out: _forward_hook(ref, mod, args, out))
            for module in self.layers
        ]
        self._handles.append(
            model.register_forward_hook(lambda mod, args, out: _model_hook(ref, mod, args, out))
        )

    def add_param_group(self, param_group: dict) -> None:
        if self.param_groups:
            raise ValueError(
                f"{type(self).__name__} takes one parameter group: the KL clipping scales all "
                "layers' steps together"
            )
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        if not group["params"]:
            raise ValueError(
                f"{type(self).__name__}: the model has no parameter that requires grad"
            )
        self._check_options(group)

    def remove_hooks(self) -> None:
        """Detach the optimizer from the model (its forward hooks); step() cannot run after."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _bias(self, module: torch.nn.Linear) -> torch.Tensor | None:
        """The bias K-FAC preconditions with the weight (a column of ones in a-bar), if any."""
        bias = module.bias
        return bias if bias is not None and bias.requires_grad else None

    def _state(self) -> dict:
        """The step count and last step's scalars, kept with the first parameter."""
        state = self.state[self.param_groups[0]["params"][0]]
        if "step" not in state:
            state.update(step=0, loss=math.nan, kl_scale=1.0, kl=math.nan)
        return state

    def kronecker_factors(self) -> dict[torch.nn.Module, tuple[torch.Tensor, torch.Tensor]]:
        """The running factors (A, G) of every layer that has them: the layer's curvature block
        is approximated by A (x) G, for its parameters vec([W | b]) (column-major)."""
        out = {}
        for module in self.layers:
            state = self.state.get(module.weight, {})
            if "A" in state:
                out[module] = (state["A"], state["G"])
        return out

    @torch.no_grad()
    def step(self, closure=None):
        """One K-FAC step; returns the loss at the point it started from."""
        name = type(self).__name__
        if closure is None:
            raise ValueError(
                f"{name}.step needs a closure that runs the model and returns the "
                "loss (the hooks record the layers' inputs during it)"
            )
        if not self._handles:
            raise RuntimeError(f"{name}: remove_hooks() was called; no more steps")
        group = self.param_groups[0]
        self._check_options(group)
        params = group["params"]
        lr, damping = float(group["lr"]), float(group[self.damping])
        decay, kl_clip = float(group["decay"]), float(group["kl_clip"])
        inverse_every, fisher = int(group["inverse_every"]), group["fisher"]
        state = self._state()
        k = state["step"]
        for p in params:
            p.grad = None
        self._records = {module: [] for module in self.layers}
        self._model_outputs = []
        self._capturing = True
        try:
            with torch.enable_grad():
                loss = closure()  # L(w); the hooks record a, s and f
        finally:
            self._capturing = False
            records, self._records = self._records, {}
            model_outputs, self._model_outputs = self._model_outputs, []
        _check_loss(loss, params, name)
        for module, calls in records.items():
            if len(calls) > 1:
                raise ValueError(
                    f"{name}: layer {self._names[module]} ran {len(calls)} times in "
                    "the closure; K-FAC needs one forward pass of each layer per step"
                )
        layers = [module for module in self.layers if records[module]]
        inputs = [records[module][0][0] for module in layers]  # a, (N, in)
        outputs = [records[module][0][1] for module in layers]  # s, (N, out), with their graph
        empirical = fisher == "empirical"
        with torch.enable_grad():
            # g = dL/dw (and dL/ds of every layer for the empirical Fisher, in the same pass)
            found = torch.autograd.grad(
                loss,
                params + (outputs if empirical else []),
                retain_graph=not empirical,
                allow_unused=True,
            )
            grads = dict(zip(params, found[: len(params)], strict=True))
            # G_batch = 1/N sum_n g_n g_n^T, g_n = B_n^T u_n the vectors u backpropagated to s
            G_batch = [None] * len(layers)
            if empirical:  # dL/ds = g_n / N for the mean loss: G_batch = N sum_n (dL/ds)(dL/ds)^T
                for i, (a, ds) in enumerate(zip(inputs, found[len(params) :], strict=True)):
                    if ds is not None:
                        G_batch[i] = a.shape[0] * (ds.mT @ ds)
            else:
                f = _model_output(model_outputs, len(layers), name)
                vectors = loss_hessian_factors(group["loss"], f, fisher, self.generator)
                for j, u in enumerate(vectors):
                    passed = torch.autograd.grad(
                        f, outputs, u, retain_graph=j < len(vectors) - 1, allow_unused=True
                    )  # B_n^T u_n at every layer
                    for i, (a, gs) in enumerate(zip(inputs, passed, strict=True)):
                        if gs is None:
                            continue
                        if gs.shape[0] != a.shape[0] or f.shape[0] != a.shape[0]:
                            raise ValueError(
                                f"{name}: layer {self._names[layers[i]]} saw "
                                f"{a.shape[0]} examples, the model output {f.shape[0]}"
                            )
                        term = gs.mT @ gs / a.shape[0]  # 1/N sum_n (B_n^T u_n)(B_n^T u_n)^T
                        G_batch[i] = term if G_batch[i] is None else G_batch[i] + term
        loss_tensor = loss.detach()
        loss_value = float(loss_tensor)
        del loss, found, outputs, model_outputs, records  # the graph
        steps, vg = [], 0.0
        for module, a, G_new in zip(layers, inputs, G_batch, strict=True):
            weight, bias = module.weight, self._bias(module)
            if G_new is None:  # s does not reach the loss
                G_new = weight.new_zeros(weight.shape[0], weight.shape[0])
            if bias is not None:  # a-bar = [a; 1]
                a = torch.cat([a, a.new_ones(a.shape[0], 1)], dim=1)
            A_new = a.mT @ a / a.shape[0]  # A_batch = 1/N sum_n a-bar a-bar^T
            layer = self.state[weight]
            if "A" not in layer:  # the first step: the batch's factors
                layer["A"], layer["G"] = A_new, G_new
            else:  # A <- decay A + (1 - decay) A_batch, G likewise
                layer["A"].mul_(decay).add_(A_new, alpha=1.0 - decay)
                layer["G"].mul_(decay).add_(G_new, alpha=1.0 - decay)
            if k % inverse_every == 0 or "QA" not in layer:  # A = QA diag(sA) QA^T, G likewise
                sA, QA = torch.linalg.eigh(layer["A"])
                sG, QG = torch.linalg.eigh(layer["G"])
                layer.update(QA=QA, sA=sA.clamp(min=0.0), QG=QG, sG=sG.clamp(min=0.0))
            gW = grads[weight]
            if gW is None:
                continue
            V = gW if bias is None else torch.cat([gW, _or_zeros(grads[bias], bias)[:, None]], 1)
            d = self.eigen_damped_step(
                V, layer["QA"], layer["sA"], layer["QG"], layer["sG"], damping
            )  # unvec((A (x) G + damping I)^-1 vec(-V))
            vg = vg - lr * lr * (V * d).sum()  # lr^2 g.(-d), summed over the layers
            steps.append((weight, bias, d))
        kl = float(vg)
        nu = 1.0
        if kl_clip > 0.0 and kl > 0.0:  # nu = min(1, sqrt(kl_clip / (lr^2 sum g.(-d))))
            nu = min(1.0, math.sqrt(kl_clip / kl))
        done = set()
        for weight, bias, d in steps:
            if bias is None:
                weight.add_(d, alpha=lr * nu)  # w <- w + lr nu d
            else:
                weight.add_(d[:, :-1], alpha=lr * nu)
                bias.add_(d[:, -1], alpha=lr * nu)
                done.add(bias)
            done.add(weight)
        for p in params:  # the other parameters: w <- w - lr g
            if p not in done and grads[p] is not None:
                p.add_(grads[p], alpha=-lr)
        state.update(step=k + 1, loss=loss_value, kl_scale=nu, kl=kl)
        return loss_tensor

    def _check_options(self, group: dict) -> None:
        if group["fisher"] not in FISHERS:
            raise ValueError(f"fisher must be one of {FISHERS}, not {group['fisher']!r}")
        if group["fisher"] != "empirical" and group["loss"] not in LOSSES:
            raise ValueError(
                f"fisher {group['fisher']!r} needs the loss the closure computes: loss must be one "
                f"of {LOSSES}, not {group['loss']!r}"
            )
        self.check_hyper(*(float(group[name]) for name in self.hyperparameters))
        if float(group["inverse_every"]) != int(group["inverse_every"]):
            raise ValueError(f"inverse_every must be an integer, got {group['inverse_every']!r}")


def _check_loss(loss, params: list[torch.Tensor], name: str) -> None:
    if any(p.grad is not None for p in params):
        raise RuntimeError(
            f"{name}: the closure called backward(); it must only return the loss "
            "(the optimizer differentiates it itself)"
        )
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise TypeError(f"{name}: the closure must return the loss as a one-element tensor")
    if not loss.requires_grad:
        raise ValueError(
            f"{name}: the loss does not depend on the parameters (or was computed under no_grad)"
        )


def _model_output(outputs: list, n_layers: int, name: str) -> torch.Tensor:
    """The model's output f of the closure's forward pass (one, a tensor with a graph)."""
    if len(outputs) != 1 or not isinstance(outputs[0], torch.Tensor):
        raise ValueError(
            f"{name}: the closure must call the model once, and the model return one tensor "
            f"(its output f); got {len(outputs)} calls"
        )
    if n_layers and not outputs[0].requires_grad:
        raise ValueError(f"{name}: the model's output does not depend on its parameters")
    return outputs[0]


def _or_zeros(t: torch.Tensor | None, p: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(p) if t is None else t

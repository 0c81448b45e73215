"""Two-moons demonstration: second-order optimizers against Adam and SGD-momentum, in one run.

    python benchmarks/bench_moons_second_order.py [--repeats 3] [--threshold 0.1] [--markdown]
                                                  [--plot docs/img/moons-second-order.png]

A 2-16-16-1 tanh MLP (torch.nn, float64) on 200 two-moons points (symopt.moons, seed 0, noise
0.2), full batch, binary cross-entropy. Every optimizer is the generated PyTorch one
(generated/torch/symopt_torch) and starts from the same weights. Reported: steps (optimizer
calls) and wall time until the training loss is <= --threshold, the loss and accuracy after the
step budget, and the median wall time over --repeats runs. One torch thread (the matrices are
tiny; on 2 cores threads cost more than they bring). The second-order methods run with their spec
defaults; Adam and SGD-momentum with learning rates that suit this problem (their spec defaults,
lr = 1e-3 and 1e-2, take thousands of full-batch steps).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "generated" / "torch"))

import symopt_torch  # noqa: E402

from symopt.moons import make_moons  # noqa: E402

torch.set_num_threads(1)
LOSS = torch.nn.BCEWithLogitsLoss()


def network(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(2, 16),
        torch.nn.Tanh(),
        torch.nn.Linear(16, 16),
        torch.nn.Tanh(),
        torch.nn.Linear(16, 1),
    ).double()


def data() -> tuple[torch.Tensor, torch.Tensor]:
    X, y = make_moons(200, noise=0.2, seed=0)
    return torch.tensor(X), torch.tensor(y).unsqueeze(1)


def loss_of(model, X, y) -> torch.Tensor:
    return LOSS(model(X), y)


def first_order(make) -> Callable:
    """A step function for an optimizer that needs the gradient in .grad."""

    def setup(model, X, y):
        opt = make(model)

        def step():
            opt.zero_grad()
            loss = loss_of(model, X, y)
            loss.backward()
            opt.step()

        return step

    return setup


def closure_driven(make) -> Callable:
    """A step function for an optimizer whose step evaluates a closure itself."""

    def setup(model, X, y):
        opt = make(model)
        return lambda: opt.step(lambda: loss_of(model, X, y))

    return setup


def batch_driven(make) -> Callable:
    """A step function for DiagNewton / BlockNewton, which compute the exact curvature."""

    def setup(model, X, y):
        opt = make(model)
        return lambda: opt.step(inputs=X, targets=y)

    return setup


METHODS: dict[str, tuple[str, Callable]] = {
    "SGD-momentum": (
        "lr=0.1, rho=0.9",
        first_order(lambda m: symopt_torch.Momentum(m.parameters(), lr=0.1, rho=0.9)),
    ),
    "Adam": ("lr=0.01", first_order(lambda m: symopt_torch.Adam(m.parameters(), lr=0.01))),
    "trust region": (
        "defaults",
        closure_driven(lambda m: symopt_torch.TrustRegion(m.parameters())),
    ),
    "K-FAC": (
        "defaults, sampled Fisher",
        closure_driven(lambda m: symopt_torch.KFAC(m, loss="bce")),
    ),
    "diagonal Newton": (
        "defaults (lr=0.5, lam=0.1)",
        batch_driven(lambda m: symopt_torch.DiagNewton(m.parameters(), model=m, loss_fn=LOSS)),
    ),
    "block-diagonal Newton": (
        "defaults (lr=0.3, lam=0.01), a block per tensor",
        batch_driven(lambda m: symopt_torch.BlockNewton(m.parameters(), model=m, loss_fn=LOSS)),
    ),
}


def run(setup: Callable, steps: int, threshold: float) -> dict:
    """Train from the common start; the loss after each step, and when it crossed threshold."""
    X, y = data()
    model = network()
    step = setup(model, X, y)
    losses, clock, reached, seconds = [], [], None, None
    began = time.perf_counter()
    for k in range(1, steps + 1):
        step()
        clock.append(time.perf_counter() - began)
        with torch.no_grad():
            loss = float(loss_of(model, X, y))
        losses.append(loss)
        if reached is None and loss <= threshold:
            reached, seconds = k, time.perf_counter() - began
    with torch.no_grad():
        accuracy = float(((model(X) > 0).double() == y).double().mean())
    return {
        "losses": losses,
        "clock": clock,
        "steps": reached,
        "seconds": seconds,
        "accuracy": accuracy,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--threshold", type=float, default=0.1)
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--plot", default="", help="also write the loss curves to this PNG")
    args = parser.parse_args()
    rows, curves = [], {}
    for name, (hyper, setup) in METHODS.items():
        runs = [run(setup, args.steps, args.threshold) for _ in range(args.repeats)]
        first = runs[0]
        times = [r["seconds"] for r in runs if r["seconds"] is not None]
        ms = f"{1e3 * statistics.median(times):.0f}" if times else "-"
        steps = first["steps"] if first["steps"] is not None else f"> {args.steps}"
        rows.append(
            [name, hyper, str(steps), ms, f"{first['losses'][-1]:.3g}", f"{first['accuracy']:.3f}"]
        )
        curves[name] = (first["losses"], first["clock"])
        print(f"{name}: {steps} steps, {ms} ms", file=sys.stderr)
    header = [
        "optimizer",
        "hyperparameters",
        f"steps to loss <= {args.threshold:g}",
        "ms to it",
        f"loss after {args.steps}",
        "accuracy",
    ]
    if args.markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for r in rows:
            print("| " + " | ".join(r) + " |")
    else:
        for r in [header, *rows]:
            print("  ".join(str(c).ljust(22) for c in r).rstrip())
    if args.plot:
        plot(curves, args.threshold, Path(args.plot))


def plot(curves: dict[str, tuple[list[float], list[float]]], threshold: float, path: Path) -> None:
    """Training loss against steps and against wall time, one line per optimizer."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (by_step, by_time) = plt.subplots(1, 2, figsize=(12.0, 4.5), dpi=100)
    for name, (losses, clock) in curves.items():
        by_step.loglog(range(1, len(losses) + 1), losses, label=name)
        by_time.loglog(clock, losses, label=name)
    for ax, xlabel in ((by_step, "step"), (by_time, "wall time (s)")):
        ax.axhline(threshold, color="grey", linestyle=":", linewidth=1)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("training loss (BCE)")
        ax.grid(alpha=0.3)
    by_step.set_title("Two moons, 2-16-16-1 tanh MLP, full batch")
    by_time.set_title("the same runs against wall time (one thread)")
    by_step.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()

"""Benchmark: ten algorithms past element-wise algebra, generated PyTorch against the library.

    python benchmarks/bench_tensor_specs.py [--shape 512,512] [--tensors 8] [--repeats 7]
        [--steps 3] [--algorithms lamb,muon,...] [--markdown]

Each algorithm steps ``--tensors`` float32 matrices of ``--shape`` (Muon, LARS and Adafactor
need 2-D parameters) with fixed gradients. Implementations: the generated optimizer (its foreach
path where the spec is element-wise, whole-tensor statements otherwise) and the library it was
compared with in the tests (torch.optim or pytorch_optimizer, with its defaults: foreach where it
has one). A torch.optim class is compared with its generated drop-in, called the same way
(``symopt_torch.Adam(p, amsgrad=True)`` against ``torch.optim.Adam(p, amsgrad=True)``), which
runs the kernel of that setting of the spec's flags. torch.optim.Muon computes its Newton-Schulz
iteration in bfloat16, the generated Muon in the parameters' precision: its ratio compares
different arithmetic. Each time is the median over repeats of the mean step time of a burst,
after a warm-up step; the two take turns in each repeat, and the ratio (above 1: the generated
optimizer is faster) comes from the same run.
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "generated" / "torch"))

import symopt_torch  # noqa: E402

#: Row -> (module of the library, its class, the generated class, keyword arguments of both).
#: torch.optim's classes have generated drop-ins of the same name and arguments.
CLASSES = {
    "adamw": ("torch.optim", "AdamW", "AdamW", {}),
    "amsgrad": ("torch.optim", "Adam", "Adam", {"amsgrad": True}),
    "radam": ("torch.optim", "RAdam", "RAdam", {}),
    "rprop": ("torch.optim", "Rprop", "Rprop", {}),
    "adafactor": ("torch.optim", "Adafactor", "Adafactor", {}),
    "muon": ("torch.optim", "Muon", "Muon", {}),
    "lion": ("pytorch_optimizer", "Lion", "Lion", {}),
    "yogi": ("pytorch_optimizer", "Yogi", "Yogi", {}),
    "lamb": ("pytorch_optimizer", "Lamb", "Lamb", {}),
    "lars": ("pytorch_optimizer", "LARS", "Lars", {}),
}


def makers(name: str) -> dict:
    """ "generated" and "library": each makes the optimizer of row ``name`` over parameters."""
    module, library, generated, kwargs = CLASSES[name]
    return {
        "generated": lambda p: getattr(symopt_torch, generated)(p, **kwargs),
        "library": lambda p: getattr(importlib.import_module(module), library)(p, **kwargs),
    }


def make_params(shape: tuple[int, ...], tensors: int) -> list[torch.nn.Parameter]:
    """The same float32 parameters and gradients for every implementation."""
    gen = torch.Generator().manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(shape, generator=gen)) for _ in range(tensors)]
    for p in params:
        p.grad = torch.randn(shape, generator=gen) * 1e-2
    return params


def time_pair(name: str, shape, tensors: int, steps: int, repeats: int) -> dict[str, float]:
    optimizers = {}
    for label, make in makers(name).items():
        opt = make(make_params(shape, tensors))
        opt.step()  # warm-up: allocates state
        optimizers[label] = opt
    times: dict[str, list[float]] = {label: [] for label in optimizers}
    order = list(optimizers)
    for r in range(repeats):
        for label in order[r % 2 :] + order[: r % 2]:
            start = time.perf_counter()
            for _ in range(steps):
                optimizers[label].step()
            times[label].append((time.perf_counter() - start) / steps)
    return {label: statistics.median(t) for label, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="512,512")
    parser.add_argument("--tensors", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--algorithms", default=",".join(CLASSES))
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    shape = tuple(int(s) for s in args.shape.split(","))
    header = ["algorithm", "generated ms", "library ms", "library / generated"]
    rows = []
    for name in args.algorithms.split(","):
        seconds = time_pair(name, shape, args.tensors, args.steps, args.repeats)
        gen, lib = (1e3 * seconds[k] for k in ("generated", "library"))
        rows.append([name, f"{gen:.2f}", f"{lib:.2f}", f"{lib / gen:.2f}"])
        print(" | ".join(rows[-1]), file=sys.stderr)
    if args.markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for row in rows:
            print("| " + " | ".join(row) + " |")
    else:
        print("\t".join(header))
        for row in rows:
            print("\t".join(row))


if __name__ == "__main__":
    main()

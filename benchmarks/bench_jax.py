"""Benchmark: generated JAX optimizers against optax's, one jitted step each on CPU, in one run.

    python benchmarks/bench_jax.py [--sizes 1e5,1e6,1e7] [--repeats 7] [--steps N]
        [--algorithms adam,sgd,adabelief,lion] [--markdown]

Adam, SGD with momentum 0.9, AdaBelief and Lion, each as ``symopt_jax`` generates it and as optax
writes it, with the same hyperparameters, in float32 on the CPU. For each total size the
parameters are 1 array or 100 equal arrays (a list pytree). The timed unit is one step
``params, state = step(params, state, grads)``, ``step`` being ``jax.jit`` of the update and
``optax.apply_updates`` with params and state donated, so that both implementations update
their arrays in place; it is compiled by a warm-up step before any timing.

Each time is the median over repeats of the mean step time of a burst of steps, ended by
``jax.block_until_ready``; the implementations take turns (in a rotating order) within each
repeat, so that a slow spell of a shared machine hits all of them alike, and the ratio
optax / generated (above 1: the generated step is faster) comes from this same run. A burst is
``--steps`` steps, or by default enough to update ``BURST_ELEMENTS`` elements (at least
``MIN_STEPS``): a step of 1e5 elements takes a tenth of a millisecond, and bursts that short
time the scheduler of a shared machine more than the step. The default run takes about a
minute on two cores.

The ceiling is the least memory traffic a step can cause: a jitted, donated ``p + g`` and
``s + g`` for every state array ``s`` the algorithm keeps per parameter (Adam: reads p, g, m, v
and writes p, m, v). "fraction of ceiling" is its time over an implementation's (1: the step
costs no more than moving its bytes once).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "generated" / "jax"))

import symopt_jax  # noqa: E402

LR = 1e-3
#: A burst's default length: enough steps to update this many elements, and at least MIN_STEPS.
BURST_ELEMENTS = 10**7
MIN_STEPS = 5
#: The ratios' baseline first: the table's columns follow this order.
IMPLEMENTATIONS = ("generated", "optax", "ceiling")


@dataclass(frozen=True)
class Algorithm:
    """The two implementations of one optimizer, with the same hyperparameters, and how many
    full-size state arrays it keeps per parameter (the ceiling's traffic)."""

    generated: Callable[[], optax.GradientTransformation]
    optax: Callable[[], optax.GradientTransformation]
    states: int


ALGORITHMS = {
    "adam": Algorithm(
        lambda: symopt_jax.adam(LR, b1=0.9, b2=0.999, eps=1e-8),
        lambda: optax.adam(LR, b1=0.9, b2=0.999, eps=1e-8),
        states=2,
    ),
    "sgd": Algorithm(
        lambda: symopt_jax.sgd(LR, momentum=0.9),
        lambda: optax.sgd(LR, momentum=0.9),
        states=1,
    ),
    # The spec adds eps inside the second moment, as optax's eps_root does.
    "adabelief": Algorithm(
        lambda: symopt_jax.adabelief(LR, b1=0.9, b2=0.999, eps=1e-16),
        lambda: optax.adabelief(LR, b1=0.9, b2=0.999, eps=1e-16, eps_root=1e-16),
        states=2,
    ),
    # optax.lion's weight_decay defaults to 1e-3, the spec's to 0. The generated step runs the
    # same code for any value, but multiplies w by 1 - lr*weight_decay, which float32 rounds
    # (1 - 1e-7 -> 1 - 1.2e-7): the two would drift apart by rounding alone, so 0 for both.
    "lion": Algorithm(
        lambda: symopt_jax.lion(1e-4, b1=0.9, b2=0.99, weight_decay=0.0),
        lambda: optax.lion(1e-4, b1=0.9, b2=0.99, weight_decay=0.0),
        states=1,
    ),
}

Tree = list[jax.Array]
Step = Callable[..., tuple]


@dataclass
class Result:
    """One row: milliseconds per step of each implementation, and the largest difference of the
    two optimizers' parameters after the run (both took the same steps from the same start)."""

    algorithm: str
    total: int
    tensors: int
    ms: dict[str, float]
    max_diff: float

    @property
    def ratio(self) -> float:
        return self.ms["optax"] / self.ms["generated"]

    def fraction(self, name: str) -> float:
        return self.ms["ceiling"] / self.ms[name]


class Runner:
    """One implementation's jitted step and the arrays it updates in place."""

    def __init__(self, step: Step, params: Tree, state, grads: Tree):
        self.step, self.params, self.state, self.grads = step, params, state, grads

    def run(self, steps: int) -> float:
        """Mean seconds per step of a burst, waiting for the last step's arrays."""
        start = time.perf_counter()
        for _ in range(steps):
            self.params, self.state = self.step(self.params, self.state, self.grads)
        jax.block_until_ready((self.params, self.state))
        return (time.perf_counter() - start) / steps


def optimizer_step(tx: optax.GradientTransformation) -> Step:
    """A jitted step of ``tx`` that donates params and state, so XLA writes them in place."""

    def step(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    return jax.jit(step, donate_argnums=(0, 1))


def _ceiling(params, states, grads):
    """Read p, g and every state once, write p and every state once: no less is possible."""
    add = lambda tree: jax.tree.map(jnp.add, tree, grads)
    return add(params), tuple(add(s) for s in states)


ceiling_step: Step = jax.jit(_ceiling, donate_argnums=(0, 1))


def make_arrays(total: int, tensors: int, seed: int, scale: float = 1.0) -> Tree:
    """``tensors`` equal float32 arrays, fresh device buffers (a donated buffer must be owned)."""
    rng = np.random.default_rng(seed)
    return [
        jnp.array(scale * rng.standard_normal(total // tensors, dtype=np.float32))
        for _ in range(tensors)
    ]


def make_runners(algorithm: Algorithm, total: int, tensors: int) -> dict[str, Runner]:
    """The three implementations on the same parameters and gradients, each compiled."""
    grads = make_arrays(total, tensors, seed=1, scale=1e-2)
    runners = {}
    for name in IMPLEMENTATIONS:
        params = make_arrays(total, tensors, seed=0)
        if name == "ceiling":
            states = tuple(make_arrays(total, tensors, seed=2 + i) for i in range(algorithm.states))
            runners[name] = Runner(ceiling_step, params, states, grads)
        else:
            tx = getattr(algorithm, name)()
            runners[name] = Runner(optimizer_step(tx), params, tx.init(params), grads)
        runners[name].run(1)  # warm-up: compiles
    return runners


def time_runners(runners: dict[str, Runner], steps: int, repeats: int) -> dict[str, float]:
    """Median over repeats of the milliseconds per step, the implementations taking turns."""
    times: dict[str, list[float]] = {name: [] for name in runners}
    order = list(runners)
    for r in range(repeats):
        for name in order[r % len(order) :] + order[: r % len(order)]:
            times[name].append(1e3 * runners[name].run(steps))
    return {name: statistics.median(samples) for name, samples in times.items()}


def max_difference(a: Tree, b: Tree) -> float:
    """The largest absolute difference of two parameter lists."""
    return max(float(jnp.max(jnp.abs(x - y))) for x, y in zip(a, b, strict=True))


def burst(total: int, steps: int | None) -> int:
    """The steps of a timed burst: ``steps``, or by default about BURST_ELEMENTS elements' worth."""
    return steps if steps is not None else max(MIN_STEPS, BURST_ELEMENTS // total)


def measure(name: str, total: int, tensors: int, steps: int | None, repeats: int) -> Result:
    """One row of the table."""
    runners = make_runners(ALGORITHMS[name], total, tensors)
    ms = time_runners(runners, burst(total, steps), repeats)
    diff = max_difference(runners["generated"].params, runners["optax"].params)
    return Result(name, total, tensors, ms, diff)


HEADER = [
    "algorithm",
    "elements",
    "layout",
    "generated ms",
    "optax ms",
    "optax / generated",
    "ceiling ms",
    "generated, fraction of ceiling",
    "optax, fraction of ceiling",
]


def cells(result: Result) -> list[str]:
    """A row's cells, in the order of ``HEADER``."""
    layout = "1 tensor" if result.tensors == 1 else f"{result.tensors} tensors"
    return [
        result.algorithm,
        f"{result.total:.0e}",
        layout,
        f"{result.ms['generated']:.3f}",
        f"{result.ms['optax']:.3f}",
        f"{result.ratio:.2f}",
        f"{result.ms['ceiling']:.3f}",
        f"{result.fraction('generated'):.2f}",
        f"{result.fraction('optax'):.2f}",
    ]


def machine() -> str:
    """What the numbers were measured on: they mean little without it."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass
    return (
        f"{os.cpu_count()} CPUs ({model}), jax {jax.__version__}, optax {optax.__version__}, "
        f"float32 on {jax.devices('cpu')[0].platform}"
    )


def print_table(results: Sequence[Result], argv: Sequence[str], markdown: bool) -> None:
    """The table on stdout: markdown (for docs/jax.md, with the machine and command) or TSV."""
    rows = [cells(r) for r in results]
    if not markdown:
        for row in [HEADER, *rows]:
            print("\t".join(row))
        return
    command = " ".join(["python benchmarks/bench_jax.py", *argv])
    print(f"Measured on {machine()}, with `{command}`.\n")
    print("| " + " | ".join(HEADER) + " |")
    print("|" + "---|" * len(HEADER))
    for row in rows:
        print("| " + " | ".join(row) + " |")


def main(argv: Sequence[str] | None = None) -> list[Result]:
    """Run the benchmark, print its table, and return its rows."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1e5,1e6,1e7")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--steps", type=int, help="steps per burst (default: by size)")
    parser.add_argument("--algorithms", default=",".join(ALGORITHMS))
    parser.add_argument("--markdown", action="store_true")
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    results = []
    with jax.default_device(jax.devices("cpu")[0]):
        for name in args.algorithms.split(","):
            for total in (int(float(s)) for s in args.sizes.split(",")):
                for tensors in (1, 100):
                    results.append(measure(name, total, tensors, args.steps, args.repeats))
                    row = [*cells(results[-1]), f"max |p diff| {results[-1].max_diff:.1e}"]
                    print(" | ".join(row), file=sys.stderr)
    print_table(results, argv, args.markdown)
    return results


if __name__ == "__main__":
    main()

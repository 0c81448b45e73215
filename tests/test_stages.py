"""Splitting an update with per-tensor reductions into passes over memory (symopt.lowering.stages):
which pass writes each output, what a later pass recomputes and from which arrays, and, run pass
by pass in NumPy the way the C loops run, the same numbers as the reference stepper."""

import numpy as np
import pytest
import sympy

from symopt.lowering.stages import SIZE, split
from symopt.reference import ReferenceStepper, _Float64, evaluate, relative_error
from symopt.spec import load_spec_text

HEAD = """
name = "{name}"
class_name = "Test"
title = "a test spec"
summary = "s"
reference = "r"
update = [{update}]
[hyper.lr]
default = 0.1
domain = "positive"
[hyper.eps]
default = 1e-8
domain = "positive"
[hyper.beta]
default = 0.9
domain = "unit_closed_open"
"""


def spec_of(update: list[str], states: dict[str, str] | None = None, name: str = "t1"):
    text = HEAD.format(name=name, update=", ".join(f'"{line}"' for line in update))
    for state, init in (states or {}).items():
        text += f'[state.{state}]\ninit = "{init}"\n'
    return load_spec_text(text)


NGD = ["w = w - lr*g/(norm(g) + eps)"]
LAMB = [
    "m = beta*m + (1 - beta)*g",
    "v = beta*v + (1 - beta)*g**2",
    "w = w*(1 - lr*eps)",
    "u = m/(sqrt(v) + eps)",
    "ratio = where(norm(w) == 0 or norm(u) == 0, 1, norm(w)/(norm(u) + eps))",
    "w = w - lr*ratio*u",
]
#: The old value of p is read after the norm: p is written in the last pass.
OLD = ["d = g - p", "p = g", "w = w - lr*d/(norm(d) + eps) - lr*g/(max(abs(g)) + eps)"]
#: A mean, then a norm of the centred momentum: three passes.
THREE = ["m = beta*m + (1 - beta)*g", "c = m - mean(m)", "w = w - lr*c/(norm(c) + eps)"]
#: A trust ratio with where() on norms, a sum, and state set from the first gradient's norm.
TRUST = [
    "r = where(norm(w) > 0 and norm(g) > 0, norm(w)/(norm(g) + sum(abs(g))*eps), 1)",
    "b = beta*b + r*g",
    "w = w - lr*(b + s)",
    "s = s*beta",
]
CASES = {
    "ngd": (NGD, {}),
    "lamb": (LAMB, {"m": "0", "v": "0"}),
    "old": (OLD, {"p": "0"}),
    "three": (THREE, {"m": "0"}),
    "trust": (TRUST, {"b": "0", "s": "g/(norm(g) + eps)"}),
}


def test_normalised_gradient_takes_two_passes_and_writes_w_in_the_second():
    stages = split(spec_of(NGD))
    first, second = stages.passes
    assert first.loads == ("g",) and first.stores == () and first.body == ()
    [acc] = first.accumulators
    assert acc.kind == "sumsq" and acc.value.name == "g"
    scalars = dict(first.scalars)
    norm = next(s for s in scalars if s.name == "norm_g")
    assert scalars[norm] == sympy.sqrt(acc.name)
    assert second.loads == ("w", "g") and stages.written_in("w") == 2
    # the per-tensor scalar folds lr in: one multiply-add per element in the second pass
    assert sympy.sstr(scalars[sympy.Symbol("neg_step_size", real=True)]) == "-lr/(eps + norm_g)"
    assert [sympy.sstr(st.expr) for st in second.body] == ["g*neg_step_size + w"]


def test_lamb_writes_the_moments_in_the_first_pass_and_recomputes_the_direction():
    stages = split(spec_of(LAMB, {"m": "0", "v": "0"}))
    assert {a: stages.written_in(a) for a in stages.outputs} == {"w": 2, "m": 1, "v": 1}
    first, second = stages.passes
    assert [a.kind for a in first.accumulators] == ["sumsq", "sumsq"]
    assert {a.value.name for a in first.accumulators} == {"w_new", "u"}
    # the second pass reads the new moments from memory and the old w (not written yet)
    assert second.loads == ("w", "m", "v") and second.fresh == ("m", "v")
    assert "w_new" in {st.target.name for st in second.body}  # w*(1 - lr*eps) recomputed
    assert not {"g"} & set(second.loads)


def test_an_old_value_needed_later_delays_the_write():
    stages = split(spec_of(OLD, {"p": "0"}))
    assert [p.index for p in stages.passes] == [1, 2]
    assert stages.written_in("p") == 2 and stages.written_in("w") == 2
    first, second = stages.passes
    assert first.stores == () and second.fresh == ()
    assert sorted(a.kind for a in first.accumulators) == ["max", "sumsq"]
    assert {"g", "p"} <= set(second.loads)  # d = g - p recomputed from the old p


def test_three_passes_read_the_state_written_by_the_first():
    stages = split(spec_of(THREE, {"m": "0"}))
    assert len(stages.passes) == 3
    assert stages.written_in("m") == 1 and stages.written_in("w") == 3
    _, second, third = stages.passes
    assert second.loads == ("m",) and second.fresh == ("m",)
    assert third.fresh == ("m",) and "g" not in third.loads
    mean = next(e for s, e in stages.passes[0].scalars if s.name == "mean_m")
    assert mean == stages.passes[0].accumulators[0].name / SIZE


def test_sum_and_mean_of_one_value_share_an_accumulator():
    stages = split(spec_of(["w = w - lr*(sum(g) + mean(g))*g"]))
    [acc] = stages.passes[0].accumulators
    assert acc.kind == "sum" and acc.value.name == "g"
    exprs = [e for _, e in stages.tensor_scalars]
    assert sum(e == acc.name for e in exprs) == 1 and acc.name / SIZE in exprs


def test_row_reductions_are_not_split():
    text = HEAD.format(name="by_rows", update='"w = w - lr*row_sum(g)"')
    spec = load_spec_text('applies_to = "matrix"\n' + text)
    with pytest.raises(ValueError, match="not a reduction over the whole tensor"):
        split(spec)


class ByName:
    """Values looked up by a symbol's name, whatever its assumptions (what evaluate() needs)."""

    def __init__(self, values: dict):
        self.values = values

    def __getitem__(self, symbol):
        return self.values[symbol.name]


def run_passes(stages, memory: dict, t: int, hyper: dict) -> None:
    """One step of one tensor, pass by pass as the C loops run it: a pass loads the arrays as
    they are, computes its body, accumulates and stores (after the whole pass: the same as element
    by element, since the body is element-wise), then computes the per-tensor scalars."""
    f64 = _Float64()
    values = {**hyper, "t": t, SIZE.name: memory["w"].size}
    env = ByName(values)
    for s, e in stages.prelude:
        values[s.name] = evaluate(e, env, f64)
    for p in stages.passes:
        for a in p.loads:
            values[a] = memory[a]
        for st in p.body:
            values[st.target.name] = np.broadcast_to(evaluate(st.expr, env, f64), memory["w"].shape)
        for a in p.accumulators:
            x = values[a.value.name]
            total = {"sum": np.sum, "sumsq": lambda x: np.sum(x * x), "max": np.max}[a.kind]
            values[a.name.name] = total(x)
        for array, v in p.stores:
            memory[array] = np.array(values[v.name])
        for s, e in p.scalars:
            values[s.name] = evaluate(e, env, f64)


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_passes_compute_what_the_reference_stepper_computes(case):
    update, states = CASES[case]
    spec = spec_of(update, states, name=f"case_{case}")
    stages = split(spec)
    rng = np.random.default_rng(3)
    w = rng.standard_normal(40)
    ref = ReferenceStepper(spec, [w])
    memory = {"w": w.copy(), **{s: np.zeros(40) + float(stages.init[s]) for s in states}}
    hyper = dict(spec.defaults)
    for k in range(6):
        g = rng.standard_normal(40) * (1 + k)
        ref.step([g])
        memory["g"] = g
        run_passes(stages, memory, spec.t_start + k, hyper)
        assert relative_error(memory["w"], ref.params[0]) < 1e-14, f"step {k + 1}"
        for s in states:
            assert relative_error(memory[s], ref.state[0][s]) < 1e-14, f"{s}, step {k + 1}"

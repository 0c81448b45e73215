"""State of one value per tensor (``shape = "scalar"``: ASGD's step size and averaging weight,
NAdam's product of momentum coefficients) in the whole-tensor passes of the C target
(symopt.lowering.stages): the old value is read once before the first pass, the new value is a
per-tensor scalar computed where its inputs are available (after a pass that accumulates a
reduction it needs), and it is written once, after the last pass.

First the lowering itself, on two small specs (run pass by pass in NumPy the way the C loops run
them, against the reference stepper); then their C code, built in a temporary folder: float64
and float32 against the reference stepper over tensors of zero elements to sixty-four blocks,
one thread and three, state_dict and the functional step, and the generated tests (reference
comparisons and the sanitizer driver)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import sympy

from symopt.backends.c import CBackend
from symopt.lowering.stages import SIZE, split
from symopt.reference import ReferenceStepper, _Float64, evaluate, relative_error
from symopt.resources import builtin_specs
from symopt.spec import load_spec_text

ROOT = Path(__file__).resolve().parents[1]

#: ASGD's shape: the old values of two per-tensor states feed the element-wise update (one in a
#: condition), their new values depend on t and the hyperparameters only.
DECAY = """
name = "decay"
class_name = "Decay"
title = "SGD with a per-tensor decaying step size and a late average"
summary = "A test spec: per-tensor state read by the element-wise part, and a condition on one."
reference = "none"
update = [
  "w = w*(1 - lambd*eta) - eta*g",
  "ax = where(mu == 1, w, ax + (w - ax)*mu)",
  "eta = lr/(1 + lambd*lr*t)**alpha",
  "mu = 1/max(1, t - t0)",
]
[hyper.lr]
default = 0.05
domain = "positive"
[hyper.lambd]
default = 0.01
domain = "nonnegative"
[hyper.alpha]
default = 0.75
domain = "nonnegative"
[hyper.t0]
default = 3
domain = "nonnegative"
[state.eta]
init = "lr"
shape = "scalar"
[state.mu]
init = "1"
shape = "scalar"
[state.ax]
init = "0"
"""
#: Per-tensor state from reductions: s from the gradient's norm (after the first pass, reading
#: its old value there), a counter k, and r, the norm of the new parameters (accumulated in the
#: pass that writes them, the last).
NORMED = """
name = "normed"
class_name = "Normed"
title = "SGD over a running mean of the squared gradient norm"
summary = "A test spec: per-tensor state from reductions, one of them of the new parameters."
reference = "none"
update = [
  "s = beta*s + (1 - beta)*norm(g)**2",
  "k = k + 1",
  "w = w - lr*g/(sqrt(s/(1 - beta**k)) + eps)",
  "r = norm(w)",
]
[hyper.lr]
default = 0.01
domain = "positive"
[hyper.beta]
default = 0.9
domain = "unit_closed_open"
[hyper.eps]
default = 1e-8
domain = "positive"
[state.s]
init = "0"
shape = "scalar"
[state.k]
init = "0"
shape = "scalar"
[state.r]
init = "0"
shape = "scalar"
"""
SPECS = {"decay": DECAY, "normed": NORMED}


def spec_of(name: str):
    return load_spec_text(SPECS[name], file=f"{name}.toml")


def names(pairs) -> list[str]:
    return [s.name for s, _ in pairs]


# -- the lowering --------------------------------------------------------------------------------


def test_per_tensor_state_is_read_before_the_first_pass_and_written_after_the_last():
    stages = split(spec_of("decay"))
    assert stages.arrays == ("w", "g", "eta", "mu", "ax")  # the kernel's arguments
    assert set(stages.outputs) == {"w", "eta", "mu", "ax"}
    [only] = stages.passes  # no reduction: one pass
    assert only.loads == ("w", "g", "ax") and dict(only.stores).keys() == {"w", "ax"}
    assert only.accumulators == () and only.scalars == ()
    # before the pass: the new values (t and the hyperparameters) and what the loop needs from
    # the old ones, the condition mu == 1 among them
    before = dict(stages.before)
    assert {"eta_new", "mu_new", "condition"} <= set(names(stages.before))
    condition = before[sympy.Symbol("condition", real=True)]
    assert isinstance(condition, sympy.Eq) and {x.name for x in condition.free_symbols} == {"mu"}
    assert {v.name for _, v in stages.scalar_stores} == {"eta_new", "mu_new"}
    assert [a for a, _ in stages.scalar_stores] == ["eta", "mu"]
    # the loop reads the old mu (a per-tensor scalar, like the prelude's), never an array of it
    ax_new = next(st for st in only.body if st.array == "ax")
    assert "mu" in {x.name for x in ax_new.expr.free_symbols}


def test_per_tensor_state_from_reductions_takes_the_passes_it_needs():
    stages = split(spec_of("normed"))
    first, second = stages.passes
    assert names(stages.before) == ["k_new"]
    # pass 1 accumulates |g|^2; s's new value (from its old one) follows it, the step size too
    assert first.loads == ("g",) and first.stores == ()
    assert [(a.kind, a.value.name) for a in first.accumulators] == [("sumsq", "g")]
    assert {"norm_g", "s_new"} <= set(names(first.scalars))
    # pass 2 writes w and accumulates the new w's norm, which r takes after it
    assert dict(second.stores).keys() == {"w"}
    assert [(a.kind, a.value.name) for a in second.accumulators] == [("sumsq", "w_new")]
    assert names(second.scalars) == ["r_new"]
    assert [(a, v.name) for a, v in stages.scalar_stores] == [
        ("s", "s_new"),
        ("k", "k_new"),
        ("r", "r_new"),
    ]


def test_an_element_wise_value_for_per_tensor_state_is_refused():
    text = NORMED.replace('"k = k + 1"', '"k = k + g"').replace('name = "normed"', 'name = "bad"')
    with pytest.raises(ValueError, match="'k' is one value per tensor"):
        split(load_spec_text(text))


class ByName:
    """Values looked up by a symbol's name, whatever its assumptions (what evaluate() needs)."""

    def __init__(self, values: dict):
        self.values = values

    def __getitem__(self, symbol):
        return self.values[symbol.name]


def run_passes(stages, memory: dict, t: int, hyper: dict) -> None:
    """One step of one tensor as the C code runs it: the prelude, the per-tensor states' old
    values and the scalars before the first pass, then pass by pass (loads, body, accumulators,
    stores, the scalars after it), then the per-tensor states' new values."""
    f64 = _Float64()
    values = {**hyper, "t": t, SIZE.name: memory["w"].size}
    env = ByName(values)
    for s, e in stages.prelude:
        values[s.name] = evaluate(e, env, f64)
    values.update({a: float(memory[a]) for a, _ in stages.scalar_stores})
    for s, e in stages.before:
        values[s.name] = evaluate(e, env, f64)
    for p in stages.passes:
        for a in p.loads:
            values[a] = memory[a]
        for st in p.body:
            values[st.target.name] = np.broadcast_to(evaluate(st.expr, env, f64), memory["w"].shape)
        for a in p.accumulators:
            x = values[a.value.name]
            values[a.name.name] = {"sum": np.sum, "sumsq": lambda x: np.sum(x * x)}[a.kind](x)
        for array, v in p.stores:
            memory[array] = np.array(values[v.name])
        for s, e in p.scalars:
            values[s.name] = evaluate(e, env, f64)
    for array, v in stages.scalar_stores:
        memory[array] = np.array(float(values[v.name]))


@pytest.mark.parametrize("name", sorted(SPECS))
def test_the_passes_compute_what_the_reference_stepper_computes(name):
    spec = spec_of(name)
    stages = split(spec)
    rng = np.random.default_rng(3)
    w = rng.standard_normal(40)
    ref = ReferenceStepper(spec, [w])
    memory = {"w": w.copy(), **{s: np.array(a, dtype=float) for s, a in ref.state[0].items()}}
    for k in range(12):
        g = rng.standard_normal(40) * (1 + k)
        ref.step([g])
        memory["g"] = g
        run_passes(stages, memory, spec.t_start + k, dict(spec.defaults))
        assert relative_error(memory["w"], ref.params[0]) < 1e-14, f"step {k + 1}"
        for s, value in ref.state[0].items():
            assert np.shape(memory[s]) == np.shape(value), s
            assert relative_error(memory[s], value) < 1e-14, f"{s}, step {k + 1}"


# -- the C target --------------------------------------------------------------------------------


def test_the_c_target_generates_per_tensor_state_and_still_refuses_row_state():
    specs = builtin_specs()
    assert CBackend().unsupported(specs["asgd"]) is None
    assert CBackend().unsupported(specs["nadam_torch"]) is None
    assert "row/column state" in CBackend().unsupported(specs["adafactor"])
    assert all(CBackend().unsupported(spec_of(name)) is None for name in SPECS)


@pytest.fixture(scope="module")
def scalar_c(tmp_path_factory) -> Path:
    """The C target's files for the two specs above, in a folder of their own."""
    folder = tmp_path_factory.mktemp("scalar")
    for f in CBackend().files([spec_of(name) for name in SPECS]):
        (folder / f.path).parent.mkdir(parents=True, exist_ok=True)
        (folder / f.path).write_text(f.text)
    return folder / "c"


def test_the_state_pointers_are_read_once_and_written_once(scalar_c):
    source = (scalar_c / "src" / "normed.c").read_text()
    for precision in ("f32", "f64"):
        driver = source[source.index(f"static void normed_whole_{precision}(") :]
        driver = driver[: driver.index("\n}\n")]
        for state in ("s", "k"):
            assert driver.count(f"_s_{state}[0]") == 2, (precision, state)  # read, then written
        assert driver.count("_s_r[0]") == 1  # written only: its old value is never read
    header = (scalar_c / "include" / "symopt" / "decay.h").read_text()
    assert "eta[k], mu[k] one." in header and "(one value per tensor)" in header


COMPARE = """
import importlib, json, sys
import numpy as np
import symopt_c
from symopt.reference import ReferenceStepper, relative_error
from symopt.spec import load_spec
out = {}
for name in sys.argv[1].split(","):
    spec = load_spec(f"{sys.argv[2]}/tests/specs/{name}.toml")
    module = importlib.import_module(f"symopt_c.{name}")
    cls, step = getattr(module, spec.class_name), getattr(module, f"{name}_step")
    rng = np.random.default_rng(5)
    sizes = [5000, 1, 0, 33, 300000]  # 2 blocks, one, an empty tensor, one, 64 blocks
    ws = [rng.standard_normal(n) for n in sizes]
    scales = 10.0 ** rng.uniform(-2, 1, 12)
    grads = [[rng.standard_normal(n) * c for n in sizes] for c in scales]
    ref = ReferenceStepper(spec, ws)
    for gs in grads:
        ref.step(gs)
    arrays = lambda o: [*o.params, *(s[k] for s in o.state for k in sorted(s))]
    ref_arrays = [*ref.params, *(s[k] for s in ref.state for k in sorted(s))]
    for dtype in ("float64", "float32"):
        results = []
        for threads in (1, 3):
            symopt_c.set_num_threads(threads)
            opt = cls([w.astype(dtype) for w in ws])
            for gs in grads[:6]:
                opt.step([g.astype(dtype) for g in gs])
            saved = opt.state_dict()
            opt = cls([p.copy() for p in opt.params])
            opt.load_state_dict(saved)  # resumes where it was
            for gs in grads[6:]:
                opt.step([g.astype(dtype) for g in gs])
            results.append(opt)
        one, three = results
        # the functional step on copies: the single-tensor entry point, tensor by tensor
        copies = [w.astype(dtype) for w in ws]
        states = [cls.new_state(w, cls.DEFAULTS) for w in copies]
        for k, gs in enumerate(grads):
            for w, g, state in zip(copies, gs, states):
                step(w, g.astype(dtype), *(state[n] for n in cls.STATE), cls.T_START + k)
        single = [*copies, *(s[k] for s in states for k in sorted(s))]
        out[f"{name} {dtype}"] = {
            "error": max(relative_error(a, r) for a, r in zip(arrays(one), ref_arrays)),
            "threads agree": all(np.array_equal(a, b) for a, b in zip(arrays(one), arrays(three))),
            "single agrees": all(np.array_equal(a, b) for a, b in zip(arrays(one), single)),
            "shapes": sorted({str(np.shape(s[k])) for s in one.state for k in cls.PER_TENSOR}),
            "dtypes": sorted({str(s[k].dtype) for s in one.state for k in cls.PER_TENSOR}),
        }
    wrong = [{**s, cls.PER_TENSOR[0]: np.zeros(2)} for s in saved["state"]]
    try:
        opt.load_state_dict({**saved, "state": wrong})
    except ValueError as exc:
        out[f"{name} refused"] = str(exc)
print(json.dumps(out))
"""


def test_c_matches_the_reference_stepper_in_float64_and_float32(scalar_c):
    """float64 to 1e-12 and float32 loosely; one thread and three give the same bits, and so do
    the multi-tensor and single-tensor entry points; per-tensor state is 0-d, in the parameters'
    dtype, as the NumPy target keeps it, and a state_dict with another shape is refused."""
    env = {**os.environ, "PYTHONPATH": f"{scalar_c}{os.pathsep}{ROOT}"}
    env.pop("SYMOPT_C_LIB", None)
    done = subprocess.run(
        [sys.executable, "-c", COMPARE, ",".join(SPECS), str(scalar_c)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout)
    for name in SPECS:
        for dtype, tolerance in (("float64", 1e-12), ("float32", 1e-4)):
            result = results[f"{name} {dtype}"]
            assert result["error"] < tolerance, (name, dtype, result)
            assert result["threads agree"] and result["single agrees"], (name, dtype, result)
            assert result["shapes"] == ["()"] and result["dtypes"] == [dtype], (name, result)
        assert "has shape (2,), expected ()" in results[f"{name} refused"]


def test_generated_tests_pass(scalar_c):
    """The generated tests of both specs: reference comparisons, edge gradients, several mixed
    tensors with the functional step, and the sanitizer driver (per-tensor state: arrays of one
    element, whatever the tensor's size)."""
    env = {k: v for k, v in os.environ.items() if k != "SYMOPT_C_LIB"}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist"]
    tests = [str(scalar_c / "tests" / f"test_{name}.py") for name in SPECS]
    done = subprocess.run(
        [*command, *tests], capture_output=True, text=True, cwd=ROOT, timeout=600, env=env
    )
    assert done.returncode == 0 and " passed" in done.stdout, done.stdout[-3000:]
    assert "skipped" not in done.stdout, done.stdout[-3000:]

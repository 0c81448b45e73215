"""Kernel lowering and the three-address code: what the generated code is built from."""

import sympy

from symopt.backends.numpy.elementwise import ScalarPrinter
from symopt.lowering.kernel import lower
from symopt.lowering.tac import compile_kernel
from symopt.resources import elementwise_specs
from symopt.spec import load_spec_text

SPECS = elementwise_specs()


def test_adam_prelude_holds_the_bias_corrections_and_body_is_elementwise():
    kernel = lower(SPECS["adam"])
    scalars = {s.name for s in kernel.scalars}
    known = {"lr", "beta1", "beta2", "eps", "t"}
    for name, expr in kernel.prelude:  # over hyperparameters and earlier prelude scalars
        assert {s.name for s in expr.free_symbols} <= known
        known.add(name.name)
    prelude = " ".join(str(e) for _, e in kernel.prelude)
    assert "beta1**t" in prelude and "beta2**t" in prelude
    for st in kernel.body:
        names = {s.name for s in st.expr.free_symbols}
        assert "t" not in names, "t-dependent work must be in the prelude"
        assert names <= {"w", "g", "m", "v", "m_new", "v_new", "beta1", "beta2"} | scalars


def test_prelude_names_say_what_the_scalars_are_and_shared_factors_are_computed_once():
    kernel = lower(SPECS["adam"])
    assert [s.name for s in kernel.scalars] == [
        "sqrt_bias_correction_beta2",
        "one_minus_beta1",
        "one_minus_beta2",
        "eps_hat",
        "neg_step_size",
    ]
    assert sum(isinstance(e, sympy.Pow) and e.exp == sympy.S.Half for _, e in kernel.prelude) == 1
    assert all(e.count(sympy.sqrt(sympy.Wild("x"))) == 0 for _, e in kernel.prelude[1:])
    assert [st.target.name for st in kernel.body] == ["m_new", "v_new", "w_new"]


def test_derived_names_never_take_a_spec_name():
    spec = load_spec_text(
        """
name = "clash"
class_name = "Clash"
title = "names that derived scalars would take"
summary = "s"
reference = "r"
update = ["v = beta1*v + (1 - beta1)*g", "w = w - step_size*lr*v/(sqrt(v) + one_minus_beta1)"]
[hyper.lr]
default = 0.1
domain = "positive"
[hyper.beta1]
default = 0.9
domain = "unit_open"
[hyper.step_size]
default = 1.0
domain = "positive"
[hyper.one_minus_beta1]
default = 1e-8
domain = "positive"
[state.v]
init = 0
""",
        "clash.toml",
    )
    kernel = lower(spec)
    names = {s.name for s in kernel.scalars}
    assert not names & {"lr", "beta1", "step_size", "one_minus_beta1", "v", "w", "g"}
    assert names == {"one_minus_beta1_2", "neg_step_size"}


def test_lowered_adam_equals_the_spec_symbolically():
    """Inlining prelude and SSA names back gives the spec's update exactly."""
    kernel = lower(SPECS["adam"])
    back: dict = {}
    for sym, expr in kernel.prelude:
        back[sym] = expr.xreplace(back)
    values = {}
    for st in kernel.body:
        values[st.target] = st.expr.xreplace(values).xreplace(back)
    spec = SPECS["adam"]
    sym = {s.name: s for a in spec.update for s in a.expr.free_symbols}
    t = sympy.Symbol("t", positive=True, integer=True)
    m1 = sym["beta1"] * sym["m"] + (1 - sym["beta1"]) * sym["g"]
    v1 = sym["beta2"] * sym["v"] + (1 - sym["beta2"]) * sym["g"] ** 2
    w1 = sym["w"] - sym["lr"] * (m1 / (1 - sym["beta1"] ** t)) / (
        sympy.sqrt(v1 / (1 - sym["beta2"] ** t)) + sym["eps"]
    )
    final = {st.array: values[st.target] for st in kernel.body if st.array}
    # On the domain, 1 - beta2**t is positive: name it P > 0 so SymPy may split square roots.
    positive = {sym["beta2"] ** t: 1 - sympy.Symbol("P", positive=True)}
    for name, expected in {"m": m1, "v": v1, "w": w1}.items():
        difference = (final[name] - expected).xreplace(positive)
        assert sympy.simplify(difference) == 0, name


def test_nesterov_is_lowered_from_the_lookahead_free_form():
    kernel = lower(SPECS["nesterov"])
    text = " ".join(str(st.expr) for st in kernel.body)
    assert "grad" not in text


def test_three_address_code_never_writes_the_gradient_and_ends_in_place():
    for name, spec in SPECS.items():
        if not spec.elementwise:  # tensor-level specs run as whole-tensor statements
            continue
        program = compile_kernel(lower(spec), ScalarPrinter().doprint)
        written = [dst for _, dst, _, _ in program.instructions]
        assert "g" not in written, name
        for out in ("w", *spec.state_names):
            assert out in written, f"{name}: {out} is never written"
        # a copy only puts a shared value into an output (Rprop's p = gz), never into scratch
        copies = [dst for op, dst, *_ in program.instructions if op == "copy"]
        assert set(copies) <= {"w", *spec.state_names}, name


def test_adam_needs_two_scratch_buffers_and_twelve_operations():
    program = compile_kernel(lower(SPECS["adam"]), ScalarPrinter().doprint)
    assert program.scratch == ["_b0", "_b1"]
    assert len(program.instructions) == 12

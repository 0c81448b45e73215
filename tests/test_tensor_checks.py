"""The checks on tensor-level constructs: scopes, reductions, matrix products, conditionals,
state set from the first gradient, and matrix specs with an update for other shapes."""

import time

import sympy
from click.testing import CliRunner

from symopt.checks import failures, run_checks
from symopt.checks.prove import NOT_SHOWN, SAMPLED, SYMBOLIC, decide_sign, prove_zero
from symopt.checks.tensors import TensorOracle
from symopt.checks.unroll import initial_env
from symopt.cli import main
from symopt.resources import elementwise_specs
from symopt.spec import load_spec_text, make_symbol
from symopt.spec.domains import DOMAINS
from symopt.spec.tensor import MatProduct, TensorMean, TensorNorm, Transposed

SPECS = elementwise_specs()
AT_REST = "at rest: g = 0 leaves w unchanged (3 steps from the initial state)"
DESCENT = "descent: the first step moves against the gradient, (w1 - w0) g < 0 for g != 0"
WELL = "well defined at the first step (t = 1): no division by 0, no root of a negative"


def spec_text(
    update: list[str], extra: str = "", hypers: str = "lr:positive", top: str = ""
) -> str:
    """A small spec: ``hypers`` is "name:domain ...", ``extra`` follows the hyperparameters."""
    head = 'name = "x"\nclass_name = "X"\ntitle = "x"\nsummary = "x"\nreference = "x"\n' + top
    lines = "\n".join(f'  "{u}",' for u in update)
    table = ""
    for h in hypers.split():
        name, domain = h.split(":")
        table += f'\n[hyper.{name}]\ndefault = 0.5\ndomain = "{domain}"\n'
    return f"{head}update = [\n{lines}\n]\n{table}{extra}"


def results(text: str) -> dict:
    return {r.name: r for r in run_checks(load_spec_text(text, "x.toml"), SPECS)}


def verdicts(text: str) -> dict[str, tuple[bool, str]]:
    return {n: (r.passed, r.method) for n, r in results(text).items()}


# --- scopes -------------------------------------------------------------------------------------

DECAY = ["w = w*(1 - lr*weight_decay)", "w = w - lr*g"]  # AdamW-style: w assigned twice
SCOPES = """
[checks.at_rest]
where = { weight_decay = "0" }

[checks.descent]
where = { weight_decay = "0" }
"""


def test_weight_decay_fails_at_rest_and_descent_without_a_scope():
    out = results(spec_text(DECAY, hypers="lr:positive weight_decay:nonnegative"))
    assert (out[AT_REST].passed, out[AT_REST].method) == (False, SAMPLED)
    assert "step 1: w moves to w*(-lr*weight_decay + 1)" in out[AT_REST].detail
    assert (out[DESCENT].passed, out[DESCENT].method) == (False, SAMPLED)
    assert "counterexample" in out[DESCENT].detail


def test_a_scope_substitutes_its_values_and_names_them():
    text = spec_text(DECAY, SCOPES, hypers="lr:positive weight_decay:nonnegative")
    assert verdicts(text) == {
        "at rest (weight_decay = 0): g = 0 leaves w unchanged (3 steps from the initial state)": (
            True,
            SYMBOLIC,
        ),
        WELL: (True, SYMBOLIC),
        "descent (weight_decay = 0): the first step moves against the gradient, "
        "(w1 - w0) g < 0 for g != 0": (True, SYMBOLIC),
    }


# --- reductions ---------------------------------------------------------------------------------

NORMALISED = """
[[properties]]
kind = "scale_invariant"
name = "with eps = 0 the step ignores the gradient's scale"
where = { eps = "0" }
"""


def test_a_normalised_gradient_is_proven_symbolically():
    text = spec_text(["w = w - lr*g/(norm(g) + eps)"], NORMALISED, "lr:positive eps:positive")
    assert set(verdicts(text).values()) == {(True, SYMBOLIC)}
    assert len(verdicts(text)) == 4  # norm(c*g) = c*norm(g) for the scale, norm(g) > 0 at g != 0


def test_a_trust_ratio_with_a_guarded_division_is_well_defined_and_descends():
    update = [
        "w_norm = norm(w)",
        "g_norm = norm(g)",
        "ratio = where(w_norm > 0 and g_norm > 0, w_norm/g_norm, 1)",
        "w = w - lr*ratio*g",
    ]
    out = results(spec_text(update))
    assert (out[WELL].passed, out[WELL].method) == (True, SYMBOLIC)
    assert (out[DESCENT].passed, out[DESCENT].method) == (True, SYMBOLIC)
    assert (out[AT_REST].passed, out[AT_REST].method) == (True, SYMBOLIC)


def test_an_unguarded_division_by_a_norm_fails_for_a_one_element_parameter():
    out = results(spec_text(["w = w - lr*g/norm(w)"]))
    assert not out[WELL].passed and out[WELL].method == SAMPLED
    assert "division by zero: norm(w) can be 0" in out[WELL].detail
    assert "counterexample for a one-element parameter: w = 0" in out[WELL].detail


def test_a_centred_gradient_fails_descent_with_a_real_counterexample():
    out = results(spec_text(["w = w - lr*(g - mean(g))"]))
    assert (out[DESCENT].passed, out[DESCENT].method) == (False, SYMBOLIC)
    # A single element is its own mean: the step is exactly 0 there.
    assert "(fails for a one-element parameter)" in out[DESCENT].detail


def test_a_claim_that_depends_on_a_mean_is_not_shown():
    out = results(spec_text(["w = w - lr*(g + mean(g))"]))
    assert (out[DESCENT].passed, out[DESCENT].method) == (False, NOT_SHOWN)
    assert "per-tensor values (mean)" in out[DESCENT].detail
    assert failures({"x": list(out.values())}) == []


def test_opaque_values_carry_only_true_facts():
    w, g = make_symbol("w"), sympy.Symbol("g", real=True, nonzero=True)
    lr = sympy.Symbol("lr", positive=True)
    oracle = TensorOracle({lr: DOMAINS["positive"]}, {lr}, {g})
    norm_g, mean_g2, mean_w = (oracle(x) for x in (TensorNorm(g), TensorMean(g**2), TensorMean(w)))
    assert norm_g.is_positive and mean_g2.is_positive  # this coordinate's g is nonzero
    assert mean_w.is_positive is None and mean_w.is_negative is None
    assert oracle(TensorNorm(lr * g)) == lr * norm_g  # shared factors leave the reduction
    assert oracle(TensorNorm(g)) == norm_g  # the same node is the same symbol
    assert oracle(TensorNorm(0 * g)) == 0
    assert oracle.one_element(norm_g + mean_w) == sympy.Abs(g) + w


# --- matrix products ----------------------------------------------------------------------------


def test_muon_at_rest_is_exact_and_its_descent_is_not_shown():
    out = results(SPECS["muon"].text)
    rest = "at rest (weight_decay = 0): g = 0 leaves w unchanged (3 steps from the initial state)"
    assert (out[rest].passed, out[rest].method) == (True, SYMBOLIC)
    assert (out[WELL].passed, out[WELL].method) == (True, SYMBOLIC)
    assert (out[DESCENT].passed, out[DESCENT].method) == (False, NOT_SHOWN)
    assert "matrix products or transposes" in out[DESCENT].detail


def test_muon_without_its_scope_moves_at_rest():
    text = SPECS["muon"].text.replace('[checks.at_rest]\nwhere = { weight_decay = "0" }', "")
    out = results(text)
    assert (out[AT_REST].passed, out[AT_REST].method) == (False, SAMPLED)
    assert "w moves to w*(-lr*weight_decay + 1)" in out[AT_REST].detail


def test_a_matrix_product_in_a_relation_is_not_shown_unless_it_cancels():
    oracle = TensorOracle()
    x, y = sympy.symbols("x y", real=True)
    p, q = oracle(MatProduct(x, Transposed(y))), oracle(MatProduct(x, Transposed(x)))
    verdict = oracle.settle(prove_zero(p - q), p - q, prove_zero)
    assert verdict.method == NOT_SHOWN and "mix coordinates" in verdict.reason
    assert oracle(MatProduct(x, Transposed(y))) - p == 0


# --- conditionals -------------------------------------------------------------------------------


def test_branches_are_proven_case_by_case():
    a, b = sympy.symbols("a b", real=True)
    eps = sympy.Symbol("eps", positive=True)
    assert prove_zero(sympy.Max(a, b) + sympy.Min(a, b) - a - b).method == SYMBOLIC
    assert decide_sign(sympy.Max(a, eps), "positive").method == SYMBOLIC
    clipped = sympy.Piecewise((1, a > 1), (-1, a < -1), (a, True))
    assert decide_sign(clipped * a, "positive", {}).holds is False  # a = 0
    assert decide_sign(sympy.Piecewise((a, a > 0), (-a, True)), "nonnegative").method == SYMBOLIC
    wrong = prove_zero(sympy.Max(a, b) - a)
    assert not wrong.holds and wrong.witness is not None


def test_rprop_is_proven_through_its_sign_conditions():
    out = results(SPECS["rprop"].text)
    assert {n: (r.passed, r.method) for n, r in out.items()} == {
        AT_REST: (True, SYMBOLIC),
        WELL: (True, SYMBOLIC),
        DESCENT: (True, SYMBOLIC),
    }


def test_clipping_descends_and_a_wrong_branch_is_refuted():
    ok = results(spec_text(["w = w - lr*where(g > 1, 1, where(g < -1, -1, g))"]))
    assert (ok[DESCENT].passed, ok[DESCENT].method) == (True, SYMBOLIC)
    bad = results(spec_text(["w = w - lr*where(g > 1, -g, g)"]))
    assert (bad[DESCENT].passed, bad[DESCENT].method) == (False, SAMPLED)


AMSGRAD = [
    "m = beta1*m + (1 - beta1)*g",
    "v = beta2*v + (1 - beta2)*g**2",
    "v_max = max(v_max, v)",
    "w = w - lr*m/(sqrt(v_max) + eps)",
]
AMSGRAD_EXTRA = """
[state.m]
init = "0"
[state.v]
init = "0"
[state.v_max]
init = "0"

[[properties]]
kind = "scale_invariant"
name = "with eps = 0 the steps ignore the gradient's scale"
where = { eps = "0" }

[[relations]]
name = "without the running maximum it is Adam without bias correction"
replace = ["v_max = v"]
init = { m = "0", v = "0" }
update = [
  "m = beta1*m + (1 - beta1)*g",
  "v = beta2*v + (1 - beta2)*g**2",
  "w = w - lr*m/(sqrt(v) + eps)",
]
state = { m = "m", v = "v" }
"""


def test_a_running_maximum_is_proven_and_fast():
    hypers = "lr:positive beta1:unit_closed_open beta2:unit_closed_open eps:positive"
    start = time.perf_counter()
    out = results(spec_text(AMSGRAD, AMSGRAD_EXTRA, hypers))
    assert {r.method for r in out.values()} == {SYMBOLIC}
    assert all(r.passed for r in out.values())
    assert all(r.seconds < 10 for r in out.values())
    assert time.perf_counter() - start < 30


# --- first-gradient state, other shapes ---------------------------------------------------------

FIRST = """
[state.m]
init = "g"
"""


def test_state_from_the_first_gradient_is_bound_to_it():
    update = ["m = beta*m + (1 - beta)*g", "w = w - lr*m"]
    out = results(spec_text(update, FIRST, "lr:positive beta:unit_closed_open"))
    assert set((r.passed, r.method) for r in out.values()) == {(True, SYMBOLIC)}
    spec = load_spec_text(spec_text(update, FIRST, "lr:positive beta:unit_closed_open"), "x")
    g1 = sympy.Symbol("g_1")
    env = initial_env(spec, {}, make_symbol("w"), lambda point: g1)
    assert env["m"] == g1


def test_an_init_from_the_first_gradient_is_inspected_for_divisions():
    update = ["m = beta*m + (1 - beta)*g", "w = w - lr*m"]
    extra = '\n[state.m]\ninit = "1/g"\n'
    out = results(spec_text(update, extra, "lr:positive beta:unit_closed_open"))
    assert not out[WELL].passed
    assert "division by zero: g can be 0 at t = 1 in 'init of m'" in out[WELL].detail


def test_a_matrix_spec_checks_both_updates_with_rows_and_cols():
    update = ["w = w - lr*sqrt(rows/cols)*g/(norm(g) + eps)"]
    other = '\n[otherwise]\nupdate = ["w = w - lr*g"]\n'
    text = spec_text(update, other, "lr:positive eps:positive", top='applies_to = "matrix"\n')
    out = verdicts(text)
    assert len(out) == 6 and set(out.values()) == {(True, SYMBOLIC)}
    assert "descent (other shapes): the first step moves against the gradient" in " ".join(out)


def test_the_cli_counts_not_shown_separately_and_exits_0(tmp_path):
    path = tmp_path / "muon.toml"
    path.write_text(SPECS["muon"].text.replace('name = "muon"', 'name = "my_muon"'))
    result = CliRunner().invoke(main, ["check", "--spec", str(path)])
    assert result.exit_code == 0, result.output
    assert "----  not shown  descent: the first step" in result.output
    # Muon's 8 variants (torch.optim's flags): each one's descent is not shown
    assert "24 checks on 1 spec(s): 16 passed, 0 failed, 8 not shown (16 symbolic)" in result.output

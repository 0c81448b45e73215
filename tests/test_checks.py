"""Each check passes on every built-in spec and fails on a spec broken the way it guards against."""

import functools
import re
from collections import Counter

import pytest

from symopt.checks import check_specs, run_checks
from symopt.resources import elementwise_specs
from symopt.spec import load_spec_text
from symopt.spec.family import variants

SPECS = elementwise_specs()


@functools.cache
def builtin_results(name: str) -> list:
    """A built-in spec's results as `symopt check` reports them: computed once per spec text
    and symopt version, and kept on disk (the test processes and the CLI share them)."""
    return check_specs([SPECS[name]], SPECS)[name]


def results_for(spec):
    return {r.name: r for r in builtin_results(spec.name)}


#: The only claims a built-in may leave "not shown": per-coordinate descent through matrix products.
NOT_SHOWN_EXPECTED = {("muon", "descent")}
#: The specs of the first release, whose checks were all shown before tensor constructs existed.
FIRST_SPECS = "adabelief adagrad adam adamax momentum nadam nesterov rmsprop sgd muon rprop".split()


@pytest.mark.parametrize("name", sorted(SPECS))
def test_builtin_spec_passes_every_check(name):
    spec = SPECS[name]
    results = builtin_results(name)
    failed = [f"{r.name}: {r.detail}" for r in results if not r.passed and not r.not_shown]
    assert not failed
    # "[amsgrad] at rest: ...": a variant's checks are named by its setting
    plain = [r.name.split("] ", 1)[-1] for r in results]
    open_ = {
        (name, n.split(":")[0].split(" (")[0])
        for n, r in zip(plain, results, strict=True)
        if r.not_shown
    }
    assert open_ <= NOT_SHOWN_EXPECTED
    assert all(r.method in ("symbolic", "sampled", "not shown") for r in results)
    generic = [n for n in plain if not n.startswith(("relation", "property", "look-ahead"))]
    assert len(generic) == 3 * (2 if spec.otherwise else 1) * len(variants(spec))


def test_first_specs_are_all_symbolic_now():
    """128 symbolic and 1 sampled before case splitting; Adamax's scale invariance, through
    max(beta2*u, abs(g)), is now proven too. Muon's descent is the one claim not shown, in each
    of its variants (torch.optim's flags: nesterov, adjust_lr_fn, weight_decay)."""
    methods = Counter((name, r.method) for name in FIRST_SPECS for r in builtin_results(name))
    assert {m for _, m in methods} == {"symbolic", "not shown"}
    assert methods[("muon", "not shown")] == len(variants(SPECS["muon"])) == 8
    assert sum(n for (_, m), n in methods.items() if m == "symbolic") == 125


def test_declared_relations_and_properties_are_all_checked():
    names = {
        n: [r.name for r in builtin_results(n)]
        for n in ("momentum", "nesterov", "adam", "adabelief")
    }
    assert "relation: with rho = 0 it is plain SGD" in names["momentum"]
    assert any(n.startswith("look-ahead-free form") for n in names["nesterov"])
    assert "relation: with beta1 = 0 it is RMSProp with bias correction" in names["adam"]
    assert "relation: it differs from Adam only in the second moment" in names["adabelief"]
    adam = " ".join(names["adam"])
    assert "corrected first moment equals g" in adam and "scale" in adam


def test_proofs_that_must_be_symbolic_are_symbolic():
    adam = results_for(SPECS["adam"])
    for name, r in adam.items():
        if "corrected" in name or name.startswith(("relation", "at rest", "descent")):
            assert r.method == "symbolic", name
    nesterov = results_for(SPECS["nesterov"])
    assert all(r.method == "symbolic" for r in nesterov.values())


def edited(name: str, old: str, new: str, count: int = 1) -> str:
    text = SPECS[name].text
    assert old in text, old
    return text.replace(old, new, count)


def failing(text: str) -> dict[str, str]:
    spec = load_spec_text(text, "broken.toml")
    return {r.name: r.detail for r in run_checks(spec, SPECS) if not r.passed}


def test_steps_from_t0_fail_naming_the_division():
    fails = failing(edited("adam", 'name = "adam"', 'name = "adam"\nt_start = 0'))
    detail = next(d for n, d in fails.items() if n.startswith("well defined"))
    assert "division by zero" in detail and "1 - beta1**t" in detail and "t = 0" in detail
    assert any(n.startswith("property: the corrected first moment") for n in fails)


def test_wrong_relation_fails():
    fails = failing(edited("momentum", 'where = { rho = "0" }', 'where = { rho = "0.5" }'))
    assert list(fails) == ["relation: with rho = 0 it is plain SGD"]
    assert "w differs" in fails["relation: with rho = 0 it is plain SGD"]


def test_wrong_lookahead_form_fails():
    fails = failing(edited("nesterov", '"w = w + rho*v - lr*g",', '"w = w + v - lr*g",'))
    assert any(n.startswith("look-ahead-free form") for n in fails)


def test_ascent_fails_descent_and_sign_error_breaks_relation():
    fails = failing(edited("momentum", '"w = w - lr*v"', '"w = w + lr*v"'))
    assert any(n.startswith("descent") for n in fails)
    assert any(n.startswith("relation") for n in fails)


def test_moving_at_rest_fails():
    fails = failing(edited("sgd", '"w = w - lr*gw",', '"w = w - lr*(gw + 1/10)",'))
    assert re.search("w moves", fails[next(n for n in fails if n.startswith("at rest"))])


def test_square_root_of_negative_fails():
    text = edited(
        "rmsprop",
        '"avg = sqrt(where(centered, v - m**2, v)) + eps",',
        '"avg = sqrt(where(centered, v - m**2, v - 1)) + eps",',
    )
    fails = failing(text)
    assert "square root of a negative" in fails[next(n for n in fails if n.startswith("well"))]


def test_biased_moment_fails_unbiased_property():
    fails = failing(edited("adam", '"m_hat = m/(1 - beta1**t)",', '"m_hat = m",'))
    assert any("corrected first moment" in n for n in fails)


def test_scale_invariance_fails_with_a_fixed_offset():
    fails = failing(
        edited(
            "adam",
            '"w = w - lr*m_hat/(sqrt(v_hat) + eps)",',
            '"w = w - lr*m_hat/(sqrt(v_hat) + eps + 1/1000)",',
        )
    )
    assert any("scaled" in n for n in fails)


def test_differs_only_relation_fails_when_nothing_differs():
    text = edited(
        "adabelief",
        '"s = beta2*s + (1 - beta2)*(g - m)**2 + eps",',
        '"s = beta2*s + (1 - beta2)*g**2",',
    )
    fails = failing(text)
    assert "nothing differs" in fails["relation: it differs from Adam only in the second moment"]


def test_relation_to_unknown_spec_fails_cleanly():
    fails = failing(edited("momentum", 'other = "sgd"', 'other = "sgdd"'))
    assert "unknown spec 'sgdd'" in fails["relation: with rho = 0 it is plain SGD"]

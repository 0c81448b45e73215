"""docs/verify.md: its verdict tables are what ``symopt verify`` says (run once per session), a
few rows mean what the libraries' own code does, and every number in its prose is the tool's."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

torch = pytest.importorskip("torch")
optax = pytest.importorskip("optax")
jax = pytest.importorskip("jax")

from symopt import api_matrix, parity_doc, verify_doc  # noqa: E402
from symopt.cli import main  # noqa: E402
from symopt.fitted_variants import fitted_variants  # noqa: E402
from symopt.resources import builtin_spec  # noqa: E402
from symopt.variants import variants  # noqa: E402
from symopt.verify import comparison, diagnose, run, streams, tolerance  # noqa: E402
from symopt.verify.binding import SYNONYMS  # noqa: E402

DOC = verify_doc.DOC.read_text()


@pytest.fixture(scope="module", autouse=True)
def outcomes():
    """Every row run once for the session (verify_doc caches them); a float64 optax run turns
    jax's x64 mode on for the process, so it is turned back after."""
    before = jax.config.jax_enable_x64
    yield verify_doc.outcomes()
    jax.config.update("jax_enable_x64", before)


def test_the_document_is_current():
    assert verify_doc.render(DOC) == DOC, "run: python -m symopt.verify_doc --write"


# -- rows whose meaning is known from the libraries' code ------------------------------------------


def source_of(cls: type) -> str:
    """The source file a library class is defined in (torch re-exports its classes)."""
    return Path(inspect.getsourcefile(cls.__init__)).read_text()


def test_torch_adam_passes_on_its_moments():
    report = verify_doc.outcome("torch.optim.Adam", "adam")
    assert report.passed, report.summary()
    assert verify_doc.compared(report) == "w, m = exp_avg, v = exp_avg_sq"  # torch's keys


def test_torch_adamax_puts_eps_inside_the_max():
    # torch.optim.Adamax: exp_inf = max(beta2 exp_inf, |g| + eps), then divides by exp_inf
    assert "grad.abs().add_(eps)" in source_of(torch.optim.Adamax)
    report = verify_doc.outcome("torch.optim.Adamax", "adamax")
    assert not report.passed
    assert report.diagnosis.explained and report.diagnosis.rules == ("eps_inside_max_u",)


def test_torch_adamw_is_adam_with_its_default_decoupled_weight_decay():
    default = inspect.signature(torch.optim.AdamW).parameters["weight_decay"].default
    assert default == 0.01
    report = verify_doc.outcome("torch.optim.AdamW", "adam")
    assert not report.passed and report.diagnosis.rules == ("decoupled_weight_decay",)
    assert report.diagnosis.fitted == {"weight_decay": default}


def test_torch_nesterov_compares_w_only():
    """torch's buffer is not the article's v (it stores the look-ahead point)."""
    report = verify_doc.outcome("torch.optim.SGD(momentum=0.9, nesterov=True)", "nesterov")
    assert report.passed and verify_doc.compared(report) == "w"


def test_optax_adam_passes():
    report = verify_doc.outcome("optax.adam", "adam")
    assert report.passed, report.summary()
    assert verify_doc.compared(report) == "w, m = mu, v = nu"


def test_optax_rmsprop_puts_eps_inside_the_square_root():
    assert inspect.signature(optax.rmsprop).parameters["eps_in_sqrt"].default is True
    report = verify_doc.outcome("optax.rmsprop", "rmsprop")
    assert report.diagnosis.explained and report.diagnosis.rules == ("eps_inside_sqrt",)


def test_optax_adagrad_puts_eps_inside_the_square_root():
    """optax.adagrad takes no lr_decay (0 in the spec: switched off, and said); its scale_by_rss
    divides by rsqrt(sum + eps), eps inside the square root."""
    assert "lr_decay" not in inspect.signature(optax.adagrad).parameters
    source = inspect.getsource(optax._src.transform.scale_by_rss)
    assert "jax.lax.rsqrt(t + eps)" in source
    report = verify_doc.outcome("optax.adagrad", "adagrad")
    assert report.unpassed == ["lr_decay"] and "(lr_decay = 0: no argument takes it)" in (
        report.summary()
    )
    assert report.diagnosis.rules == ("eps_inside_sqrt",), report.summary()


def test_optax_rprop_differs_from_the_first_step_it_does_not_move():
    """optax 0.2.8's rprop applies the previous step's update: the first step moves nothing,
    where Rprop moves by lr against the gradient's sign; no rule of the catalogue is a delay."""
    tx = optax.rprop(0.1)
    w = jax.numpy.zeros(2)
    updates, _ = tx.update(jax.numpy.ones(2), tx.init(w), w)
    assert np.all(np.asarray(updates) == 0)
    report = verify_doc.outcome("optax.rprop", "rprop")
    assert not report.passed and not report.diagnosis.explained
    assert report.first_difference.step == 1


def test_optax_radam_differs_where_the_rectification_starts():
    """RAdam's rectified step starts at the first t with rho_t > 5 (6, for beta2 = 0.999); optax
    adds eps to sqrt(v_hat), torch and the spec to sqrt(v): they part there."""
    beta2 = 0.999
    rho_inf = 2 / (1 - beta2) - 1
    first = next(t for t in range(1, 100) if rho_inf - 2 * t * beta2**t / (1 - beta2**t) > 5)
    report = verify_doc.outcome("optax.radam", "radam")
    assert not report.passed and report.first_difference.step == first == 6


def test_muon_differs_by_the_size_of_a_lower_precisions_rounding():
    """torch.optim.Muon casts to bfloat16 before Newton-Schulz: no rule explains a cast, and the
    report names the difference as the size of low-precision rounding."""
    assert "grad.bfloat16()" in source_of(torch.optim.Muon)
    report = verify_doc.outcome("torch.optim.Muon", "muon")
    assert not report.passed and not report.diagnosis.explained
    assert "float16 rounding" in report.summary()


# -- the rows -------------------------------------------------------------------------------------


def test_one_row_per_axis_of_every_drop_in_and_torch_takes_each():
    for cls, spec in parity_doc.drop_ins().items():
        family = api_matrix.family_of(spec)
        rows = [r for r in verify_doc.ROWS if r.path == cls and r.spec == spec.name]
        axes = [a for a in family.axes if a not in family.api.fixed]
        expected = 1 if cls == verify_doc.LEFT_OUT[0] else 1 + len(axes)
        assert len(rows) == expected, cls
        for r in rows:
            assert parity_doc.refusal(spec, r.hyper) is None, r.label
    sgd = [r.label for r in verify_doc.ROWS if r.path == "torch.optim.SGD" and r.spec == "sgd"]
    # torch refuses nesterov without momentum; dampening matters only with momentum
    assert "torch.optim.SGD(momentum=0.1, nesterov=True)" in sgd
    assert "torch.optim.SGD(momentum=0.1, dampening=0.1)" in sgd


def test_every_optax_row_is_in_the_table_or_said_why_not(outcomes):
    block = verify_doc.block("optax").search(DOC).group(0)
    for r, outcome in zip(verify_doc.ROWS, outcomes, strict=True):
        if r.library != "optax":
            continue
        if isinstance(outcome, str):
            assert f"`{verify_doc.command(r)}` stops with {outcome}" in block
        else:
            assert f"| {verify_doc.label(r)} | {r.spec} |" in block
    assert len([r for r in verify_doc.ROWS if r.library == "optax"]) == 18


def test_no_measured_number_in_the_tables():
    for name in verify_doc.LIBRARIES:
        block = verify_doc.block(name).search(DOC).group(0)
        assert not re.search(r"\d\.\de[+-]\d\d|largest relative difference|\(\d+\)", block)


def test_the_settings_are_stated_and_cheaper_than_the_defaults():
    s = verify_doc.SETTINGS
    line = (
        f"`symopt verify TARGET --against SPEC --steps {s['steps']} --seeds {s['seeds']} "
        f"--long {s['long']} --dtype {s['dtype']}`"
    )
    assert DOC.count(line) == 2
    defaults = cli_defaults()
    assert s["steps"] < defaults["steps"] and s["seeds"] <= defaults["seeds"]


def test_check_and_write(tmp_path, capsys, monkeypatch):
    doc = tmp_path / "verify.md"
    begin, end = verify_doc.BEGIN, verify_doc.END
    blocks = "".join(
        f"{begin.format(name=n)}\nold\n{end.format(name=n)}\n" for n in ("torch", "optax")
    )
    doc.write_text("# title\n" + blocks + "end\n")
    assert verify_doc.main(["--check"], doc=doc) == 1
    assert "stale" in capsys.readouterr().err
    assert verify_doc.main(["--write"], doc=doc) == 0
    assert "| `torch.optim.Adam` | adam | PASS |" in doc.read_text()
    assert verify_doc.main(["--check"], doc=doc) == 0
    find_spec = verify_doc.importlib.util.find_spec
    monkeypatch.setattr(
        verify_doc.importlib.util,
        "find_spec",
        lambda name: None if name == "optax" else find_spec(name),
    )
    assert verify_doc.main(["--check"], doc=doc) == 2
    assert "optax not installed" in capsys.readouterr().err


# -- the prose ------------------------------------------------------------------------------------


def cli_defaults() -> dict[str, object]:
    return {p.name: p.default for p in main.commands["verify"].params}


def test_options_and_their_defaults():
    defaults = cli_defaults()
    for p in main.commands["verify"].params:
        for opt in p.opts:
            if opt.startswith("--"):
                assert f"`{opt}" in DOC, opt
    assert defaults["steps"] == 40 and "| `--steps N` | steps per run (40) |" in DOC
    assert defaults["seeds"] == 1 and "| `--seeds K` | seeds per stream (1) |" in DOC
    assert defaults["long"] == streams.LONG == 1000
    assert "| `--long N` | steps of the long run (1000; 0 for none) |" in DOC
    assert defaults["dtype"] == "float64" and "the precision of the runs (float64)" in DOC


def sgd_raises(w, g, state, t, lr):
    raise RuntimeError("broken")


@pytest.mark.parametrize(
    ("target", "status"),
    [
        ("handwritten.sgd", 0),
        ("handwritten.adam_uphill", 1),
        ("handwritten.no_such_function", 2),
        ("test_verify_doc.sgd_raises", 3),
    ],
)
def test_exit_statuses(target, status):
    spec = "adam" if "adam" in target else "sgd"
    args = ["verify", target, "--against", spec, "--steps", "3", "--seeds", "1", "--long", "0"]
    assert CliRunner().invoke(main, args).exit_code == status
    assert f"| {status} |" in DOC


def test_every_synonym_is_named():
    for name, others in SYNONYMS.items():
        for other in others:
            assert f"`{other}`" in DOC, (name, other)


def test_streams_are_as_described():
    rng = np.random.default_rng(0)
    w = np.zeros(10_000)
    shape = w.shape
    tiny = draw(rng, "tiny", shape, w)
    huge = draw(rng, "huge", shape, w)
    sparse = draw(rng, "sparse", shape, w)
    assert 0.5e-9 < tiny.std() < 2e-9 and "tiny\n  (1e-9" in DOC
    assert 0.5e8 < huge.std() < 2e8 and "huge (1e8)" in DOC
    assert 0.45 < np.mean(sparse == 0) < 0.55 and "half the elements exactly 0" in DOC
    scales = [draw(rng, "random", (1000,), w).std() for _ in range(300)]
    assert 0.005 < min(scales) < 0.02 and 5 < max(scales) < 20
    assert "random at scales from 1e-2 to 10" in DOC
    signs = [np.sign(streams.STREAMS["alternating"](rng, (5,), k, w[:5])) for k in range(2)]
    assert np.all(signs[0] == 1) and np.all(signs[1] == -1)


def draw(rng, name, shape, w):
    return streams.STREAMS[name](rng, shape, 0, w)


def test_layouts_sizes_and_horizon():
    layout = streams.VECTOR_LAYOUT
    sizes = [int(np.prod(s)) for group in layout for s in group]
    assert len(layout) == 2 and run.SECOND_GROUP_LR == 0.5
    assert "two parameter groups, the second at half the learning rate" in DOC
    assert (min(sizes), max(sizes)) == (6, 130) and "tensors of 6 to 130" in DOC
    shapes = ", ".join(" x ".join(map(str, s)) for group in layout for s in group)
    assert f"({shapes}:" in DOC
    assert all(any(int(np.prod(s)) > 64 for s in group) for group in layout)
    assert streams.LARGE == 70_000 > 2**16 and "70,000" in DOC and "65,536" in DOC
    assert comparison.KEEP == 1000 and "tensors of\nup to 1,000 elements" in DOC


def test_tolerance_numbers():
    assert tolerance.RUNS == 2 and "run twice more" in DOC
    assert tolerance.FACTOR == 16 and "16 times the spread" in DOC
    assert tolerance.FLOOR_ULPS == 8 and "never below\n8 units of roundoff" in DOC
    assert comparison.CAP == {"float64": 1e-8, "float32": 1e-3}
    assert "never above 1e-8 (float64) or 1e-3 (float32)" in DOC


def test_diagnosis_numbers_and_rules():
    assert diagnose.EXPLAINS == 100 and "100-fold" in run.EXPLAINS_TEXT
    assert "error/tolerance ratio 100-fold (a difference less than 100 times" in DOC
    assert diagnose.PAIR_CANDIDATES == 6 and "pairs of the 6 most promising" in DOC
    names = set()
    for name in ("adam", "adamax", "adagrad", "momentum", "nadam", "adabelief", "rmsprop"):
        spec = builtin_spec(name)
        names |= {generic(v.name, spec) for v in variants(spec)}
        names |= {generic(f.name, spec) for f in fitted_variants(spec)}
    rules = set(re.findall(r"^\| `([a-z0-9_SH]+)`", DOC, re.MULTILINE))
    rules |= {"t_plus_1"}  # in one row with t_minus_1
    assert names == rules


def generic(name: str, spec) -> str:
    """A rule's name with the state (S) or hyperparameters (H) it is about as placeholders."""
    for h in sorted(spec.hyper_names, key=len, reverse=True):
        name = re.sub(rf"_{h}(?=_|$)", "_H", name)
    for s in spec.state_names:
        name = re.sub(rf"_{s}$", "_S", name)
    return name

"""symopt plot: the data the pictures show, the PNG files, and the command line around them.

The tests check that the plotted lines hold exactly the points the optimizers compute, that the
files are PNGs of the size asked for, and (with a tolerance, as ``scripts/make_images.py --check``
does) that the committed images are what the code draws now.

A spec with flags is pictured by the generated kernel of its variant (the default one unless said
otherwise), which takes the spec's own hyperparameters: the class a user's ``symopt_numpy.Adam``
(torch.optim's arguments) runs at its defaults, ``symopt_numpy._adam.Adam``.
"""

import re
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("matplotlib")

import symopt_numpy  # noqa: E402  (tests/conftest.py puts generated/numpy on sys.path)
from symopt_numpy._api import ApiOptimizer  # noqa: E402

from symopt import moons  # noqa: E402
from symopt.cli import main  # noqa: E402
from symopt.landscapes import LANDSCAPES, PICTURED, get_landscape  # noqa: E402
from symopt.plot import landscape as pl  # noqa: E402
from symopt.plot import steppers  # noqa: E402
from symopt.plot import train as pt  # noqa: E402
from symopt.reference import ReferenceStepper  # noqa: E402
from symopt.resources import builtin_specs  # noqa: E402
from symopt.spec import load_spec, load_spec_text  # noqa: E402
from symopt.spec.family import variant  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
#: The first-order specs pictured by default (those with tuned learning rates).
FIRST_ORDER = [s for s in builtin_specs().values() if s.name in PICTURED]
NAMES = [s.name for s in FIRST_ORDER]


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from the IHDR chunk, after checking the PNG signature."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def run(*args: str):
    return CliRunner().invoke(main, ["plot", *args])


def legend_texts(fig, row: int = 0) -> list[str]:
    """The entries of a landscape row's legend (it lives in its own axes, beside the panels)."""
    key = [ax for ax in fig.axes if ax.get_gid() == "legend"][row]
    return [t.get_text() for t in key.get_legend().get_texts()]


def default_kernel(name: str) -> type:
    """The generated class that ``symopt_numpy.OPTIMIZERS[name]`` runs at its defaults: its own
    for a plain spec; for a class with torch.optim's arguments, the kernel it picks for them."""
    cls = symopt_numpy.OPTIMIZERS[name]
    if not issubclass(cls, ApiOptimizer):
        return cls
    opt = cls([np.zeros(2)])
    return opt.kernel(opt.values(np.float64))


def manual_run(landscape, name: str, steps: int) -> np.ndarray:
    """The generated class stepped by hand on the landscape's gradient."""
    spec = builtin_specs()[name]
    w = np.array(landscape.start, dtype=np.float64)
    opt = default_kernel(name)([w], **pl.landscape_hyper(landscape, spec))
    points = [w.copy()]
    for _ in range(steps):
        opt.step([landscape.grad(w)])
        points.append(w.copy())
    return np.array(points)


# -- landscapes --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(LANDSCAPES))
def test_gradient_is_exact_and_vanishes_at_the_minima(name):
    ls = LANDSCAPES[name]
    rng = np.random.default_rng(0)
    x0, x1, y0, y1 = ls.box
    for p in np.column_stack([rng.uniform(x0, x1, 5), rng.uniform(y0, y1, 5)]):
        h = 1e-6
        fd = [
            (ls.f(*(p + h * e)) - ls.f(*(p - h * e))) / (2 * h) for e in np.eye(2)
        ]  # central differences
        np.testing.assert_allclose(ls.grad(p), fd, rtol=1e-6, atol=1e-5)
    for m in ls.minima:
        assert np.max(np.abs(ls.grad(np.array(m)))) < 1e-9
        assert float(ls.f(*m)) == pytest.approx(ls.f_min, abs=1e-12)


def test_unknown_function_lists_the_choices():
    with pytest.raises(KeyError, match="did you mean 'beale'.*rosenbrock"):
        get_landscape("beal")
    assert get_landscape("bowl") is LANDSCAPES["quadratic"]


# -- trajectories --------------------------------------------------------------------------------


@pytest.mark.parametrize("function", ["beale", "saddle"])
def test_plotted_trajectories_are_the_ones_the_optimizers_compute(function):
    ls = LANDSCAPES[function]
    trajectories = pl.run_trajectories(ls, FIRST_ORDER, steps=40)
    assert [t.name for t in trajectories][:3] == ["sgd", "momentum", "nesterov"]
    fig = pl.landscape_figure(ls, trajectories)
    path_ax, loss_ax = fig.axes[:2]
    for tr in trajectories:
        assert tr.backend == "generated NumPy"
        expected = manual_run(ls, tr.name, 40)
        np.testing.assert_array_equal(tr.points, expected)
        np.testing.assert_array_equal(tr.losses, ls.f(expected[:, 0], expected[:, 1]) - ls.f_min)
        (line,) = [ln for ln in path_ax.lines if ln.get_gid() == f"path:{tr.name}"]
        np.testing.assert_array_equal(line.get_xydata(), expected)
        (loss,) = [ln for ln in loss_ax.lines if ln.get_gid() == f"loss:{tr.name}"]
        np.testing.assert_array_equal(loss.get_ydata(), np.maximum(tr.losses, pl.FLOOR))
    assert legend_texts(fig) == [t.label for t in trajectories] + ["minimum", "start"]


@pytest.mark.parametrize("function", [n for n, ls in LANDSCAPES.items() if ls.convex])
@pytest.mark.parametrize("backend", ["generated", "reference"])
def test_every_optimizer_ends_closer_to_the_minimum_of_a_convex_function(
    function, backend, monkeypatch
):
    if backend == "reference":
        monkeypatch.setattr(steppers, "generated_numpy", lambda: None)
    ls = LANDSCAPES[function]
    start = ls.distance_to_minimum(ls.start)
    for tr in pl.run_trajectories(ls, FIRST_ORDER):
        assert tr.backend.startswith(backend), tr.backend
        assert tr.diverged_at is None and tr.steps == ls.steps
        assert ls.distance_to_minimum(tr.points[-1]) < 0.1 * start, tr.name


@pytest.mark.parametrize("function", ["beale", "saddle", "himmelblau"])
def test_default_learning_rates_reach_the_neighbourhood_of_a_minimum(function):
    ls = LANDSCAPES[function]
    for tr in pl.run_trajectories(ls, FIRST_ORDER):
        assert ls.distance_to_minimum(tr.points[-1]) < 0.1, tr.name
        assert np.ptp(tr.points, axis=0).max() > 0.5, f"{tr.name} barely moves"


def test_reference_stepper_runs_a_spec_that_was_never_generated():
    text = builtin_specs()["adam"].text.replace('name = "adam"', 'name = "myadam"')
    spec = load_spec_text(text.replace('class_name = "Adam"', 'class_name = "MyAdam"'))
    ls = LANDSCAPES["beale"]
    tr = pl.run_trajectory(ls, spec, steps=30, overrides={"lr": 0.1})
    assert tr.backend == "reference"
    ref = ReferenceStepper(spec, [np.array(ls.start)], lr=0.1)
    for _ in range(30):
        ref.step([ls.grad(ref.params[0])])
    np.testing.assert_array_equal(tr.points[-1], ref.params[0])
    # the same equations as the generated Adam: the same path up to rounding
    generated = pl.run_trajectory(ls, builtin_specs()["adam"], steps=30, overrides={"lr": 0.1})
    np.testing.assert_allclose(tr.points, generated.points, rtol=1e-12, atol=1e-12)
    # beside generated runs the legend says which one ran on the reference stepper
    legend = legend_texts(pl.landscape_figure(ls, [generated, tr]))
    assert legend[:2] == ["adam lr=0.1", "myadam lr=0.1 [reference]"]


def test_a_variant_is_run_by_its_kernel_the_class_with_torchs_arguments_runs():
    """Adam with amsgrad: its kernel (``_adam__amsgrad``) under the spec's names, the numbers of
    ``symopt_numpy.Adam(params, lr=..., amsgrad=True)``."""
    ls = LANDSCAPES["beale"]
    spec = variant(builtin_specs()["adam"], amsgrad=True)
    tr = pl.run_trajectory(ls, spec, steps=40, overrides={"lr": 0.05, "beta2": 0.99})
    assert tr.backend == "generated NumPy"
    w = np.array(ls.start, dtype=np.float64)
    opt = symopt_numpy.Adam([w], lr=0.05, betas=(0.9, 0.99), amsgrad=True)
    kernel = opt.kernel(opt.values(np.float64))
    assert steppers.generated_class(spec) is kernel and kernel.__module__.endswith("_amsgrad")
    points = [w.copy()]
    for _ in range(40):
        opt.step([ls.grad(w)])
        points.append(w.copy())
    np.testing.assert_array_equal(tr.points, np.array(points))
    default = pl.run_trajectory(ls, builtin_specs()["adam"], steps=40, overrides=tr.hyper)
    assert not np.array_equal(default.points, tr.points)  # the running maximum made a difference


def test_an_edited_builtin_is_not_run_by_its_stale_generated_class():
    assert "w = w - lr*gw" in builtin_specs()["sgd"].text
    text = builtin_specs()["sgd"].text.replace("w = w - lr*gw", "w = w - 2*lr*gw")
    spec = load_spec_text(text)
    assert steppers.generated_class(builtin_specs()["sgd"]) is default_kernel("sgd")
    assert steppers.generated_class(spec) is None
    tr = pl.run_trajectory(LANDSCAPES["quadratic"], spec, steps=1)
    g = LANDSCAPES["quadratic"].grad(np.array(LANDSCAPES["quadratic"].start))
    np.testing.assert_allclose(tr.points[1], tr.points[0] - 2 * 0.1 * g, rtol=1e-15)


def test_a_diverging_trajectory_is_stopped_and_labelled(tmp_path):
    ls = LANDSCAPES["beale"]
    tr = pl.run_trajectory(ls, builtin_specs()["sgd"], steps=50, overrides={"lr": 0.1})
    assert tr.diverged_at == 3 and tr.steps == 2
    assert np.all(np.isfinite(tr.points)) and np.all(np.isfinite(tr.losses))
    assert "(diverged at step 3)" in tr.label
    fine = pl.run_trajectory(ls, builtin_specs()["adam"], steps=50)
    fig = pl.landscape_figure(ls, [tr, fine])
    assert fig.axes[1].get_ylim()[1] <= 1e3 * tr.losses[0] * 1.0001  # not squashed to 1e40
    pl.save_png(fig, tmp_path / "d.png")


def test_a_nesterov_trajectory_follows_the_stored_lookahead_point():
    ls = LANDSCAPES["quadratic"]
    tr = pl.run_trajectory(ls, builtin_specs()["nesterov"], steps=3)
    lr, rho = tr.hyper["lr"], tr.hyper["rho"]
    p, v = np.array(ls.start), np.zeros(2)
    for k in range(1, 4):
        g = ls.grad(p)
        v = rho * v - lr * g
        p = p + rho * v - lr * g
        np.testing.assert_allclose(tr.points[k], p, rtol=1e-14)


# -- two moons and the MLP -------------------------------------------------------------------


def test_two_moons_are_deterministic_for_a_seed():
    X, y = moons.make_moons(100, 0.1, seed=3)
    X2, y2 = moons.make_moons(100, 0.1, seed=3)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)
    assert X.shape == (100, 2) and sorted(set(y)) == [0.0, 1.0] and y.sum() == 50
    assert not np.array_equal(X, moons.make_moons(100, 0.1, seed=4)[0])
    clean, labels = moons.make_moons(50, 0.0, seed=0)
    outer = clean[labels == 0]
    np.testing.assert_allclose(np.hypot(*outer.T), 1.0)  # on the unit half circle


def test_mlp_gradients_match_finite_differences():
    X, y = moons.make_moons(40, 0.2, seed=1)
    params = moons.init_mlp((2, 5, 4, 1), seed=2)
    params = [p + 0.1 for p in params]  # nonzero biases
    loss, grads = moons.loss_and_grads(params, X, y)
    assert loss == pytest.approx(moons.bce(moons.forward(params, X)[0], y))
    assert [g.shape for g in grads] == [p.shape for p in params]
    h = 1e-6
    for p, g in zip(params, grads, strict=True):
        for idx in np.ndindex(p.shape):
            old = p[idx]
            p[idx] = old + h
            up = moons.loss_and_grads(params, X, y)[0]
            p[idx] = old - h
            down = moons.loss_and_grads(params, X, y)[0]
            p[idx] = old
            assert g[idx] == pytest.approx((up - down) / (2 * h), abs=1e-8)


def test_minibatches_cover_every_example_once_per_epoch():
    rng = np.random.default_rng(0)
    assert [b.tolist() for b in moons.minibatches(5, None, rng)] == [[0, 1, 2, 3, 4]]
    batches = list(moons.minibatches(70, 32, rng))
    assert [len(b) for b in batches] == [32, 32, 6]
    assert sorted(np.concatenate(batches).tolist()) == list(range(70))


def test_training_curve_is_the_run_the_optimizer_computes():
    data = pt.make_data(seed=0, n=64)
    spec = builtin_specs()["adam"]
    run = pt.train(spec, data, batch=16, epochs=3, hyper={"lr": 0.01})
    params = moons.init_mlp(pt.SIZES, 0)
    # what a user calls (torch.optim's arguments): at its defaults it runs the kernel pictured
    opt = symopt_numpy.Adam(params, lr=0.01)
    rng = np.random.default_rng(1)
    for _ in range(3):
        for idx in moons.minibatches(64, 16, rng):
            opt.step(moons.loss_and_grads(params, data.X[idx], data.y[idx])[1])
    for mine, theirs in zip(run.params, params, strict=True):
        np.testing.assert_array_equal(mine, theirs)
    assert run.steps == 12 and run.epochs[-1] == 3.0
    assert run.losses[-1] == moons.loss_and_grads(params, data.X, data.y)[0]
    assert run.losses[-1] < run.losses[0]


def test_the_three_gradient_descent_variants():
    data = pt.make_data(seed=0, n=64)
    variants = pt.train_variants(builtin_specs()["sgd"], data, epochs=2)
    assert [(r.batch, r.steps) for r in variants] == [(None, 2), (1, 128), (32, 4)]
    for r in variants:
        assert r.epochs[0] == 0 and r.epochs[-1] == 2 and r.losses[-1] < r.losses[0]
    fig = pt.train_figure(variants, variants[:1], data)
    lines = [ln for ln in fig.axes[0].lines if ln.get_gid() == "variant"]
    for line, r in zip(lines, variants, strict=True):
        np.testing.assert_array_equal(line.get_ydata(), r.losses)


# -- files and the command line ----------------------------------------------------------------


def test_landscape_command_writes_a_png_of_the_expected_size(tmp_path):
    out = tmp_path / "beale.png"
    result = run("landscape", "--function", "beale", "--steps", "30", "--out", str(out))
    assert result.exit_code == 0, result.output
    # by default two rows: the first-order methods, then the second-order ones
    assert png_size(out) == tuple(round(s * pl.DPI) for s in pl.figure_size(2)) == (1400, 960)
    assert 0 < out.stat().st_size < 150_000
    for name in NAMES:
        assert f"{name} (generated NumPy): 30 steps" in result.stderr
    assert f"wrote {out} (1400x960 px" in result.stderr
    again = tmp_path / "again.png"
    assert run("landscape", "--steps", "30", "--out", str(again)).exit_code == 0
    assert again.read_bytes() == out.read_bytes()  # no timestamp: same data, same bytes


def test_landscape_command_takes_specs_hypers_start_and_dpi(tmp_path):
    spec = tmp_path / "mine.toml"
    spec.write_text(builtin_specs()["momentum"].text.replace('name = "momentum"', 'name = "mine"'))
    out = tmp_path / "mine.png"
    result = run(
        "landscape",
        *("--function", "bowl", "--spec", str(spec), "--algorithm", "adam"),
        *("--hyper", "mine.lr=0.02", "--hyper", "mine.rho=0.5", "--hyper", "lr=0.3"),
        *("--start", "2,-1", "--steps", "20", "--dpi", "50", "--out", str(out)),
    )
    assert result.exit_code == 0, result.output
    assert png_size(out) == (700, 250)  # first-order methods only: one row
    assert "mine (reference): 20 steps" in result.stderr
    assert "adam (generated NumPy): 20 steps" in result.stderr


@pytest.mark.parametrize(
    "hyper, message",
    [
        ("adam.lr=fast", "'fast' is not a number"),
        ("nope.lr=1", "no algorithm 'nope' in this picture"),
        ("adam.momentum=1", "adam has no hyperparameter 'momentum' (it has lr, beta1"),
        ("adam.beta1=1.5", "adam.beta1 must be in [0, 1)"),
        ("adam.lr", "expected NAME.HYPER=VALUE"),
        ("rho=0.5", "no algorithm in this picture has a hyperparameter 'rho'"),
    ],
)
def test_a_bad_hyper_is_a_one_line_usage_error(hyper, message, tmp_path):
    out = tmp_path / "x.png"
    result = run("landscape", "--algorithm", "adam", "--hyper", hyper, "--out", str(out))
    assert result.exit_code == 2
    assert isinstance(result.exception, SystemExit)
    (line,) = [ln for ln in result.stderr.splitlines() if ln.startswith("Error:")]
    assert message in line and "Traceback" not in result.output
    assert not out.exists()


def test_an_unknown_function_is_a_usage_error_listing_the_choices(tmp_path):
    result = run("landscape", "--function", "banana", "--out", str(tmp_path / "x.png"))
    assert result.exit_code == 2
    assert "unknown function 'banana'; choose from quadratic, valley, beale" in result.stderr


def test_missing_matplotlib_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now fails
    result = run("landscape", "--out", str(tmp_path / "x.png"))
    assert result.exit_code == 1
    assert result.stderr == "error: symopt plot needs matplotlib: pip install 'symopt[plot]'\n"
    assert not (tmp_path / "x.png").exists()


def test_train_command_writes_a_png_of_the_expected_size(tmp_path):
    out = tmp_path / "train.png"
    result = run(
        "train", "--algorithm", "adam", "--algorithm", "sgd", "--batch", "full", "--epochs", "2",
        "--out", str(out),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    width, height = pt.figure_size(2)
    assert png_size(out) == (round(width * pt.DPI), round(height * pt.DPI))
    assert "SGD (batch 1) with sgd (generated NumPy): 400 steps, batch 1" in result.stderr
    assert "adam (generated NumPy): 2 steps, batch full" in result.stderr
    bad = run("train", "--batch", "0", "--out", str(tmp_path / "x.png"))
    assert bad.exit_code == 2 and "batch must be 'full' or a positive integer" in bad.stderr


def test_readme_and_docs_show_the_committed_images():
    images = sorted((ROOT / "docs" / "img").glob("*.png"))
    assert {p.name for p in images} >= {"landscape-beale.png", "train-moons.png"}
    readme = (ROOT / "README.md").read_text()
    assert "docs/img/landscape-beale.png" in readme and "docs/img/train-moons.png" in readme
    plots = (ROOT / "docs" / "plots.md").read_text()
    for path in images:
        assert png_size(path)[0] >= 1000
        assert path.stat().st_size < 150_000, path.name
        assert f"img/{path.name}" in plots


def test_the_learning_rate_tables_in_docs_match_the_code():
    text = (ROOT / "docs" / "plots.md").read_text()

    def table(marker: str) -> dict[str, dict[str, float]]:
        lines = text.split(marker, 1)[1].strip().splitlines()
        header = [c.strip() for c in lines[0].strip("|").split("|")][1:]
        rows = {}
        for line in lines[2:]:
            if not line.startswith("|"):
                break
            name, *cells = [c.strip() for c in line.strip("|").split("|")]
            rows[name] = dict(zip(header, map(float, cells), strict=True))
        return rows

    assert table("<!-- landscape-lr -->") == {n: dict(ls.lr) for n, ls in LANDSCAPES.items()}
    assert table("<!-- train-lr -->") == {"mlp": pt.TRAIN_LR}


def test_generated_code_is_found_where_symopt_generate_writes_it(tmp_path):
    """Without generated/numpy on sys.path (an installed symopt), ./generated/numpy is used."""
    import subprocess

    code = (
        "from symopt.plot.steppers import generated_class\n"
        "from symopt.resources import builtin_spec\n"
        "cls = generated_class(builtin_spec('adam'))\n"
        "import sys; print(cls.__name__, sys.modules[cls.__module__].__file__)\n"
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    name, path = done.stdout.split()
    assert name == "Adam" and Path(path) == ROOT / "generated/numpy/symopt_numpy/_adam.py"


def test_help_names_every_function_and_the_plot_extra():
    result = run("landscape", "--help")
    assert result.exit_code == 0
    for name in LANDSCAPES:
        assert name in result.output
    assert "pip install 'symopt[plot]'" in run("--help").output


def test_second_order_trajectories_are_the_minimisers_iterates():
    ls = get_landscape("rosenbrock")
    tr = pl.run_trajectory(ls, builtin_specs()["trust_region"], steps=100)
    f = lambda p: float(ls.f(p[0], p[1]))  # noqa: E731
    seen = [np.array(ls.start, dtype=float)]
    result = symopt_numpy.trust_region.minimize(
        f, ls.grad, np.array(ls.start, dtype=float), hess=ls.hess, callback=seen.append
    )
    assert result.success and tr.backend == "generated NumPy"
    np.testing.assert_array_equal(tr.points, np.array(seen))
    assert ls.distance_to_minimum(tr.points[-1]) < 1e-7  # ||g|| <= gtol = 1e-8 there
    newton = pl.run_trajectory(get_landscape("beale"), builtin_specs()["newton"])
    assert "Hessian not positive definite" in newton.label and newton.steps == 0


def test_a_user_second_order_spec_is_rendered_and_run(tmp_path):
    text = builtin_specs()["trust_region"].text.replace("default = 1.0\n", "default = 0.5\n", 1)
    spec = tmp_path / "mine.toml"
    spec.write_text(text.replace('name = "trust_region"', 'name = "my_tr"'))
    tr = pl.run_trajectory(get_landscape("beale"), load_spec(spec), steps=50)
    assert tr.backend == "rendered NumPy" and tr.hyper["radius0"] == 0.5
    assert get_landscape("beale").distance_to_minimum(tr.points[-1]) < 1e-6


def test_plot_train_refuses_a_named_second_order_spec(tmp_path):
    result = run("train", "--algorithm", "newton", "--out", str(tmp_path / "x.png"))
    assert result.exit_code == 2 and "first-order specs only" in result.stderr


# -- what the landscape picture shows ---------------------------------------------------------


@pytest.fixture(scope="module")
def beale_default():
    """The default picture of Beale: nine first-order methods, five second-order ones."""
    ls = get_landscape("beale")
    specs = [s for s in builtin_specs().values() if s.name in PICTURED or s.kind != "elementwise"]
    trajectories = pl.run_trajectories(ls, specs)
    fig = pl.landscape_figure(ls, trajectories)
    fig.canvas.draw()
    return trajectories, fig


def test_second_order_methods_have_their_own_row(beale_default):
    trajectories, fig = beale_default
    second = ["block_newton", "diag_newton", "kfac", "newton", "newton_armijo", "trust_region"]
    assert [t.name for t in trajectories] == [*PICTURED, *second]
    paths = [ax for ax in fig.axes if ax.get_gid() != "legend"]
    assert len(paths) == 4  # two rows: paths and loss
    top = {ln.get_gid() for ln in paths[1].lines}
    bottom = {ln.get_gid() for ln in paths[3].lines}
    assert top == {f"loss:{n}" for n in PICTURED} and bottom == {f"loss:{n}" for n in second}
    assert legend_texts(fig, 1) == [t.label for t in trajectories[len(PICTURED) :]]


def test_no_two_methods_share_colour_and_line_style(beale_default):
    _, fig = beale_default
    lines = [ln for ax in fig.axes for ln in ax.lines if (ln.get_gid() or "").startswith("loss:")]
    looks = {(ln.get_color(), ln.get_linestyle()) for ln in lines}
    assert len(lines) == 15 and len(looks) == 15
    for ax in fig.axes:  # within a panel the colours alone differ
        colours = [ln.get_color() for ln in ax.lines if ln.get_gid()]
        assert len(set(colours)) == len(colours)


def test_legends_are_outside_every_panel(beale_default):
    _, fig = beale_default
    renderer = fig.canvas.get_renderer()
    panels = [ax.get_window_extent(renderer) for ax in fig.axes if ax.get_gid() != "legend"]
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    assert len(legends) == 2
    for legend in legends:
        box = legend.get_window_extent(renderer)
        assert not any(box.overlaps(panel) for panel in panels)
        assert box.x1 <= fig.bbox.x1 and box.y0 >= fig.bbox.y0  # and inside the picture


def test_a_method_that_stopped_early_is_marked(beale_default):
    trajectories, fig = beale_default
    by_name = {t.name: t for t in trajectories}
    newton, diag, trust = by_name["newton"], by_name["diag_newton"], by_name["trust_region"]
    assert newton.steps == 0 and newton.stopped == "Hessian not positive definite"
    assert newton.label == "newton\n(stopped after 0 steps: Hessian not positive definite)"
    assert diag.steps == 1 and "(stopped after 1 step: damped diagonal not positive)" in diag.label
    assert by_name["block_newton"].steps == 0 and by_name["block_newton"].stopped
    assert trust.converged and trust.label == "trust_region (converged in 10 steps)"
    assert by_name["sgd"].label == "sgd lr=0.02" and not by_name["sgd"].ended_early
    lines = {ln.get_gid(): ln for ax in fig.axes for ln in ax.lines if ln.get_gid()}
    for name in ("newton", "block_newton", "diag_newton"):
        for kind in ("path", "loss"):
            line = lines[f"{kind}:{name}"]
            assert line.get_marker() == "X" and line.get_markevery() == [by_name[name].steps]
    # two runs stopped at the start: the second mark is smaller, drawn over the first
    assert lines["path:newton"].get_markersize() < lines["path:block_newton"].get_markersize()
    assert lines["loss:trust_region"].get_marker() == "o"
    assert lines["loss:sgd"].get_marker() in (None, "None", "")  # ran its budget


def test_progress_says_why_a_method_stopped(tmp_path):
    result = run("landscape", "--algorithm", "newton", "--out", str(tmp_path / "n.png"))
    assert result.exit_code == 0, result.output
    assert "newton (generated NumPy): stopped after 0 steps: Hessian not positive definite" in (
        result.stderr
    )
    assert png_size(tmp_path / "n.png") == (1400, 500)  # second-order methods only: one row


@pytest.mark.parametrize("command", ["landscape", "train"])
@pytest.mark.parametrize(
    "folder, why", [("missing/deeper", "does not exist"), ("a-file", "is not a folder")]
)
def test_out_in_a_missing_folder_is_a_usage_error(command, folder, why, tmp_path):
    (tmp_path / "a-file").write_text("")
    out = tmp_path / folder / "x.png"
    result = run(command, "--algorithm", "adam", "--out", str(out))
    assert result.exit_code == 2 and "Traceback" not in result.output
    (line,) = [ln for ln in result.stderr.splitlines() if ln.startswith("Error:")]
    assert "'--out'" in line and f"{str(out.parent)!r} {why}" in line
    assert not (tmp_path / "missing").exists()


# -- the documentation states the code's defaults ----------------------------------------------


def defaults(command: str) -> dict[str, object]:
    """The defaults of ``symopt plot COMMAND``'s options, read from the click command."""
    from symopt.plot.cli import plot

    cmd = plot.commands[command]
    with cmd.make_context(command, []) as ctx:  # what a run without options gets
        return {p.opts[0]: ctx.params[p.name] for p in cmd.params}


def test_docs_state_the_landscape_defaults():
    text = (ROOT / "docs" / "plots.md").read_text()
    options = dict(re.findall(r"^\| `(--[a-z]+)[^|]*\| (.*) \|$", text, re.M))
    given = defaults("landscape")
    assert given["--function"] == "beale" and "`beale` (default)" in options["--function"]
    assert given["--steps"] is None and "default: the function's" in options["--steps"]
    assert given["--start"] is None and "default: the function's" in options["--start"]
    assert given["--out"] is None and "default `landscape-FUNCTION.png`" in options["--out"]
    both, one = (tuple(round(v * given["--dpi"]) for v in pl.figure_size(n)) for n in (2, 1))
    assert (
        f"default {given['--dpi']} ({both[0]} x {both[1]} pixels with both rows, "
        in (options["--dpi"])
    )
    assert f"{one[0]} x {one[1]} with one)" in options["--dpi"]
    assert f"wrote landscape-beale.png ({both[0]}x{both[1]} px" in text
    assert f"values under {pl.FLOOR:g} are drawn at {pl.FLOOR:g}" in text


def test_docs_state_the_train_defaults():
    text = (ROOT / "docs" / "plots.md").read_text()
    given = defaults("train")
    line = f"--batch full|1|32|N, --epochs {given['--epochs']}, --seed {given['--seed']}, "
    assert line + f"--out {given['--out']}" in text
    assert given["--batch"] == "32" and "with `--batch` (default 32)" in text
    width, height = (round(v * pt.DPI) for v in pt.figure_size(len(PICTURED)))
    assert f"wrote train-moons.png ({width}x{height} px" in text
    noise = f"{pt.N_POINTS} points of two interleaving half circles with Gaussian noise {pt.NOISE}"
    assert noise in text
    assert "a " + "-".join(map(str, pt.SIZES)) + " MLP" in text
    assert f"(the `sgd` spec,\n  lr {pt.VARIANT_LR})" in text
    assert f"recorded up to {pt.RECORDS_PER_EPOCH} times per epoch" in text


def test_docs_table_of_functions_matches_the_landscapes():
    text = (ROOT / "docs" / "plots.md").read_text()
    rows = re.findall(r"^\| (\w+) \| [^|]+ \| ([^|]+) \| ([^|]+) \| (\d+) \|$", text, re.M)
    assert [r[0] for r in rows] == list(LANDSCAPES)

    def points(cell: str) -> list[tuple[float, float]]:
        return [tuple(map(float, p.split(","))) for p in re.findall(r"\(([^)]*)\)", cell)]

    for name, minima, start, steps in rows:
        ls = LANDSCAPES[name]
        np.testing.assert_allclose(points(minima), ls.minima, atol=5e-4)
        assert points(start) == [ls.start] and int(steps) == ls.steps


# -- the committed images are what the code draws ------------------------------------------------


def load_make_images():
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_images", ROOT / "scripts/make_images.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_images_are_fresh_and_a_stale_one_is_caught(tmp_path):
    """``make_images.py --check`` in-process: render everything, compare with docs/img/."""
    from PIL import Image

    mi = load_make_images()
    (tmp_path / "fresh").mkdir()
    fresh = mi.render(tmp_path / "fresh")
    names = [f"landscape-{name}.png" for name in mi.LANDSCAPES] + ["train-moons.png"]
    assert [p.name for p in fresh] == names and (tmp_path / "fresh").exists()
    assert mi.stale(fresh) == []
    beale = tmp_path / "fresh" / "landscape-beale.png"
    # another Pillow: other compression and another colour quantiser change no picture
    other = tmp_path / "other"
    other.mkdir()
    with Image.open(beale) as image:
        rgb = image.convert("RGB")
    rgb.quantize(256, method=Image.Quantize.MEDIANCUT).save(other / beale.name, compress_level=1)
    assert beale.read_bytes() != (other / beale.name).read_bytes()
    assert mi.stale([beale], other) == []
    # a stale image: Adam's learning rate 10% lower moves its path and changes its legend entry
    ls = get_landscape("beale")
    specs = [s for s in builtin_specs().values() if s.name in PICTURED or s.kind != "elementwise"]
    pl.plot_landscape(ls, specs, other / beale.name, overrides={"adam": {"lr": 0.09}})
    (line,) = mi.stale([beale], other)
    assert re.fullmatch(r"docs/img/landscape-beale.png differs in 0\.\d+% of its pixels", line)
    rgb.resize((700, 480)).save(other / beale.name)
    assert mi.stale([beale], other) == [
        "docs/img/landscape-beale.png is 700x480 px, the rendering 1400x960"
    ]
    assert mi.stale([tmp_path / "fresh" / "new.png"], other) == ["docs/img/new.png is missing"]
    docs = " ".join((ROOT / "docs" / "plots.md").read_text().split())
    assert f"within one pixel of it in the other image is within {mi.TOLERANCE} (of 255)" in docs
    assert mi.SHIFT == 1 and f"more than {mi.MAX_FRACTION:.3%} of its pixels differ" in docs

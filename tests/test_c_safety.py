"""symopt_c against arrays that change or alias under it, and against bad step counters.

The C kernels get raw addresses, cached between steps; these tests change the arrays behind the
cache (resized in place, reallocated, retyped, made read-only, reshaped), hand the kernels
misaligned arrays and aliased ones, and check each step against a twin optimizer that got fresh,
aligned, separate copies of the same values (bit for bit), or against Adam written out in NumPy.
The rules they check are symopt_c._arrays': written arrays (parameters, state) may not share
memory (ValueError); an array a step only reads may share memory with anything, and the step
reads its values from before the step; misaligned arrays are stepped through aligned copies.

The resized, misaligned and aliased cases run once more under AddressSanitizer and
UndefinedBehaviorSanitizer, in a Python that loads a library built with the sanitizers
(test_sanitizers_find_nothing): before symopt_c revalidated its pointers, the resized cases
were a heap-use-after-free there, and the misaligned ones a misaligned load."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
GENERATED = ROOT / "generated" / "c"
sys.path.insert(0, str(GENERATED))

import symopt_c  # noqa: E402
from symopt_c import _arrays, _lib  # noqa: E402
from symopt_c._adam import Adam, adam_step  # noqa: E402
from symopt_c.diag_newton import diag_newton_step  # noqa: E402
from symopt_c.trust_region import trust_region_step  # noqa: E402

LR, B1, B2, EPS = 1e-3, 0.9, 0.999, 1e-8
#: The kernels the resized, misaligned and aliased cases run (the sanitized library's sources).
KERNELS = ("adam", "diag_newton", "trust_region")


def twin(opt: Adam) -> Adam:
    """A fresh optimizer over copies of opt's arrays: its own, aligned, unaliased memory."""
    other = Adam([p.copy() for p in opt.params])
    other.load_state_dict(opt.state_dict())
    return other


def assert_same(opt: Adam, other: Adam) -> None:
    assert opt.steps == other.steps
    for p, q, s, r in zip(opt.params, other.params, opt.state, other.state, strict=True):
        np.testing.assert_array_equal(p, q)
        for name in ("m", "v"):
            np.testing.assert_array_equal(s[name], r[name])


def misaligned(values: np.ndarray, offset: int = 1) -> np.ndarray:
    """A writeable copy of ``values`` whose data starts ``offset`` bytes into a buffer."""
    buffer = bytearray(values.nbytes + offset)
    out = np.frombuffer(buffer, values.dtype, values.size, offset).reshape(values.shape)
    out[...] = values
    assert not out.flags.aligned
    return out


def adam_by_hand(w, g, m, v, t):
    """Adam's update, in float64 as its equations read (the oracle of the counter tests)."""
    m = B1 * m + (1 - B1) * g
    v = B2 * v + (1 - B2) * g * g
    return w - LR * (m / (1 - B1**t)) / (np.sqrt(v / (1 - B2**t)) + EPS), m, v


@pytest.fixture
def rng():
    return np.random.default_rng(22)


@pytest.fixture(params=["C", "NumPy"])
def reader(request, monkeypatch):
    """Who reads the arrays' fields between steps: the C runtime, or NumPy (where the C
    runtime cannot rely on the layout of NumPy's array object)."""
    if request.param == "C":
        assert _arrays.reader() is not None, "the C reader is in use wherever CPython runs"
    else:
        monkeypatch.setattr(_arrays, "_reader", [None])


# Arrays changed behind the pointer tables: each is picked up, or refused, before the kernel runs.


def test_resized_parameter_and_state_are_stepped_where_they_now_are(rng, reader):
    opt = Adam([rng.standard_normal(16)])
    opt.step([rng.standard_normal(16)])
    for a in (opt.params[0], *opt.state[0].values()):
        a.resize(4000, refcheck=False)  # a new allocation; the old one is freed
    other = twin(opt)
    for _ in range(3):
        g = rng.standard_normal(4000)
        opt.step([g])
        other.step([g.copy()])
    assert_same(opt, other)
    assert np.all(opt.params[0][16:] != 0)  # the new elements were stepped too


def test_resized_parameter_alone_is_refused(rng, reader):
    opt = Adam([rng.standard_normal(16)])
    opt.step([rng.standard_normal(16)])
    opt.params[0].resize(40, refcheck=False)
    before = opt.params[0].copy()
    with pytest.raises(ValueError, match=r"state\[0\]\['m'\] has shape \(16,\).*expected \(40,\)"):
        opt.step([rng.standard_normal(40)])
    np.testing.assert_array_equal(opt.params[0], before)


def test_resized_gradient_is_checked_again(rng, reader):
    opt = Adam([rng.standard_normal(16)])
    g = rng.standard_normal(16)
    opt.step([g])
    g.resize(40, refcheck=False)
    with pytest.raises(ValueError, match=r"grads\[0\] has shape \(40,\)"):
        opt.step([g])
    g.resize(16, refcheck=False)
    g[...] = rng.standard_normal(16)
    other = twin(opt)
    opt.step([g])
    other.step([g.copy()])
    assert_same(opt, other)


def test_resized_arrays_reallocated_with_their_shape_are_stepped(rng, reader):
    """__setstate__ moves an array's data to a new allocation, keeping its shape and values."""
    opt = Adam([rng.standard_normal((3, 5))])
    g = rng.standard_normal((3, 5))
    opt.step([g])
    for a in (opt.params[0], g, *opt.state[0].values()):
        a.__setstate__((1, a.shape, a.dtype, False, a.tobytes()))
    other = twin(opt)
    opt.step([g])
    other.step([g.copy()])
    assert_same(opt, other)


def test_resized_views_of_new_memory_replace_the_arrays(rng, reader):
    """Parameter and state arrays swapped for views (np.ndarray over another buffer)."""
    opt = Adam([rng.standard_normal(8)])
    opt.step([rng.standard_normal(8)])
    for s, key in [(opt.params, 0), (opt.state[0], "m"), (opt.state[0], "v")]:
        buffer = np.zeros(12)
        view = np.ndarray((8,), np.float64, buffer, offset=16)
        view[...] = s[key]
        s[key] = view
    other = twin(opt)
    g = rng.standard_normal(8)
    opt.step([g])
    other.step([g])
    assert_same(opt, other)


def test_resized_retyped_read_only_and_reshaped_arrays_are_refused(rng, reader):
    """In place: a new dtype (same bytes), read-only, a new shape of the same size."""
    opt = Adam([rng.standard_normal(8)])
    g = rng.standard_normal(8)
    opt.step([g])
    p = opt.params[0]
    p.dtype = np.float32
    with pytest.raises(ValueError, match=r"has shape \(8,\) and dtype float64, expected \(16,\)"):
        opt.step([g])
    p.dtype = np.float64
    p.flags.writeable = False
    with pytest.raises(ValueError, match=r"params\[0\] must be writeable"):
        opt.step([g])
    p.flags.writeable = True
    g.shape = (2, 4)
    with pytest.raises(ValueError, match=r"grads\[0\] has shape \(2, 4\)"):
        opt.step([g])
    g.shape = (8,)
    other = twin(opt)
    opt.step([g])
    other.step([g])
    assert_same(opt, other)


# Misaligned arrays: stepped through aligned copies, with the results of aligned ones.


@pytest.mark.parametrize(("dtype", "offset"), [(np.float32, 1), (np.float64, 1), (np.float64, 4)])
def test_misaligned_arrays_are_stepped_like_aligned_ones(rng, dtype, offset):
    w = rng.standard_normal(37).astype(dtype)
    opt = Adam([misaligned(w, offset), w.copy()])
    other = Adam([w.copy(), w.copy()])
    opt.step([w, w])
    other.step([w, w])
    opt.state[0] = {name: misaligned(a, offset) for name, a in opt.state[0].items()}
    p = opt.params[0]
    for _ in range(3):
        g = rng.standard_normal(37).astype(dtype)
        opt.step([misaligned(g, offset), misaligned(g, offset)])
        other.step([g, g])
    assert opt.params[0] is p and not p.flags.aligned  # updated in place
    assert_same(opt, other)


def test_misaligned_arrays_in_the_functional_steps(rng):
    arrays = [rng.standard_normal(33) for _ in range(2)] + [np.zeros(33), np.zeros(33)]
    copies = [a.copy() for a in arrays]
    odd = [misaligned(a) for a in arrays]
    for t in (1, 2, 3):
        adam_step(*odd, t)
        adam_step(*copies, t)
    for a, b in zip(odd, copies, strict=True):
        np.testing.assert_array_equal(a, b)
    w, g, c = rng.standard_normal(9), rng.standard_normal(9), rng.random(9) + 1.0
    expected = w.copy()
    diag_newton_step(expected, g, c)
    w_odd = misaligned(w)
    diag_newton_step(w_odd, misaligned(g), misaligned(c))
    np.testing.assert_array_equal(w_odd, expected)
    H = np.diag(rng.random(4) + 1.0)
    step = trust_region_step(misaligned(H), misaligned(g[:4]), 10.0)
    np.testing.assert_array_equal(step.d, trust_region_step(H, g[:4].copy(), 10.0).d)


# Aliasing: an array a step reads may share memory with one it writes; written ones may not.


def test_aliased_gradient_is_read_as_it_was_before_the_step(rng):
    """The gradient is the parameter, a state array, or a view that overlaps the parameter one
    element behind it (read in order, the kernel would see the values it just wrote) or ahead."""
    buffer = rng.standard_normal(18)
    opt = Adam([buffer[1:17]])
    other = twin(opt)
    for g in (opt.params[0], buffer[:16], buffer[2:], opt.state[0]["m"], opt.state[0]["v"]):
        before = g.copy()
        opt.step([g])
        other.step([before])
        assert_same(opt, other)


def test_aliased_gradient_in_the_class_with_torch_arguments(rng):
    for maximize in (False, True):
        w = rng.standard_normal(10)
        opt = symopt_c.Adam([w.copy()], maximize=maximize)
        other = symopt_c.Adam([w.copy()], maximize=maximize)
        for _ in range(3):
            g = opt.params[0].copy()
            opt.step([opt.params[0]])
            other.step([g])
        np.testing.assert_array_equal(opt.params[0], other.params[0])


def test_aliased_inputs_of_the_functional_steps(rng):
    w = rng.standard_normal(12)
    m, v = np.zeros(12), np.zeros(12)
    copies = [w.copy(), w.copy(), m.copy(), v.copy()]
    adam_step(w, w, m, v, 1)
    adam_step(*copies, 1)
    for a, b in zip((w, m, v), (copies[0], copies[2], copies[3]), strict=True):
        np.testing.assert_array_equal(a, b)
    expected = w.copy()
    diag_newton_step(expected, w.copy(), w * w + 1.0)
    c = w * w + 1.0
    diag_newton_step(w, w, c)  # g is w
    np.testing.assert_array_equal(w, expected)


def test_aliased_written_arrays_are_refused(rng):
    w = rng.standard_normal(8)
    opt = Adam([w])
    opt.step([np.ones(8)])
    saved = twin(opt)
    message = "share memory, and each is updated in place"
    for key, value in [("v", opt.state[0]["m"]), ("m", opt.params[0]), ("v", w[::-1][::-1])]:
        own = opt.state[0][key]
        opt.state[0][key] = value
        with pytest.raises(ValueError, match=message):
            opt.step([np.ones(8)])
        opt.state[0][key] = own
    assert_same(opt, saved)  # nothing was written
    buffer = np.zeros(9)
    with pytest.raises(ValueError, match=r"params\[0\] and params\[1\] share memory"):
        Adam([buffer[:5], buffer[4:]]).step([np.ones(5)] * 2)
    with pytest.raises(ValueError, match="w and m share memory"):
        adam_step(w, np.ones(8), w, np.zeros(8), 1)
    m = np.zeros(9)
    with pytest.raises(ValueError, match="m and v share memory"):
        adam_step(w, np.ones(8), m[:8], m[1:], 1)


# Step counters: the kernels take a C long and are NaN below the first step's counter.


def test_counters_out_of_range_are_refused():
    arrays = [np.ones(4), np.ones(4), np.zeros(4), np.zeros(4)]
    out_of_range = r"step counter t must be in \[1, 9223372036854775807\]"
    for t in (0, -1, -5, 2**63, 2**64 + 1):
        with pytest.raises(ValueError, match=out_of_range):
            adam_step(*arrays, t)
    for t in (1.5, 2.0, "3", True, None):
        with pytest.raises(TypeError, match="step counter t must be an integer"):
            adam_step(*arrays, t)
    np.testing.assert_array_equal(arrays[0], np.ones(4))


@pytest.mark.parametrize("t", [1, 2, 1000, np.int64(77), 2**63 - 1])
def test_counters_in_range_give_the_update(rng, t):
    w, g = rng.standard_normal(6), rng.standard_normal(6)
    m, v = rng.standard_normal(6), rng.random(6)
    expected = adam_by_hand(w, g, m, v, int(t))
    adam_step(w, g, m, v, t)
    for actual, want in zip((w, m, v), expected, strict=True):
        np.testing.assert_allclose(actual, want, rtol=1e-12, atol=0)


def test_bad_steps_in_a_state_dict_are_refused_before_anything_changes(rng):
    opt = Adam([rng.standard_normal(5)])
    opt.step([rng.standard_normal(5)])
    saved = twin(opt)
    good = opt.state_dict()
    changed = {**good, "hyper": {**good["hyper"], "lr": 0.5}}
    for steps, error in [(-5, ValueError), (2**63 - 1, ValueError), (2.0, TypeError)]:
        with pytest.raises(error, match="steps must be"):
            opt.load_state_dict({**changed, "steps": steps})
        assert_same(opt, saved)
        assert opt.lr == LR
    opt.load_state_dict({**good, "steps": np.int64(6)})
    w, g, (m, v) = opt.params[0].copy(), rng.standard_normal(5), opt.state[0].values()
    expected = adam_by_hand(w, g, m.copy(), v.copy(), 7)
    opt.step([g])
    np.testing.assert_allclose(opt.params[0], expected[0], rtol=1e-12, atol=0)
    opt.steps = -5
    with pytest.raises(ValueError, match=r"step counter t must be in \[1, .*\], got -4"):
        opt.step([g])
    api = symopt_c.Adam([np.zeros(3)])
    with pytest.raises(ValueError, match="steps must be"):
        api.load_state_dict({**api.state_dict(), "steps": -5})
    assert api.steps == 0


# The cases above under AddressSanitizer and UndefinedBehaviorSanitizer.


def test_sanitizers_find_nothing(tmp_path):
    """The resized, misaligned and aliased tests of this file, run by pytest in a Python that
    preloads the ASan runtime and loads the kernels built with _lib.SANITIZE_FLAGS."""
    cc = _lib.compiler()
    probe = tmp_path / "probe.c"
    probe.write_text("int main(void) { return 0; }\n")
    try:
        _lib.compile_c(tmp_path / "probe", [probe], flags=_lib.SANITIZE_FLAGS, shared=False, cc=cc)
    except _lib.BuildError as exc:
        pytest.skip(f"the C compiler cannot build with sanitizers here: {exc}")
    library = tmp_path / "libsymopt-sanitized.so"
    sources = [_lib.ROOT / "src" / f"{name}.c" for name in KERNELS]
    sources += sorted((_lib.ROOT / "src").glob("runtime*.c"))
    try:
        _lib.compile_c(library, sources, flags=(*_lib.SANITIZE_FLAGS, *_lib.OPENMP_FLAGS), cc=cc)
    except _lib.BuildError:  # no OpenMP: one thread
        _lib.compile_c(library, sources, flags=_lib.SANITIZE_FLAGS, cc=cc)
    found = subprocess.run([*cc, "-print-file-name=libasan.so"], capture_output=True, text=True)
    runtime = Path(found.stdout.strip())
    if not (runtime.is_absolute() and runtime.is_file()):
        pytest.skip(f"no ASan runtime to preload into Python ({' '.join(cc)} has no libasan.so)")
    env = {
        **os.environ,
        "LD_PRELOAD": str(runtime),
        "SYMOPT_C_LIB": str(library),
        "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0:exitcode=99",
        "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
        "OMP_NUM_THREADS": "3",
    }
    cases = "(resized or misaligned or aliased) and not sanitizers"
    command = [sys.executable, "-m", "pytest", __file__, "-q", "-p", "no:xdist", "-k", cases]
    command += ["-p", "no:cacheprovider", "-s"]  # -s: a sanitizer's report reaches stderr
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    report = done.stdout[-3000:] + done.stderr[-3000:]
    assert done.returncode == 0, report
    assert "runtime error" not in done.stderr and "Sanitizer" not in done.stderr, report
    assert " passed" in done.stdout and "deselected" in done.stdout, report

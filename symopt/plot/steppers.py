"""One stepping interface over the generated NumPy optimizers and the reference stepper.

Pictures use the code users run: the generated ``symopt_numpy`` class of a built-in algorithm when
it is importable (or found where ``symopt generate`` writes it) and was generated from this very
spec text (its header records the spec's digest). Otherwise (a spec of your own, a spec edited
since generation, an installed package without ``generated/``) the reference stepper runs the
equations directly, so every spec can be pictured before it is generated.

For a spec with flags (Adam's ``amsgrad``, SGD's ``momentum``: a family) the class that runs is
the kernel of the variant pictured (the loader's default one, ``symopt_numpy._adam.Adam``, or one
from ``symopt.spec.family.variant``), not the class with torch.optim's arguments
(``symopt_numpy.Adam``) that dispatches to it: the kernel takes the spec's own hyperparameters
(``beta1``, ``beta2``, not ``betas``) with the spec's domains, as the reference stepper, the
``--hyper`` options and the legends do, and it runs exactly the equations pictured.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from symopt.reference import ReferenceStepper
from symopt.spec import Spec
from symopt.spec.domains import DOMAINS
from symopt.spec.family import module_name

#: Gradient of a loss at a list of parameter arrays: one array per parameter array.
GradAt = Callable[[list[np.ndarray]], list[np.ndarray]]

#: Where generated NumPy code may be when ``symopt_numpy`` is not importable: the folder
#: ``symopt generate`` writes by default (relative to the working directory), then the checkout's.
SEARCH = (Path("generated") / "numpy", Path(__file__).resolve().parents[2] / "generated" / "numpy")
_DIGEST = re.compile(r"spec\s+sha256:([0-9a-f]+)")


def generated_numpy():
    """The ``symopt_numpy`` package: importable, or loaded from ``SEARCH``; else None."""
    try:
        return importlib.import_module("symopt_numpy")
    except ImportError:
        pass
    for folder in SEARCH:
        init = folder.resolve() / "symopt_numpy" / "__init__.py"
        if init.is_file() and (module := _load(init)) is not None:
            return module
    return None


def _load(init: Path):
    spec = importlib.util.spec_from_file_location(
        "symopt_numpy", init, submodule_search_locations=[str(init.parent)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["symopt_numpy"] = module  # its modules import each other relatively
    try:
        spec.loader.exec_module(module)
    except Exception:
        for name in [n for n in sys.modules if n.partition(".")[0] == "symopt_numpy"]:
            del sys.modules[name]
        return None
    return module


def generated_class(spec: Spec) -> type | None:
    """The generated class that runs ``spec`` under its own names, when it was generated from
    exactly this spec text: a plain spec's class, a family variant's kernel class."""
    return _generated(spec, "OPTIMIZERS")


def minimizer_module(spec) -> tuple[object, str]:
    """The NumPy minimiser module of a second-order spec and where it came from: the generated
    one when it was generated from exactly this spec text, else the same code rendered now."""
    cls = _generated(spec, "MINIMIZERS")
    if cls is not None:
        return sys.modules[cls.__module__], "generated NumPy"
    return _render_minimizer(spec), "rendered NumPy"


def _generated(spec, registry: str) -> type | None:
    """``symopt_numpy.REGISTRY[spec.name]`` (for a variant of a spec with flags, the kernel class
    of that variant, ``symopt_numpy._adam__amsgrad.Adam``) when its module's header records this
    spec's digest."""
    package = generated_numpy()
    cls = getattr(package, registry, {}).get(spec.name) if package else None
    if cls is None:
        return None
    if getattr(spec, "family", None) is not None:
        try:
            kernel = importlib.import_module(f"{package.__name__}.{module_name(spec)}")
        except ImportError:  # a variant that was not generated
            return None
        cls = getattr(kernel, spec.class_name, None)
        if cls is None:
            return None
    digest = _header_digest(Path(sys.modules[cls.__module__].__file__))
    return cls if digest == spec.digest else None


def _header_digest(path: Path) -> str | None:
    """The spec digest a generated module's header comment records (it may wrap)."""
    header = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        header.append(line.lstrip("#").strip())
    match = _DIGEST.search(" ".join(header))
    return match.group(1) if match else None


def _render_minimizer(spec):
    """``symopt generate``'s module for ``spec`` (one not generated), imported from a temporary
    copy of the NumPy package it would be generated into (the module imports its runtime)."""
    import importlib
    import tempfile

    from symopt.backends.numpy import NumpyBackend

    package = f"symopt_rendered_{spec.name}"
    root = Path(tempfile.mkdtemp(prefix="symopt-plot-"))
    for f in NumpyBackend().files([spec]):
        if f.path.startswith("numpy/symopt_numpy/"):
            target = root / package / f.path.removeprefix("numpy/symopt_numpy/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(f.text, encoding="utf-8")
    sys.path.insert(0, str(root))
    try:
        return importlib.import_module(f"{package}.{spec.name}")
    finally:
        sys.path.remove(str(root))


def check_hyper(spec: Spec, hyper: Mapping[str, float]) -> None:
    """ValueError naming the first hyperparameter outside its domain (or unknown)."""
    domains = {h.name: h.domain for h in spec.hypers}
    for name, value in hyper.items():
        if name not in domains:
            raise ValueError(f"{spec.name} has no hyperparameter {name!r}; it has {_names(spec)}")
        domain = DOMAINS[domains[name]]
        if not domain.contains(float(value)):
            raise ValueError(f"{spec.name}.{name} must be in {domain.interval}, got {value!r}")


def _names(spec: Spec) -> str:
    return ", ".join(spec.hyper_names) or "none"


class Stepper:
    """Steps one spec on a list of float64 arrays; ``params`` are the current arrays.

    Look-ahead specs (Nesterov) run their look-ahead-free form, which every spec that reads
    grad(x) at another point must declare: the gradient is needed at the stored parameters only.
    """

    def __init__(self, spec: Spec, params: Sequence[np.ndarray], hyper: Mapping[str, float]):
        self.spec = spec
        self.hyper = {**spec.defaults, **{k: float(v) for k, v in hyper.items()}}
        check_hyper(spec, self.hyper)
        params = [np.array(p, dtype=np.float64) for p in params]
        cls = generated_class(spec)
        self.backend = "generated NumPy" if cls is not None else "reference"
        self._opt = (
            cls(params, **self.hyper) if cls else ReferenceStepper(spec, params, **self.hyper)
        )
        self.steps = 0

    @property
    def params(self) -> list[np.ndarray]:
        """The current parameter arrays (the generated classes update them in place)."""
        return list(self._opt.params)

    def step(self, grad_at: GradAt) -> None:
        """One step with the gradient ``grad_at`` gives at the current parameters."""
        grads = [np.array(g, dtype=np.float64) for g in grad_at(self.params)]
        with np.errstate(all="ignore"):
            self._opt.step(grads)
        self.steps += 1

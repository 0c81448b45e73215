"""What every picture shares: a matplotlib import that explains itself, colours, saving."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from symopt.spec import Spec

INSTALL_HINT = "symopt plot needs matplotlib: pip install 'symopt[plot]'"

#: The order of the legend: the article's, from plain SGD to the adaptive methods.
ORDER = (
    "sgd",
    "momentum",
    "nesterov",
    "adagrad",
    "rmsprop",
    "adam",
    "adamax",
    "nadam",
    "adabelief",
)

#: Line styles a picture cycles through after tab10's ten colours.
LINE_STYLES = ("-", "--", ":", "-.")
#: Colours per line style: tab10's.
PER_STYLE = 10

Progress = Callable[[str], None]
GENERATED = "generated NumPy"


class MissingMatplotlib(ImportError):
    """matplotlib is not installed; the message says how to install it."""


def stderr_progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def quiet(message: str) -> None:
    """A progress callback that says nothing."""


def require_matplotlib():
    """The matplotlib module, or :class:`MissingMatplotlib` with the install command."""
    try:
        import matplotlib
    except ImportError:
        raise MissingMatplotlib(INSTALL_HINT) from None
    return matplotlib


def new_figure(figsize: tuple[float, float], dpi: int):
    """A Figure on the Agg canvas: no pyplot, no display, no global state to leak."""
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_png(fig, path: str | Path) -> Path:
    """Write ``fig`` as a PNG of its own size and dpi, small and reproducible.

    The picture is reduced to a 256-colour palette (flat colours and lines lose nothing visible;
    the file shrinks four-fold) and carries no timestamp or version, so the same data gives the
    same bytes.
    """
    path = Path(path)  # its folder must exist: a mistyped --out creates no folders
    try:
        from PIL import Image
    except ImportError:  # matplotlib requires Pillow; this is only a safety net
        fig.savefig(path, format="png", dpi=fig.dpi, metadata={"Software": None})
        return path
    fig.canvas.draw()
    rgb = Image.fromarray(np.asarray(fig.canvas.buffer_rgba())).convert("RGB")
    palette = rgb.quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
    palette.save(path, format="png", optimize=True)
    return path


def colors(n: int) -> list:
    """``n`` distinguishable colours (tab10, then tab20)."""
    require_matplotlib()
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def line_styles(n: int, first: int = 0, style: int = 0) -> tuple[list, list[str]]:
    """Colours and line styles for ``n`` methods: tab10's ten distinct colours from colour
    ``first`` on, in line style ``LINE_STYLES[style]``, then in the next style for the next ten.
    A second group that starts at the next colour and the next unused style repeats no (colour,
    style) pair of the first, and no colour at all while both hold ten methods or fewer."""
    require_matplotlib()
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    styles = [LINE_STYLES[(style + i // PER_STYLE) % len(LINE_STYLES)] for i in range(n)]
    return [cmap((first + i) % PER_STYLE) for i in range(n)], styles


def ordered(specs: Sequence[Spec]) -> list[Spec]:
    """Built-ins in the article's order, then the others in the order given."""
    rank = {name: i for i, name in enumerate(ORDER)}
    return sorted(specs, key=lambda s: rank.get(s.name, len(rank)))


def hyper_label(spec: Spec, hyper: dict[str, float]) -> str:
    """``lr=0.1 rho=0.5``: the learning rate and whatever else differs from the spec's defaults."""
    shown = [k for k, v in hyper.items() if k == "lr" or spec.defaults.get(k) != v]
    return " ".join(f"{k}={hyper[k]:g}" for k in shown)


def legend_label(run, runs: Sequence) -> str:
    """``run.label``, marked ``[reference]`` when the picture mixes generated and reference runs
    (a spec of your own beside the built-ins); stderr always names every run's backend."""
    mixed = len({r.backend for r in runs}) > 1
    return f"{run.label} [{run.backend}]" if mixed and run.backend != GENERATED else run.label

"""Regenerate the pictures in docs/img/ that the README shows (python scripts/make_images.py).

Each image is what a ``symopt plot`` command writes with its defaults (the command is printed), so
a reader can reproduce any of them. ``--check`` writes nothing: it renders into a temporary folder
and exits 1 when a committed image shows something else. It compares decoded pixels, not bytes:
another Pillow compresses and reduces colours a little differently, another matplotlib patch
release may move an anti-aliased edge by a pixel, and neither makes an image stale; a moved path,
a changed label or a new legend entry does.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from symopt.landscapes import get_landscape  # noqa: E402
from symopt.plot.cli import choose_specs, first_order  # noqa: E402
from symopt.plot.common import stderr_progress  # noqa: E402
from symopt.plot.landscape import plot_landscape  # noqa: E402
from symopt.plot.train import plot_train  # noqa: E402
from symopt.resources import builtin_spec  # noqa: E402

IMAGES = ROOT / "docs" / "img"
LANDSCAPES = ("beale", "rosenbrock", "saddle", "valley")
#: A pixel differs when no pixel within SHIFT of it in the other image is within TOLERANCE (of
#: 255) in every channel; an image is stale when more than MAX_FRACTION of its pixels differ.
#: Measured on landscape-beale.png: another colour quantiser differs in 0.0007% of the pixels, a
#: learning rate changed by 1% (its path and its legend entry) in 0.007%.
SHIFT = 1
TOLERANCE = 64
MAX_FRACTION = 3e-5


def render(folder: Path) -> list[Path]:
    """Write every README image into ``folder``; return their paths."""
    specs = choose_specs([], [])
    paths = []
    for name in LANDSCAPES:
        print(f"$ symopt plot landscape --function {name}", file=sys.stderr)
        path, _ = plot_landscape(
            get_landscape(name), specs, folder / f"landscape-{name}.png", progress=stderr_progress
        )
        paths.append(path)
    print("$ symopt plot train", file=sys.stderr)
    path, _, _ = plot_train(
        first_order(specs, []),
        builtin_spec("sgd"),
        folder / "train-moons.png",
        progress=stderr_progress,
    )
    paths.append(path)
    return paths


def pixels(path: Path) -> np.ndarray:
    """The decoded RGB pixels (whatever palette or compression the file uses)."""
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.int16)


def differing(a: np.ndarray, b: np.ndarray) -> int:
    """How many pixels of ``a`` have no pixel of ``b`` within SHIFT that matches within
    TOLERANCE (only the pixels that differ in place are searched around: few, and fast)."""
    ys, xs = np.nonzero(np.abs(a - b).max(axis=2) > TOLERANCE)
    h, w, _ = b.shape
    left = np.ones(len(ys), dtype=bool)
    for dy in range(-SHIFT, SHIFT + 1):
        for dx in range(-SHIFT, SHIFT + 1):
            near = b[np.clip(ys + dy, 0, h - 1), np.clip(xs + dx, 0, w - 1)]
            left &= np.abs(a[ys, xs] - near).max(axis=1) > TOLERANCE
    return int(left.sum())


def difference(committed: Path, fresh: Path) -> str | None:
    """Why ``committed`` is stale beside ``fresh`` (a new rendering), or None if it is not."""
    if not committed.is_file():
        return "is missing"
    a, b = pixels(committed), pixels(fresh)
    if a.shape != b.shape:
        return f"is {a.shape[1]}x{a.shape[0]} px, the rendering {b.shape[1]}x{b.shape[0]}"
    share = max(differing(a, b), differing(b, a)) / (a.shape[0] * a.shape[1])
    return f"differs in {share:.3%} of its pixels" if share > MAX_FRACTION else None


def stale(fresh: Sequence[Path], folder: Path = IMAGES) -> list[str]:
    """One line per image in ``folder`` that is stale beside its fresh rendering."""
    found = [(p.name, difference(folder / p.name, p)) for p in fresh]
    return [f"docs/img/{name} {why}" for name, why in found if why is not None]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--check", action="store_true", help="compare with docs/img/, write nothing"
    )
    args = parser.parse_args()
    if not args.check:
        for path in render(IMAGES):
            print(f"wrote {path.relative_to(ROOT)} ({path.stat().st_size // 1024} KB)")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        lines = stale(render(Path(tmp)))
    for line in lines:
        print(f"{line}: run python scripts/make_images.py")
    return 1 if lines else 0


if __name__ == "__main__":
    sys.exit(main())

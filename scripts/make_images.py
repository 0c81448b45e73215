"""Regenerate the pictures in docs/img/ that the README shows (python scripts/make_images.py).

Each image is what a ``symopt plot`` command writes with its defaults (the command is printed), so
a reader can reproduce any of them. ``--check`` writes nothing: it renders into a temporary folder
and exits 1 when a committed image differs. Seeds are fixed and the PNGs carry no timestamp, so the
same matplotlib and Pillow give the same bytes; another version may shift anti-aliasing a little.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

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
        stale = [
            p.name
            for p in render(Path(tmp))
            if not (IMAGES / p.name).is_file() or (IMAGES / p.name).read_bytes() != p.read_bytes()
        ]
    for name in stale:
        print(f"docs/img/{name} differs: run python scripts/make_images.py")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())

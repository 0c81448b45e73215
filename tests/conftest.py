"""Shared test helpers: the repository root and the generated NumPy package on sys.path."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "generated" / "numpy"))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/handwritten.py

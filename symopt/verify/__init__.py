"""Verify a hand-written optimizer against a spec, and explain where and how it differs.

The implementation and the reference stepper run on the same gradient streams (random, sparse,
tiny, huge, sign-alternating, and a Rosenbrock gradient that depends on the parameters); parameters
and readable state are compared after every step. On a mismatch, every variant of the spec from
:mod:`symopt.variants` is run on the same streams, and the one that matches the implementation is
named: "matches adam with eps inside the square root to 2e-16".

The parts: :mod:`.streams` (the gradients), :mod:`.adapters` (implementations under test),
:mod:`.comparison` (runs and step-by-step comparison), :mod:`.diagnose` (naming the variant),
:mod:`.arguments` (hyperparameters from the command line, and the exact call of a class a spec's
``[api]`` matches) and :mod:`.run` (``verify``).
"""

from __future__ import annotations

from symopt.verify.adapters import load_target
from symopt.verify.arguments import (
    ApiCall,
    api_call,
    coerce,
    parse_assignments,
    split_hyper,
    uses_api,
)
from symopt.verify.run import MATCH, TOLERANCE, Report, verify

__all__ = [
    "MATCH",
    "TOLERANCE",
    "ApiCall",
    "Report",
    "api_call",
    "coerce",
    "load_target",
    "parse_assignments",
    "split_hyper",
    "uses_api",
    "verify",
]

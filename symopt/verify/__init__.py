"""Verify a hand-written optimizer against a spec, and explain where and how it differs.

The implementation and the reference stepper run on the same gradient streams (random, sparse,
tiny, huge, sign-alternating, and a Rosenbrock gradient that depends on the parameters); parameters
and readable state are compared after every step. On a mismatch, every variant of the spec from
:mod:`symopt.variants` is run on the same streams, and the one that matches the implementation is
named: "matches adam with eps inside the square root to 2e-16".

The parts: :mod:`.streams` (gradients, layouts, horizon), :mod:`.adapters` and
:mod:`.optax_adapter` (implementations under test), :mod:`.binding` (every hyperparameter to an
argument), :mod:`.tolerance` (how far rounding may move each quantity), :mod:`.comparison` (a case
in lockstep), :mod:`.diagnose` (naming the difference, or saying it is unexplained),
:mod:`.arguments` (command-line values, and the exact call of a class a spec's ``[api]``
matches) and :mod:`.run` (``verify``).
"""

from __future__ import annotations

from symopt.verify.adapters import ImplementationError
from symopt.verify.arguments import (
    ApiCall,
    api_call,
    coerce,
    parse_assignments,
    uses_api,
)
from symopt.verify.run import Report, verify
from symopt.verify.targets import load_target

__all__ = [
    "ApiCall",
    "ImplementationError",
    "Report",
    "api_call",
    "coerce",
    "load_target",
    "parse_assignments",
    "uses_api",
    "verify",
]

"""Verify a hand-written optimizer against a spec, and explain where and how it differs.

The implementation and the reference stepper run on the same gradient streams (seven kinds, two
parameter groups, tensors of 6 to 70,000 elements, and one long run), each given fresh copies;
parameters and every state matched by name, key or value are compared after every step against a
tolerance estimated from perturbed reference runs. On a difference, variants of the spec
(:mod:`symopt.variants`, :mod:`symopt.fitted_variants`: single rules, fitted constants, pairs) are
replayed on the implementation's trajectories, and one is named only when it explains the
difference: "matches adam with eps inside the square root"; otherwise "unexplained", with where.

The parts: :mod:`.streams` (gradients, layouts, horizon); :mod:`.targets`, :mod:`.adapters`
and :mod:`.optax_adapter` (implementations under test); :mod:`.state_map` (which state is
which); :mod:`.binding` (every hyperparameter to an argument); :mod:`.tolerance` (how far
rounding may move each quantity); :mod:`.comparison` (a case in lockstep); :mod:`.diagnose`
(naming the difference, or saying it is unexplained); :mod:`.arguments` (command-line values,
and the exact call of a class a spec's ``[api]`` matches); :mod:`.run` (``verify``).
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

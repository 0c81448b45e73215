"""Which PyTorch kernels with per-tensor reductions have fused kernels, and their passes.

An update whose only tensor-level constructs are whole-tensor reductions (norms, sums, means,
maxima) and state of one value per tensor runs as a few passes over memory
(:mod:`symopt.lowering.stages`, the C target's form), so it can be fused as the element-wise
updates are: LAMB, LARS, ASGD, NAdam (torch's). Row and column reductions, matrix products and
fixed-count iterations (Adafactor, Muon) cannot, and keep their tensor path.

A spec for some parameter shapes only (``applies_to``) has two fused programs: its update for
the parameters it applies to and its ``[otherwise]`` update for the others, each its own spec
with the states that update assigns.
"""

from __future__ import annotations

import dataclasses

from symopt.lowering.stages import Stages, split
from symopt.spec import Spec
from symopt.spec.tensor import (
    CONDITIONAL,
    FIRST_GRADIENT,
    MATRIX_ONLY,
    SCALAR_STATE,
    WHOLE_REDUCTION,
)

#: The constructs a staged fused kernel takes (parameter shapes are told apart in Python).
FUSABLE = frozenset({WHOLE_REDUCTION, SCALAR_STATE, CONDITIONAL, FIRST_GRADIENT, MATRIX_ONLY})


def staged(kernel: Spec) -> bool:
    """Whether a kernel that is not element-wise has a staged fused form."""
    return not kernel.elementwise and kernel.features <= FUSABLE


def parts(kernel: Spec) -> tuple[Spec, Spec | None]:
    """The kernel's update as a spec for every parameter it applies to, and its ``[otherwise]``
    update as another (None when it has none): each with the states it assigns only."""
    if kernel.applies_to == "any":
        return kernel, None
    main = _part(kernel, kernel.update, "update")
    other = _part(kernel, kernel.otherwise, "otherwise") if kernel.otherwise else None
    return main, other


def stage_parts(kernel: Spec) -> tuple[Stages, Stages | None]:
    """The passes of :func:`parts`, each output written by the last pass: no pass reads a value
    that an earlier one rounded to bfloat16 (the step rounds once, as the element-wise fused
    kernels do; LAMB's second pass reads g and recomputes m and v instead)."""
    main, other = parts(kernel)
    return split(main, written_last=True), (
        split(other, written_last=True) if other is not None else None
    )


def template_data(kernel: Spec) -> dict:
    """What the tensor path's module says about its fused kernel: ``fused`` (the kernel's name,
    the states of each update in the kernel's order, those of one value per tensor), or None
    and ``not_fused``, why there is none."""
    if not staged(kernel):
        missing = ", ".join(sorted(kernel.features - FUSABLE))
        return {"fused": None, "not_fused": f"its update needs {missing}"}
    main, other = stage_parts(kernel)
    return {
        "fused": {
            "kernel": kernel.name,
            "states": list(main.arrays[2:]),
            "other_states": list(other.arrays[2:]) if other is not None else None,
            "scalar": [s.name for s in kernel.states if s.shape == "scalar"],
        },
        "not_fused": "",
    }


def _part(kernel: Spec, update: tuple, which: str) -> Spec:
    """One update of ``kernel`` as a spec of its own; its text marks ``which`` part it is, so
    that derivations cached by spec text (:func:`symopt.lowering.stages.split`) tell the two
    apart."""
    assigned = {a.target for a in update}
    states = tuple(s for s in kernel.states if s.name in assigned)
    text = f"{kernel.text}\n# {which}" if kernel.text else ""
    return dataclasses.replace(
        kernel, update=update, otherwise=(), applies_to="any", states=states, text=text
    )

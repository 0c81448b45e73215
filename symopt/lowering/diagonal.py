"""Element-wise second-order methods lowered like first-order ones.

With a diagonal curvature ``H = diag(c)`` the damped model separates into one-dimensional models
``g d + (c + lam) d^2 / 2``, so the per-coordinate step is the ``n = 1`` derivation with
``h_11 = c``. The update ``w = w + lr d`` is then an element-wise update over the arrays ``w``,
``g`` and the curvature ``c``, and it goes through the same kernel as Adam (:func:`lower_diagonal`).
K-FAC reuses :func:`entry_step` with ``c`` the products of its factors' eigenvalues.
"""

from __future__ import annotations

import dataclasses

import sympy

from symopt.lowering.derive import derive
from symopt.lowering.kernel import Kernel, lower
from symopt.spec import Assignment, ModelSpec, Spec, symbol_table
from symopt.spec.common import G as G_NAME
from symopt.spec.common import W as W_NAME

#: The name of the curvature array (a diagonal, or eigenvalue products) in generated code.
CURVATURE = "c"
#: The symbols of the per-coordinate step: gradient, curvature, parameter and step size.
G, C, W, LR = (sympy.Symbol(n, real=True) for n in (G_NAME, CURVATURE, W_NAME, "lr"))


def entry_step(spec: ModelSpec) -> sympy.Expr:
    """The step of the one-dimensional model ``g d + (c + lam) d^2 / 2`` over ``g`` and ``c``."""
    d = derive(spec, 1)
    s = d.symbols
    return d.step[0].xreplace({s["g"][0]: G, s["H"][0, 0]: C})


def entry_update(spec: ModelSpec) -> sympy.Expr:
    """``w + lr d``: the damped rule's update of one coordinate."""
    return W + LR * entry_step(spec)


def elementwise_spec(spec: ModelSpec) -> Spec:
    """The diagonal method as an element-wise spec over ``w``, ``g`` and the read-only ``c``."""
    update = entry_update(spec)
    spec_ = Spec(
        name=spec.name,
        class_name=spec.class_name,
        title=spec.title,
        summary=spec.summary,
        reference=spec.reference,
        notes=spec.notes,
        hypers=spec.hypers,
        states=(),
        update=(),
        source=spec.source,
        text=spec.text,
    )
    # the same symbols (with their domains' assumptions) as the rest of the element-wise pipeline
    table = symbol_table(spec_)
    update = update.xreplace({s: table.get(s.name, s) for s in update.free_symbols})
    line = Assignment(W_NAME, update, f"w = {sympy.sstr(update)}")
    return dataclasses.replace(spec_, update=(line,))


def lower_diagonal(spec: ModelSpec) -> Kernel:
    """The kernel of a diagonal second-order spec: arrays ``w, g, c``; ``w`` is updated."""
    if spec.structure != "diagonal":
        raise ValueError(f"{spec.name}: only diagonal curvature is element-wise")
    return lower(elementwise_spec(spec), inputs=(CURVATURE,))

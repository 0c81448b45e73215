"""The fused form of a PyTorch element-wise kernel: the foreach path's instructions as one
program over a single element, for the fused CPU (C) and GPU (Triton) kernels.

The foreach path runs a three-address program over whole tensors (one pass over memory per
instruction, values held in scratch tensors). The fused kernels run the *same instructions* on
each element in registers: every buffer becomes a local value (SSA: each instruction defines a
new one), the arrays are loaded once and the outputs stored once. Because they are the same
instructions, each printed with the arithmetic PyTorch's CPU kernels use (``lerp``, ``add`` with
``alpha`` and ``addcmul`` are one fused multiply-add there; see
:mod:`symopt.backends.torch.fused_c`), a fused float64 step gives the foreach step's values.

Scalar operands (printed Python expressions over the step's scalars) are evaluated by the
generated module in Python, as the foreach path evaluates them, and passed to the kernel as
``_s0, _s1, ...``: both paths see the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

from symopt.backends.torch.conditions import BOOLEAN
from symopt.backends.torch.elementwise import torch_program
from symopt.lowering.kernel import lower
from symopt.lowering.tac import Operand
from symopt.spec import Spec

#: Instructions whose value is a truth value (a C ``int``, a Triton ``tl.int1``).
TRUTH = BOOLEAN
#: Exponents (as printed) that torch's pow(tensor, scalar) computes without pow(): 2 and 3 by
#: multiplying, 0.5 and -0.5 by a square root, -1 and -2 by a reciprocal.
SPECIAL_POWERS = ("2", "3", "0.5", "-0.5", "-1", "-2")
#: Comparison instruction -> its infix operator (C and Python spell them alike).
COMPARISON = {
    "greater": ">",
    "greater_equal": ">=",
    "less": "<",
    "less_equal": "<=",
    "equal": "==",
    "not_equal": "!=",
}


@dataclass(frozen=True)
class Statement:
    """``name = op(args)`` on one element; value args name earlier locals, scalar args
    ``_sK``."""

    name: str
    op: str
    args: tuple[Operand, ...]
    boolean: bool
    comments: tuple[str, ...]


@dataclass(frozen=True)
class FusedProgram:
    """One element's update: load ``loads`` (array -> local), run ``statements``, store
    ``stores`` (array -> the local holding its new value)."""

    arrays: tuple[str, ...]
    loads: tuple[tuple[str, str], ...]
    statements: tuple[Statement, ...]
    stores: tuple[tuple[str, str], ...]
    #: The Python expressions of the scalar operands, in the order of ``_s0, _s1, ...``.
    scalars: tuple[str, ...]

    @property
    def scalar_names(self) -> list[str]:
        return [f"_s{k}" for k in range(len(self.scalars))]


def exponent(st: Statement, scalars: tuple[str, ...]) -> str | None:
    """The printed exponent of a power instruction, or None where it is an array."""
    kind, name = st.args[1]
    return scalars[int(name[2:])] if kind == "scalar" else None


def truth(operand: Operand) -> str:
    """An operand as a truth value: a condition local as it is, a scalar tested against 0."""
    kind, name = operand
    return name if kind == "value" else f"({name} != 0)"


def bitwise(program: FusedProgram) -> bool:
    """Whether the fused kernels give torch's values bit for bit (torch's sqrt aside): not
    where they call exp, log or pow, which torch computes with its own vector library."""
    for st in program.statements:
        if st.op in ("exp", "log"):
            return False
        if st.op == "power" and exponent(st, program.scalars) not in SPECIAL_POWERS:
            return False
    return True


def local(array_or_buffer: str, version: int) -> str:
    """The local holding a buffer's ``version``-th value: ``m_0`` (loaded), ``m_1``, ...; a
    scratch buffer's ``_b0_1``. Spec names never start with ``_`` and never end in ``_<digit>``
    here (the version is appended to the whole name), so no local is another's."""
    return f"{array_or_buffer}_{version}"


def fused_program(
    arrays: tuple[str, ...],
    instructions: list[tuple[str, str, tuple[Operand, ...], tuple[str, ...]]],
) -> FusedProgram:
    """The per-element program of the foreach path's ``instructions`` (before masks are
    assigned) over ``arrays`` (the kernel's, in order)."""
    version: dict[str, int] = {}
    current: dict[str, str] = {}
    read: set[str] = set()
    for _, _, args, _ in instructions:
        read |= {name for kind, name in args if kind == "value" and name in arrays}
    loads = []
    for a in arrays:
        if a in read:
            version[a] = 0
            current[a] = local(a, 0)
            loads.append((a, current[a]))
    scalars: list[str] = []
    statements = []
    truth: set[str] = set()  # the locals holding truth values
    for op, dst, args, comments in instructions:
        operands = []
        for kind, name in args:
            if kind == "value":
                operands.append(("value", current[name]))
            else:
                if name not in scalars:
                    scalars.append(name)
                operands.append(("scalar", f"_s{scalars.index(name)}"))
        version[dst] = version.get(dst, 0) + 1
        current[dst] = local(dst, version[dst])
        boolean = op in TRUTH or (op == "copy" and operands[0][1] in truth)
        if boolean:
            truth.add(current[dst])
        statements.append(Statement(current[dst], op, tuple(operands), boolean, tuple(comments)))
    stores = tuple((a, current[a]) for a in arrays if a in current and current[a] != local(a, 0))
    return FusedProgram(
        arrays=tuple(arrays),
        loads=tuple(loads),
        statements=tuple(statements),
        stores=stores,
        scalars=tuple(scalars),
    )


def fused_of(spec: Spec) -> FusedProgram:
    """The per-element program of an element-wise spec's foreach path."""
    kernel, program = torch_program(lower(spec))
    return fused_program(tuple(kernel.arrays), program.instructions)

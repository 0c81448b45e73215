"""Conditionals in the PyTorch element-wise paths: comparisons, logical operations and ``where``.

The three-address code (:mod:`symopt.lowering.tac`) treats a condition as a value like any
other, in a buffer like the parameter. PyTorch needs a boolean tensor for ``torch.where`` and
``masked_fill_`` (a float 0/1 tensor is refused, and converting it would allocate on every
step), so every condition value lives in a boolean scratch tensor (a *mask*) instead:
:func:`assign_masks` gives each condition its own mask, from a pool reused by liveness, and
rewrites the instructions that read it. Masks are kept between steps like the float scratch.

A condition that is a prelude scalar (a Python bool: ``t == t_start``, RAdam's ``rho_t > 5``)
selects its branch with a Python ``if``; the branch not taken is never computed.
"""

from __future__ import annotations

from symopt.lowering.tac import COMPARE, Operand

#: Comparison op -> torch function with out= (and the one that computes it with the operands
#: swapped, for a scalar first operand).
COMPARISON = {
    "greater": ("gt", "lt"),
    "greater_equal": ("ge", "le"),
    "less": ("lt", "gt"),
    "less_equal": ("le", "ge"),
    "equal": ("eq", "eq"),
    "not_equal": ("ne", "ne"),
}
assert set(COMPARISON) == set(COMPARE.values())
LOGICAL = {"logical_and", "logical_or", "logical_not"}
#: Ops whose result is a condition (a mask).
BOOLEAN = set(COMPARISON) | LOGICAL
#: Every op this module prints.
OPS = BOOLEAN | {"where"}
Instruction = tuple[str, str, tuple[Operand, ...], tuple[str, ...]]


def assign_masks(instructions: list[Instruction]) -> tuple[list[Instruction], list[str]]:
    """The instructions with every condition value in a boolean mask ``_m0, _m1, ...`` (its
    destination and every read of it renamed), and the masks, in order.

    A condition computed into buffer B lives until B is next written; a mask returns to the
    pool after the last instruction that reads it there.
    """
    out: list[Instruction] = []
    masks: list[str] = []
    free: list[str] = []
    holding: dict[str, str] = {}  # buffer -> the mask holding its (boolean) value
    release: dict[int, list[str]] = {}
    for i, (op, dst, args, comments) in enumerate(instructions):
        args = tuple((k, holding.get(a, a)) if k == "value" else (k, a) for k, a in args)
        for mask in release.pop(i, []):
            free.append(mask)
        reads_mask = op == "copy" and args[0][1] in masks
        holding.pop(dst, None)
        if op in BOOLEAN or reads_mask:
            if free:
                mask = free.pop(0)
            else:
                mask = f"_m{len(masks)}"
                masks.append(mask)
            holding[dst] = mask
            release.setdefault(_last_read(instructions, i, dst), []).append(mask)
            dst = mask
        out.append((op, dst, args, comments))
    return out, masks


def _last_read(instructions: list[Instruction], i: int, buffer: str) -> int:
    """The last instruction after ``i`` that reads ``buffer`` before it is written again (it
    may read and write it: an element-wise op may write the mask it reads); ``i + 1`` when none
    does."""
    last = i + 1
    for j in range(i + 1, len(instructions)):
        _, dst, args, _ = instructions[j]
        if ("value", buffer) in args:
            last = j
        if dst == buffer:
            break
    return last


def _fill_or_copy(dst: str, operand: Operand) -> str:
    kind, name = operand
    return f"{dst}.fill_({name})" if kind == "scalar" else f"{dst}.copy_({name})"


def single(op: str, dst: str, args: tuple[Operand, ...]) -> list[str]:
    """One conditional instruction on single tensors (masks are boolean tensors, scalars are
    Python numbers or bools)."""
    kinds = [k for k, _ in args]
    names = [a for _, a in args]
    if op in COMPARISON:
        fn, swapped = COMPARISON[op]
        a, b = names
        if kinds[0] == "scalar":
            fn, a, b = swapped, b, a
        return [f"torch.{fn}({a}, {b}, out={dst})"]
    if op == "logical_not":
        return [f"torch.logical_not({names[0]}, out={dst})"]
    if op in LOGICAL:
        if kinds == ["value", "value"]:
            return [f"torch.{op}({names[0]}, {names[1]}, out={dst})"]
        # a mask and a Python bool: the bool decides
        mask, flag = names
        copy = [f"{dst}.copy_({mask})"] if dst != mask else ["pass"]
        if op == "logical_and":
            return _choose(flag, copy, [f"{dst}.fill_(False)"])
        return _choose(flag, [f"{dst}.fill_(True)"], copy)
    return _where(dst, args)


def _where(dst: str, args: tuple[Operand, ...]) -> list[str]:
    (ck, c), a, b = args
    if ck == "scalar":  # a Python bool: only the branch taken runs
        then = [_fill_or_copy(dst, a)] if a != ("value", dst) else ["pass"]
        other = [_fill_or_copy(dst, b)] if b != ("value", dst) else ["pass"]
        return _choose(c, then, other)
    if a[0] == "value" and b[0] == "value":
        return [f"torch.where({c}, {a[1]}, {b[1]}, out={dst})"]
    if a[0] == "scalar":  # b where c is false, then a where it is true
        first = [] if b == ("value", dst) else [_fill_or_copy(dst, b)]
        return [*first, f"{dst}.masked_fill_({c}, {a[1]})"]
    # torch.where takes tensors only with out=: the scalar as a 0-d tensor (8 bytes at most)
    other = f"torch.full((), {b[1]}, dtype={dst}.dtype, device={dst}.device)"
    return [f"torch.where({c}, {a[1]}, {other}, out={dst})"]


def _choose(flag: str, then: list[str], other: list[str]) -> list[str]:
    """``if flag: then else: other``, without a branch that does nothing."""
    if then == ["pass"]:
        negated = f"not {flag}" if flag.isidentifier() else f"not ({flag})"
        return [f"if {negated}:", *_indent(other)]
    if other == ["pass"]:
        return [f"if {flag}:", *_indent(then)]
    return [f"if {flag}:", *_indent(then), "else:", *_indent(other)]


def _indent(lines: list[str]) -> list[str]:
    return [f"    {line}" for line in lines]


def foreach(op: str, dst: str, args: tuple[Operand, ...]) -> list[str]:
    """One conditional instruction on lists of tensors: a Python condition chooses between
    whole-list copies; everything else runs the single-tensor form in a loop."""
    if op == "where" and args[0][0] == "scalar":
        (_, c), a, b = args
        return _choose(c, _list_fill(dst, a), _list_fill(dst, b))
    if op in LOGICAL and op != "logical_not" and args[1][0] == "scalar":
        mask, flag = args[0][1], args[1][1]
        copy = ["pass"] if mask == dst else [f"torch._foreach_copy_({dst}, {mask})"]
        constant = _list_fill(dst, ("scalar", str(op == "logical_or")))
        if op == "logical_and":
            return _choose(flag, copy, constant)
        return _choose(flag, constant, copy)
    return loop(dst, args, single(op, _loop_var(dst), _loop_args(args)))


def _list_fill(dst: str, operand: Operand) -> list[str]:
    kind, name = operand
    if kind == "value":
        return ["pass"] if name == dst else [f"torch._foreach_copy_({dst}, {name})"]
    return [f"for {_loop_var(dst)} in {dst}:", f"    {_loop_var(dst)}.fill_({name})"]


def _loop_var(name: str) -> str:
    return f"_{name.lstrip('_')}_i"


def _loop_args(args: tuple[Operand, ...]) -> tuple[Operand, ...]:
    return tuple((k, _loop_var(n)) if k == "value" else (k, n) for k, n in args)


def loop(dst: str, args: tuple[Operand, ...], body: list[str]) -> list[str]:
    """``body`` (over the loop variables ``_NAME_i``) for each tensor of the lists it uses."""
    lists = list(dict.fromkeys([dst] + [n for k, n in args if k == "value"]))
    targets = ", ".join(_loop_var(n) for n in lists)
    if len(lists) == 1:
        header = f"for {targets} in {dst}:"
    else:
        header = f"for {targets} in zip({', '.join(lists)}, strict=True):"
    return [header, *_indent(body)]

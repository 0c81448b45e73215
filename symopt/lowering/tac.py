"""Three-address code for element-wise kernels, with buffer allocation by liveness.

Frameworks without a fusing compiler (NumPy ufuncs, ``torch._foreach_*``) run an element-wise body
as a sequence of whole-array operations. This module turns a
:class:`~symopt.lowering.kernel.Kernel` body into such a sequence where every operation writes
into an existing buffer (``out=``): a value goes into the buffer of the output array it is
computed for when that array's old content is dead, else into a dying operand's scratch buffer,
else into a free scratch buffer. The gradient is read-only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import sympy

from symopt.lowering.kernel import Kernel

Operand = tuple[str, str]  # ("value", id) or ("scalar", printed text)
#: Comparisons, by the ufunc that computes them (a condition is a value like any other: 0 or 1).
COMPARE = {
    sympy.StrictGreaterThan: "greater",
    sympy.GreaterThan: "greater_equal",
    sympy.StrictLessThan: "less",
    sympy.LessThan: "less_equal",
    sympy.Equality: "equal",
    sympy.Unequality: "not_equal",
}


@dataclass
class Instr:
    op: str  # a ufunc name (add, multiply, sqrt, maximum, ...), or copy / fill
    dst: str
    args: tuple[Operand, ...]
    hint: str | None = None  # the output array this value is being computed for
    comments: tuple[str, ...] = ()


@dataclass
class Program:
    """Allocated code: each instruction's args and dst are buffer names (or scalar text)."""

    instructions: list[tuple[str, str, tuple[Operand, ...], tuple[str, ...]]]
    scratch: list[str]


class _Compiler:
    def __init__(self, kernel: Kernel, print_scalar: Callable[[sympy.Expr], str]):
        self.kernel = kernel
        self.print_scalar = print_scalar
        names = set(kernel.hypers) | {"t"} | {s.name for s in kernel.scalars}
        self.scalar_names = names
        self.values: dict[sympy.Symbol, Operand] = {
            sympy.Symbol(a, real=True): ("value", a) for a in kernel.arrays
        }
        self.instrs: list[Instr] = []
        self.counter = 0
        self.hint: str | None = None
        self.comments: tuple[str, ...] = ()

    def is_scalar(self, e: sympy.Expr) -> bool:
        return all(s.name in self.scalar_names for s in e.free_symbols)

    def new(self, op: str, *args: Operand) -> Operand:
        dst = f"%{self.counter}"
        self.counter += 1
        self.instrs.append(Instr(op, dst, tuple(args), self.hint, self.comments))
        self.comments = ()
        return ("value", dst)

    def emit(self, e: sympy.Expr) -> Operand:
        if self.is_scalar(e):
            return ("scalar", self.print_scalar(e))
        if e.is_Symbol:
            return self.values[e]
        if isinstance(e, sympy.Add):
            return self._add(e)
        if isinstance(e, sympy.Mul):
            return self._mul(e)
        if isinstance(e, sympy.Pow):
            return self._pow(e)
        unary = {sympy.Abs: "absolute", sympy.exp: "exp", sympy.log: "log", sympy.sign: "sign"}
        for cls, op in unary.items():
            if isinstance(e, cls):
                return self.new(op, self.emit(e.args[0]))
        if isinstance(e, sympy.Piecewise):
            *branches, (otherwise, last) = e.args
            if last is not sympy.true:
                raise TypeError(f"a Piecewise without a default branch: {e}")
            acc = self.emit(otherwise)
            for expr, cond in reversed(branches):
                acc = self.new("where", self.emit(cond), self.emit(expr), acc)
            return acc
        if type(e) in COMPARE:
            return self.new(COMPARE[type(e)], self.emit(e.lhs), self.emit(e.rhs))
        if isinstance(e, (sympy.And, sympy.Or)):
            op = "logical_and" if isinstance(e, sympy.And) else "logical_or"
            args = sorted(e.args, key=self.is_scalar)  # arrays first
            acc = self.emit(args[0])
            for a in args[1:]:
                acc = self.new(op, acc, self.emit(a))
            return acc
        if isinstance(e, sympy.Not):
            return self.new("logical_not", self.emit(e.args[0]))
        if isinstance(e, (sympy.Max, sympy.Min)):
            op = "maximum" if isinstance(e, sympy.Max) else "minimum"
            args = sorted(e.args, key=self.is_scalar)  # arrays first
            acc = self.emit(args[0])
            for a in args[1:]:
                acc = self.new(op, acc, self.emit(a))
            return acc
        raise TypeError(f"cannot generate element-wise code for {type(e).__name__}: {e}")

    def _add(self, e: sympy.Add) -> Operand:
        scalar = [a for a in e.args if self.is_scalar(a)]
        terms = [a for a in e.args if not self.is_scalar(a)]
        neg = [a.could_extract_minus_sign() for a in terms]
        order = sorted(range(len(terms)), key=lambda i: neg[i])  # a positive term first
        first = terms[order[0]]
        acc = self.new("negative", self.emit(-first)) if neg[order[0]] else self.emit(first)
        for i in order[1:]:
            if neg[i]:
                acc = self.new("subtract", acc, self.emit(-terms[i]))
            else:
                acc = self.new("add", acc, self.emit(terms[i]))
        if scalar:
            acc = self.new("add", acc, self.emit(sympy.Add(*scalar)))
        return acc

    def _mul(self, e: sympy.Mul) -> Operand:
        coeff, factors = e.as_coeff_mul()
        if coeff == -1 and len(factors) >= 1 and not self.is_scalar(sympy.Mul(*factors)):
            return self.new("negative", self.emit(sympy.Mul(*factors)))
        factors = list(sympy.Mul.make_args(e))
        scalar = [f for f in factors if self.is_scalar(f)]
        dens = [
            f.args[0] ** -f.args[1]
            for f in factors
            if isinstance(f, sympy.Pow) and f.args[1].is_negative and not self.is_scalar(f)
        ]
        nums = [
            f
            for f in factors
            if not self.is_scalar(f) and not (isinstance(f, sympy.Pow) and f.args[1].is_negative)
        ]
        if nums:
            acc = self.emit(nums[0])
            for f in nums[1:]:
                acc = self.new("multiply", acc, self.emit(f))
            if scalar:
                acc = self.new("multiply", acc, self.emit(sympy.Mul(*scalar)))
        else:
            acc = (
                self.emit(sympy.Mul(*scalar))
                if scalar
                else ("scalar", self.print_scalar(sympy.S.One))
            )
            acc = self.new("divide", acc, self.emit(dens.pop(0)))
        for d in dens:
            acc = self.new("divide", acc, self.emit(d))
        return acc

    def _pow(self, e: sympy.Pow) -> Operand:
        base, ex = e.args
        if ex == 2:
            return self.new("square", self.emit(base))
        if ex == sympy.S.Half:
            return self.new("sqrt", self.emit(base))
        if ex.is_negative:
            inner = self.emit(base**-ex)
            return self.new("divide", ("scalar", self.print_scalar(sympy.S.One)), inner)
        return self.new("power", self.emit(base), self.emit(ex))

    def readable(self, expr: sympy.Expr) -> str:
        """An expression with the prelude scalars written out, for comments."""
        return sympy.sstr(expr.xreplace(dict(self.kernel.prelude)))

    def compile(self) -> list[Instr]:
        for st in self.kernel.body:
            self.hint = st.array
            self.comments = st.equations or (f"shared: {st.target} = {self.readable(st.expr)}",)
            before = len(self.instrs)
            result = self.emit(st.expr)
            if result[0] == "scalar":
                result = self.new("fill", result)
            elif len(self.instrs) == before:  # a bare reference: copy so the SSA value is distinct
                result = self.new("copy", result)
            self.values[st.target] = result
        return self.instrs


def compile_kernel(
    kernel: Kernel,
    print_scalar: Callable[[sympy.Expr], str],
    compiler_class: type[_Compiler] = _Compiler,
) -> Program:
    """Compile and allocate: every dst is a buffer, outputs end in their own arrays.

    ``compiler_class`` lets a target emit its own (e.g. fused) operations: a subclass of
    ``_Compiler`` whose instructions read their value operands and write one new value.
    """
    compiler = compiler_class(kernel, print_scalar)
    instrs = compiler.compile()
    # The value id holding each output array's final SSA value.
    finals = {compiler.values[kernel.ssa_name(out)][1]: out for out in kernel.outputs}

    end = len(instrs)
    last_use: dict[str, int] = {}
    for i, ins in enumerate(instrs):
        for kind, name in ins.args:
            if kind == "value":
                last_use[name] = i
    for v in finals:
        last_use[v] = end
    for a in kernel.arrays:
        last_use.setdefault(a, -1)

    where: dict[str, str] = {a: a for a in kernel.arrays}  # value -> buffer
    occupant: dict[str, str | None] = {a: a for a in kernel.arrays}
    free: list[str] = []
    scratch: list[str] = []
    out: list[tuple[str, str, tuple[Operand, ...], tuple[str, ...]]] = []

    def is_free(buf: str, i: int) -> bool:
        occ = occupant.get(buf)
        return occ is None or last_use.get(occ, -1) <= i

    for i, ins in enumerate(instrs):
        dying = [n for k, n in ins.args if k == "value" and last_use.get(n) == i]
        target = finals.get(ins.dst) or ins.hint
        choice = None
        if target is not None and target in kernel.outputs and is_free(target, i):
            choice = target
        if choice is None:
            for n in dying:
                if where[n] in scratch:
                    choice = where[n]
                    break
        if choice is None and free:
            choice = free.pop(0)
        if choice is None:
            choice = f"_b{len(scratch)}"
            scratch.append(choice)
        for n in dying:
            buf = where[n]
            if occupant.get(buf) == n and buf != choice:
                occupant[buf] = None
                if buf in scratch and buf not in free:
                    free.append(buf)
        if choice in free:
            free.remove(choice)
        where[ins.dst] = choice
        occupant[choice] = ins.dst
        args = tuple((k, where[n]) if k == "value" else (k, n) for k, n in ins.args)
        out.append((ins.op, choice, args, ins.comments))
    for value, array in finals.items():
        if where[value] != array:
            out.append(("copy", array, (("value", where[value]),), (f"{array} = its new value",)))
    return Program(out, scratch)

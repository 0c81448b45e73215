"""PyTorch target: one ``torch.optim.Optimizer`` subclass per spec, foreach and single-tensor paths.

Both paths run the same three-address program (:mod:`symopt.lowering.tac`), compiled with PyTorch's
fused element-wise operations (``lerp``, ``addcmul``, ``addcdiv``, ``add`` with ``alpha``) so that
moving averages and the parameter update run in place, in few passes over memory. The foreach path
applies an instruction to lists of tensors (grouped by device, dtype and step count) with an
in-place ``torch._foreach_*`` op where its destination holds its first operand, and with the
single-tensor ``out=`` form in a loop where it writes a scratch buffer; the single-tensor path
applies it to one tensor at a time. Both run the same operation on each tensor, so their results
are bit-identical. Scratch buffers are kept by the optimizer between steps: a step allocates
nothing.
"""

from __future__ import annotations

import dataclasses

import sympy

from symopt import __version__
from symopt.backends.base import hyper_rows
from symopt.backends.numpy.elementwise import ScalarPrinter
from symopt.backends.torch import conditions
from symopt.lowering.kernel import Kernel
from symopt.lowering.tac import Operand, Program, _Compiler, compile_kernel
from symopt.spec import Spec

PACKAGE = "symopt_torch"
#: TAC op -> (torch function with out=, torch._foreach_ in-place suffix)
UNARY = {
    "negative": ("neg", "neg"),
    "sqrt": ("sqrt", "sqrt"),
    "absolute": ("abs", "abs"),
    "exp": ("exp", "exp"),
    "log": ("log", "log"),
    "sign": ("sign", "sign"),
}
BINARY = {
    "add": ("add", "add"),
    "subtract": ("sub", "sub"),
    "multiply": ("mul", "mul"),
    "divide": ("div", "div"),
    "maximum": ("maximum", "maximum"),
    "minimum": ("minimum", "minimum"),
    "power": ("pow", "pow"),
}
COMMUTATIVE = {"add", "multiply", "maximum", "minimum"}


class _FusingCompiler(_Compiler):
    """Three-address code with PyTorch's fused element-wise operations.

    A sum is accumulated in place into one buffer, term by term, with the operation that fits
    each term (``c`` a scalar, ``x`` the accumulator, ``y, z`` arrays):

    * ``a*x + b*y`` with ``a + b = 1`` proven by SymPy (over the prelude's definitions), where
      ``x`` is the old value of the array being computed and ``y`` an array: ``lerp(x, y, b)``,
      one pass;
    * ``x + c*y*z`` (and ``x + c*y**2``): ``addcmul``; ``x + c*y/z``: ``addcdiv``;
    * ``x + c*y``: ``axpy`` (``add`` with ``alpha=c``).

    The first term is the array's own old value when the sum has it (scaled in place, or, with
    an array term of coefficient 1, ``y + c*x`` written over ``x`` in one pass), so moving
    averages and parameter updates run in place without a temporary. Every instruction still
    reads value operands and writes one new value, so :func:`~symopt.lowering.tac.compile_kernel`
    allocates buffers for them as for any other operation.
    """

    def __init__(self, kernel: Kernel, print_scalar):
        super().__init__(kernel, print_scalar)
        self.definitions = dict(kernel.prelude)

    def scalar(self, e: sympy.Expr) -> Operand:
        return ("scalar", self.print_scalar(e))

    def own_old_value(self) -> sympy.Symbol | None:
        """The symbol of the old value of the array this statement computes, if it has one."""
        if self.hint is None:
            return None
        old = sympy.Symbol(self.hint, real=True)
        return old if self.values.get(old) == ("value", self.hint) else None

    def sums_to_one(self, a: sympy.Expr, b: sympy.Expr) -> bool:
        total = (a + b - 1).xreplace(self.definitions)
        return sympy.simplify(sympy.expand(total)) == 0

    def _add(self, e: sympy.Add) -> Operand:
        scalar = sympy.Add(*[a for a in e.args if self.is_scalar(a)])
        terms = [self.split(a) for a in e.args if not self.is_scalar(a)]
        old = self.own_old_value()
        own = next((i for i, (_, rest) in enumerate(terms) if rest == old), None)
        if own is not None and len(terms) == 2 and scalar == 0:
            (a, _), (b, y) = terms[own], terms[1 - own]
            if y.is_Symbol and self.sums_to_one(a, b):
                return self.new("lerp", self.emit(old), self.emit(y), self.scalar(b))
        if own is not None:
            c, rest = terms.pop(own)
            unit = next((i for i, (k, y) in enumerate(terms) if k == 1 and y.is_Symbol), None)
            if c != 1 and unit is not None:
                # y + c*x written over x: one pass, where scaling x and then adding y take two
                y = self.emit(terms.pop(unit)[1])
                acc = self.new("axpy", y, self.emit(rest), self.scalar(c))
            else:
                acc = self.emit(rest)
                if c == -1:
                    acc = self.new("negative", acc)
                elif c != 1:
                    acc = self.new("multiply", acc, self.scalar(c))
        else:
            c, rest = terms.pop(0)
            acc = self.emit(c * rest)
        for c, rest in terms:
            acc = self.accumulate(acc, c, rest)
        if scalar != 0:
            acc = self.new("add", acc, self.emit(scalar))
        return acc

    def split(self, term: sympy.Expr) -> tuple[sympy.Expr, sympy.Expr]:
        """A term as (scalar coefficient, array part)."""
        factors = sympy.Mul.make_args(term)
        coeff = sympy.Mul(*[f for f in factors if self.is_scalar(f)])
        return coeff, sympy.Mul(*[f for f in factors if not self.is_scalar(f)])

    def accumulate(self, acc: Operand, c: sympy.Expr, rest: sympy.Expr) -> Operand:
        """acc + c*rest, with the fused operation that fits rest."""
        factors = sympy.Mul.make_args(rest)
        dens = [f.base**-f.exp for f in factors if isinstance(f, sympy.Pow) and f.exp.is_negative]
        nums = [f for f in factors if not (isinstance(f, sympy.Pow) and f.exp.is_negative)]
        if dens and nums:
            y, z = self.emit(sympy.Mul(*nums)), self.emit(sympy.Mul(*dens))
            return self.new("addcdiv", acc, y, z, self.scalar(c))
        if not dens and len(nums) == 2:
            y, z = self.emit(nums[0]), self.emit(nums[1])
            return self.new("addcmul", acc, y, z, self.scalar(c))
        if not dens and len(nums) == 1 and isinstance(nums[0], sympy.Pow) and nums[0].exp == 2:
            y = self.emit(nums[0].base)
            return self.new("addcmul", acc, y, y, self.scalar(c))
        return self.new("axpy", acc, self.emit(rest), self.scalar(c))


def inline_scaled_temporaries(kernel: Kernel) -> Kernel:
    """Substitute shared temporaries that are a scalar times one array (``_t0 = -lr*g``) into
    the statements that use them: the fused operations scale their operand for free, so the
    temporary would only cost a pass and a buffer."""
    arrays = {*kernel.arrays, *(st.target.name for st in kernel.body if st.array)}
    scalars = {*kernel.hypers, "t", *(s.name for s in kernel.scalars)}
    inline: dict[sympy.Symbol, sympy.Expr] = {}
    body = []
    for st in kernel.body:
        expr = st.expr.xreplace(inline)
        factors = sympy.Mul.make_args(expr)
        scaled = [f for f in factors if not {s.name for s in f.free_symbols} <= scalars]
        one_array = len(scaled) == 1 and scaled[0].is_Symbol and scaled[0].name in arrays
        if st.array is None and one_array:
            inline[st.target] = expr
            continue
        body.append(dataclasses.replace(st, expr=expr))
    return dataclasses.replace(kernel, body=tuple(body))


def _kw(name: str, value: str) -> str:
    """A keyword argument, left out where it is 1."""
    return "" if value == "1" else f", {name}={value}"


#: Fused TAC op -> (torch function, its extra scalar keyword, or None for positional)
FUSED = {
    "axpy": ("add", "alpha"),
    "addcmul": ("addcmul", "value"),
    "addcdiv": ("addcdiv", "value"),
    "lerp": ("lerp", None),
}


def single_lines(op: str, dst: str, args) -> list[str]:
    """One instruction on single tensors, as lines (a conditional may take several)."""
    if op in conditions.OPS:
        return conditions.single(op, dst, args)
    return [_single(op, dst, args)]


def _single(op: str, dst: str, args) -> str:
    """One instruction on single tensors (scalar operands are Python floats): a Tensor method in
    place where the destination is the first operand, else a torch function with out=."""
    kinds = [k for k, _ in args]
    names = [a for _, a in args]
    in_place = kinds[0] == "value" and names[0] == dst
    if op == "copy":
        return f"{dst}.copy_({names[0]})"
    if op == "fill":
        return f"{dst}.fill_({names[0]})"
    if op in FUSED:
        fn, key = FUSED[op]
        *tensors, c = names
        if op == "axpy" and c == "-1":
            fn, c = "sub", "1"
        extra = f", {c}" if key is None else _kw(key, c)
        if in_place:
            return f"{dst}.{fn}_({', '.join(tensors[1:])}{extra})"
        return f"torch.{fn}({', '.join(tensors)}{extra}, out={dst})"
    if op == "square":
        if in_place:
            return f"{dst}.mul_({dst})"
        return f"torch.mul({names[0]}, {names[0]}, out={dst})"
    if op in UNARY:
        fn = UNARY[op][0]
        return f"{dst}.{fn}_()" if in_place else f"torch.{fn}({names[0]}, out={dst})"
    fn = BINARY[op][0]
    a, b = names
    if kinds == ["value", "value"]:
        if op in ("maximum", "minimum"):  # no Tensor method in place
            return f"torch.{fn}({a}, {b}, out={dst})"
        if in_place:
            return f"{dst}.{fn}_({b})"
        if op in COMMUTATIVE and b == dst:
            return f"{dst}.{fn}_({a})"
        return f"torch.{fn}({a}, {b}, out={dst})"
    if kinds == ["value", "scalar"]:
        if op in ("maximum", "minimum"):
            bound = "min" if op == "maximum" else "max"
            if in_place:
                return f"{dst}.clamp_({bound}={b})"
            return f"torch.clamp({a}, {bound}={b}, out={dst})"
        return f"{dst}.{fn}_({b})" if in_place else f"torch.{fn}({a}, {b}, out={dst})"
    # scalar first
    if op in COMMUTATIVE:
        return _single(op, dst, (args[1], args[0]))
    if op == "subtract":  # s - x == -(x - s) exactly
        return f"torch.sub({b}, {a}, out={dst}).neg_()"
    if op == "power":
        return f"torch.pow({a}, {b}, out={dst})"
    return f"torch.div(torch.full((), {a}, dtype={b}.dtype, device={b}.device), {b}, out={dst})"


#: Binary ops whose in-place foreach form takes a 0-d tensor for its scalar operand.
TENSOR_SCALAR = {"add", "multiply", "divide"}
#: The suffix of the 0-d tensor holding a scalar (``beta2`` -> ``beta2_0d``).
ZERO_DIM = "_0d"


def tensor_scalar(op: str, dst: str, args) -> str | None:
    """The scalar an instruction's foreach form takes as a 0-d tensor, if any.

    On the CPU a ``torch._foreach_*`` op runs tensor by tensor, and with a Python scalar it
    makes a tensor of the scalar for every one (a few microseconds each: 100 small tensors
    take three times as long); a 0-d tensor made once per step serves the whole list.
    """
    kinds = [k for k, _ in args]
    names = [a for _, a in args]
    in_place = kinds[0] == "value" and names[0] == dst
    if op in TENSOR_SCALAR and in_place and kinds[1] == "scalar" and names[1].isidentifier():
        return names[1]
    return None


def _foreach(op: str, dst: str, args) -> list[str]:
    """One instruction on lists of tensors.

    A ``torch._foreach_*`` operation in place where the destination holds the first operand
    (or the second, for a commutative operation); otherwise, to write into another buffer
    without allocating, the single-tensor form with out= in a loop over the tensors.
    """
    kinds = [k for k, _ in args]
    names = [a for _, a in args]
    if op in conditions.OPS:
        return conditions.foreach(op, dst, args)
    if op == "copy":
        return [f"torch._foreach_copy_({dst}, {names[0]})"]
    scalar = tensor_scalar(op, dst, args)
    if scalar is not None:
        alpha = ", alpha=1" if op == "add" else ""  # selects the Tensor overload
        return [f"torch._foreach_{BINARY[op][1]}_({dst}, {scalar}{ZERO_DIM}{alpha})"]
    if kinds[0] == "value" and names[0] == dst:
        if op in FUSED:
            fn, key = FUSED[op]
            *tensors, c = names
            if op == "axpy" and c == "-1":
                fn, c = "sub", "1"
            extra = f", {c}" if key is None else _kw(key, c)
            return [f"torch._foreach_{fn}_({', '.join(tensors)}{extra})"]
        if op == "square":
            return [f"torch._foreach_mul_({dst}, {dst})"]
        if op in UNARY:
            return [f"torch._foreach_{UNARY[op][1]}_({dst})"]
        if op in BINARY:
            return [f"torch._foreach_{BINARY[op][1]}_({dst}, {names[1]})"]
    if op in COMMUTATIVE and kinds == ["value", "value"] and names[1] == dst:
        return [f"torch._foreach_{BINARY[op][1]}_({dst}, {names[0]})"]
    lists = list(dict.fromkeys([dst] + [n for k, n in args if k == "value"]))
    loop_vars = {n: f"_{n.lstrip('_')}_i" for n in lists}
    single_args = tuple((k, loop_vars[n]) if k == "value" else (k, n) for k, n in args)
    code = _single(op, loop_vars[dst], single_args)
    targets = ", ".join(loop_vars[n] for n in lists)
    if len(lists) == 1:
        return [f"for {targets} in {dst}:", f"    {code}"]
    return [f"for {targets} in zip({', '.join(lists)}, strict=True):", f"    {code}"]


def step_key(spec: Spec) -> str:
    """The state key of the step counter: torch's ``"step"``, unless the spec has a state of
    that name (Rprop's step sizes); spec names cannot start with ``_``."""
    return "_step" if "step" in spec.state_names else "step"


def torch_program(kernel: Kernel) -> tuple[Kernel, Program]:
    """The kernel as the foreach path runs it (scaled temporaries inlined) and its allocated
    three-address program with PyTorch's fused operations."""
    kernel = inline_scaled_temporaries(kernel)
    return kernel, compile_kernel(kernel, ScalarPrinter().doprint, compiler_class=_FusingCompiler)


def template_data(spec: Spec, kernel: Kernel) -> dict:
    printer = ScalarPrinter()
    kernel, program = torch_program(kernel)
    instructions, masks = conditions.assign_masks(program.instructions)
    foreach_body: list[dict] = []
    single_body: list[dict] = []
    zero_dim: list[str] = []
    for op, dst, args, comments in instructions:
        scalar = tensor_scalar(op, dst, args)
        if scalar is not None and scalar not in zero_dim:
            zero_dim.append(scalar)
        foreach_body.append({"comments": list(comments), "lines": _foreach(op, dst, args)})
        single_body.append({"comments": list(comments), "lines": single_lines(op, dst, args)})
    used = {s.name for st in kernel.body for s in st.expr.free_symbols}
    direct = [h for h in (*kernel.hypers, "t") if h in used]
    init_names = {s.name for e in kernel.init.values() for s in e.free_symbols}
    hypers = hyper_rows(spec)
    states = []
    for s in spec.states:
        start = kernel.init[s.name]  # 0 for a state set from the first gradient
        init = printer.doprint(start)
        if start == 0:
            create = "torch.zeros_like(p, memory_format=torch.preserve_format)"
        else:
            create = f"torch.full_like(p, {init}, memory_format=torch.preserve_format)"
        if start != s.init:
            init = f"{init}, set to {sympy.sstr(s.init)} at the first step"
        states.append({"name": s.name, "init": init, "create": create, "doc": s.doc})
    return {
        "spec": spec,
        "version": __version__,
        "hypers": hypers,
        "hyper_names": list(spec.hyper_names),
        "states": states,
        "state_names": list(spec.state_names),
        "prelude": [
            {"name": s.name, "code": printer.doprint(e), "math": sympy.sstr(e)}
            for s, e in kernel.prelude
        ],
        "direct": direct,
        "scalar_args": direct + [s.name for s in kernel.scalars],
        "init_hypers": [h for h in spec.hyper_names if h in init_names],
        "arrays": list(kernel.arrays),
        "scratch": program.scratch,
        "masks": masks,
        "step_key": step_key(spec),
        "zero_dim": zero_dim,
        "zero_dim_names": [f"{name}{ZERO_DIM}" for name in zero_dim],
        "instructions": program.instructions,
        "foreach_body": foreach_body,
        "single_body": single_body,
        "equations": [a.text for a in spec.update],
        "executed": [a.text for a in spec.executable_update],
        "lookahead": spec.lookahead_free,
    }

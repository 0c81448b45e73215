"""C target: fused C99 kernels per spec, a multi-tensor entry point, a ctypes package and tests.

For every element-wise spec it renders ``c/include/symopt/NAME.h`` and ``c/src/NAME.c`` (float and
double entry points over one fused loop), a sanitizer driver ``c/tests/driver_NAME.c``, a Python
module ``c/symopt_c/NAME.py`` (the NumPy target's class API over ctypes) and
``c/tests/test_NAME.py``; second-order specs get the same set from
:mod:`symopt.backends.c.second_order` (a dense Cholesky solve of the derived system). Once per run
it renders the umbrella header, a small runtime (threads, OpenMP status), a Makefile, the
package's loader and ``__init__.py``, and the tests' conftest, which list both kinds.

Expressions are printed by SymPy's ``C99CodePrinter`` (``float32`` type alias for the float
kernel: ``sqrtf``, ``1.0e-8F``) with three changes: ``x**2`` is ``(x*x)`` (a ``powf`` call would
stop vectorization), ``max``/``min``/``sign`` go through small inline helpers that propagate NaN
like NumPy and the reference stepper (``fmaxf`` drops it, and GCC does not vectorize it), and names
that would clash with C or C++ identifiers get a trailing underscore.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

import sympy
from sympy.codegen.ast import float32, float64, real
from sympy.printing.c import C99CodePrinter
from sympy.printing.precedence import PRECEDENCE

from symopt import __version__
from symopt.backends.base import hyper_rows, isort_key
from symopt.backends.numpy.elementwise import ScalarPrinter
from symopt.errors import SpecError
from symopt.lowering.kernel import Kernel
from symopt.spec import G, Spec

PACKAGE = "symopt_c"
#: The umbrella header is include/symopt/symopt.h, the runtime include/symopt/runtime.h and
#: src/runtime.c (functions symopt_runtime_*): no spec may take either name.
RUNTIME = "symopt"
RESERVED = (RUNTIME, "runtime")
#: Compiler flags of every build (Makefile, Python loader, tests). -fno-math-errno lets sqrt
#: vectorize (errno is never read; results are unchanged); -ffp-contract=off keeps every multiply
#: and add separately rounded, so results do not depend on the machine having FMA. No -ffast-math
#: and no -march=native: the library gives the same IEEE results on every x86-64 / arm64 machine.
CFLAGS = ("-std=c99", "-O3", "-fPIC", "-fno-math-errno", "-ffp-contract=off")
#: Steps over fewer elements than this run in the calling thread (see the benchmark).
PARALLEL_MIN = 1 << 15

#: Identifiers that C code may not use as variable names: <math.h>, <stddef.h>, <omp.h> names and
#: C++ keywords (the header is meant to be included from C++ too). Spec names are checked against
#: the C keywords already (symopt.spec.TARGET_KEYWORDS).
_MATH = """
acos acosf acosh acoshf acoshl acosl asin asinf asinh asinhf asinhl asinl atan atan2 atan2f atan2l
atanf atanh atanhf atanhl atanl cbrt cbrtf cbrtl ceil ceilf ceill copysign copysignf copysignl cos
cosf cosh coshf coshl cosl erf erfc erfcf erfcl erff erfl exp exp2 exp2f exp2l expf expl expm1
expm1f expm1l fabs fabsf fabsl fdim fdimf fdiml floor floorf floorl fma fmaf fmal fmax fmaxf fmaxl
fmin fminf fminl fmod fmodf fmodl frexp frexpf frexpl hypot hypotf hypotl ilogb ilogbf ilogbl ldexp
ldexpf ldexpl lgamma lgammaf lgammal llrint llrintf llrintl llround llroundf llroundl log log10
log10f log10l log1p log1pf log1pl log2 log2f log2l logb logbf logbl logf logl lrint lrintf lrintl
lround lroundf lroundl modf modff modfl nan nanf nanl nearbyint nearbyintf nearbyintl nextafter
nextafterf nextafterl nexttoward nexttowardf nexttowardl pow powf powl remainder remainderf
remainderl remquo remquof remquol rint rintf rintl round roundf roundl scalbln scalblnf scalblnl
scalbn scalbnf scalbnl sin sinf sinh sinhf sinhl sinl sqrt sqrtf sqrtl tan tanf tanh tanhf tanhl
tanl tgamma tgammaf tgammal trunc truncf truncl fpclassify isfinite isgreater isgreaterequal isinf
isless islessequal islessgreater isnan isnormal isunordered signbit float_t double_t
math_errhandling gamma j0 j1 jn y0 y1 yn size_t ptrdiff_t wchar_t offsetof max_align_t
"""
_CPP = """
alignas alignof and and_eq asm bitand bitor bool catch char16_t char32_t char8_t class compl
concept consteval constexpr constinit const_cast co_await co_return co_yield decltype delete
dynamic_cast explicit export false friend mutable namespace new noexcept not not_eq nullptr
operator or or_eq private protected public reinterpret_cast requires static_assert static_cast
template this thread_local throw true try typeid typename using virtual wchar_t xor xor_eq
"""
C_RESERVED = frozenset(_MATH.split()) | frozenset(_CPP.split())


def c_identifiers(names: Sequence[str]) -> dict[str, str]:
    """Each name's C identifier: itself, or with underscores appended when it would clash."""
    taken = set(names)
    out = {}
    for name in names:
        ident = name
        while (
            ident in C_RESERVED
            # OpenMP's and symopt's own functions: none of them ends with "_"
            or (ident.startswith(("omp_", "symopt_")) and not ident.endswith("_"))
            or (ident != name and ident in taken)
        ):
            ident += "_"
        taken.add(ident)
        out[name] = ident
    return out


class CPrinter(C99CodePrinter):
    """``C99CodePrinter`` for one precision, with the renames and the helpers described above."""

    def __init__(self, precision: str, names: dict[str, str], helpers: set[str]):
        alias = {"f32": float32, "f64": float64}[precision]
        super().__init__({"type_aliases": {real: alias}})
        self.precision = precision
        self.names = names
        self.helpers = helpers  # filled with the helpers used: "max", "min", "sign"

    def _print_Symbol(self, expr: sympy.Symbol) -> str:
        return self.names.get(expr.name, expr.name)

    def _print_Pow(self, expr: sympy.Pow) -> str:
        base, ex = expr.args
        if ex == 2 or ex == -2:
            b = self.parenthesize(base, PRECEDENCE["Mul"])
            square = f"({b}*{b})"
            return square if ex == 2 else f"{self._print_Float(sympy.Float(1.0))}/{square}"
        return super()._print_Pow(expr)

    def _helper(self, name: str, args) -> str:
        helper = f"{name}_{self.precision}"
        self.helpers.add(helper)
        return f"symopt_{helper}({', '.join(args)})"

    def _pairwise(self, name: str, expr: sympy.Expr) -> str:
        args = [self._print(a) for a in expr.args]
        out = args[-1]
        for a in reversed(args[:-1]):
            out = self._helper(name, [a, out])
        return out

    def _print_Max(self, expr: sympy.Max) -> str:
        return self._pairwise("max", expr)

    def _print_Min(self, expr: sympy.Min) -> str:
        return self._pairwise("min", expr)

    def _print_sign(self, expr: sympy.sign) -> str:
        return self._helper("sign", [self._print(expr.args[0])])


def wrap_call(head: str, args: Sequence[str], indent: int = 0, tail: str = ";") -> str:
    """``head(args)tail`` on one line of at most 100 characters, or with the arguments packed
    onto continuation lines indented four more spaces."""
    pad = " " * indent
    one = f"{pad}{head}({', '.join(args)}){tail}"
    if len(one) <= 100 or not args:
        return one
    lines = [f"{pad}{head}("]
    current = pad + "    "
    for i, arg in enumerate(args):
        piece = arg + (", " if i < len(args) - 1 else f"){tail}")
        if current.strip() and len(current + piece.rstrip()) > 100:
            lines.append(current.rstrip())
            current = pad + "    "
        current += piece
    lines.append(current.rstrip())
    return "\n".join(lines)


def comment_block(text: str, indent: str = "") -> str:
    """Free text as ``//`` comment lines of at most 100 characters."""
    prefix = f"{indent}// "
    lines = textwrap.wrap(_comment(text), 100 - len(prefix), break_on_hyphens=False)
    return "\n".join(prefix + line for line in lines)


def _comment(text: str) -> str:
    """Text that is safe in a ``//`` comment: no trigraph, no line splice, one line."""
    return " ".join(text.replace("??", "? ?").split()).rstrip("\\")


def check_name(spec) -> None:
    """SpecError for a spec whose files or functions would be the runtime's."""
    if spec.name in RESERVED:
        raise SpecError(
            f"the C target cannot generate a spec named {spec.name!r} (its runtime has that name)",
            key="name",
        )


def template_data(spec: Spec, kernel: Kernel, *, counter: bool = True) -> dict:
    """What the kernel templates get; ``counter=False`` leaves the step counter t out of the
    entry points (diagonal Newton has none)."""
    check_name(spec)
    names = [*kernel.arrays, *kernel.hypers, "t"]
    names += [s.name for s in kernel.scalars] + [st.target.name for st in kernel.body]
    ident = c_identifiers(names)
    helpers: set[str] = set()
    double = CPrinter("f64", ident, helpers)
    used = {s.name for st in kernel.body for s in st.expr.free_symbols}
    in_prelude = {s.name for _, e in kernel.prelude for s in e.free_symbols}
    direct = [h for h in (*kernel.hypers, "t") if h in used]
    # prelude scalars the loop reads (others only feed the prelude's later scalars)
    loop_scalars = [ident[h] for h in direct]
    loop_scalars += [ident[s.name] for s in kernel.scalars if s.name in used]
    clock = ["t"] if counter else []
    unused = [ident[h] for h in (*kernel.hypers, *clock) if h not in used | in_prelude]
    pointer = {a: f"_{ident[a]}" for a in kernel.arrays}
    pointer = {a: p if p not in ident.values() else f"_a{p}" for a, p in pointer.items()}
    arrays = [
        {
            "name": a,
            "c": ident[a],
            "ptr": pointer[a],
            "output": a in kernel.outputs,
            "load": a in used,
        }
        for a in kernel.arrays
    ]
    stores = [{"ptr": pointer[a], "value": ident[kernel.ssa_name(a).name]} for a in kernel.outputs]
    hyper_params = [f"double {ident[h]}" for h in kernel.hypers]
    hyper_args = [ident[h] for h in kernel.hypers]
    t_param = ["long t"] if counter else []
    precisions = []
    for precision, ctype in (("f32", "float"), ("f64", "double")):
        printer = CPrinter(precision, ident, helpers)
        body = [
            {
                "comments": [_comment(e) for e in st.equations] or ["common subexpression"],
                "name": ident[st.target.name],
                "code": printer.doprint(st.expr),
            }
            for st in kernel.body
        ]
        const = {a["name"]: "" if a["output"] else "const " for a in arrays}
        restrict = [f"{const[a['name']]}{ctype} *restrict {a['c']}" for a in arrays]
        tables = [f"{const[a['name']]}{ctype} *const *{a['c']}" for a in arrays]
        scalars = [f"const {ctype} {s}" for s in loop_scalars]
        precisions.append(
            {
                "suffix": precision,
                "ctype": ctype,
                "body": body,
                "update_params": [
                    "size_t n",
                    *(f"{const[a['name']]}{ctype} *restrict {a['ptr']}" for a in arrays),
                    *scalars,
                ],
                "update_args": ["_b - _a", *(f"{a['c']}[_k] + _a" for a in arrays), *loop_scalars],
                "range_params": [
                    "size_t _lo",
                    "size_t _hi",
                    "size_t _count",
                    *tables,
                    "const size_t *_n",
                    *scalars,
                ],
                "range_args": [
                    "count",
                    *(a["c"] for a in arrays),
                    "n",
                    *(f"({ctype}){s}" if ctype == "float" else s for s in loop_scalars),
                ],
                "single_params": [*restrict, "size_t n", *t_param, *hyper_params],
                "single_args": [
                    "1",
                    *(f"&{a['ptr']}" for a in arrays),
                    "&n",
                    *clock,
                    *hyper_args,
                ],
                "multi_params": [
                    "size_t count",
                    *tables,
                    "const size_t *n",
                    *t_param,
                    *hyper_params,
                ],
                "driver_tables": [
                    f"({const[a['name']]}{ctype} *const *)(x + {j} * count)"
                    for j, a in enumerate(arrays)
                ],
                "driver_arrays": [f"y[{j} * count + k]" for j in range(len(arrays))],
                "driver_hypers": [f"h[{j}]" for j in range(len(kernel.hypers))],
                "header_single": [
                    *(r.replace("*restrict", "*SYMOPT_RESTRICT") for r in restrict),
                    "size_t n",
                    *t_param,
                    *hyper_params,
                ],
            }
        )
    prelude = [
        {"name": ident[s.name], "code": double.doprint(e), "math": _comment(sympy.sstr(e))}
        for s, e in kernel.prelude
    ]
    hypers = [
        {
            **row,
            "c": ident[h.name],
            "macro": f"SYMOPT_{spec.name.upper()}_{h.name.upper()}",
            "c_doc": _comment(h.doc),
        }
        for row, h in zip(hyper_rows(spec), spec.hypers, strict=True)
    ]
    py = ScalarPrinter()
    init_names = {s.name for st in spec.states for s in st.init.free_symbols}
    return {
        "spec": spec,
        "version": __version__,
        "name": spec.name,
        "upper": spec.name.upper(),
        "c_title": _comment(spec.title),
        "fn": f"{spec.name}_step",
        "c_fn": f"symopt_{spec.name}_step",
        "hypers": hypers,
        "hyper_names": list(spec.hyper_names),
        "states": [
            {"name": s.name, "init": py.doprint(s.init), "doc": s.doc, "c_doc": _comment(s.doc)}
            for s in spec.states
        ],
        "init_hypers": [h for h in spec.hyper_names if h in init_names],
        "arrays": arrays,
        "array_names": list(kernel.arrays),
        "grad_index": kernel.arrays.index(G),
        "outputs": list(kernel.outputs),
        "stores": stores,
        "prelude": prelude,
        "loop_scalars": loop_scalars,
        "unused": unused,
        "precisions": precisions,
        "helpers": sorted(helpers),
        "equations": [a.text for a in spec.update],
        "executed": [a.text for a in spec.executable_update],
        "c_equations": [_comment(a.text) for a in spec.update],
        "c_executed": [_comment(a.text) for a in spec.executable_update],
        "lookahead": spec.lookahead_free,
        "parallel_min": PARALLEL_MIN,
        "call": wrap_call,
        "comment": comment_block,
        "test_imports": sorted(
            ["DEFAULTS", "STATE", "T_START", spec.class_name, f"{spec.name}_step"],
            key=isort_key,
        ),
    }

"""C target: fused C99 kernels per spec, a multi-tensor entry point, a ctypes package and tests.

For every element-wise spec it renders ``c/include/symopt/NAME.h`` and ``c/src/NAME.c`` (float and
double entry points over one fused loop), a sanitizer driver ``c/tests/driver_NAME.c``, a Python
module ``c/symopt_c/NAME.py`` (the NumPy target's class API over ctypes) and
``c/tests/test_NAME.py``; second-order specs get the same set from
:mod:`symopt.backends.c.second_order` (a dense Cholesky solve of the derived system). Once per run
it renders the umbrella header, a small runtime (threads, OpenMP status), a Makefile, the
package's loader and ``__init__.py``, and the tests' conftest, which list both kinds.

Expressions are printed by :mod:`symopt.backends.c.printer` (SymPy's ``C99CodePrinter`` with
vectorizable squares, NaN-propagating helpers, one-line conditionals and C-safe names); a truth
value (a comparison the loop shares, a per-step condition in the prelude) is an ``int``. A spec
with per-tensor reductions runs in passes instead of one loop (:mod:`symopt.backends.c.stages`);
``spec_data``, ``array_rows`` and ``entry_points`` here are what both kinds share.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

import sympy

from symopt import __version__
from symopt.backends.base import hyper_rows, isort_key
from symopt.backends.c.printer import CPrinter, c_identifiers, is_condition
from symopt.backends.numpy.elementwise import ScalarPrinter
from symopt.lowering.kernel import Kernel
from symopt.spec import G, Spec, W
from symopt.spec.family import first_of_its_layout

PACKAGE = "symopt_c"
#: The umbrella header is include/symopt/symopt.h, the runtime include/symopt/runtime.h and
#: src/runtime.c (functions symopt_runtime_*): symopt.spec.reserved refuses both as spec names.
RUNTIME = "symopt"
#: Compiler flags of every build (Makefile, Python loader, tests). -fno-math-errno lets sqrt
#: vectorize (errno is never read; results are unchanged); -ffp-contract=off keeps every multiply
#: and add separately rounded, so results do not depend on the machine having FMA. No -ffast-math
#: and no -march=native: the library gives the same IEEE results on every x86-64 / arm64 machine.
CFLAGS = ("-std=c99", "-O3", "-fPIC", "-fno-math-errno", "-ffp-contract=off")
#: Steps over fewer elements than this run in the calling thread (see the benchmark).
PARALLEL_MIN = 1 << 15


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


def template_data(spec: Spec, kernel: Kernel, *, counter: bool = True) -> dict:
    """What the kernel templates get; ``counter=False`` leaves the step counter t out of the
    entry points (diagonal Newton has none)."""
    names = [*kernel.arrays, *kernel.hypers, "t"]
    names += [s.name for s in kernel.scalars] + [st.target.name for st in kernel.body]
    ident = c_identifiers(names)
    helpers: set[str] = set()
    double = CPrinter("f64", ident, helpers)
    used = {s.name for st in kernel.body for s in st.expr.free_symbols}
    in_prelude = {s.name for _, e in kernel.prelude for s in e.free_symbols}
    direct = [h for h in (*kernel.hypers, "t") if h in used]
    # prelude scalars the loop reads (others only feed the prelude's later scalars)
    boolean = {s.name for s, e in kernel.prelude if is_condition(e)}
    loop_scalars = [ident[h] for h in direct]
    loop_scalars += [ident[s.name] for s in kernel.scalars if s.name in used]
    flags = {ident[s] for s in boolean}
    clock = ["t"] if counter else []
    unused = [ident[h] for h in (*kernel.hypers, *clock) if h not in used | in_prelude]
    arrays = array_rows(kernel.arrays, kernel.outputs, ident, used)
    stores = [
        {"ptr": a["ptr"], "value": ident[kernel.ssa_name(a["name"]).name]}
        for a in arrays
        if a["output"]
    ]
    precisions = []
    for p in entry_points(arrays, kernel.hypers, ident, counter):
        ctype = p["ctype"]
        printer = CPrinter(p["suffix"], ident, helpers)
        scalars = [f"const {'int' if s in flags else ctype} {s}" for s in loop_scalars]
        const = {a["name"]: "" if a["output"] else "const " for a in arrays}
        p["body"] = [
            {
                "comments": [_comment(e) for e in st.equations] or ["common subexpression"],
                "name": ident[st.target.name],
                "ctype": "int" if is_condition(st.expr) else ctype,
                "code": printer.doprint(st.expr),
            }
            for st in kernel.body
        ]
        p["update_params"] = [
            "size_t n",
            *(f"{const[a['name']]}{ctype} *restrict {a['ptr']}" for a in arrays),
            *scalars,
        ]
        p["update_args"] = ["_b - _a", *(f"{a['c']}[_k] + _a" for a in arrays), *loop_scalars]
        p["range_params"] = [
            "size_t _lo",
            "size_t _hi",
            "size_t _count",
            *(f"{const[a['name']]}{ctype} *const *{a['c']}" for a in arrays),
            "const size_t *_n",
            *scalars,
        ]
        cast = ctype == "float"
        p["range_args"] = [
            "count",
            *(a["c"] for a in arrays),
            "n",
            *(f"({ctype}){s}" if cast and s not in flags else s for s in loop_scalars),
        ]
        precisions.append(p)
    prelude = [
        {
            "name": ident[s.name],
            "ctype": "int" if is_condition(e) else "double",
            "code": double.doprint(e),
            "math": _comment(sympy.sstr(e)),
        }
        for s, e in kernel.prelude
    ]
    return {
        **spec_data(spec, kernel.arrays, kernel.outputs, kernel.init, ident),
        "arrays": arrays,
        "stores": stores,
        "prelude": prelude,
        "loop_scalars": loop_scalars,
        "unused": unused,
        "precisions": precisions,
        "helpers": sorted(helpers),
    }


def array_rows(
    names: Sequence[str],
    outputs: Sequence[str],
    ident: dict[str, str],
    used: set[str],
    per_tensor: Sequence[str] = (),
) -> list[dict]:
    """Each array argument: its name, C name, pointer name (``_w``), whether it is written,
    whether the loop reads it, and whether it holds one value per tensor (``per_tensor``)."""
    pointer = {a: f"_{ident[a]}" for a in names}
    pointer = {a: p if p not in ident.values() else f"_a{p}" for a, p in pointer.items()}
    return [
        {
            "name": a,
            "c": ident[a],
            "ptr": pointer[a],
            "output": a in outputs,
            "load": a in used,
            "per_tensor": a in per_tensor,
        }
        for a in names
    ]


def entry_points(
    arrays: list[dict], hypers: Sequence[str], ident: dict[str, str], counter: bool = True
) -> list[dict]:
    """Per precision, the public functions' parameters and the sanitizer driver's calls."""
    t_param = ["long t"] if counter else []
    clock = ["t"] if counter else []
    hyper_params = [f"double {ident[h]}" for h in hypers]
    out = []
    for precision, ctype in (("f32", "float"), ("f64", "double")):
        const = {a["name"]: "" if a["output"] else "const " for a in arrays}
        restrict = [f"{const[a['name']]}{ctype} *restrict {a['c']}" for a in arrays]
        tables = [f"{const[a['name']]}{ctype} *const *{a['c']}" for a in arrays]
        out.append(
            {
                "suffix": precision,
                "ctype": ctype,
                "single_params": [*restrict, "size_t n", *t_param, *hyper_params],
                "single_args": [
                    "1",
                    *(f"&{a['ptr']}" for a in arrays),
                    "&n",
                    *clock,
                    *(ident[h] for h in hypers),
                ],
                "multi_params": ["size_t count", *tables, "const size_t *n", *t_param]
                + hyper_params,
                "driver_tables": [
                    f"({const[a['name']]}{ctype} *const *)(x + {j} * count)"
                    for j, a in enumerate(arrays)
                ],
                "driver_arrays": [f"y[{j} * count + k]" for j in range(len(arrays))],
                "driver_hypers": [f"h[{j}]" for j in range(len(hypers))],
                "header_single": [
                    *(r.replace("*restrict", "*SYMOPT_RESTRICT") for r in restrict),
                    "size_t n",
                    *t_param,
                    *hyper_params,
                ],
            }
        )
    return out


def spec_data(
    spec: Spec, arrays: Sequence[str], outputs: Sequence[str], init: dict, ident: dict[str, str]
) -> dict:
    """What every template of a spec gets, whatever its loops look like: names, documentation,
    hyperparameters and state (``init``: what each state array holds before the first step; a
    state set from the first gradient starts at 0 and is set by the first step)."""
    py = ScalarPrinter()
    hypers = [
        {
            **row,
            "c": ident[h.name],
            "macro": f"SYMOPT_{spec.name.upper()}_{h.name.upper()}",
            "c_doc": _comment(h.doc),
        }
        for row, h in zip(hyper_rows(spec), spec.hypers, strict=True)
    ]
    states = []
    for s in spec.states:
        start = py.doprint(init[s.name])
        if {x.name for x in s.init.free_symbols} & {W, G}:
            start = f"{py.doprint(s.init)} (set by the first step; the array starts at {start})"
        row = {"name": s.name, "init": py.doprint(init[s.name]), "start": start}
        row["per_tensor"] = s.shape == "scalar"  # one value per tensor: an array of one element
        states.append({**row, "doc": s.doc, "c_doc": _comment(s.doc)})
    init_names = {x.name for s in spec.states for x in init[s.name].free_symbols}
    return {
        "spec": spec,
        "version": __version__,
        "name": spec.name,
        # under the sanitizers once per memory layout of a family (amsgrad's extra array, ...)
        "sanitize": first_of_its_layout(spec),
        "upper": spec.name.upper(),
        "c_title": _comment(spec.title),
        "fn": f"{spec.name}_step",
        "c_fn": f"symopt_{spec.name}_step",
        "hypers": hypers,
        "hyper_names": list(spec.hyper_names),
        "states": states,
        "per_tensor": [s["name"] for s in states if s["per_tensor"]],
        "init_hypers": [h for h in spec.hyper_names if h in init_names],
        "array_names": list(arrays),
        "grad_index": list(arrays).index(G),
        "outputs": list(outputs),
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

"""C for updates with per-tensor reductions: one loop per pass (symopt.lowering.stages).

The public functions are those of an element-wise kernel (same header, driver, Python module and
tests); only the source differs. Every tensor is cut into blocks that depend on its size alone
(``BLOCK`` elements or more, at most ``BLOCKS`` of them). A pass runs over the blocks, each block
accumulating its own partial sums in double (``LANES`` independent sums, so that the loop
vectorizes, added in lane order); after the pass one thread adds the blocks' partials
in block order and computes the per-tensor scalars, which the next pass reads. So a norm is the
same for any number of threads, with and without OpenMP, and the multi-tensor and single-tensor
calls agree bit for bit. Tensors of one block are each taken whole by one thread; larger ones
are stepped one after another, all threads sharing each one's blocks.

A state of one value per tensor (``shape = "scalar"``) is an array of one element per tensor:
one thread reads it before the first pass (with the per-tensor scalars computed from it, kept
in ``_ts`` like the others) and writes its new value after the last pass.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import sympy

from symopt.backends.c.elementwise import (
    _comment,
    array_rows,
    entry_points,
    spec_data,
)
from symopt.backends.c.printer import CPrinter, c_identifiers, is_condition
from symopt.lowering.stages import SIZE, Pass, Stages
from symopt.spec import Spec

#: A block has at least this many elements (a tensor smaller than two blocks is one block) ...
BLOCK = 2048
#: ... and a tensor has at most this many blocks. Both fix the order of every sum: changing
#: them changes results in the last bits.
BLOCKS = 64
#: Within a block, element j adds to partial sum j % LANES (independent sums vectorize; one sum
#: is a chain of dependent additions), and the partial sums are added in lane order. Fixes the
#: order too.
LANES = 8


@dataclass(frozen=True)
class Storage:
    """How one precision keeps its arrays: the C target's compute in their own type; the PyTorch
    target's bfloat16 arrays are loaded to float and rounded once when stored."""

    suffix: str  # of the entry points: f32, f64, bf16
    ctype: str  # the type computed in
    storage: str  # the arrays' element type
    load: str = "{}"  # an element as ``ctype``
    store: str = "{}"  # a ``ctype`` value as an element

    @property
    def printer(self) -> str:
        """The CPrinter precision of ``ctype``."""
        return "f32" if self.ctype == "float" else "f64"


@dataclass(frozen=True)
class Calls:
    """How the entry point hands tensor k to the per-tensor drivers (format strings of ``k``, and
    for an array also of ``c``, its C name, ``j``, its index, ``const`` and ``storage``)."""

    size: str = "n[{k}]"
    array: str = "{c}[{k}]"


def stages_data(spec: Spec, stages: Stages) -> dict:
    """What ``c/stages.c.jinja`` (and the shared header, driver, module and tests) get."""
    helpers: set[str] = set()
    program = stage_program(
        stages,
        lambda arrays, ident: entry_points(arrays, stages.hypers, ident),
        helpers,
        Calls(),
    )
    accumulators = program["accumulators_used"]
    per_tensor = [s.name for s in spec.states if s.shape == "scalar"]
    needs = [("reductions", accumulators > 0), ("state", bool(per_tensor))]
    count = program["passes"]
    return {
        **spec_data(spec, stages.arrays, stages.outputs, stages.init, program["ident"]),
        **program,
        "helpers": sorted(helpers),
        "passes_text": f"{count} pass{'es' if count > 1 else ''}",
        "why": "per-tensor " + " and ".join(word for word, needed in needs if needed),
        "block": BLOCK,
        "blocks": BLOCKS,
    }


def stage_program(
    stages: Stages,
    precisions: Callable[[list[dict], dict[str, str]], list[dict]],
    helpers: set[str],
    calls: Calls,
    storages: Sequence[Storage] = (
        Storage("f32", "float", "float"),
        Storage("f64", "double", "double"),
    ),
) -> dict:
    """The passes, per-tensor drivers and per-step prelude of ``stages`` in C, for the entry
    points ``precisions(arrays, ident)`` (one dict per ``storages`` entry, in order, with
    ``suffix`` and ``ctype`` at least); the helpers the printed code calls are added to
    ``helpers``. What the C target and the PyTorch target's fused kernels share."""
    spec = stages.spec
    names = [*stages.arrays, *stages.hypers, "t", SIZE.name, *(s.name for s in stages.scalars)]
    names += [s.name for s, _ in stages.tensor_scalars]
    for p in stages.passes:
        names += [a.name.name for a in p.accumulators] + [st.target.name for st in p.body]
    ident = c_identifiers(list(dict.fromkeys(names)))
    double = CPrinter("f64", ident, helpers)
    per_tensor = [s.name for s in spec.states if s.shape == "scalar"]
    slot = _slots(stages, per_tensor)
    flags = {s.name for s, e in (*stages.prelude, *stages.tensor_scalars) if is_condition(e)}
    in_passes = {x.name for p in stages.passes for st in p.body for x in st.expr.free_symbols}
    in_scalars = {x.name for _, e in stages.tensor_scalars for x in e.free_symbols}
    in_prelude = {x.name for _, e in stages.prelude for x in e.free_symbols}
    step = [*stages.hypers, "t", *(s.name for s in stages.scalars)]
    # what the per-tensor driver takes: step scalars the passes or the per-tensor scalars read
    carried = [s for s in step if s in in_passes | in_scalars]
    kinds = {s: "int" if s in flags else "double" for s in step}
    kinds["t"] = "long"
    order = [*(a for a in stages.arrays if a not in per_tensor), *step, *slot]
    arrays = array_rows(stages.arrays, stages.outputs, ident, set(stages.arrays), per_tensor)
    written = {a["name"] for a in arrays if a["output"]}
    # a per-tensor state's pointer in the per-tensor driver (its old value takes its name)
    one = {a: f"_s_{ident[a]}" for a in per_tensor}
    # before the first pass: the per-tensor states' old values and the scalars computed from them
    needed = {x.name for _, e in stages.before for x in e.free_symbols} | set(slot)
    before = _scalars(stages.before, double, ident, slot, flags, stages)
    out = []
    for p, kept in zip(precisions(arrays, ident), storages, strict=True):
        printer = CPrinter(kept.printer, ident, helpers)
        p.setdefault("elements", kept.ctype)
        const = {a["name"]: "" if a["name"] in written else "const " for a in arrays}
        p["passes"] = [_pass(x, kept, printer, ident, slot, flags, order) for x in stages.passes]
        p["driver_params"] = [
            "size_t n",
            *(f"{const[a['name']]}{kept.storage} *{one.get(a['name'], a['c'])}" for a in arrays),
            *(f"{kinds[s]} {ident[s]}" for s in carried),
            "double *_part",
            "double *_ts",
        ]
        p["tensor_args"] = {
            k: [
                calls.size.format(k=k),
                *(
                    calls.array.format(
                        c=a["c"], k=k, j=j, const=const[a["name"]], storage=kept.storage
                    )
                    for j, a in enumerate(arrays)
                ),
                *(ident[s] for s in carried),
            ]
            for k in ("_j", "_k")
        }
        cast = "(float)" if kept.ctype == "float" else ""
        p["stores"] = [
            {
                "ptr": one[a],
                "value": kept.store.format(f"{cast}_ts[{slot[v.name]}]"),
                "state": a,
            }
            for a, v in stages.scalar_stores
        ]
        p["before"] = [
            line
            for a in per_tensor
            if a in needed
            for line in (
                f"// {a}: the old value",
                f"const double {ident[a]} = {kept.load.format(f'{one[a]}[0]')};",
            )
        ]
        p["before"] += [f"_ts[{slot[a]}] = {ident[a]};" for a in per_tensor if a in slot]
        p["before"] += before
        out.append(p)
    after = [_after(x, double, ident, slot, flags, stages) for x in stages.passes]
    prelude = [
        {
            "name": ident[s.name],
            "ctype": "int" if is_condition(e) else "double",
            "code": double.doprint(e),
        }
        for s, e in stages.prelude
    ]
    accumulators = max((len(x.accumulators) for x in stages.passes), default=0)
    return {
        "ident": ident,
        "arrays": arrays,
        "prelude": prelude,
        "unused": [ident[h] for h in (*stages.hypers, "t") if h not in in_prelude | set(carried)],
        "precisions": out,
        "after": after,
        "passes": len(stages.passes),
        "reduces": accumulators > 0,
        "accumulators_used": accumulators,
        "accumulators": max(accumulators, 1),
        "tensor_scalars": max(len(slot), 1),
    }


def _pass(
    x: Pass, kept: Storage, printer: CPrinter, ident: dict, slot: dict, flags: set[str], order: list
) -> dict:
    """One pass's loop function for one precision, and how the per-tensor driver calls it.
    ``order``: the arrays, the step scalars, then the per-tensor ones (the argument order)."""
    ctype = kept.ctype
    stored = dict(x.stores)
    used = {s.name for st in x.body for s in st.expr.free_symbols}
    scalars, args = [], []
    for name in (n for n in order if n in used and n not in x.loads):
        kind = "int" if name in flags else ctype
        scalars.append(f"const {kind} {ident[name]}")
        value = f"_ts[{slot[name]}]" if name in slot else ident[name]
        cast = kind == "float" or (kind == "int" and name in slot)
        args.append(f"({kind}){value}" if cast else value)
    arrays = [a for a in order if a in x.loads or a in stored]
    pointer = {a: f"_{ident[a]}" for a in arrays}
    taken = {*ident.values(), "_i", "_j", "_l", "_acc"}
    pointer = {a: p if p not in taken else f"_a{p}" for a, p in pointer.items()}
    params = ["size_t n"]
    params += [
        f"{'' if a in stored else 'const '}{kept.storage} *restrict {pointer[a]}" for a in arrays
    ]
    params += scalars
    accumulate = []
    for i, acc in enumerate(x.accumulators):
        v = ident[acc.value.name]
        v = f"(double){v}" if ctype == "float" else v
        name = ident[acc.name.name]
        update = {
            "sum": f"{{a}} += {v};",
            "sumsq": f"{{a}} += {v}*{v};",
            "max": f"{{a}} = symopt_max_f64({{a}}, {v});",
        }[acc.kind].format(a=f"{name}[_l]")
        if acc.kind == "max":
            printer.helpers.add("max_f64")
        start = "-INFINITY" if acc.kind == "max" else "0"
        first, lane = f"{name}[0]", f"{name}[_l]"
        combine = (
            f"{first} = symopt_max_f64({first}, {lane});"
            if acc.kind == "max"
            else f"{first} += {lane};"
        )
        accumulate.append(
            {"name": name, "start": start, "code": update, "combine": combine, "i": i}
        )
    if accumulate:
        params.append("double *restrict _acc")
    return {
        "index": x.index,
        "params": params,
        "args": ["_hi - _lo", *(f"{ident[a]} + _lo" for a in arrays), *args],
        "loads": [{"c": ident[a], "value": kept.load.format(f"{pointer[a]}[_j]")} for a in x.loads],
        "fresh": list(x.fresh),
        "body": [
            {
                "comments": [_comment(e) for e in st.equations] or ["common subexpression"],
                "name": ident[st.target.name],
                "ctype": "int" if is_condition(st.expr) else ctype,
                "code": printer.doprint(st.expr),
            }
            for st in x.body
        ],
        "stores": [
            {"ptr": pointer[a], "value": kept.store.format(ident[v.name])} for a, v in x.stores
        ],
        "accumulate": accumulate,
        "lanes": LANES,
        "stored": list(stored),
    }


def _after(
    x: Pass, double: CPrinter, ident: dict, slot: dict, flags: set[str], stages: Stages
) -> dict:
    """What one thread computes after a pass: the blocks' partials added in block order, then
    the per-tensor scalars, kept in ``_ts`` for the later passes."""
    mine = {s.name for s, _ in x.scalars}
    reads = {v.name for _, e in x.scalars for v in e.free_symbols} & set(slot) - mine
    return {
        "combine": [
            {
                "name": ident[a.name.name],
                "i": i,
                "op": "max" if a.kind == "max" else "add",
            }
            for i, a in enumerate(x.accumulators)
        ],
        "reads": [{"name": ident[n], "slot": slot[n]} for n in sorted(reads, key=slot.get)],
        "scalars": _scalars(x.scalars, double, ident, slot, flags, stages),
    }


def _scalars(
    scalars, double: CPrinter, ident: dict, slot: dict, flags: set[str], stages: Stages
) -> list[str]:
    """The lines of C of per-tensor scalars one thread computes, in double, each kept in ``_ts``
    when a later block or pass reads it."""
    lines = []
    for s, e in scalars:
        lines.append(f"// {_comment(stages.notes.get(s.name, sympy.sstr(e)))}")
        ctype = "int" if s.name in flags else "double"
        lines.append(f"const {ctype} {ident[s.name]} = {double.doprint(e)};")
    return lines + [f"_ts[{slot[s.name]}] = {ident[s.name]};" for s, _ in scalars if s.name in slot]


def _slots(stages: Stages, per_tensor: list[str]) -> dict[str, int]:
    """Where the per-tensor scalars read after the block that computes them are kept in ``_ts``:
    those a pass or a later block reads, and the per-tensor states' new values (written after the
    last pass). The block before the first pass defines the states' old values (named as the
    states) and the scalars computed from them; the block after a pass, the pass's scalars."""
    blocks = [stages.before, *(p.scalars for p in stages.passes)]
    defined = [[*per_tensor, *(s.name for s, _ in stages.before)]]
    defined += [[s.name for s, _ in p.scalars] for p in stages.passes]
    read = {x.name for p in stages.passes for st in p.body for x in st.expr.free_symbols}
    read |= {v.name for _, v in stages.scalar_stores}
    kept = []
    for k, names in enumerate(defined):
        later = {x.name for block in blocks[k + 1 :] for _, e in block for x in e.free_symbols}
        kept += [n for n in names if n in read | later]
    return {name: i for i, name in enumerate(kept)}

"""The fused CUDA step of a PyTorch optimizer with per-tensor reductions (LAMB, LARS, ASGD,
torch's NAdam): a Triton module printed from the passes of :mod:`symopt.lowering.stages`, as
the C target prints them (:mod:`symopt.backends.c.stages`).

A step runs as a sequence of launches over every tensor of a group (the runtime's
``launch_stages``):

* a launch per pass, a program per chunk of a tensor: it loads the pass's arrays, runs its body
  (in float32 for float32 and bfloat16, in float64 for float64), stores its outputs and writes
  the chunk's partial reductions (float64: each element is widened and accumulated in a float64
  lane of the block, the lanes added by ``tl.sum``) to a buffer;
* after a pass with reductions or per-tensor scalars, a launch with a program per tensor: it adds
  the tensor's partials chunk by chunk, in order, and computes the per-tensor scalars in float64
  into a buffer the later passes read (converted to the compute type, as the C target casts);
* before the first pass, the same for the states of one value per tensor (0-d tensors): their
  old values are read and the scalars computed from them. Such a state is written by the program
  that computes its new value (nothing reads the tensor later: the passes read the buffer).

No atomics: a reduction is added in the same order on every run. The step scalars (the prelude,
and every part of a per-tensor formula that depends on the hyperparameters and t alone) are
computed in Python, in double, and passed as the bits of float64 values.
"""

from __future__ import annotations

import textwrap

import sympy

from symopt import __version__
from symopt.backends.numpy.elementwise import ScalarPrinter
from symopt.backends.render import render
from symopt.backends.torch.fused_stages import stage_parts
from symopt.backends.torch.triton_sympy import Hoist, TritonPrinter, identifier, is_condition
from symopt.lowering.stages import SIZE, Pass, Stages
from symopt.spec import Spec

#: Columns of a row of the chunk table before the arrays' addresses (length, tensor), and of the
#: tensor table before the states' (first chunk, chunks, size).
CHUNK_COLUMNS = 2
TENSOR_COLUMNS = 3
#: Partials a per-tensor program adds at once (in lanes, then the lanes by a fixed tree).
PARTIALS = 128
#: The float64 value an accumulator starts from.
START = {"sum": "0.0", "sumsq": "0.0", "max": 'float("-inf")'}


def triton_stages_module(kernel: Spec) -> str:
    """The source of the Triton module of a staged kernel's fused step (``_triton/NAME.py``)."""
    main, other = stage_parts(kernel)
    data = [_part(main, "")]
    if other is not None:
        data.append(_part(other, "_other"))
    return render(
        "torch/fused_triton_stages.py.jinja",
        spec=kernel,
        partials=PARTIALS,
        version=__version__,
        parts=data,
        uses_math=any("math." in line["code"] for p in data for line in p["python"]),
    )


def _part(stages: Stages, prefix: str) -> dict:
    """What the template prints for one part of the kernel (its update, or ``[otherwise]``)."""
    per_tensor = [s.name for s in stages.spec.states if s.shape == "scalar"]
    elements = [a for a in stages.arrays if a not in per_tensor]
    step = {*stages.hypers, "t", *(s.name for s in stages.scalars)}
    hoist = Hoist(step)
    blocks = [
        [(s, hoist.top(e)) for s, e in scalars]
        for scalars in (stages.before, *(p.scalars for p in stages.passes))
    ]
    bodies = [[(st, hoist(st.expr)) for st in p.body] for p in stages.passes]
    names = _names(stages, hoist)
    flags = {s.name for s, e in (*stages.prelude, *stages.tensor_scalars) if is_condition(e)}
    flags |= {s.name for e, s in hoist.hoisted.items() if is_condition(e)}
    slots = _slots(stages, per_tensor, blocks, bodies)
    device = {x.name for b in blocks for _, e in b for x in e.free_symbols}
    device |= {x.name for body in bodies for _, e in body for x in e.free_symbols}
    order = [*stages.hypers, "t", *(s.name for s in stages.scalars)]
    order += [s.name for s in hoist.hoisted.values()]
    scalars = [n for n in order if n in device]
    context = {
        "names": names,
        "flags": flags,
        "slots": slots,
        "scalars": scalars,
        "width": CHUNK_COLUMNS + len(elements),
        "slots_count": len(slots),
        "columns": {a: CHUNK_COLUMNS + i for i, a in enumerate(elements)},
    }
    passes = [
        _pass(p, body, context, prefix) for p, body in zip(stages.passes, bodies, strict=True)
    ]
    stored = dict(stages.scalar_stores)
    after = [
        _block(k, b, stages, per_tensor, stored, context, prefix) for k, b in enumerate(blocks)
    ]
    steps = [("tensors", after[0]["name"])] if after[0] else []
    for p, block in zip(passes, after[1:], strict=True):
        p["after"] = block
        steps.append(("chunks", p["kernel"]))
        if block:
            steps.append(("tensors", block["name"]))
    return {
        "prefix": prefix,
        "arrays": list(stages.arrays),
        "hypers": [names[h] for h in stages.hypers],
        "hyper_names": list(stages.hypers),
        "elements": [stages.arrays.index(a) for a in elements],
        "states": [stages.arrays.index(a) for a in per_tensor],
        "python": _python(stages, hoist, scalars, names),
        "returns": [names[s] for s in scalars],
        "bits": [f"{names[s]}_bits" for s in scalars],
        "passes": passes,
        "before": after[0],
        "steps": steps,
        "accumulators": max((len(p.accumulators) for p in stages.passes), default=0),
        "slots": len(slots),
        "count": len(stages.passes),
        "width": context["width"],
        "tensor_width": TENSOR_COLUMNS + len(per_tensor),
    }


def _comment(text: str) -> list[str]:
    """A spec line (or formula) as the lines of a comment that fit the module's width."""
    return textwrap.wrap(" ".join(text.split()), 88, subsequent_indent="    ")


def _names(stages: Stages, hoist: Hoist) -> dict[str, str]:
    """Every SymPy name the module prints, as its Python identifier."""
    names = [*stages.arrays, *stages.hypers, "t", SIZE.name, *(s.name for s in stages.scalars)]
    names += [s.name for s, _ in stages.tensor_scalars]
    names += [s.name for s in hoist.hoisted.values()]
    for p in stages.passes:
        names += [a.name.name for a in p.accumulators] + [st.target.name for st in p.body]
    return {n: identifier(n) for n in dict.fromkeys(names)}


def _slots(stages: Stages, per_tensor: list[str], blocks: list, bodies: list) -> dict[str, int]:
    """Where the per-tensor values a pass or a later block reads are kept (as the C target's
    ``_ts``): the old values of the states of one value per tensor and the per-tensor scalars."""
    defined = [[*per_tensor, *(s.name for s, _ in blocks[0])]]
    defined += [[s.name for s, _ in block] for block in blocks[1:]]
    read = {x.name for body in bodies for _, e in body for x in e.free_symbols}
    kept: list[str] = []
    for k, block_names in enumerate(defined):
        later = {x.name for block in blocks[k + 1 :] for _, e in block for x in e.free_symbols}
        kept += [n for n in block_names if n in read | later]
    return {name: i for i, name in enumerate(kept)}


def _python(stages: Stages, hoist: Hoist, scalars: list[str], names: dict) -> list[dict]:
    """The lines of the Python function computing the step scalars: the prelude entries that are
    needed, then the hoisted expressions (``_k0, ...``)."""
    printer = ScalarPrinter()
    rename = {s: sympy.Symbol(names[s.name]) for s in _symbols(stages, hoist)}
    lines = [(s, e) for s, e in stages.prelude] + [(s, e) for e, s in hoist.hoisted.items()]
    needed = set(scalars)
    kept = []
    for s, e in reversed(lines):
        if s.name in needed:
            kept.insert(0, {"name": names[s.name], "code": printer.doprint(e.xreplace(rename))})
            needed |= {x.name for x in e.free_symbols}
    return kept


def _symbols(stages: Stages, hoist: Hoist) -> set[sympy.Symbol]:
    """The symbols of the step scalars' expressions."""
    exprs = [e for _, e in stages.prelude] + list(hoist.hoisted)
    return {x for e in exprs for x in e.free_symbols} | {s for s, _ in stages.prelude}


def _pass(p: Pass, body: list, context: dict, prefix: str) -> dict:
    """One pass: its element-wise function (loads, body, stores; returns the values it
    accumulates) and its chunk kernel."""
    names = context["names"]
    stored = dict(p.stores)
    vectors = {*p.loads, *(st.target.name for st in p.body)}
    printer = TritonPrinter(names, vectors)
    used = {x.name for _, e in body for x in e.free_symbols}
    used |= {a.value.name for a in p.accumulators}
    arrays = [a for a in context["columns"] if a in p.loads or a in stored]
    truths = {st.target.name for st, e in body if is_condition(e)}
    step = _step_scalars(context, used)
    tensor = _tensor_scalars(context, used)
    return {
        "index": p.index,
        "kernel": f"{prefix}_pass{p.index}_kernel",
        "function": f"{prefix}_pass{p.index}",
        "fresh": list(p.fresh),
        "pointers": [{"name": f"_p_{names[a]}", "column": context["columns"][a]} for a in arrays],
        "loads": [{"local": names[a], "pointer": f"_p_{names[a]}"} for a in p.loads],
        "step": step,
        "tensor": tensor,
        "setup": _setup(step, tensor, context["slots_count"], "COMPUTE"),
        "accumulate": _accumulate(p.accumulators, masked=False),
        "accumulate_tail": _accumulate(p.accumulators, masked=True),
        "body": [
            {
                "comments": [c for e in st.equations for c in _comment(e)] or ["shared value"],
                "name": names[st.target.name],
                "code": printer.doprint(e),
            }
            for st, e in body
        ],
        "stores": [
            {
                "pointer": f"_p_{names[a]}",
                "value": names[v.name] + (".to(COMPUTE)" if v.name in truths else ""),
            }
            for a, v in p.stores
        ],
        "accumulators": [
            {"value": names[a.value.name], "kind": a.kind, "start": START[a.kind]}
            for a in p.accumulators
        ],
    }


def _step_scalars(context: dict, used: set[str]) -> list[dict]:
    """The step scalars a kernel reads (``used``), in the module's order."""
    names = context["names"]
    return [
        {
            "name": names[s],
            "bits": f"{names[s]}_bits",
            "flag": s in context["flags"],
        }
        for s in context["scalars"]
        if s in used
    ]


def _setup(step: list[dict], tensor: list[dict], slots: int, dtype: str) -> list[str]:
    """The lines of a kernel that read its scalars: the step's from their bits, the per-tensor
    ones from ``_ts`` (in the compute type in a pass, as the C target casts them)."""
    lines = []
    for s in step:
        flag = " != 0" if s["flag"] else ""
        lines.append(f"{s['name']} = rt.scalar({s['bits']}, {dtype}){flag}")
    for s in tensor:
        cast = ".to(COMPUTE)" if dtype == "COMPUTE" else ""
        flag = " != 0" if s["flag"] else ""
        lines.append(f"{s['name']} = tl.load(_ts + _k * {slots} + {s['slot']}){cast}{flag}")
    return lines


def _accumulate(accumulators, masked: bool) -> list[str]:
    """The lines adding a block's values ``_v0, _v1, ...`` into the float64 lanes of the pass's
    accumulators (the lanes past the tensor's end, where ``masked``, adding nothing)."""
    lines = []
    for i, a in enumerate(accumulators):
        value = f"_v{i}.to(tl.float64)"
        if masked:
            value = f"tl.where(_offsets < _size, {value}, {START[a.kind]})"
        lines.append(f"_x{i} = {value}")
        lines.append(_add(a.kind, f"_acc{i}", f"_x{i}"))
    return lines


def _add(kind: str, acc: str, x: str) -> str:
    """The line adding ``x`` into the accumulator ``acc`` (float64 values)."""
    return {
        "sum": f"{acc} += {x}",
        "sumsq": f"{acc} += {x} * {x}",
        "max": f"{acc} = rt.maximum({acc}, {x})",
    }[kind]


def _tensor_scalars(context: dict, used: set[str]) -> list[dict]:
    """The per-tensor values kept in ``_ts`` that a kernel reads (``used``)."""
    names, slots = context["names"], context["slots"]
    return [
        {"name": names[s], "slot": i, "flag": s in context["flags"]}
        for s, i in slots.items()
        if s in used
    ]


def _block(
    k: int,
    block: list,
    stages: Stages,
    per_tensor: list[str],
    stored: dict,
    context: dict,
    prefix: str,
) -> dict | None:
    """The per-tensor kernel before the first pass (``k`` = 0) or after pass ``k``: the partials
    added, the per-tensor scalars computed, kept and the states of one value per tensor written;
    None where there is nothing to do."""
    names, slots = context["names"], context["slots"]
    accumulators = stages.passes[k - 1].accumulators if k else ()
    mine = {s.name for s, _ in block} | (set(per_tensor) if k == 0 else set())
    writes = [(a, v.name) for a, v in stored.items() if v.name in mine]
    keep = [s for s in (*(per_tensor if k == 0 else ()), *(s.name for s, _ in block)) if s in slots]
    if not (block or writes or accumulators or keep):
        return None
    printer = TritonPrinter(names, set())
    original = dict(stages.tensor_scalars)
    used = {x.name for _, e in block for x in e.free_symbols} | {v for _, v in writes}
    old = [a for a in per_tensor if k == 0 and a in used | set(keep)]
    state_column = {a: TENSOR_COLUMNS + i for i, a in enumerate(per_tensor)}
    return {
        "name": f"{prefix}_before_kernel" if k == 0 else f"{prefix}_after{k}_kernel",
        "pass": k,
        "combine": [
            {
                "name": names[a.name.name],
                "i": i,
                "kind": a.kind,
                "start": START[a.kind],
                # the partials of a sum of squares are sums: added
                "add": _add("max" if a.kind == "max" else "sum", f"_acc{i}", f"_x{i}"),
            }
            for i, a in enumerate(accumulators)
        ],
        "old": [{"name": names[a], "column": state_column[a]} for a in old],
        "size": SIZE.name in used,
        "setup": _setup(
            _step_scalars(context, used),
            _tensor_scalars(context, used - mine),
            context["slots_count"],
            "tl.float64",
        ),
        "lines": [
            {
                "comments": _comment(stages.notes.get(s.name, sympy.sstr(original[s]))),
                "name": names[s.name],
                "code": printer.doprint(e),
            }
            for s, e in block
        ],
        "keep": [{"name": names[s], "slot": slots[s], "flag": s in context["flags"]} for s in keep],
        "writes": [{"column": state_column[a], "value": names[v]} for a, v in writes],
    }

"""The fused CPU kernel of a PyTorch optimizer with per-tensor reductions (LAMB, LARS, ASGD,
torch's NAdam): C99 source of its passes (:mod:`symopt.backends.torch.fused_stages`), printed by
the C target's pass printer (:func:`symopt.backends.c.stages.stage_program`).

The same loops and per-tensor drivers as the C target's kernels (blocks of a size fixed by the
tensor's, sums in double in 8 lanes a block, then block by block in order, so no result depends
on the thread count), over
the element-wise fused kernels' pointer tables and in their three storage precisions: float32
and float64 computed in their type, bfloat16 loaded to float and rounded once when stored (each
output is written by the last pass, so no pass reads a rounded value). One entry point per
update and precision: ``symopt_torch_NAME_{f32,f64,bf16}(count, tables, sizes, threads, t,
*hyper)`` and, for a spec with ``[otherwise]``, ``symopt_torch_NAME_other_*``.
"""

from __future__ import annotations

from symopt import __version__
from symopt.backends.c.elementwise import PARALLEL_MIN, comment_block, wrap_call
from symopt.backends.c.stages import BLOCK, BLOCKS, Calls, Storage, stage_program
from symopt.backends.render import render
from symopt.backends.torch.fused_stages import stage_parts
from symopt.lowering.stages import Stages
from symopt.spec import Spec

#: The storage precisions: float32 and float64 compute in their type, bfloat16 loads to float
#: and rounds once (to nearest even, torch's NaN) when stored.
STORAGES = (
    Storage("f32", "float", "float"),
    Storage("f64", "double", "double"),
    Storage("bf16", "float", "uint16_t", "symopt_bf16_load({})", "symopt_bf16_store({})"),
)
#: What the elements of each precision are, in the comments.
ELEMENTS = {"f32": "float32", "f64": "float64", "bf16": "bfloat16 (computed in float)"}
#: How an entry point hands tensor k of array j to the per-tensor drivers: from the pointer table
#: (array-major, as the element-wise fused kernels take it).
TABLES = Calls(size="_sizes[{k}]", array="({const}{storage} *)_tables[{j} * _count + {k}]")


def source(kernel: Spec) -> str:
    """The C source of the fused CPU kernel of a kernel with per-tensor reductions."""
    base = kernel.name.lstrip("_")
    helpers: set[str] = set()
    main, other = stage_parts(kernel)
    programs = [_program(main, base, "", helpers)]
    if other is not None:
        programs.append(_program(other, f"{base}_other", "Parameters of other shapes", helpers))
    per_tensor = any(s.shape == "scalar" for s in kernel.states)
    needs = [("reductions", any(p["reduces"] for p in programs)), ("state", per_tensor)]
    return render(
        "torch/fused_stages.c.jinja",
        spec=kernel,
        name=kernel.name,
        version=__version__,
        why="per-tensor " + " and ".join(word for word, needed in needs if needed),
        base=base,
        upper=base.upper(),
        block=BLOCK,
        blocks=BLOCKS,
        programs=programs,
        helpers=sorted(helpers),
        precisions=[{"suffix": s.suffix, "ctype": s.ctype} for s in STORAGES[:2]],
        parallel_min=PARALLEL_MIN,
        call=wrap_call,
        comment=comment_block,
    )


def _program(stages: Stages, prefix: str, what: str, helpers: set[str]) -> dict:
    """One update's passes, drivers and entry points (``symopt_torch_PREFIX_*``)."""

    def entry_points(arrays: list[dict], ident: dict[str, str]) -> list[dict]:
        params = ["size_t _count", "const uintptr_t *_tables", "const size_t *_sizes"]
        params += ["int _threads", f"long {ident['t']}"]
        params += [f"double {ident[h]}" for h in stages.hypers]
        return [
            {
                "suffix": s.suffix,
                "ctype": s.ctype,
                "elements": ELEMENTS[s.suffix],
                "entry_params": params,
            }
            for s in STORAGES
        ]

    program = stage_program(stages, entry_points, helpers, TABLES, STORAGES)
    return {
        **program,
        "prefix": prefix,
        "upper": prefix.upper(),
        "fn": f"symopt_torch_{prefix}",
        "what": what or stages.spec.title,
        "array_names": list(stages.arrays),
    }

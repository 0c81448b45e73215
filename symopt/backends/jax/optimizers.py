"""What a JAX module of one spec is made of: the optax factory's arguments, and per variant (each
setting of the spec's flags) the step printed from the lowered spec.

Element-wise specs print the kernel that every target lowers (:func:`symopt.lowering.kernel.lower`:
the prelude of scalars, then SSA statements with shared temporaries), one ``jnp`` expression per
statement, applied leaf by leaf; ``jax.jit`` hands the statements to XLA, which fuses them into
one loop. Tensor-level specs print their whole-tensor program
(:func:`symopt.lowering.program.lower_tensor`), as the NumPy and PyTorch targets do.

optax transformations return *updates*, which ``optax.apply_updates`` adds to the parameters: the
printed step returns ``w_new - w``. Where the new ``w`` is ``w + u`` with ``u`` free of ``w`` (plain
Adam, SGD), ``u`` is printed alone, so the transformation needs no ``params`` and adds no rounding;
decoupled weight decay enters it as ``(k - 1)*w`` (:func:`exact_scale_change`).
"""

from __future__ import annotations

import dataclasses

import sympy

from symopt.backends.api import check_code, uses_math
from symopt.backends.base import hyper_rows
from symopt.backends.jax.printer import JaxPrinter
from symopt.backends.numpy.elementwise import ScalarPrinter
from symopt.lowering.kernel import Kernel, lower
from symopt.lowering.program import Line, Loop, TensorProgram, Update, lower_tensor
from symopt.spec import Spec
from symopt.spec.common import COLS, ROWS
from symopt.spec.domains import DOMAINS
from symopt.spec.family import module_name, settings, variant_for, variant_label, variants

#: Spec hyperparameters that optax names otherwise (its factories' arguments).
OPTAX_NAMES = {"lr": "learning_rate", "beta1": "b1", "beta2": "b2"}
#: Names the generated modules use for modules: a spec naming a value so is refused.
MODULE_NAMES = frozenset({"jax", "jnp", "math", "optax"})

W = sympy.Symbol("w", real=True)


def spec_names(spec: Spec) -> set[str]:
    """Every name a spec gives a value: hyperparameters, flags, states and assigned names."""
    raw = spec.family.raw if spec.family else spec
    lines = (*raw.update, *raw.otherwise)
    return {*raw.hyper_names, *(f.name for f in raw.flags), *(s.name for s in raw.states)} | {
        a.target for a in lines
    }


def argument_names(spec: Spec) -> dict[str, str]:
    """Spec hyperparameter -> the factory's argument (optax's name where optax has one)."""
    names = [h.name for h in spec.hypers]
    return {n: OPTAX_NAMES[n] if OPTAX_NAMES.get(n, n) not in names else n for n in names}


def family_data(spec: Spec) -> dict:
    """Template data of a spec's module: its factory and every variant's step."""
    raw = spec.family.raw if spec.family else spec
    names = argument_names(raw)
    hypers = hyper_rows(raw)
    for h, row in zip(raw.hypers, hypers, strict=True):
        row["arg"] = names[h.name]
        row["condition"] = DOMAINS[h.domain].condition.format(x="value")
    axes = spec.family.axes if spec.family else ()
    flags = list(raw.flags)
    flag_names = {f.name for f in flags}
    steps = [variant_data(v) for v in variants(spec)]
    api = api_checks(spec)
    table = []
    for setting in settings(spec.family) if spec.family else [{}]:
        chosen = variant_for(spec, setting)
        key = tuple(setting[a] for a in axes)
        table.append({"key": repr(key), "fn": step_name(chosen)})
    return {
        "spec": raw,
        "fn": raw.name,
        "state_class": f"{raw.class_name}State",
        "hypers": hypers,
        "flags": [{"name": f.name, "default": repr(f.default), "doc": f.doc} for f in flags],
        "axes": [
            {"name": a, "expr": f"bool({a})" if a in flag_names else f"nonzero({names[a]})"}
            for a in axes
        ],
        "states": [{"name": s.name, "shape": s.shape, "doc": s.doc} for s in raw.states],
        "variants": steps,
        "runtime_imports": runtime_imports(steps, axes, flag_names, api),
        "uses_jnp": "jnp." in repr(steps),
        "lr_arg": names.get("lr"),
        "inits": initial_values(steps),
        "table": table,
        "applies_to": raw.applies_to,
        "refuses": raw.applies_to != "any" and not raw.otherwise,
        "shape_word": raw.shapes_taken,
        "equations": [a.text for a in raw.update],
        "api": api,
    }


def api_checks(spec: Spec) -> dict | None:
    """The checks of the library a spec's API class matches (torch.optim's messages), which the
    NumPy, PyTorch and C classes run: the factory runs them too, on the values that are numbers
    (so the same bad value is refused with the same ValueError in every target)."""
    api = spec.family.api if spec.family else None
    if api is None or not api.checks:
        return None
    raw = spec.family.raw
    known = {*raw.hyper_names, *(f.name for f in raw.flags)}
    printer = ScalarPrinter()
    checks = []
    for c in api.checks:
        names = sorted(s.name for s in c.condition.free_symbols)
        if set(names) <= known:  # a choice or constant argument has no JAX counterpart
            checks.append({**check_code(c, printer), "names": names})
    if not checks:
        return None
    return {
        "matches": api.matches,
        "checks": checks,
        "names": sorted(known),
        "uses_math": uses_math(checks),
    }


def runtime_imports(steps: list[dict], axes, flag_names: set[str], api: dict | None) -> list[str]:
    """The names the module takes from ``_runtime`` (no unused import)."""
    names = {"Variant", "check", "map_leaves", "transformation"}
    names |= {"numbers"} if api else set()
    names |= {"by_shape"} if any(len(s["leaves"]) > 1 for s in steps) else set()
    names |= {"like"} if any(s["scalars"] for s in steps) else set()
    names |= {"nonzero"} if any(a not in flag_names for a in axes) else set()
    return sorted(names, key=lambda n: (not n[:1].isupper(), n))


def initial_values(steps: list[dict]) -> list[dict]:
    """The variants' initial states, printed: one function for all of them, unless a state
    starts otherwise in some (then one per way to start); each step gets its ``init_fn``."""
    out: list[dict] = []
    for step in steps:
        found = next((i for i in out if _compatible(i["values"], step["init"])), None)
        if found is None:
            suffix = f"_{len(out) + 1}" if out else ""
            found = {"fn": f"_initial_values{suffix}", "values": {}, "reads": set()}
            out.append(found)
        found["values"].update(step["init"])
        found["reads"].update(step["init_reads"])
        step["init_fn"] = found["fn"]
    return [{**i, "reads": sorted(i["reads"])} for i in out]


def _compatible(a: dict[str, str], b: dict[str, str]) -> bool:
    return all(a[k] == b[k] for k in a.keys() & b.keys())


def step_name(variant: Spec) -> str:
    return f"_step{module_name(variant)}" if variant.family else f"_step_{variant.name}"


def variant_data(variant: Spec) -> dict:
    """One variant's step: its prelude and the leaf function(s) that update one parameter."""
    printer = JaxPrinter()
    if variant.elementwise:
        kernel = exact_scale_change(lower(variant))
        prelude, leaves = kernel.prelude, [kernel_leaf(kernel, printer)]
        main_states = other_states = [s.name for s in variant.states]
        init = kernel.init
    else:
        program = lower_tensor(variant)
        prelude, leaves = program.prelude, program_leaves(program, printer)
        main_states = list(program.main.states)
        other_states = list(program.other.states) if program.other else []
        init = program.init
    scalars = [s.name for s, _ in prelude]
    used = set().union(*(leaf["reads"] for leaf in leaves))
    direct = [h for h in (*variant.hyper_names, "t") if h in used]
    prelude_reads = {s.name for _, e in prelude for s in e.free_symbols}
    from_hyper = [h for h in variant.hyper_names if h in used or h in prelude_reads]
    return {
        "name": step_name(variant),
        "label": variant_label(variant) or "the defaults",
        "hyper_reads": from_hyper,
        "prelude": [{"name": s.name, "code": printer.doprint(e)} for s, e in prelude],
        "scalars": direct + scalars,
        "leaves": leaves,
        "states": [s.name for s in variant.states],
        "main_states": main_states,
        "other_states": other_states if variant.otherwise or variant.applies_to == "any" else None,
        "init": {s.name: printer.doprint(init[s.name]) for s in variant.states},
        "init_reads": sorted(
            {x.name for s in variant.states for x in init[s.name].free_symbols}
            & set(variant.hyper_names)
        ),
        "needs_params": any(leaf["needs_params"] for leaf in leaves),
    }


#: The prelude scalar ``k - 1`` of a scaling ``k*w`` of the parameters.
SCALE_CHANGE = sympy.Symbol("w_scale_change", real=True)


def exact_scale_change(kernel: Kernel) -> Kernel:
    """Decoupled weight decay as ``(k - 1)*w`` in the update, ``k - 1`` computed in the prelude.

    The kernel scales w by a prelude scalar ``k = 1 - lr*weight_decay`` (AdamW, Lion); the
    update ``k*w - w`` would round ``k`` to the parameters' dtype first (in float32 ``1 - 1e-7``
    is ``1 - 1.19e-7``: a decay 19% too strong) and then cancel. ``k - 1`` (``-lr*weight_decay``,
    simplified by SymPy over the prelude's definitions) has no such error. Applies where the
    final w is ``k*w + u``, or ``w1 + u`` with ``w1 = k*w`` used nowhere else."""
    final = next(st for st in kernel.body if st.target == kernel.ssa_name("w"))
    others = [st for st in kernel.body if st is not final]
    scalars = dict(kernel.prelude)
    if SCALE_CHANGE in scalars:
        return kernel
    terms = list(sympy.Add.make_args(final.expr))
    earlier = {st.target: st for st in others if st.array == "w"}
    for i, term in enumerate(terms):
        source = earlier.get(term)
        scaled = source.expr if source is not None else term
        k = scaled / W
        if not (isinstance(k, sympy.Symbol) and k in scalars and scaled == k * W):
            continue
        if source is not None and any(term in st.expr.free_symbols for st in others):
            continue
        change = sympy.simplify(scalars[k].xreplace(scalars) - 1)
        expr = sympy.Add(*terms[:i], *terms[i + 1 :], W, SCALE_CHANGE * W)
        comments = (source.equations if source is not None else ()) + final.equations
        new_final = dataclasses.replace(final, expr=expr, equations=comments)
        body = [new_final if st is final else st for st in kernel.body if st is not source]
        prelude = _used_prelude((*kernel.prelude, (SCALE_CHANGE, change)), body)
        return dataclasses.replace(kernel, body=tuple(body), prelude=prelude)
    return kernel


def _used_prelude(prelude: tuple, body: list) -> tuple:
    """The prelude's scalars that the body reads, with those they are computed from."""
    used = {x for st in body for x in st.expr.free_symbols}
    for symbol, expr in reversed(prelude):
        if symbol in used:
            used |= expr.free_symbols
    return tuple((symbol, expr) for symbol, expr in prelude if symbol in used)


def kernel_leaf(kernel: Kernel, printer: JaxPrinter) -> dict:
    """The kernel's statements for one leaf; the last returns the update of w."""
    final_w = kernel.ssa_name("w")
    earlier_w = {st.target for st in kernel.body if st.array == "w" and st.target != final_w}
    lines, reads = [], set()
    for st in kernel.body:
        if st.target == final_w:
            code, names = update_code(st.expr, earlier_w, printer)
        else:
            code = f"{st.target.name} = {printer.doprint(st.expr)}"
            names = {s.name for s in st.expr.free_symbols}
        lines.append({"comments": list(st.equations), "code": code})
        reads |= names
    written = {st.array: st.target.name for st in kernel.body if st.array}
    return {
        "name": "leaf",
        "states": [s.name for s in kernel.spec.states],
        "lines": lines,
        "outputs": ["update", *(written.get(s.name, s.name) for s in kernel.spec.states)],
        "reads": reads,
        "needs_params": "w" in reads,
        "shape": False,
        "param": "w",
    }


def update_code(
    expr: sympy.Expr, earlier_w: set[sympy.Symbol], printer: JaxPrinter
) -> tuple[str, set[str]]:
    """``update = new_w - w`` and the names it reads: where the new w is ``w + u`` the term
    ``w`` is dropped; where it is ``w1 + u`` with ``w1`` an earlier value of w (decoupled weight
    decay), ``(w1 - w) + u``, which keeps the small difference exact; else ``new_w - w``."""
    terms = sympy.Add.make_args(expr)
    names = {s.name for s in expr.free_symbols}
    if W in terms:
        u = sympy.Add(*[a for a in terms if a != W])
        return f"update = {printer.doprint(u)}", {s.name for s in u.free_symbols}
    start = next((a for a in terms if a in earlier_w), None)
    if start is not None:
        rest = printer.doprint(sympy.Add(*[a for a in terms if a != start]))
        return f"update = {plus(f'({start.name} - w)', rest)}", names | {"w"}
    return f"update = ({printer.doprint(expr)}) - w", names | {"w"}


def plus(left: str, right: str) -> str:
    """``left + right`` for printed code, without ``+ -``."""
    return f"{left} - {right[1:]}" if right.startswith("-") else f"{left} + {right}"


def program_leaves(program: TensorProgram, printer: JaxPrinter) -> list[dict]:
    """The main update of one leaf, and the other one when the spec has it."""
    states = [s.name for s in program.spec.states]
    out = [_update_leaf("leaf", program.main, states, printer)]
    if program.other is not None and program.other is not program.main:
        out.append(_update_leaf("other_leaf", program.other, states, printer))
    return out


def _update_leaf(name: str, update: Update, states: list[str], printer: JaxPrinter) -> dict:
    """Whole-tensor statements in spec order. The last line of w, ``w = w + u``, becomes
    ``update = u`` (or ``(w - _param) + u`` where an earlier line rebound w: Muon's decay)."""
    items = list(update.lines)
    assigns = [i for i, x in enumerate(items) if isinstance(x, Line) and x.target == "w"]
    in_loop = any(isinstance(x, Loop) and any(y.target == "w" for y in x.body) for x in items)
    final = items[assigns[-1]] if assigns and not in_loop else None
    if final is None or W not in sympy.Add.make_args(final.expr):
        return _program_leaf(name, items, states, printer, None, rebound=True)
    return _program_leaf(name, items, states, printer, final, rebound=len(assigns) > 1)


def _program_leaf(
    name: str,
    items: list,
    states: list[str],
    printer: JaxPrinter,
    final: Line | None,
    rebound: bool,
) -> dict:
    statements: list[dict] = []
    reads: set[str] = set()
    for item in items:
        if isinstance(item, Loop):
            statements.append({"loop": item.count, "body": [_line(x, printer) for x in item.body]})
            reads |= {s.name for x in item.body for s in x.expr.free_symbols}
        elif item is final:
            u = sympy.Add(*[a for a in sympy.Add.make_args(item.expr) if a != W])
            code = plus("(w - _param)", printer.doprint(u)) if rebound else printer.doprint(u)
            statements.append({"loop": 0, "comments": [item.text], "code": f"update = {code}"})
            reads |= {s.name for s in u.free_symbols}
        else:
            statements.append(_line(item, printer))
            reads |= {s.name for s in item.expr.free_symbols}
    return {
        "name": name,
        "states": states,
        "statements": statements,
        "outputs": ["update" if final is not None else "w - _param", *states],
        "reads": reads,
        "needs_params": rebound or "w" in reads,
        "shape": ROWS in reads or COLS in reads,
        "param": "_param" if rebound else "w",
    }


def _line(line: Line, printer: JaxPrinter) -> dict:
    code = f"{line.target} = {printer.doprint(line.expr)}"
    return {"loop": 0, "comments": [line.text], "code": code}


def variant_tests(spec: Spec) -> list[dict]:
    """Each variant's module name in the other targets (what ``load_variant`` finds it by) and
    the factory's arguments that select it: its hyperparameters' defaults, an ``off_at_zero``
    one at 0 where the setting has it off, and its flags. A variant whose arguments the API's
    checks refuse (torch.optim.SGD's nesterov with dampening) no factory call reaches: left out."""
    raw = spec.family.raw if spec.family else spec
    names = argument_names(raw)
    checks = spec.family.api.checks if spec.family else ()
    out = []
    for v in variants(spec):
        setting = v.setting if v.family else {}
        values = {h.name: h.default for h in v.hypers}
        for axis, on in setting.items():
            values[axis] = on if axis not in names else values.get(axis, 0.0)
        if any(refuses(c.condition, values) for c in checks):
            continue
        kwargs = {names.get(k, k): x for k, x in values.items()}
        label = variant_label(v) or "defaults"
        out.append({"module": module_name(v), "kwargs": repr(kwargs), "id": label})
    return out


def refuses(condition: sympy.Basic, values: dict) -> bool:
    """Whether a check's condition is false at these values (by the spec's names)."""
    known = {s: values[s.name] for s in condition.free_symbols if s.name in values}
    return condition.subs(known) is sympy.false

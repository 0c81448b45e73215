"""A spec's families and framework API: what the generated classes are called with.

A spec with flags (``[flag.NAME]``) or ``off_at_zero`` hyperparameters is a *family*: every
setting of those axes is a variant with its own equations (:mod:`symopt.spec.family`). Its
``[api]`` table says how the generated class is constructed: the arguments in order (a
framework's own names, such as torch.optim's ``betas`` for ``beta1`` and ``beta2``), the checks
of their values with the framework's messages, and the library class it matches.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import sympy

if TYPE_CHECKING:
    from symopt.spec.elementwise import Spec

#: Arguments every generated PyTorch class understands, with torch.optim's defaults; a spec's
#: ``[api] arguments`` lists those its library class takes.
FRAMEWORK_ARGUMENTS: Mapping[str, bool | None] = {
    "foreach": None,
    "maximize": False,
    "capturable": False,
    "differentiable": False,
    "fused": None,
}
#: Of those, the ones that change the numbers: the NumPy and C classes take them too.
MATH_FRAMEWORK_ARGUMENTS = ("maximize",)
#: The marker in ``arguments`` after which arguments are keyword-only.
KEYWORD_ONLY = "*"


@dataclass(frozen=True)
class ApiArgument:
    name: str
    #: "hyper", "flag", "tuple" (of hyperparameters, like ``betas``), "framework", "choice" (a
    #: string that sets flags, like Muon's ``adjust_lr_fn``) or "constant" (a value the spec
    #: fixes, like Muon's ``ns_steps``: any other value is refused).
    kind: str
    keyword_only: bool
    #: A tuple argument's hyperparameters, in order.
    parts: tuple[str, ...] = ()
    #: A choice's strings -> the flags each sets; None (the default) means the first. Under
    #: "message", the message (as in :class:`ApiCheck`) of a string outside them.
    choices: Mapping[str, object] = field(default_factory=dict)
    #: A constant's value.
    value: int | float | bool | None = None


@dataclass(frozen=True)
class ApiCheck:
    """A condition the arguments must meet, and the ValueError message when they do not."""

    condition: sympy.Basic
    #: The message as literal text and ``(NAME,)`` placeholders for argument values.
    message: tuple[str | tuple[str], ...]
    text: str  # the condition as written


@dataclass(frozen=True)
class Api:
    #: The library class the generated class is a drop-in for ("torch.optim.Adam"), or "".
    matches: str
    arguments: tuple[ApiArgument, ...]
    checks: tuple[ApiCheck, ...] = ()
    #: Flags the class fixes (torch.optim.AdamW's decoupled_weight_decay = True): in its param
    #: groups, as in the library's, but not among its arguments.
    fixed: Mapping[str, bool] = field(default_factory=dict)
    #: Hyperparameters whose default is None, the machine epsilon of the parameters' dtype
    #: (torch.optim.Adafactor's ``eps=(None, 1e-3)``).
    machine_epsilon: tuple[str, ...] = ()

    def argument(self, name: str) -> ApiArgument:
        return next(a for a in self.arguments if a.name == name)

    @property
    def framework(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.arguments if a.kind == "framework")


@dataclass(frozen=True)
class Family:
    """What all variants of a spec share: the spec as written and the axes it varies along."""

    #: The spec as written: flags are :class:`~symopt.spec.parse.FlagSymbol` conditions.
    raw: Spec
    #: The flags, then the ``off_at_zero`` hyperparameters, in the spec's order.
    axes: tuple[str, ...]
    api: Api

    @property
    def flag_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.raw.flags)

    def default_setting(self) -> dict[str, bool]:
        """The axes at the spec's defaults: flags as given, ``off_at_zero`` on unless 0."""
        defaults = {f.name: f.default for f in self.raw.flags}
        for h in self.raw.hypers:
            if h.off_at_zero:
                defaults[h.name] = h.default != 0
        return {a: defaults[a] for a in self.axes}

"""Which implementation state holds which spec state: given (``--map``, a spec's ``[api]`` keys),
the same name, or found by value at the first step the implementation shows state."""

from __future__ import annotations

import numpy as np

from symopt.errors import Unsupported
from symopt.spec import Spec


class StateMap:
    """Spec state -> the implementation's key, with how each was found ("given", "same name",
    "by value"); resolved at the first step where the implementation shows state."""

    def __init__(self, spec: Spec, given: dict[str, str], how: str = "given") -> None:
        self.spec = spec
        self.keys = dict(given)
        self.how = dict.fromkeys(given, how)
        self.resolved = False

    def resolve(self, impl_states, ref_states, target_name: str) -> None:
        """Check the given keys exist; map the rest by name, then by value (the implementation
        key whose first value is within 1% of the spec state's)."""
        first = [s for group in impl_states for s in group]
        if not any(first):
            return
        self.resolved = True
        keys = set().union(*(s.keys() for s in first))
        for name, key in list(self.keys.items()):
            if key not in keys and self.how[name] != "given":  # the implementation lacks it
                del self.keys[name], self.how[name]
            elif key not in keys:
                raise Unsupported(
                    f"{name}={key}: {target_name} has no state {key!r} (its state: "
                    f"{', '.join(sorted(keys)) or 'none'})",
                    key="--map",
                )
        taken = set(self.keys.values())
        for name in self.spec.state_names:
            if name in self.keys:
                continue
            if name in keys and name not in taken:
                self.keys[name], self.how[name] = name, "same name"
                taken.add(name)
                continue
            best, best_err = None, 0.01
            for key in sorted(keys - taken):
                err = _match_error(impl_states, ref_states, key, name)
                if err < best_err:
                    best, best_err = key, err
            if best is not None:
                self.keys[name], self.how[name] = best, "by value"
                taken.add(best)

    def spec_states(self, impl_state: dict[str, np.ndarray], shapes: dict[str, tuple]) -> dict:
        """The implementation's state of one tensor under the spec's names (reshaped to the
        reference's shape when only the layout differs)."""
        out = {}
        for name, key in self.keys.items():
            if key in impl_state and name in shapes:
                value = np.asarray(impl_state[key], dtype=np.float64)
                if value.shape != shapes[name] and value.size == int(np.prod(shapes[name])):
                    value = value.reshape(shapes[name])
                if value.shape == shapes[name]:
                    out[name] = value
        return out


def _match_error(impl_states, ref_states, key: str, name: str) -> float:
    worst = 0.0
    for impl_group, ref_group in zip(impl_states, ref_states, strict=True):
        for impl, ref in zip(impl_group, ref_group, strict=True):
            if key not in impl or name not in ref:
                return np.inf
            a, r = np.asarray(impl[key], dtype=np.float64), ref[name]
            if a.size != r.size:
                return np.inf
            scale = float(np.max(np.abs(r), initial=0.0))
            with np.errstate(all="ignore"):
                diff = float(np.max(np.abs(a.reshape(r.shape) - r), initial=0.0))
            worst = max(worst, diff / scale if scale > 0 else diff)
    return worst if np.isfinite(worst) else np.inf

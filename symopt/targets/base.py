"""What every target provides: a name and the files it renders for a list of specs."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from symopt.spec import Spec
from symopt.writer import GeneratedFile


class Target(ABC):
    name: str

    @abstractmethod
    def files(self, specs: Sequence[Spec]) -> list[GeneratedFile]:
        """Every file this target generates for ``specs``, paths relative to the output folder."""

    def folders(self) -> list[str]:
        """Folders this target owns: files there that a full run does not produce are stale."""
        return [self.name]

    def owns(self, path: str) -> bool:
        """Whether a file found in those folders is this target's (not a build output there)."""
        return True

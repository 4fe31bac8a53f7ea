"""The read-only ``ctx`` every step receives."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy


@dataclass(frozen=True)
class Context:
    """What a step may know about the run it is part of.

    ``condition`` is the condition this output is computed for. A step shared
    by several conditions (equal recipe prefix) runs once, as the first of
    them in config order (baseline first), so a step's result must not depend
    on ``condition`` for sharing to be sound; it is there for logging.
    """

    condition: str
    replicate: int
    seed: int  # the replicate's seed, 128 bits: equal for replicate r of every condition
    step: str
    step_seed: int  # 128 bits; seeds ctx.rng, random and (hashing.legacy_seed) numpy.random
    params: Mapping[str, Any]
    experiment: str = ""
    _rng: list[numpy.random.Generator] = field(default_factory=list, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))

    @property
    def rng(self) -> numpy.random.Generator:
        """A numpy.random.Generator seeded for this replicate and step."""
        if not self._rng:
            import numpy

            self._rng.append(numpy.random.default_rng(self.step_seed))
        return self._rng[0]

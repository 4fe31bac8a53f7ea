"""How often a step is called: its rate limit and its retries.

Both are a step's config (``max_rate``, ``retries``), never part of a recipe
key: a retried call gets the same ctx and seeds as the first, so its output
is the one a first-time success would have made. The waits are returned, not
slept, so the serial runner sleeps and the concurrent one awaits the same
numbers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from repliflow.core.records import RetrySpec


class RateLimit:
    """At most ``per_second`` calls per second: calls are spaced 1/rate apart,
    in the order they ask, across every replicate of the block."""

    def __init__(self, per_second: float | None) -> None:
        self.interval = 1.0 / per_second if per_second else 0.0
        self._next = 0.0  # monotonic time of the next free slot

    def reserve(self) -> float:
        """Take the next slot; the seconds to wait before calling."""
        if not self.interval:
            return 0.0
        now = time.monotonic()
        slot = max(now, self._next)
        self._next = slot + self.interval
        return slot - now


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 0  # retries after the first call
    exceptions: tuple[str, ...] = ()
    backoff: float = 1.0
    max_backoff: float = 60.0

    @classmethod
    def of(cls, spec: RetrySpec | None) -> RetryPolicy:
        if not spec:
            return cls()
        return cls(
            attempts=spec["attempts"],
            exceptions=tuple(spec["exceptions"]),
            backoff=float(spec.get("backoff", 1.0)),
            max_backoff=float(spec.get("max_backoff", 60.0)),
        )

    def matches(self, exc: BaseException) -> bool:
        """Whether ``exc`` is an instance of a listed class, named plainly
        (``TimeoutError``) or dotted (``requests.exceptions.ConnectionError``)."""
        for cls in type(exc).__mro__:
            if cls.__name__ in self.exceptions or f"{cls.__module__}.{cls.__qualname__}" in self.exceptions:
                return True
        return False

    def delay(self, exc: BaseException, failed: int) -> float | None:
        """Seconds to wait before the next call after the ``failed``-th failed
        call (1 for the first) raised ``exc``; None when it is not retried."""
        if failed > self.attempts or not isinstance(exc, Exception) or not self.matches(exc):
            return None
        return float(min(self.max_backoff, self.backoff * 2.0 ** (failed - 1)))

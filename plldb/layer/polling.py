"""How often the shim reads the request item while the developer works on an invocation.

An answer can come back in tens of milliseconds (the handler runs locally without a
breakpoint) or after minutes (someone is stepping through it). A geometric back-off covers
both: the first reads are a few milliseconds apart, so a fast answer is seen almost at once,
and the interval grows to a cap, so a breakpoint held for ten minutes costs about two reads
a second instead of thousands.
"""

from __future__ import annotations

from dataclasses import dataclass, field

FIRST_DELAY = 0.005  # seconds
GROWTH = 1.4
MAX_DELAY = 0.5
SESSION_CHECK_INTERVAL = 2.0  # seconds between reads of the session while waiting
# ... and while the tool is reconnecting: the new connection is found within 0.2 s, so an
# invocation caught by a drop is re-posted at once instead of up to 2 s later.
RECONNECT_CHECK_INTERVAL = 0.2
# Right after attach the role's new policy may not be in effect everywhere yet (IAM is
# eventually consistent): refused calls are retried this long, with back-off.
ACCESS_RETRY_SECONDS = 30.0
ACCESS_RETRY_FIRST_DELAY = 0.5
ACCESS_RETRY_MAX_DELAY = 4.0


@dataclass
class Backoff:
    """Delays between reads: ``first``, then ``growth`` times longer each time, up to ``cap``."""

    first: float = FIRST_DELAY
    growth: float = GROWTH
    cap: float = MAX_DELAY
    _next: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Start fast again: something happened (e.g. the invocation was posted anew)."""
        self._next = self.first

    def delay(self) -> float:
        """The delay before the next read; each call advances the schedule."""
        current = self._next
        self._next = min(self.cap, self._next * self.growth)
        return current


def deadline_margin(remaining: float) -> float:
    """How long before the deadline the shim gives up waiting and answers with an error.

    One second when there is time (a DynamoDB write and a Runtime API post fit easily),
    a tenth of the remaining time for very short timeouts, never under 100 ms.
    """
    return max(0.1, min(1.0, remaining / 10))

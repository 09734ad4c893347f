"""Per-connection limits: audio rate and open sockets per user (both per process)."""
from __future__ import annotations

import collections
import time

from ..engines.base import BYTES_PER_SECOND


class AudioRateLimit:
    """A token bucket in seconds of audio: `burst` seconds up front, refilled at `rate` x real time.

    A client streaming a microphone uses 1x and never meets it; one uploading faster than `rate`
    (or flooding) has frames refused, each with a `rate` error, and nothing it sent before is lost.
    """

    def __init__(self, rate: float, burst: float, clock=time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.tokens = burst
        self.updated = clock()

    def allow(self, nbytes: int) -> bool:
        if self.rate <= 0:
            return True
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        seconds = nbytes / BYTES_PER_SECOND
        if seconds > self.tokens:
            return False
        self.tokens -= seconds
        return True


class ConnectionCounter:
    """Open sockets per user in this process."""

    def __init__(self) -> None:
        self.open: collections.Counter[int] = collections.Counter()

    def acquire(self, user_id: int, limit: int) -> bool:
        if limit and self.open[user_id] >= limit:
            return False
        self.open[user_id] += 1
        return True

    def release(self, user_id: int) -> None:
        self.open[user_id] -= 1
        if self.open[user_id] <= 0:
            del self.open[user_id]


connections = ConnectionCounter()  # this process's transcription sockets, per user

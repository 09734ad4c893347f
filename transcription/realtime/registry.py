"""The sessions running in this process: what the consumers, admission and shutdown look up.

A session lives in the process that runs it (its audio queue, engine state and thread): a `resume`
must reach the same process (sticky routing, docs/operations.md).
"""
from __future__ import annotations

import collections
import contextlib
from typing import Protocol

from .. import metrics


class LiveSession(Protocol):
    """What the registry and its readers (consumers, admission, shutdown, metrics) use of a session."""

    id: str
    owner_id: int
    closing: bool
    backlog_seconds: float


class SessionRegistry:
    def __init__(self) -> None:
        self._sessions: dict[str, LiveSession] = {}
        self._opening: collections.Counter[int] = collections.Counter()  # owner -> sessions being opened

    @contextlib.contextmanager
    def opening(self, owner_id: int):
        """Count a session being opened (between the limit check and `add`, which awaits the
        database) so that two starts at once cannot both pass the limits."""
        self._opening[owner_id] += 1
        try:
            yield
        finally:
            self._opening[owner_id] -= 1

    def add(self, session: LiveSession) -> None:
        self._sessions[session.id] = session

    def remove(self, session: LiveSession) -> None:
        if self._sessions.get(session.id) is session:
            del self._sessions[session.id]

    def get(self, session_id: str) -> LiveSession | None:
        return self._sessions.get(session_id)

    def running(self) -> list[LiveSession]:
        """Sessions not yet closing."""
        return [s for s in self._sessions.values() if not s.closing]

    def count(self, *, owner_id: int | None = None) -> int:
        opening = sum(self._opening.values()) if owner_id is None else self._opening[owner_id]
        return opening + sum(1 for s in self.running() if owner_id is None or s.owner_id == owner_id)


sessions = SessionRegistry()


@metrics.on_refresh
def count_running() -> None:
    running = sessions.running()
    metrics.sessions_active.set(len(running))
    metrics.audio_backlog.set(sum(s.backlog_seconds for s in running))

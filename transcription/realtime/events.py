"""A session's events, in order: numbered once (`seq`), kept for replay, delivered.

EventLog is the one place `seq` is assigned. Outbox delivers each numbered event to the connection
attached to the session (if any) and to its live viewers, one at a time under its lock, so events
leave in `seq` order even when recognition, translation and the monitor produce them at once.
"""
from __future__ import annotations

import asyncio
import collections
import logging
from typing import Protocol

from .. import protocol, selectors
from .live_db import live_db

logger = logging.getLogger(__name__)

REPLAY_EVENTS = 2000  # recent events kept for an exact replay on resume


class EventLog:
    """Numbers a session's events and keeps the last REPLAY_EVENTS of them."""

    def __init__(self, size: int | None = None) -> None:
        self.seq = 0
        self._recent: collections.deque[dict] = collections.deque(maxlen=size or REPLAY_EVENTS)

    def reserve(self) -> int:
        """The next number, for an event whose row must be stored with it before it is sent."""
        self.seq += 1
        return self.seq

    def record(self, event: dict, seq: int | None = None) -> dict:
        event["seq"] = self.reserve() if seq is None else seq
        self._recent.append(event)
        return event

    def since(self, last_seq: int) -> list[dict] | None:
        """Every event after `last_seq`, or None when the window no longer reaches back that far."""
        if self._recent and self._recent[0]["seq"] <= last_seq + 1:
            return [event for event in self._recent if event["seq"] > last_seq]
        return None


class Sink(Protocol):
    """The connection currently attached to a session."""

    async def send_event(self, event: dict) -> None: ...

    async def replaced(self) -> None: ...


class Publisher(Protocol):
    def publish(self, event: dict) -> None: ...


class Outbox:
    """Numbered delivery: to the attached connection, if any, and to the session's viewers."""

    def __init__(self, log: EventLog, viewers: Publisher, name: str) -> None:
        self.log = log
        self.viewers = viewers
        self.name = name
        self.sink: Sink | None = None
        self.lock = asyncio.Lock()  # one event at a time, in seq order, also against a resume

    async def send(self, event: dict, *, seq: int | None = None, to_sink: bool = True) -> dict:
        """Number `event` (or give it the reserved `seq`) and deliver it; the caller holds the lock."""
        self.log.record(event, seq)
        self.viewers.publish(event)
        if to_sink and self.sink is not None:
            try:
                await self.sink.send_event(event)
            except Exception:  # the socket is going away; a resume replays what matters
                logger.info("session %s: event %d not delivered", self.name, event["seq"])
        return event

    async def replay(self, sink: Sink, *, last_seq: int, interim: dict | None, language: str | None) -> None:
        """What a resuming client missed after `last_seq` (the caller holds the lock). Normally every
        missed event is still in memory and the client sees `seq` without a gap; beyond the window it
        gets the finals from the database, and the interim. Translations into languages only viewers
        asked for (not `language`) are not the speaker's."""
        missed = self.log.since(last_seq)
        if missed is None:
            missed = await stored_events_after(self.name, last_seq)
            if interim is not None and interim["seq"] > last_seq:
                missed.append(interim)
        for event in missed:
            if event.get("type") != protocol.TRANSLATION or event.get("lang") == language:
                await sink.send_event(event)

    async def emit(self, event: dict, *, to_sink: bool = True) -> dict:
        """`send` for a caller that does not hold the lock."""
        async with self.lock:
            return await self.send(event, to_sink=to_sink)


async def stored_events_after(session_id: str, last_seq: int) -> list[dict]:
    """The stored finals and translations after `last_seq`, as events in seq order: a resume from
    beyond the replay window."""
    segments, translations = await live_db(selectors.transcript_after_seq)(
        session_id=session_id, last_seq=last_seq)
    events = [protocol.event_final_from_segment(s) for s in segments]
    events += [protocol.event_translation_done(t) for t in translations]
    return sorted(events, key=lambda event: event["seq"])

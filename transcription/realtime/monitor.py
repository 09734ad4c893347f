"""Watches one running session: idle, a hung engine, lag behind real time, and its maximum length."""
from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from django.conf import settings

from .. import protocol

logger = logging.getLogger(__name__)

MONITOR_INTERVAL = 0.5  # seconds between checks
LAG_REPORT_SECONDS = 2.0  # report lag beyond this much unrecognised audio
LAG_CLEAR_SECONDS = 0.5
LAG_REPEAT_SECONDS = 2.0  # while lagging, an update at most this often


class Watched(Protocol):
    """What the monitor needs of a session, and all it may touch."""

    id: str
    closing: bool
    audio_seconds: float
    backlog_seconds: float

    def idle_seconds(self) -> float: ...

    def engine_stalled(self, seconds: float) -> bool: ...

    def end_soon(self, reason: str) -> None: ...

    async def engine_hung(self) -> None: ...

    async def emit(self, event: dict) -> None: ...


class SessionMonitor:
    def __init__(self, session: Watched) -> None:
        self.session = session
        self.lagging = False
        self.lag_reported_at = 0.0

    async def run(self) -> None:
        session = self.session
        while not session.closing:
            await asyncio.sleep(MONITOR_INTERVAL)
            if session.closing:
                return
            if session.idle_seconds() > settings.STT_IDLE_SECONDS:
                session.end_soon(protocol.REASON_IDLE)
                return
            if session.engine_stalled(settings.STT_ENGINE_STALL_SECONDS):
                logger.error("session %s: engine took no audio for %.0f s: declared hung", session.id,
                             settings.STT_ENGINE_STALL_SECONDS)
                await session.engine_hung()
                return
            await self.check_lag(session.backlog_seconds)

    def check_length(self) -> None:
        """Called as audio arrives: at STT_MAX_SESSION_SECONDS of audio the session ends (the page
        starts the next one)."""
        session = self.session
        if session.audio_seconds >= settings.STT_MAX_SESSION_SECONDS and not session.closing:
            session.end_soon(protocol.REASON_MAX_LENGTH)

    async def check_lag(self, backlog: float) -> None:
        """`lag` events while the engine is behind (repeated at most every LAG_REPEAT_SECONDS), and a
        `lag` of 0 when it has caught up."""
        now = asyncio.get_running_loop().time()
        if backlog > LAG_REPORT_SECONDS or (self.lagging and backlog > LAG_CLEAR_SECONDS):
            if not self.lagging or now - self.lag_reported_at >= LAG_REPEAT_SECONDS:
                self.lagging, self.lag_reported_at = True, now
                await self.session.emit(protocol.event_lag(backlog))
        elif self.lagging:
            self.lagging = False
            await self.session.emit(protocol.event_lag(0.0))

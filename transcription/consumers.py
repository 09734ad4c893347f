"""WebSocket protocol only: validate frames, own one StreamingSession per "start", send events."""
from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.db import DatabaseError

from . import protocol, services
from .engines import EngineError, Result, StreamConfig, get_engine
from .engines.base import BYTES_PER_SECOND
from .models import TranscriptionSession
from .protocol import ProtocolError
from .streaming import StreamingSession

logger = logging.getLogger(__name__)

STORE_ATTEMPTS = 2


@dataclass
class ActiveSession:
    """What the connection knows about the session it is running."""

    id: object
    language: str
    stream: StreamingSession | None = None
    next_index: int = 0
    audio_bytes: int = 0
    last_interim: str = ""
    error_tasks: list[asyncio.Task] = field(default_factory=list)


class TranscriptionConsumer(AsyncWebsocketConsumer):
    active: ActiveSession | None = None
    user = None

    async def connect(self) -> None:
        user = self.scope.get("user")
        await self.accept()
        if user is None or not user.is_authenticated:
            # Accept then close, so clients can read the reason from the close code.
            await self.close(code=protocol.CLOSE_UNAUTHENTICATED)
            return
        self.user = user

    async def disconnect(self, code: int) -> None:
        # The phrase in progress is finalised and stored if the engine can within the close timeout.
        await self.end_active(reason="disconnect", timeout=settings.STT_CLOSE_TIMEOUT, notify=False)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.user is None:
            return
        try:
            if bytes_data is not None:
                await self.on_audio(bytes_data)
            else:
                message = protocol.parse_text(text_data or "", default_language=settings.STT_DEFAULT_LANGUAGE)
                if isinstance(message, protocol.Start):
                    await self.on_start(message)
                else:
                    await self.on_end()
        except ProtocolError as exc:
            await self.send_event(protocol.event_error(exc.code, exc.message))

    # ---- client messages ----

    async def on_start(self, message: protocol.Start) -> None:
        engine = get_engine()
        if not engine.supports_language(message.lang):
            raise ProtocolError(protocol.UNSUPPORTED_LANGUAGE, f"engine {engine.name!r} cannot recognise {message.lang!r}")
        if self.active is not None:  # a second start ends the first cleanly, its finals stored
            await self.end_active(reason="restart", timeout=settings.STT_END_TIMEOUT)
        record = await self.db_session_start(language=message.lang, engine=engine.name)
        active = ActiveSession(id=record.pk, language=message.lang)
        active.stream = StreamingSession(
            engine=engine,
            config=StreamConfig(language=message.lang),
            on_result=lambda result: self.on_result(active, result),
            on_error=lambda exc: self.on_engine_error(active, exc),
            max_backlog_seconds=settings.STT_MAX_BACKLOG_SECONDS,
            name=f"stt-{record.pk}",
        )
        self.active = active
        await self.send_event(protocol.event_started(session_id=record.pk, language=message.lang, engine=engine.name))
        active.stream.start()

    async def on_end(self) -> None:
        if self.active is None:
            raise ProtocolError(protocol.NOT_STARTED, "no session is running; send 'start' first")
        await self.end_active(reason="end", timeout=settings.STT_END_TIMEOUT)

    async def on_audio(self, data: bytes) -> None:
        protocol.check_audio(data)
        active = self.active
        if active is None or active.stream is None:
            raise ProtocolError(protocol.NOT_STARTED, "audio before 'start' is not accepted")
        if not active.stream.feed(data):
            raise ProtocolError(protocol.BUSY, "recognition is too far behind; this audio frame was not accepted")
        active.audio_bytes += len(data)

    # ---- results from the recognition thread (already on this connection's loop, in order) ----

    async def on_result(self, active: ActiveSession, result: Result) -> None:
        if not result.is_final:
            if result.text != active.last_interim and self.active is active:
                active.last_interim = result.text
                await self.send_event(protocol.event_interim(result))
            return
        active.last_interim = ""
        segment_id = await self.store_final(active, result)
        if segment_id is not None:
            await self.send_event(protocol.event_final(result, segment_id=segment_id))

    async def store_final(self, active: ActiveSession, result: Result) -> int | None:
        """A final is shown only once its row is committed; a failed write is retried, then reported."""
        for attempt in range(1, STORE_ATTEMPTS + 1):
            try:
                segment = await self.db_segment_create(session_id=active.id, index=active.next_index, result=result)
                active.next_index += 1
                return segment.pk
            except DatabaseError:
                logger.exception("storing final of session %s failed (attempt %d)", active.id, attempt)
                await asyncio.sleep(0.2 * attempt)
        await self.send_event(protocol.event_error(protocol.STORAGE, "a final transcript could not be saved"))
        return None

    async def on_engine_error(self, active: ActiveSession, exc: Exception) -> None:
        message = str(exc) if isinstance(exc, EngineError) else "recognition failed"
        await self.send_event(protocol.event_error(protocol.ENGINE_ERROR, message))
        if self.active is active:  # end it from outside the pump that is calling us
            active.error_tasks.append(asyncio.create_task(self.end_active(reason="error", timeout=5.0)))

    # ---- ending ----

    async def end_active(self, *, reason: str, timeout: float, notify: bool = True) -> None:
        active = self.active
        if active is None or active.stream is None:
            return
        self.active = None
        finished = await active.stream.finish(timeout)
        if active.stream.failed:
            status = TranscriptionSession.Status.FAILED
        elif reason == "disconnect":
            status = TranscriptionSession.Status.INTERRUPTED
        else:
            status = TranscriptionSession.Status.ENDED
        if not finished:
            logger.warning("session %s ended before its engine finished (%s)", active.id, reason)
        audio_ms = active.audio_bytes * 1000 // BYTES_PER_SECOND
        await self.db_session_finish(session_id=active.id, status=status, audio_ms=audio_ms)
        if notify:
            await self.send_event(protocol.event_ended(session_id=active.id, reason=reason))

    async def send_event(self, event: dict) -> None:
        await self.send(text_data=json.dumps(event, ensure_ascii=False))

    # ---- database helpers ----

    @database_sync_to_async
    def db_session_start(self, *, language: str, engine: str) -> TranscriptionSession:
        return services.session_start(owner=self.user, language=language, engine=engine)

    @database_sync_to_async
    def db_segment_create(self, *, session_id, index: int, result: Result):
        return services.segment_create(session_id=session_id, index=index, result=result)

    @database_sync_to_async
    def db_session_finish(self, *, session_id, status: str, audio_ms: int) -> None:
        services.session_finish(session_id=session_id, status=status, audio_ms=audio_ms)

"""A stream pulled by URL as an ordinary live session: stored finals, viewers, translation, speakers,
corrections, the second pass. Only the audio's way in differs: a reader thread (sources/streams.py)
instead of a socket.

The session runs on the server's event loop, like a socket's: the API view (a sync view under daphne)
calls `begin` through asgiref's async_to_sync, which runs it on that loop, and the session goes on
after the request has been answered. It is fed at the stream's own pace: never more than LEAD_SECONDS
ahead of real time, so a finished recording served as HLS is captioned as it would be watched. It
ends when the stream ends (`source_ended`), when it is lost (`source_lost`, with the reason kept on
the session), when the owner stops it (`end`), or at the session limits (`max_length`, `shutdown`).
"""
from __future__ import annotations

import asyncio
import contextvars
import logging
import queue
import threading
from dataclasses import dataclass

from asgiref.sync import async_to_sync
from django.conf import settings

from .. import admission as rules
from .. import protocol, services
from ..audio import BYTES_PER_SECOND
from ..engines import get_engine
from ..realtime import admission
from ..realtime.live_db import live_db
from ..realtime.session import LiveSession, Refusal
from .stream_urls import SourceNotAllowed
from .streams import PulledStream, StreamError

logger = logging.getLogger(__name__)

LEAD_SECONDS = 2.0  # fed at most this far ahead of real time
CHUNK_BYTES = BYTES_PER_SECOND // 10  # 100 ms frames to the session
QUEUE_CHUNKS = 50  # 5 s between the reader thread and the session
POLL_SECONDS = 0.05


class NoServerLoop(Exception):
    """Not under the ASGI server (e.g. Django's test client): nothing would keep the session running."""


# What `start` may refuse with, each carrying a documented `code` (the API's 400s, the page's message).
REFUSALS = (SourceNotAllowed, StreamError, protocol.ProtocolError)


@dataclass(frozen=True)
class _Ended:
    """How the stream ended, the reader thread's last item."""

    reason: str
    code: str = ""
    message: str = ""


async def begin(admitted: admission.Admission, *, user, stream: PulledStream) -> str:
    """Open the session for an opened stream and start pulling; its id. Refusals as ProtocolError."""
    if threading.current_thread() is not threading.main_thread():  # async_to_sync made a loop of its own
        raise NoServerLoop("streams are pulled by the ASGI server (daphne, `make run`)")
    session = await admission.open_session(admitted, user=user, source_url=stream.target.redacted)
    await session.start(None)
    session.spawn(pump(session, stream))
    session.spawn(keep_alive(session))
    logger.info("session %s pulls %s", session.id, stream.target.redacted)
    return session.id


async def _begin_detached(admitted: admission.Admission, *, user, stream: PulledStream) -> str:
    """`begin` in a context of its own: the session's tasks outlive this request, so they must not
    inherit its context (asgiref's executor for the request's thread, gone once it is answered)."""
    return await asyncio.get_running_loop().create_task(begin(admitted, user=user, stream=stream),
                                                        context=contextvars.Context())


async def pump(session: LiveSession, stream: PulledStream) -> None:
    chunks: queue.Queue = queue.Queue(maxsize=QUEUE_CHUNKS)
    reader = threading.Thread(target=read, args=(stream, chunks), name=f"pull-{session.id}", daemon=True)
    reader.start()
    loop = asyncio.get_running_loop()
    ended, started, fed = None, None, 0
    silence_limit = no_audio_seconds()
    heard = loop.time()
    try:
        while not session.closing:
            try:
                item = chunks.get_nowait()
            except queue.Empty:  # the reader is reconnecting, or the source sends nothing that is audio
                if loop.time() - heard > silence_limit:  # (whatever the reader is stuck in)
                    ended = _Ended(protocol.REASON_SOURCE_LOST, protocol.SOURCE_LOST,
                                   f"no audio came from the stream for {silence_limit:g} s")
                    break
                session.touch()  # (not STT_IDLE_SECONDS: a reconnecting stream is bounded by the line above)
                await asyncio.sleep(POLL_SECONDS)
                continue
            heard = loop.time()
            if isinstance(item, _Ended):
                ended = item
                break
            if started is None:
                started = loop.time()
                if stream.start_seconds is not None:
                    await live_db(services.session_stream_started)(
                        session_id=session.id, start_ms=round(stream.start_seconds * 1000))
            ahead = fed / BYTES_PER_SECOND - (loop.time() - started) - LEAD_SECONDS
            if ahead > 0:
                await asyncio.sleep(ahead)
            refusal = session.feed(item)
            while refusal is Refusal.BUSY:  # the engine is behind: hold the stream (its reader waits)
                await asyncio.sleep(0.2)
                refusal = session.feed(item)
            if refusal is not None:
                break
            fed += len(item)
    finally:
        stream.stop()  # (the reader thread closes its connection)
    if ended is None or session.closing:
        return
    if ended.code:
        await live_db(services.session_note_failure)(
            session_id=session.id, code=ended.code, message=ended.message)
        await session.emit(protocol.event_error(ended.code, ended.message))
    await session.end(reason=ended.reason)


def no_audio_seconds() -> float:
    """How long a pulled session waits for audio, reconnections included, before it ends `source_lost`:
    STT_STREAM_STALL_SECONDS for each connection it may try."""
    return settings.STT_STREAM_STALL_SECONDS * (settings.STT_STREAM_RECONNECTS + 1)


async def keep_alive(session: LiveSession) -> None:
    """Signs of life on the session's row while it runs here: a process that was killed stops giving
    them, and any process's watchdog then ends the session (services.sessions_end_orphaned_streams)."""
    while not session.closing:
        await asyncio.sleep(settings.STT_STREAM_STALE_SECONDS / 4)
        try:
            await live_db(services.session_stream_alive)(session_id=session.id)
        except Exception:  # the database is away a moment: the next beat will do
            logger.warning("session %s: no sign of life stored", session.id, exc_info=True)


def read(stream: PulledStream, chunks: queue.Queue) -> None:
    """The reader thread: the stream's audio in 100 ms chunks, then how it ended."""
    pending, ended = b"", None
    try:
        for data in stream.chunks():
            pending += data
            while len(pending) >= CHUNK_BYTES:
                if not _put(chunks, pending[:CHUNK_BYTES], stream):
                    return
                pending = pending[CHUNK_BYTES:]
        if pending and not _put(chunks, pending, stream):
            return
        ended = _Ended(protocol.REASON_SOURCE_ENDED)
    except (StreamError, SourceNotAllowed) as exc:
        ended = _Ended(protocol.REASON_SOURCE_LOST, exc.code, str(exc))
    except Exception as exc:  # a boundary: the session still ends, with the reason (its secrets hidden)
        reason = stream.target.scrub(f"{type(exc).__name__}: {exc}")
        logger.error("stream %s failed: %s", stream.target.redacted, reason)
        ended = _Ended(protocol.REASON_SOURCE_LOST, protocol.SOURCE_LOST, f"the stream failed: {reason}")
    finally:
        stream.disconnect()
    if ended is not None:
        _put(chunks, ended, stream)


def _put(chunks: queue.Queue, item, stream: PulledStream) -> bool:
    """Wait for room (the session is behind), unless the stream was stopped; False then."""
    while not stream.stop_event.is_set():
        try:
            chunks.put(item, timeout=0.5)
            return True
        except queue.Full:
            continue
    return False


def start(*, user, url: str, fields: dict) -> str:
    """POST /api/sessions/ with a `source_url` (a sync view): the URL checked, the session's fields
    checked, the stream opened once, then the session begun on the server's loop; its id.

    Raises SourceNotAllowed, ProtocolError (a field, or a limit), StreamError (the stream could not
    be opened) or NoServerLoop; nothing is stored and nothing keeps running after any of them."""
    stream = PulledStream(url, stall_seconds=settings.STT_STREAM_STALL_SECONDS,
                          reconnects=settings.STT_STREAM_RECONNECTS)  # the URL's check: no connection yet
    message = protocol.parse_start_fields(fields, default_language=settings.STT_DEFAULT_LANGUAGE)
    translator = rules.check_language(language=message.lang, translate_to=message.translate_to or "")
    stream.open()
    try:
        return async_to_sync(_begin_detached)(admission.Admission(message, get_engine(), translator), user=user,
                                              stream=stream)
    except BaseException:
        stream.close()
        raise

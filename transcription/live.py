"""LiveSession: one recognition session, which can outlive the socket that started it.

It numbers every session event (`seq`), stores each final before it is sent, and keeps running
for STT_RESUME_SECONDS after its socket drops, so a client that reconnects and sends `resume`
gets the finals it missed (from the database) and carries on with the same recognition state.
Sessions live in this process's registry: a resume must reach the same process (sticky routing).
"""
from __future__ import annotations

import asyncio
import collections
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import AsyncIterator, Callable, Iterator, Protocol

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import DatabaseError

from . import protocol, selectors, services
from .broadcast import Broadcaster
from .engines import EngineError, Recognizer, Result, StreamConfig
from .engines.base import BYTES_PER_SECOND
from .models import TranscriptionSession
from .recording import recorder_for
from .streaming import StreamingSession
from .translation import Translator

logger = logging.getLogger(__name__)

STORE_ATTEMPTS = 2
MONITOR_INTERVAL = 0.5  # seconds between idle and lag checks
LAG_REPORT_SECONDS = 2.0  # report lag beyond this much unrecognised audio
LAG_CLEAR_SECONDS = 0.5
LAG_REPEAT_SECONDS = 2.0  # while lagging, an update at most this often
REPLAY_EVENTS = 2000  # recent events kept for an exact replay on resume


class Sink(Protocol):
    """Where a session's events go: the connection currently attached to it."""

    async def send_event(self, event: dict) -> None: ...

    async def replaced(self) -> None: ...


class LiveSession:
    _registry: dict[str, LiveSession] = {}

    def __init__(
        self,
        *,
        record: TranscriptionSession,
        engine: Recognizer,
        config: StreamConfig,
        translator: Translator | None = None,
        translate_to: str | None = None,
    ) -> None:
        self.id = str(record.pk)
        self.owner_id = record.owner_id
        self.language = config.language
        self.engine_name = engine.name
        self.seq = 0
        self.next_index = 0  # index of the phrase in progress = next segment's index
        self.revision = 0
        self.current_interim: dict | None = None
        self.audio_bytes = 0
        self.sink: Sink | None = None
        self.closing = False
        self.lagging = False
        self._lag_reported_at = 0.0
        self._loop = asyncio.get_running_loop()
        self.last_activity = self._loop.time()
        self._lock = asyncio.Lock()  # one event at a time, in seq order, also against a resume
        self._ended = asyncio.Event()
        self._expiry: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task] = set()
        self._recent: collections.deque[dict] = collections.deque(maxlen=REPLAY_EVENTS)
        self.viewers = Broadcaster(self.id)  # live captions for people watching, on any process
        # Translation runs beside recognition: its own queue, task and thread, so it never delays a final.
        self.translator = translator if translate_to else None
        self.translate_to = translate_to
        self._translation_jobs: asyncio.Queue[tuple | None] = asyncio.Queue()
        self._translation_task: asyncio.Task | None = None
        self._translation_thread: ThreadPoolExecutor | None = None
        self._context: collections.deque[str] = collections.deque(maxlen=settings.STT_TRANSLATION_CONTEXT)
        self.stream = StreamingSession(
            engine=engine,
            config=config,
            on_result=self._on_result,
            on_error=self._on_error,
            max_backlog_seconds=settings.STT_MAX_BACKLOG_SECONDS,
            name=f"stt-{self.id}",
            recorder=recorder_for(record.pk),
        )

    # ---- registry ----

    @classmethod
    def get(cls, session_id: str) -> LiveSession | None:
        return cls._registry.get(session_id)

    @classmethod
    def active_count(cls, owner_id: int | None = None) -> int:
        return sum(1 for s in cls._registry.values() if not s.closing and (owner_id is None or s.owner_id == owner_id))

    # ---- lifecycle ----

    async def start(self, sink: Sink) -> None:
        self.sink = sink
        self._registry[self.id] = self
        self.viewers.start()
        async with self._lock:
            await self._send(protocol.event_started(
                session_id=self.id, language=self.language, engine=self.engine_name, translate_to=self.translate_to
            ))
        self.stream.start()
        self._spawn(self._monitor())
        if self.translator is not None:
            self._translation_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"stt-tr-{self.id[:8]}")
            self._translation_task = self._spawn(self._translate_worker())

    def detach(self, sink: Sink) -> None:
        """The socket dropped: keep recognising and storing; end if nobody resumes in time."""
        if self.sink is not sink or self.closing:
            return
        self.sink = None
        self._expiry = self._loop.call_later(
            settings.STT_RESUME_SECONDS, lambda: self._spawn(self.end(reason="disconnect", timeout=settings.STT_CLOSE_TIMEOUT))
        )

    async def attach(self, sink: Sink, *, last_seq: int) -> None:
        """A client resumes: replay what it missed after `last_seq`, then send it new events.

        Normally every missed event is still in memory and the client sees `seq` without a gap. If
        it missed more than REPLAY_EVENTS, it gets the finals from the database and the interim.
        """
        async with self._lock:
            if self._expiry is not None:
                self._expiry.cancel()
                self._expiry = None
            previous, self.sink = self.sink, None
            if previous is not None and previous is not sink:
                await previous.replaced()
            await sink.send_event(protocol.event_resumed(session_id=self.id, last_seq=last_seq))
            if self._recent and self._recent[0]["seq"] <= last_seq + 1:
                missed = [event for event in self._recent if event["seq"] > last_seq]
            else:
                stored = await database_sync_to_async(selectors.segments_after_seq)(session_id=self.id, last_seq=last_seq)
                translated = await database_sync_to_async(selectors.translations_after_seq)(
                    session_id=self.id, last_seq=last_seq
                )
                missed = [protocol.event_final_from_segment(segment) for segment in stored]
                missed += [protocol.event_translation_done(translation) for translation in translated]
                missed.sort(key=lambda event: event["seq"])
                if self.current_interim is not None and self.current_interim["seq"] > last_seq:
                    missed.append(self.current_interim)
            for event in missed:
                await sink.send_event(event)
            self.sink = sink
        self.touch()

    async def end(self, *, reason: str, timeout: float | None = None, notify: bool = True) -> None:
        """Finish the audio received, store the last phrase, mark the session over, say `ended`."""
        if self.closing:
            await self._ended.wait()
            return
        self.closing = True
        if self._expiry is not None:
            self._expiry.cancel()
        timeout = settings.STT_END_TIMEOUT if timeout is None else timeout
        finished = await self.stream.finish(timeout)
        if not finished:
            logger.warning("session %s ended before its engine finished (%s)", self.id, reason)
        await self._finish_translations(timeout)
        if self.stream.failed:
            status = TranscriptionSession.Status.FAILED
            if reason != "shutdown":  # the engine failed while finishing: not a clean end
                reason = "error"
        elif reason == "disconnect":
            status = TranscriptionSession.Status.INTERRUPTED
        else:
            status = TranscriptionSession.Status.ENDED
        await database_sync_to_async(services.session_finish)(
            session_id=self.id,
            status=status,
            audio_ms=self.audio_bytes * 1000 // BYTES_PER_SECOND,
            audio_kept=self.stream.recorder is not None,
        )
        async with self._lock:
            ended = protocol.event_ended(session_id=self.id, reason=reason)
            if notify:
                await self._send(ended)
            else:  # the speaker's socket is gone; viewers are still told
                self.seq += 1
                self.viewers.publish(dict(ended, seq=self.seq))
        await self.viewers.close()
        self._registry.pop(self.id, None)
        others = [task for task in self._tasks if task is not asyncio.current_task()]
        for task in others:
            task.cancel()
        self._ended.set()
        await asyncio.gather(*others, return_exceptions=True)  # none left pending (e.g. at shutdown)

    # ---- client input ----

    def touch(self) -> None:
        self.last_activity = self._loop.time()

    def feed(self, data: bytes) -> bool:
        self.touch()
        if not self.stream.feed(data):
            return False
        self.audio_bytes += len(data)
        if self.audio_bytes >= settings.STT_MAX_SESSION_SECONDS * BYTES_PER_SECOND and not self.closing:
            self._spawn(self.end(reason="max_length"))  # the page starts the next session itself
        return True

    @property
    def accepting(self) -> bool:
        """False once the session is closing or its engine failed: audio is no longer wanted."""
        return not self.closing and self.stream.accepting

    def finalize(self) -> None:
        self.touch()
        self.stream.finalize()

    # ---- results (on the loop, in order) ----

    async def _on_result(self, result: Result) -> None:
        async with self._lock:
            if not result.is_final:
                if self.current_interim is not None and self.current_interim["text"] == result.text:
                    return  # unchanged: not repeated
                self.revision += 1
                event = protocol.event_interim(result, phrase=self.next_index, revision=self.revision)
                self.current_interim = await self._send(event)
                return
            self.current_interim = None
            self.revision = 0
            self.seq += 1
            segment = await self._store(result, seq=self.seq)
            if segment is None:
                await self._send(protocol.event_error(protocol.STORAGE, "a final transcript could not be saved"), seq=self.seq)
                return
            self.next_index += 1
            await self._send(protocol.event_final_from_segment(segment), seq=self.seq)
            if self.translator is not None:
                self._translation_jobs.put_nowait((segment.pk, result.text, result.audio, result.language, tuple(self._context)))
            self._context.append(result.text)

    async def _store(self, result: Result, *, seq: int):
        """A final is shown only once its row is committed; a failed write is retried, then reported."""
        for attempt in range(1, STORE_ATTEMPTS + 1):
            try:
                return await database_sync_to_async(services.segment_create)(
                    session_id=self.id, index=self.next_index, seq=seq, result=result
                )
            except DatabaseError:
                logger.exception("storing final of session %s failed (attempt %d)", self.id, attempt)
                await asyncio.sleep(0.2 * attempt)
        return None

    async def _on_error(self, exc: Exception) -> None:
        message = str(exc) if isinstance(exc, EngineError) else "recognition failed"
        code = exc.code if isinstance(exc, EngineError) else protocol.ENGINE_ERROR
        async with self._lock:
            await self._send(protocol.event_error(code, message))
        self._spawn(self.end(reason="error", timeout=5.0))  # from outside the pump calling us

    async def _send(self, event: dict, *, seq: int | None = None) -> dict:
        """Number the event and send it to the attached client, if any (caller holds the lock)."""
        if seq is None:
            self.seq += 1
            seq = self.seq
        event["seq"] = seq
        self._recent.append(event)
        self.viewers.publish(event)
        if self.sink is not None:
            try:
                await self.sink.send_event(event)
            except Exception:  # the socket is going away; resume replays what matters
                logger.info("session %s: event %d not delivered", self.id, seq)
        return event

    # ---- translation ----

    async def _translate_worker(self) -> None:
        while (job := await self._translation_jobs.get()) is not None:
            await self._translate(*job)

    async def _translate(self, segment_id: int, text: str, audio: bytes, language: str | None, context: tuple) -> None:
        """Stream one phrase's translation; store it before `done`; retry once; report a failure."""
        source = language or self.language
        for attempt in (1, 2):
            pieces: list[str] = []
            try:
                deltas = self._in_thread(lambda: self.translator.translate(
                    text, source=source, target=self.translate_to, audio=audio, context=context))
                async for delta in deltas:
                    pieces.append(delta)
                    async with self._lock:
                        await self._send(protocol.event_translation(
                            segment_id=segment_id, language=self.translate_to, text=delta, done=False))
                async with self._lock:
                    self.seq += 1
                    translation = await database_sync_to_async(services.translation_create)(
                        segment_id=segment_id, language=self.translate_to, text="".join(pieces).strip(),
                        engine=self.translator.name, seq=self.seq,
                    )
                    await self._send(protocol.event_translation_done(translation), seq=self.seq)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a boundary: one phrase's translation never ends the session
                logger.warning("translation of segment %s failed (attempt %d): %s", segment_id, attempt, exc)
                message = str(exc) or exc.__class__.__name__
        async with self._lock:
            await self._send(protocol.event_translation_failed(segment_id=segment_id, message=message))

    async def _in_thread(self, make: Callable[[], Iterator[str]]) -> AsyncIterator[str]:
        """Run a blocking iterator on the session's translation thread, yielding its items here."""
        items: asyncio.Queue[tuple[str, object]] = asyncio.Queue()
        post = self._loop.call_soon_threadsafe

        def run() -> None:
            try:
                for item in make():
                    post(items.put_nowait, ("item", item))
                post(items.put_nowait, ("done", None))
            except BaseException as exc:  # handed to the loop, raised there
                post(items.put_nowait, ("error", exc))

        self._translation_thread.submit(run)
        while True:
            kind, value = await items.get()
            if kind == "done":
                return
            if kind == "error":
                raise value  # type: ignore[misc]
            yield value  # type: ignore[misc]

    async def _finish_translations(self, timeout: float) -> None:
        """Translations of the last finals are sent (and stored) before `ended`, within `timeout`."""
        if self._translation_task is None:
            return
        self._translation_jobs.put_nowait(None)
        try:
            await asyncio.wait_for(asyncio.shield(self._translation_task), timeout)
        except asyncio.TimeoutError:
            logger.warning("session %s: translations unfinished at the end", self.id)
            self._translation_task.cancel()
        self._translation_thread.shutdown(wait=False, cancel_futures=True)

    # ---- idle and lag ----

    async def _monitor(self) -> None:
        while not self.closing:
            await asyncio.sleep(MONITOR_INTERVAL)
            if self.closing:
                return
            if self._loop.time() - self.last_activity > settings.STT_IDLE_SECONDS:
                self._spawn(self.end(reason="idle"))
                return
            if self.stream.audio.stalled(settings.STT_ENGINE_STALL_SECONDS):
                logger.error("session %s: engine took no audio for %.0f s: declared hung", self.id,
                             settings.STT_ENGINE_STALL_SECONDS)
                await self.stream.fail(EngineError("the recognition engine stopped responding"))
                return
            backlog = self.stream.audio.backlog_seconds
            now = self._loop.time()
            if backlog > LAG_REPORT_SECONDS or (self.lagging and backlog > LAG_CLEAR_SECONDS):
                if not self.lagging or now - self._lag_reported_at >= LAG_REPEAT_SECONDS:
                    self.lagging, self._lag_reported_at = True, now
                    async with self._lock:
                        await self._send(protocol.event_lag(backlog))
            elif self.lagging:
                self.lagging = False
                async with self._lock:
                    await self._send(protocol.event_lag(0.0))

    def _spawn(self, coro) -> asyncio.Task:
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

"""LiveSession: one running recognition session, which can outlive the socket that started it.

It is composed of small parts, each with one job:
- Recognition (recognition.py): the audio queue and the engine's thread;
- Outbox + EventLog (events.py): numbering (`seq`), the replay window, ordered delivery;
- TranscriptWriter (writer.py): every final stored before it is sent;
- SessionTranslations (translations.py): each final translated beside recognition, into the
  speaker's language and every language a viewer asked for;
- ControlListener (control.py): corrections and viewers' languages, from any process;
- SessionMonitor (monitor.py): idle, hang, lag, maximum length;
- Broadcaster (broadcast.py): live viewers on any process.
After its socket drops the session runs for STT_RESUME_SECONDS, so a client that sends `resume` gets
what it missed and carries on with the same recognition state.
"""
from __future__ import annotations

import asyncio
import enum
import logging

from django.conf import settings

from .. import metrics, protocol, services
from ..engines import EngineError, Recognizer, StreamConfig
from ..engines.base import BYTES_PER_SECOND
from ..models import TranscriptionSession
from ..recording import audio_path_for
from ..speakers import SpeakerLabeller
from ..translation import Translator
from .broadcast import Broadcaster
from .control import (
    CORRECTION,
    RENAME_SPEAKERS,
    STOP,
    WANT_TRANSLATION,
    ControlListener,
)
from .events import EventLog, Outbox, Sink
from .live_db import live_db
from .monitor import SessionMonitor
from .recognition import Recognition
from .registry import sessions
from .results import Results
from .translations import SessionTranslations
from .writer import TranscriptWriter

logger = logging.getLogger(__name__)


class Refusal(enum.Enum):
    """Why `feed` did not take a frame."""

    BUSY = "busy"  # the engine is too far behind: the client may send it again later
    ENDED = "ended"  # the session is over (or its engine failed): a new `start` is needed
    FAILING = "failing"  # its engine failed a moment ago; its error and `ended` follow at once


class VoiceNames:
    """A speaker whose voice matched one the owner enrolled: the name is stored, then announced."""

    def __init__(self, session: LiveSession) -> None:
        self.session = session

    def recognised(self, label: str, name: str) -> None:
        """(the labelling thread)"""
        self.session._loop.call_soon_threadsafe(self.session.spawn, self.announce(label, name))

    async def announce(self, label: str, name: str) -> None:
        names = await self.session.writer.voice_named(label=label, name=name)
        if names is not None:
            await self.session.outbox.emit(protocol.event_speakers(names))


class LiveSession:
    def __init__(self, *, record: TranscriptionSession, engine: Recognizer, config: StreamConfig,
                 translator: Translator | None = None, translate_to: str | None = None,
                 speakers: bool = False, voices=()) -> None:
        self.id = str(record.pk)
        self.owner_id = record.owner_id
        self.language = record.language  # (the stored form: languages.language_tag)
        self.engine_name = engine.name
        self.translate_to = translate_to if translator is not None else None
        self.closing = False
        self.audio_bytes = 0
        self.delays = metrics.FinalDelays(engine.name)
        self._loop = asyncio.get_running_loop()
        self.last_activity = self._loop.time()
        self._ended = asyncio.Event()
        self._expiry: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task] = set()
        self.viewers = Broadcaster(self.id)
        self.outbox = Outbox(EventLog(), self.viewers, self.id)
        self.writer = TranscriptWriter(self.id)
        audio_path = audio_path_for(record.pk)
        self.translations = SessionTranslations(session_id=self.id, language=self.language, outbox=self.outbox,
                                                writer=self.writer, context_size=settings.STT_TRANSLATION_CONTEXT,
                                                audio_path=audio_path,
                                                max_viewer_languages=settings.STT_MAX_VIEWER_LANGUAGES)
        self.results = Results(outbox=self.outbox, writer=self.writer, translations=self.translations,
                               delays=self.delays)
        self.recognition = Recognition(engine=engine, config=config, on_result=self.results.handle,
                                       on_error=self._on_error, max_backlog_seconds=settings.STT_MAX_BACKLOG_SECONDS,
                                       name=f"stt-{self.id}", audio_path=audio_path,
                                       labeller=SpeakerLabeller(voices, on_named=VoiceNames(self).recognised)
                                       if speakers else None)
        self._translator = translator
        self.monitor = SessionMonitor(self)
        self.control = ControlListener(self.id, self._on_control)

    @property
    def seq(self) -> int:  # the number of the last event
        return self.outbox.log.seq

    @property
    def sink(self) -> Sink | None:  # the speaker's socket; None while it is away
        return self.outbox.sink

    @property
    def audio_seconds(self) -> float:
        return self.audio_bytes / BYTES_PER_SECOND

    @property
    def backlog_seconds(self) -> float:  # audio accepted and not yet taken by the engine
        return self.recognition.audio.backlog_seconds

    # ---- lifecycle ----

    async def start(self, sink: Sink) -> None:
        self.outbox.sink = sink
        sessions.add(self)
        self.viewers.start()
        await self.outbox.emit(protocol.event_started(
            session_id=self.id, language=self.language, engine=self.engine_name, translate_to=self.translate_to))
        self.recognition.start()
        self.spawn(self.monitor.run())
        self.spawn(self.control.run())
        if self.translate_to:
            self.translations.start(self._translator, self.translate_to, for_speaker=True)

    def detach(self, sink: Sink) -> None:
        """The socket dropped: keep recognising and storing; end if nobody resumes in time."""
        if self.outbox.sink is not sink or self.closing:
            return
        self.outbox.sink = None
        self._expiry = self._loop.call_later(settings.STT_RESUME_SECONDS, lambda: self.spawn(
            self.end(reason=protocol.REASON_DISCONNECT, timeout=settings.STT_CLOSE_TIMEOUT)))

    async def attach(self, sink: Sink, *, last_seq: int) -> None:
        """A client resumes: replay what it missed after `last_seq` (Outbox.replay), then new events."""
        async with self.outbox.lock:
            if self._expiry is not None:
                self._expiry.cancel()
                self._expiry = None
            previous, self.outbox.sink = self.outbox.sink, None
            if previous is not None and previous is not sink:
                await previous.replaced()
            await sink.send_event(protocol.event_resumed(session_id=self.id, last_seq=last_seq))
            await self.outbox.replay(sink, last_seq=last_seq, interim=self.results.current_interim,
                                     language=self.translate_to)
            self.outbox.sink = sink
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
        if not await self.recognition.finish(timeout):
            logger.warning("session %s ended before its engine finished (%s)", self.id, reason)
        await self.translations.finish(timeout)
        await self.results.settle(timeout=2.0)
        status = TranscriptionSession.Status.ENDED
        if self.recognition.failed:
            status = TranscriptionSession.Status.FAILED
            if reason != protocol.REASON_SHUTDOWN:  # the engine failed while finishing: not a clean end
                reason = protocol.REASON_ERROR
        elif reason in (protocol.REASON_DISCONNECT, protocol.REASON_SOURCE_LOST):
            status = TranscriptionSession.Status.INTERRUPTED
        await live_db(services.session_finish)(
            session_id=self.id, status=status, audio_ms=self.audio_bytes * 1000 // BYTES_PER_SECOND,
            audio_kept=self.recognition.audio_path is not None)
        async with self.outbox.lock:  # (the speaker's socket may be gone: viewers are still told)
            await self.outbox.send(protocol.event_ended(session_id=self.id, reason=reason), to_sink=notify)
        await self.viewers.close()
        await self.control.stop()
        sessions.remove(self)
        others = [task for task in self._tasks if task is not asyncio.current_task()]
        for task in others:
            task.cancel()
        self._ended.set()
        await asyncio.gather(*others, return_exceptions=True)  # none left pending (e.g. at shutdown)

    # ---- client input ----

    def touch(self) -> None:
        self.last_activity = self._loop.time()

    def idle_seconds(self) -> float:
        return self._loop.time() - self.last_activity

    def feed(self, data: bytes) -> Refusal | None:
        """Take a frame of audio, or say why not."""
        self.touch()
        if self.closing or not self.recognition.accepting:
            return Refusal.ENDED if self.closing or self.recognition.failed else Refusal.FAILING
        if not self.recognition.feed(data):
            return Refusal.BUSY
        self.audio_bytes += len(data)
        self.delays.arrived(self.audio_bytes * 1000 // BYTES_PER_SECOND)
        self.monitor.check_length()
        return None

    # ---- what the monitor uses (monitor.Watched) ----

    def engine_stalled(self, seconds: float) -> bool:
        return self.recognition.audio.stalled(seconds)

    async def engine_hung(self) -> None:
        await self.recognition.fail(EngineError("the recognition engine stopped responding"))

    def end_soon(self, reason: str) -> None:
        self.spawn(self.end(reason=reason))

    async def emit(self, event: dict) -> None:
        await self.outbox.emit(event)

    def finalize(self) -> int:
        """The phrase in progress becomes a final; the number to wait for with `recognition.finalized`."""
        self.touch()
        return self.recognition.finalize()

    async def _on_control(self, message: dict) -> None:
        """A correction or speakers' names to announce, or a language a viewer wants (control.py)."""
        if message["type"] in (CORRECTION, RENAME_SPEAKERS):
            await self.outbox.emit(protocol.event_correction(segment_id=message["segment"], text=message["text"])
                                   if message["type"] == CORRECTION else protocol.event_speakers(message["names"]))
        elif message["type"] == WANT_TRANSLATION and not self.closing:
            await self.translations.want(message["language"])
        elif message["type"] == STOP:
            self.end_soon(protocol.REASON_END)

    async def _on_error(self, exc: EngineError) -> None:
        await self.outbox.emit(protocol.event_error(protocol.ENGINE_CODES[exc.kind], str(exc)))
        self.spawn(self.end(reason=protocol.REASON_ERROR, timeout=5.0))  # from outside the pump calling us

    def spawn(self, coro) -> asyncio.Task:
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

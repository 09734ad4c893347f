"""A session's live translations: each final translated beside recognition, never in its way.

A session is translated into the language its speaker asked for and into every language one of its
viewers asked for, each once however many viewers want it (SessionTranslations). Per language, finals
queue in a TranslationPipeline; one task translates them in order, each in a thread of its own
through the bridge, streaming the deltas as `translation` events. The whole text is stored before
the `done` event; a failure is retried once, then reported as `translation_failed` for that phrase.
"""
from __future__ import annotations

import asyncio
import collections
import logging
from pathlib import Path
from typing import Callable

from .. import metrics, protocol, selectors
from ..recording import read_span_at
from ..translation import Translator, get_translator
from .bridge import ThreadStream
from .events import Outbox
from .live_db import live_db
from .writer import TranscriptWriter

logger = logging.getLogger(__name__)

MAX_WAITING = 200  # finals waiting for their translation; beyond it one is reported as failed


class TranslationPipeline:
    def __init__(self, *, translator: Translator, target: str, language: str, outbox: Outbox,
                 writer: TranscriptWriter, context_size: int, for_speaker: bool = True) -> None:
        self.translator = translator
        self.target = target
        self.for_speaker = for_speaker  # False: only viewers asked for this language
        self.language = language  # the session's, for finals that carry none
        self.outbox = outbox
        self.writer = writer
        self.context: collections.deque[str] = collections.deque(maxlen=context_size)
        self.jobs: asyncio.Queue[tuple | None] = asyncio.Queue(maxsize=MAX_WAITING)
        self.task: asyncio.Task | None = None

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._work())

    async def add(self, *, segment_id: int, text: str, audio: bytes | Callable[[], bytes], language: str | None) -> None:
        """Queue a stored final (the caller holds the outbox lock). `audio` may be a function that
        reads it (run in the translation's thread: file reads stay off the loop)."""
        try:
            self.jobs.put_nowait((segment_id, text, audio, language or self.language, tuple(self.context)))
        except asyncio.QueueFull:
            await self.outbox.send(protocol.event_translation_failed(
                segment_id=segment_id, message="translations are too far behind; this phrase was skipped"),
                to_sink=self.for_speaker)
        self.context.append(text)

    async def finish(self, timeout: float) -> None:
        """Translations of the last finals are sent (and stored) before `ended`, within `timeout`."""
        if self.task is None:
            return
        try:
            await asyncio.wait_for(self.jobs.put(None), timeout)
            await asyncio.wait_for(asyncio.shield(self.task), timeout)
        except asyncio.TimeoutError:
            logger.warning("translations unfinished at the end (%s)", self.outbox.name)
            self.task.cancel()

    async def _work(self) -> None:
        while (job := await self.jobs.get()) is not None:
            await self._translate(*job)

    async def _translate(self, segment_id: int, text: str, audio, source: str, context: tuple) -> None:
        """Stream one phrase's translation; store it before `done`; retry once; report a failure."""
        message = ""
        for attempt in (1, 2):
            pieces: list[str] = []
            deltas = ThreadStream(lambda: self.translator.translate(
                text, source=source, target=self.target, audio=audio() if callable(audio) else audio, context=context),
                name=f"stt-tr-{self.outbox.name[:8]}")
            try:
                async for delta in deltas.start():
                    pieces.append(delta)
                    await self.outbox.emit(protocol.event_translation(
                        segment_id=segment_id, language=self.target, text=delta, done=False), to_sink=self.for_speaker)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a boundary: one phrase's translation never ends the session
                logger.warning("translation of segment %s failed (attempt %d): %s", segment_id, attempt, exc)
                message = str(exc) or exc.__class__.__name__
                continue
            async with self.outbox.lock:
                seq = self.outbox.log.reserve()
                translation = await self.writer.translation(
                    segment_id=segment_id, language=self.target, text="".join(pieces).strip(),
                    engine=self.translator.name, seq=seq)
                metrics.translations.labels(translator=self.translator.name,
                                            outcome="done" if translation is not None else "failed").inc()
                if translation is not None:
                    await self.outbox.send(protocol.event_translation_done(translation), seq=seq,
                                           to_sink=self.for_speaker)
                    return
                message = "the translation could not be saved"
                await self.outbox.send(protocol.event_translation_failed(segment_id=segment_id, message=message),
                                       seq=seq, to_sink=self.for_speaker)
                return
        metrics.translations.labels(translator=self.translator.name, outcome="failed").inc()
        await self.outbox.emit(protocol.event_translation_failed(segment_id=segment_id, message=message),
                               to_sink=self.for_speaker)


class SessionTranslations:
    """Every language a session is translated into, each by one pipeline."""

    def __init__(self, *, session_id: str, language: str, outbox: Outbox, writer: TranscriptWriter,
                 context_size: int, audio_path: Path | None, max_viewer_languages: int) -> None:
        self.session_id = session_id
        self.max_viewer_languages = max_viewer_languages
        self.language = language
        self.outbox = outbox
        self.writer = writer
        self.context_size = context_size
        self.audio_path = audio_path
        self.pipelines: dict[str, TranslationPipeline] = {}

    def start(self, translator: Translator, target: str, *, for_speaker: bool) -> TranslationPipeline:
        pipeline = TranslationPipeline(translator=translator, target=target, language=self.language,
                                       outbox=self.outbox, writer=self.writer, context_size=self.context_size,
                                       for_speaker=for_speaker)
        self.pipelines[target] = pipeline
        pipeline.start()
        return pipeline

    async def want(self, target: str) -> None:
        """A viewer wants `target`: unless it is being made already, translate the finals stored so
        far (from the kept audio for a speech translator), then every new one."""
        if target in self.pipelines:
            return
        translator = get_translator()
        if not translator.supports(source=self.language, target=target):
            return  # (the viewer was told at connect)
        if sum(not p.for_speaker for p in self.pipelines.values()) >= self.max_viewer_languages:
            return  # (checked at connect too, across processes: a viewer asking for more was told)
        pipeline = self.start(translator, target, for_speaker=False)
        missing = await live_db(selectors.segments_without_translation)(
            session_id=self.session_id, language=target)
        async with self.outbox.lock:
            for segment in missing:
                await pipeline.add(segment_id=segment.pk, text=segment.text, language=segment.language,
                                   audio=self._reader(segment.start_ms, segment.end_ms))

    def _reader(self, start_ms: int, end_ms: int) -> Callable[[], bytes]:
        path = self.audio_path
        return lambda: read_span_at(path, start_ms, end_ms) if path is not None else b""

    async def add(self, *, segment_id: int, text: str, audio: bytes, language: str | None) -> None:
        for pipeline in self.pipelines.values():
            await pipeline.add(segment_id=segment_id, text=text, audio=audio, language=language)

    async def finish(self, timeout: float) -> None:
        await asyncio.gather(*(pipeline.finish(timeout) for pipeline in self.pipelines.values()))

"""A session's live translation: each final translated beside recognition, never in its way.

Finals queue here; one task translates them in order, each in a thread of its own through the
bridge, streaming the deltas as `translation` events. The whole text is stored before the `done`
event; a failure is retried once, then reported as `translation_failed` for that phrase only.
"""
from __future__ import annotations

import asyncio
import collections
import logging

from ..translation import Translator
from . import protocol
from .bridge import ThreadStream
from .events import Outbox
from .writer import TranscriptWriter

logger = logging.getLogger(__name__)

MAX_WAITING = 200  # finals waiting for their translation; beyond it one is reported as failed


class TranslationPipeline:
    def __init__(self, *, translator: Translator, target: str, language: str, outbox: Outbox,
                 writer: TranscriptWriter, context_size: int) -> None:
        self.translator = translator
        self.target = target
        self.language = language  # the session's, for finals that carry none
        self.outbox = outbox
        self.writer = writer
        self.context: collections.deque[str] = collections.deque(maxlen=context_size)
        self.jobs: asyncio.Queue[tuple | None] = asyncio.Queue(maxsize=MAX_WAITING)
        self.task: asyncio.Task | None = None

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._work())

    async def add(self, *, segment_id: int, text: str, audio: bytes, language: str | None) -> None:
        """Queue a stored final (the caller holds the outbox lock)."""
        try:
            self.jobs.put_nowait((segment_id, text, audio, language or self.language, tuple(self.context)))
        except asyncio.QueueFull:
            await self.outbox.send(protocol.event_translation_failed(
                segment_id=segment_id, message="translations are too far behind; this phrase was skipped"))
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

    async def _translate(self, segment_id: int, text: str, audio: bytes, source: str, context: tuple) -> None:
        """Stream one phrase's translation; store it before `done`; retry once; report a failure."""
        message = ""
        for attempt in (1, 2):
            pieces: list[str] = []
            deltas = ThreadStream(lambda: self.translator.translate(
                text, source=source, target=self.target, audio=audio, context=context),
                name=f"stt-tr-{self.outbox.name[:8]}")
            try:
                async for delta in deltas.start():
                    pieces.append(delta)
                    await self.outbox.emit(protocol.event_translation(
                        segment_id=segment_id, language=self.target, text=delta, done=False))
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
                if translation is not None:
                    await self.outbox.send(protocol.event_translation_done(translation), seq=seq)
                    return
                message = "the translation could not be saved"
                await self.outbox.send(protocol.event_translation_failed(segment_id=segment_id, message=message),
                                       seq=seq)
                return
        await self.outbox.emit(protocol.event_translation_failed(segment_id=segment_id, message=message))

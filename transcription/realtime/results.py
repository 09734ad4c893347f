"""A session's recognition results, handled on the event loop in order: an interim is sent (unless
unchanged); a final is stored first (writer.py), then sent, counted and queued for translation."""
from __future__ import annotations

import asyncio
import logging

from .. import metrics, protocol
from ..engines import Result
from .events import Outbox
from .translations import SessionTranslations
from .writer import TranscriptWriter


logger = logging.getLogger(__name__)


class Results:
    def __init__(self, *, outbox: Outbox, writer: TranscriptWriter, translations: SessionTranslations,
                 delays: metrics.FinalDelays) -> None:
        self.outbox = outbox
        self.writer = writer
        self.translations = translations
        self.delays = delays
        self.next_index = 0  # index of the phrase in progress = next segment's index
        self.revision = 0
        self.current_interim: dict | None = None  # (replayed on resume)
        self._late_labels: set[asyncio.Task] = set()

    async def handle(self, result: Result) -> None:
        async with self.outbox.lock:
            if result.is_final:
                await self._final(result)
            else:
                await self._interim(result)

    async def _interim(self, result: Result) -> None:
        if self.current_interim is not None and self.current_interim["text"] == result.text:
            return  # unchanged: not repeated
        self.revision += 1
        self.current_interim = await self.outbox.send(
            protocol.event_interim(result, phrase=self.next_index, revision=self.revision))

    async def _final(self, result: Result) -> None:
        self.current_interim = None
        self.revision = 0
        seq = self.outbox.log.reserve()
        segment = await self.writer.final(index=self.next_index, seq=seq, result=result)
        if segment is None:
            await self.outbox.send(protocol.event_error(protocol.STORAGE, "a final transcript could not be saved"),
                                   seq=seq)
            return
        self.next_index += 1
        await self.outbox.send(protocol.event_final_from_segment(segment), seq=seq)
        self.delays.final(result.end_ms)
        if result.pending_speaker is not None:
            task = asyncio.get_running_loop().create_task(self._late_speaker(segment, result.pending_speaker))
            self._late_labels.add(task)
            task.add_done_callback(self._late_labels.discard)
        await self.translations.add(segment_id=segment.pk, text=result.text, audio=result.audio,
                                    language=result.language)

    async def _late_speaker(self, segment, label) -> None:
        """The label of a final sent without one: stored, then sent after it."""
        try:
            speaker = await asyncio.wrap_future(label)
        except Exception:  # (logged by the labelling thread) the final stays unlabelled
            return
        if speaker is None or not await self.writer.speaker(segment_id=segment.pk, speaker=speaker):
            return
        async with self.outbox.lock:
            await self.outbox.send(protocol.event_speaker(segment_id=segment.pk, phrase=segment.index, speaker=speaker))

    async def settle(self, timeout: float) -> None:
        """Wait (a while) for the labels still being computed, so that they are stored."""
        if self._late_labels:
            _, pending = await asyncio.wait(set(self._late_labels), timeout=timeout)
            if pending:
                logger.info("%d speaker labels not ready when the session ended", len(pending))

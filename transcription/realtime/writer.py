"""Store-before-send: a final or a translation is shown only once its row is committed.

A failed write is retried; if it still fails the caller tells the client (`storage`, or
`translation_failed`) instead of showing what could not be kept.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable, TypeVar

from django.db import DatabaseError

from .. import metrics, services
from ..engines import Result
from ..models import Segment, Translation
from .live_db import live_db

logger = logging.getLogger(__name__)
T = TypeVar("T")

STORE_ATTEMPTS = 2


class TranscriptWriter:
    def __init__(self, session_id: str) -> None:
        self.session_id = session_id

    async def final(self, *, index: int, seq: int, result: Result) -> Segment | None:
        return await self._attempt(f"final {index}", live_db(services.segment_create),
                                   session_id=self.session_id, index=index, seq=seq, result=result)

    async def voice_named(self, *, label: str, name: str) -> dict | None:
        """A live label named after an enrolled voice: every name now set (None if not stored)."""
        stored = await self._attempt(f"name of speaker {label}", live_db(services.session_voice_named),
                                     session_id=self.session_id, label=label, name=name)
        return stored

    async def speaker(self, *, segment_id: int, speaker: str) -> bool:
        stored = await self._attempt(f"speaker of segment {segment_id}", live_db(services.segment_label),
                                     segment_id=segment_id, speaker=speaker)
        return stored is not None

    async def translation(self, *, segment_id: int, language: str, text: str, engine: str,
                          seq: int) -> Translation | None:
        return await self._attempt(f"translation of segment {segment_id}",
                                   live_db(services.translation_create),
                                   segment_id=segment_id, language=language, text=text, engine=engine, seq=seq)

    async def _attempt(self, what: str, write: Callable[..., Awaitable[T]], **kwargs) -> T | None:
        for attempt in range(1, STORE_ATTEMPTS + 1):
            try:
                return await write(**kwargs)
            except DatabaseError:
                logger.exception("storing %s of session %s failed (attempt %d)", what, self.session_id, attempt)
                if attempt < STORE_ATTEMPTS:
                    metrics.storage_retries.inc()
                await asyncio.sleep(0.2 * attempt)
        return None

"""Offline speech translation to English: the same multilingual Whisper model, task="translate",
on the phrase's audio (what Whisper was trained to do; no text model needed)."""
from __future__ import annotations

import logging
from typing import Iterator, Sequence

import numpy as np

from ..audio import pcm16_to_float
from ..engines import get_engine
from ..engines.guards import cut_repetitions
from ..engines.scheduler import LIVE_TRANSLATION, get_scheduler
from ..engines import doubt
from ..engines.whisper import WhisperRecognizer
from ..engines.whisper_model import whisper_language
from .base import TranslationError

logger = logging.getLogger(__name__)


class WhisperTranslator:
    name = "whisper"

    def _recognizer(self) -> WhisperRecognizer:
        return get_engine("whisper")  # the process's loaded models, shared

    def supports(self, *, source: str, target: str) -> bool:
        if whisper_language(target) != "en":
            return False  # Whisper only translates into English
        return not self._recognizer().model_name_for(source).endswith(".en")

    def translate(
        self, text: str, *, source: str, target: str, audio: bytes = b"", context: Sequence[str] = ()
    ) -> Iterator[str]:
        if not audio:
            raise TranslationError("the whisper translator needs the phrase's audio, and there is none")
        if whisper_language(source) == "en":
            yield text  # already English
            return
        model = self._recognizer().model_for(source)
        pcm = pcm16_to_float(audio)
        # Background work: it runs in a pause of the speech, so a final never waits behind it.
        yield get_scheduler().run_background(lambda: self._decode(model, pcm, source), priority=LIVE_TRANSLATION)

    def _decode(self, model, pcm: np.ndarray, source: str) -> str:
        try:
            segments, _ = model.transcribe(
                pcm, task="translate", language=whisper_language(source), beam_size=1,
                temperature=(0.0, 0.2, 0.4, 0.6),  # re-decode output that loops
                condition_on_previous_text=False, without_timestamps=True, vad_filter=False,
            )
            pieces = [s.text.strip() for s in segments if s.text.strip() and not doubt.looped(s.compression_ratio)]
        except Exception as exc:
            logger.exception("whisper translation failed")
            raise TranslationError(f"whisper translation failed: {exc}") from exc
        return cut_repetitions(" ".join(pieces))

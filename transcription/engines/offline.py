"""Whole-file recognition with Whisper: uploads, and the second pass over a session's kept audio.

Decoded as faster-whisper's BatchedInferencePipeline decodes a file (bench/upload.py --parts compare
measures the two side by side): its VAD settings (pauses of 160 ms or more cut speech chunks), the
chunks joined without the pauses into windows of at most 30 s (Whisper's own), each window decoded
on its own with beam STT_REFINE_BEAM_SIZE and word times mapped back to the file, several windows
in one batch. The pipeline itself runs each batch.

Each batch is one job of background priority on the decode scheduler (engines/scheduler.py): it
starts in a pause of everyone's speech. While no live session decodes in this process, a job is a
batch of STT_REFINE_BATCH_SIZE windows. While one does (or did in the last 30 s: the scheduler's
`live`), a job is at most STT_REFINE_WINDOW_SECONDS of speech (a 30 s window's chunks in smaller
windows), so a final that falls due during it waits little: the cut then depends on when live
sessions run (measured in bench/upload.py). A session that starts during a batch waits for it.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from django.conf import settings

from .base import SAMPLE_RATE, Result, Word
from .scheduler import AFTER_THE_FACT, get_scheduler
from . import doubt
from .whisper_model import whisper_language

WINDOW_SECONDS = 30  # speech decoded together in one window (Whisper's own window)
FRAME = SAMPLE_RATE // 100  # Whisper's 10 ms
PROMPT_CHARS = 120  # a small part's prompt: the end of the text of the parts before it in its window


@dataclass(frozen=True)
class TimedWord:
    text: str  # as Whisper writes it, with its leading space where a word begins
    start_ms: int
    end_ms: int
    probability: float | None = None

    def to_json(self) -> list:
        return [self.text, self.start_ms, self.end_ms, self.probability]

    @classmethod
    def from_json(cls, item) -> TimedWord:  # (a job's state from before probabilities has three fields)
        return cls(*item)


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

    def file_span(self, start_ms: int, end_ms: int) -> tuple[int, int]:
        """A word's times in the joined audio, in the file, inside the one chunk its middle is in: a
        word timed across a joint would otherwise span the pause, and the phrase with it (a phrase
        that is cut at pauses then holds two speakers)."""
        middle = self.file_ms((start_ms + end_ms) // 2) * SAMPLE_RATE // 1000
        first, last = next(((a, b) for a, b in self.chunks if a <= middle < b), self.chunks[-1])
        clamp = lambda ms: min(max(ms, first * 1000 // SAMPLE_RATE), last * 1000 // SAMPLE_RATE)  # noqa: E731
        return clamp(self.file_ms(start_ms)), clamp(self.file_ms(end_ms))


VAD_BLOCK_SECONDS = 60  # the VAD reads the recording this much at a time: memory does not grow with it
VAD_WINDOW = 512  # samples per Silero probability
VAD_CONTEXT = 64  # samples of the window before, which Silero sees with each window


def speech_chunks(read: Callable[[int, int], np.ndarray], total: int) -> list[tuple[int, int]]:
    """The recording's speech, [start, end) samples: what faster-whisper's VAD finds with the
    batched pipeline's settings over the whole file, in memory that does not grow with its length."""
    from faster_whisper.vad import VadOptions

    options = VadOptions(max_speech_duration_s=WINDOW_SECONDS, min_silence_duration_ms=160)
    return speech_timestamps(speech_probabilities(read, total), total, options)


def speech_probabilities(read: Callable[[int, int], np.ndarray], total: int) -> np.ndarray:
    """Silero's speech probability per VAD_WINDOW samples, VAD_BLOCK_SECONDS of audio at a time with
    the model's state and context carried across: the numbers faster-whisper's VAD gives for the
    whole file at once (it pads the same way), without holding the file (peak +73 MB whatever the
    length: bench/hostile.py --long-hours 4; 300 s at once took +210 MB)."""
    from faster_whisper.vad import get_vad_model

    model = get_vad_model()
    padded = total + VAD_WINDOW - total % VAD_WINDOW
    block = VAD_BLOCK_SECONDS * SAMPLE_RATE // VAD_WINDOW * VAD_WINDOW
    h = c = np.zeros((1, 1, 128), dtype=np.float32)
    context = np.zeros(VAD_CONTEXT, dtype=np.float32)
    probabilities = []
    for offset in range(0, padded, block):
        length = min(block, padded - offset)
        audio = read(offset, min(total, offset + length)).astype(np.float32)
        windows = np.pad(audio, (0, length - len(audio))).reshape(-1, VAD_WINDOW)
        contexts = np.concatenate([context[None], windows[:-1, -VAD_CONTEXT:]])
        context = windows[-1, -VAD_CONTEXT:].copy()
        found, h, c = model.session.run(None, {"input": np.concatenate([contexts, windows], 1), "h": h, "c": c})
        probabilities.append(found)
    return np.concatenate(probabilities) if probabilities else np.zeros(0, dtype=np.float32)


def speech_timestamps(probabilities: np.ndarray, total: int, options) -> list[tuple[int, int]]:
    """faster-whisper 1.2's get_speech_timestamps from its probabilities on: its decisions, copied
    because it computes the probabilities of the whole file at once (tests/test_offline.py checks
    that both give the same chunks)."""
    pad = SAMPLE_RATE * options.speech_pad_ms / 1000
    min_speech = SAMPLE_RATE * options.min_speech_duration_ms / 1000
    max_speech = SAMPLE_RATE * options.max_speech_duration_s - VAD_WINDOW - 2 * pad
    min_silence = SAMPLE_RATE * options.min_silence_duration_ms / 1000
    min_silence_at_max_speech = SAMPLE_RATE * 98 / 1000
    threshold = options.threshold
    neg_threshold = options.neg_threshold if options.neg_threshold is not None else max(threshold - 0.15, 0.01)
    triggered, speeches, current = False, [], {}
    temp_end = prev_end = next_start = 0
    for i, probability in enumerate(probabilities):
        at = VAD_WINDOW * i
        if probability >= threshold and temp_end:
            temp_end = 0
            if next_start < prev_end:
                next_start = at
        if probability >= threshold and not triggered:
            triggered = True
            current["start"] = at
            continue
        if triggered and at - current["start"] > max_speech:
            if prev_end:
                current["end"] = prev_end
                speeches.append(current)
                current = {}
                if next_start < prev_end:
                    triggered = False
                else:
                    current["start"] = next_start
                prev_end = next_start = temp_end = 0
            else:
                current["end"] = at
                speeches.append(current)
                current = {}
                prev_end = next_start = temp_end = 0
                triggered = False
                continue
        if probability < neg_threshold and triggered:
            if not temp_end:
                temp_end = at
            if at - temp_end > min_silence_at_max_speech:
                prev_end = temp_end
            if at - temp_end < min_silence:
                continue
            current["end"] = temp_end
            if current["end"] - current["start"] > min_speech:
                speeches.append(current)
            current = {}
            prev_end = next_start = temp_end = 0
            triggered = False
    if current and total - current["start"] > min_speech:
        current["end"] = total
        speeches.append(current)
    for i, speech in enumerate(speeches):  # padded, halfway into short pauses
        if i == 0:
            speech["start"] = int(max(0, speech["start"] - pad))
        if i != len(speeches) - 1:
            silence = speeches[i + 1]["start"] - speech["end"]
            if silence < 2 * pad:
                speech["end"] += int(silence // 2)
                speeches[i + 1]["start"] = int(max(0, speeches[i + 1]["start"] - silence // 2))
            else:
                speech["end"] = int(min(total, speech["end"] + pad))
                speeches[i + 1]["start"] = int(max(0, speeches[i + 1]["start"] - pad))
        else:
            speech["end"] = int(min(total, speech["end"] + pad))
    return [(int(speech["start"]), int(speech["end"])) for speech in speeches]


def speech_windows(chunks: Sequence[tuple[int, int]], seconds: float = WINDOW_SECONDS) -> list[Window]:
    """Speech chunks in windows of at most `seconds` of speech, in order (as the pipeline's
    collect_chunks merges them)."""
    window_samples = int(seconds * SAMPLE_RATE)
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
                   start: int = 0, beam_size: int | None = None,
                   on_window: Callable[[int, list[TimedWord]], None]) -> None:
    """Decode `windows[start:]` in order, in jobs of background priority on the decode scheduler
    (see the module's docstring); `on_window(number, words)` gets each window (numbered from 1) with
    its words in file time: enough to store it, and to resume after it later. The recording is read
    a batch at a time: memory does not grow with its length."""
    scheduler = get_scheduler()
    prompt = ", ".join(vocabulary) + "." if vocabulary else None
    number = start
    while number < len(windows):
        if scheduler.live():  # one window, in small parts, each prompted with the text before it
            words: list[TimedWord] = []
            for part in speech_windows(windows[number].chunks, settings.STT_REFINE_WINDOW_SECONDS):
                before = "".join(word.text for word in words).strip()[-PROMPT_CHARS:]
                words += scheduler.run_background(
                    lambda p=part, b=before: decode_batch(model, reader, [p], language,
                                                          " ".join(filter(None, [prompt, b])) or None, beam_size)[0],
                    priority=AFTER_THE_FACT)
            done = [words]
        else:  # batches of even sizes: 11 windows as 6 + 5 took 9 % less time than 8 + 3
            remaining = len(windows) - number
            size = -(-remaining // -(-remaining // settings.STT_REFINE_BATCH_SIZE))
            group = windows[number:number + size]
            done = scheduler.run_background(
                lambda g=group: decode_batch(model, reader, g, language, prompt, beam_size), priority=AFTER_THE_FACT)
        for words in done:
            number += 1
            on_window(number, words)


UNHEARD_CHUNK_MS = 1000  # a stretch of speech this long with no word in it is decoded again on its own


def decode_batch(model, reader, windows: Sequence[Window], language: str, prompt: str | None,
                 beam_size: int | None) -> list[list[TimedWord]]:
    """Each window's words (file time). Whisper sometimes ends a window early (a question mark, then
    the end of text): the speech after it would be lost. Its stretches of speech with no word are
    decoded again, as windows of their own, once."""
    words = _decode_batch(model, reader, windows, language, prompt, beam_size)
    for i, window in enumerate(windows):
        unheard = [chunk for chunk in window.chunks if (chunk[1] - chunk[0]) * 1000 >= UNHEARD_CHUNK_MS * SAMPLE_RATE
                   and not _heard(chunk, words[i])]
        if unheard:
            again = speech_windows(unheard)
            found = _decode_batch(model, reader, again, language, prompt, beam_size)
            words[i] = sorted(words[i] + [word for part in found for word in part], key=lambda w: w.start_ms)
    return words


def _heard(chunk: tuple[int, int], words: Sequence[TimedWord]) -> bool:
    first, last = chunk[0] * 1000 // SAMPLE_RATE, chunk[1] * 1000 // SAMPLE_RATE
    return any(first <= (word.start_ms + word.end_ms) // 2 <= last for word in words)


def _decode_batch(model, reader, windows: Sequence[Window], language: str, prompt: str | None,
                  beam_size: int | None) -> list[list[TimedWord]]:
    """Each window's words (file time), the windows decoded as one batch by faster-whisper's
    BatchedInferencePipeline: their audio laid end to end, one clip per window."""
    from faster_whisper import BatchedInferencePipeline

    # Each clip starts on a 10 ms boundary (zeros between clips, in none of them): word times are
    # rounded to 10 ms with the clip's offset in them, and a window's times must not depend on what
    # was decoded before it in the batch. (+0.5: the pipeline takes int(seconds * 16000).)
    audios = [window.audio(reader.samples) for window in windows]
    offsets = np.cumsum([0] + [len(audio) + -len(audio) % FRAME for audio in audios])
    clips = [{"start": (offsets[i] + 0.5) / SAMPLE_RATE, "end": (offsets[i] + len(audio) + 0.5) / SAMPLE_RATE}
             for i, audio in enumerate(audios)]
    segments, _ = BatchedInferencePipeline(model).transcribe(
        np.concatenate([np.pad(audio, (0, -len(audio) % FRAME)) for audio in audios]),
        language=whisper_language(language), beam_size=beam_size or settings.STT_REFINE_BEAM_SIZE,
        batch_size=len(audios), clip_timestamps=clips, word_timestamps=True, initial_prompt=prompt,
        temperature=0.0,  # no sampling: the same file gives the same text every time (a resumed job too)
    )
    words: list[list[TimedWord]] = [[] for _ in windows]
    for segment in segments:
        if doubt.silent(segment.no_speech_prob, segment.avg_logprob) or doubt.looped(segment.compression_ratio):
            continue  # no speech, or a loop: not a transcript
        i = int(np.searchsorted(offsets, segment.start * SAMPLE_RATE + FRAME, side="right")) - 1
        i = min(max(i, 0), len(windows) - 1)
        window, base_ms = windows[i], int(offsets[i]) * 1000 // SAMPLE_RATE
        # (rounded, not truncated: a window's offset in the batch must not move a word by 1 ms)
        words[i] += [TimedWord(w.word, *window.file_span(round(w.start * 1000) - base_ms,
                                                         round(w.end * 1000) - base_ms), round(w.probability, 3))
                     for w in segment.words or []]
    return words


def align(words: Sequence[TimedWord], spans: Sequence[tuple[int, int]]) -> list[str]:
    """The text of `words` for each (start_ms, end_ms) span (see align_words)."""
    return [text_of(found) for found in align_words(words, spans)]


def text_of(words: Sequence[TimedWord]) -> str:
    return "".join(word.text for word in words).strip()


def phrase(words: Sequence[TimedWord], *, language: str | None = None) -> Result:
    """Words as one final phrase: their text, times, and a confidence as the live path gives it (the
    geometric mean of its words' probabilities, as exp of the mean log-probability of its tokens)."""
    probabilities = [w.probability for w in words if w.probability is not None]
    confidence = float(np.exp(np.mean(np.log(np.maximum(probabilities, 1e-6))))) if probabilities else None
    return Result(text=text_of(words), is_final=True, start_ms=words[0].start_ms if words else 0,
                  end_ms=words[-1].end_ms if words else 0, language=language,
                  confidence=round(confidence, 3) if confidence is not None else None,
                  words=tuple(Word(w.text.strip(), w.start_ms, w.end_ms, w.probability) for w in words if w.text.strip()))


def align_words(words: Sequence[TimedWord], spans: Sequence[tuple[int, int]]) -> list[list[TimedWord]]:
    """The words of each (start_ms, end_ms) span (sorted, as live segments are): a word belongs to the
    span its middle falls in, else to the nearest span."""
    if not spans:
        return []
    found: list[list[TimedWord]] = [[] for _ in spans]
    starts = [start for start, _ in spans]
    for word in words:
        middle = (word.start_ms + word.end_ms) / 2
        i = max(0, bisect.bisect_right(starts, middle) - 1)
        if i + 1 < len(spans) and middle > spans[i][1]:  # in a gap: the nearer neighbour takes it
            if spans[i + 1][0] - middle < middle - spans[i][1]:
                i += 1
        found[i].append(word)
    return found

"""A deterministic engine for protocol tests. Never a default.

It reads audio in 100 ms units: a unit whose peak is above LOUD is "speech" and adds half a word,
a quiet unit after speech ends the phrase. So a test controls interims and finals with the audio
it sends: N loud units then one quiet unit -> interims "w1", "w1", "w1 w2", ... then a final.
A unit whose samples all equal FAIL_SAMPLE raises EngineError, one of CRASH_SAMPLE an unexpected
RuntimeError (a bug), one of HANG_SAMPLE makes the engine stop responding for
STT_SCRIPTED_HANG_SECONDS (to test engine faults).
STT_SCRIPTED_CHUNK_DELAY (seconds, tests only) makes every chunk slow, like a decode, to test
back-pressure and lag reports.
"""
from __future__ import annotations

import time
from typing import Iterator

import numpy as np
from ..backends import test_setting

from .base import BYTES_PER_SECOND, FINALIZE, EngineError, Result, StreamConfig, Word

UNIT_BYTES = BYTES_PER_SECOND // 10
LOUD = 1000
FAIL_SAMPLE = 12345
HANG_SAMPLE = 23456
CRASH_SAMPLE = 13579


class ScriptedRecognizer:
    name = "scripted"

    def supports_language(self, language: str) -> bool:
        return True

    def stream(self, chunks: Iterator[bytes], config: StreamConfig) -> Iterator[Result]:
        pending = b""
        phrase_audio = b""
        unit_index = 0
        speech_units = 0
        phrase_start = 0

        def words(n_units: int) -> str:
            return " ".join(f"w{i}" for i in range(1, (n_units + 1) // 2 + 1))

        def final() -> Result:
            text = words(speech_units)
            return Result(
                text=text,
                is_final=True,
                start_ms=phrase_start * 100,
                end_ms=unit_index * 100,
                confidence=1.0,
                words=tuple(
                    Word(w, (phrase_start + 2 * i) * 100, min(unit_index, phrase_start + 2 * i + 2) * 100, 1.0)
                    for i, w in enumerate(text.split())
                ),
                language="en" if config.language == "auto" else config.language,
                audio=phrase_audio,
            )

        delay = test_setting("STT_SCRIPTED_CHUNK_DELAY", 0.0)
        for chunk in chunks:
            if chunk is FINALIZE:
                if speech_units:
                    yield final()
                    speech_units = 0
                continue
            pending += chunk
            if delay:
                time.sleep(delay)
            while len(pending) >= UNIT_BYTES:
                unit = np.frombuffer(pending[:UNIT_BYTES], dtype="<i2")
                pending = pending[UNIT_BYTES:]
                if np.all(unit == FAIL_SAMPLE):
                    raise EngineError("scripted engine failure")
                if np.all(unit == CRASH_SAMPLE):
                    raise RuntimeError("scripted engine bug")
                if np.all(unit == HANG_SAMPLE):
                    time.sleep(test_setting("STT_SCRIPTED_HANG_SECONDS", 3600.0))
                loud = int(np.abs(unit.astype(np.int32)).max()) > LOUD
                if loud:
                    if speech_units == 0:
                        phrase_start = unit_index
                        phrase_audio = b""
                    phrase_audio += unit.tobytes()
                    speech_units += 1
                    unit_index += 1
                    if config.interim_results:
                        yield Result(text=words(speech_units), is_final=False, start_ms=phrase_start * 100)
                else:
                    if speech_units:
                        yield final()
                        speech_units = 0
                    unit_index += 1
        if speech_units:
            yield final()

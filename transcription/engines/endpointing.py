"""Where phrases begin and end, from the VAD's speech probability per 32 ms window. Pure: no audio,
no model, no settings read while it runs (EndpointRules are fixed when a stream starts).

- A phrase starts at the first window at SPEECH_ON, with PREROLL before it (never before the end of
  the previous phrase).
- It ends once STT_ENDPOINT_SILENCE_MS of windows below SPEECH_OFF follow its speech, TAIL after its
  last speech window. A burst shorter than MIN_SPEECH waits about 1.5 s for more speech to join it
  ("맞아. 시간 안에…" had been cut in two, and "그래" lost).
- A phrase reaching STT_MAX_PHRASE_SECONDS is cut at the quietest window of its last 3 s (a word is
  rarely split there), and the speech after the cut goes on as the next phrase.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..audio import SAMPLE_RATE
from .vad import VAD_WINDOW

SPEECH_ON = 0.5  # a window at or above this starts or continues speech
SPEECH_OFF = 0.35  # below this a window counts as silence
PREROLL = SAMPLE_RATE * 3 // 10  # audio kept before the detected onset
TAIL = SAMPLE_RATE // 5  # audio kept after the last speech window
MIN_SPEECH = SAMPLE_RATE // 4  # a burst shorter than this does not end at the endpoint...
SHORT_BURST_WAIT_WINDOWS = 47  # ...it waits ~1.5 s for more speech to join it,
MIN_BURST = 3 * VAD_WINDOW  # then is decoded alone if it had ~100 ms of speech
CUT_LOOK_BACK_WINDOWS = 3 * SAMPLE_RATE // VAD_WINDOW


@dataclass(frozen=True)
class EndpointRules:
    endpoint_windows: int  # windows of silence that end a phrase
    max_phrase: int  # samples

    @classmethod
    def from_settings(cls) -> EndpointRules:
        from django.conf import settings

        return cls(max(1, settings.STT_ENDPOINT_SILENCE_MS * SAMPLE_RATE // 1000 // VAD_WINDOW),
                   int(settings.STT_MAX_PHRASE_SECONDS * SAMPLE_RATE))


@dataclass(frozen=True)
class Started:
    start: int  # sample


@dataclass(frozen=True)
class Phrase:
    """A phrase the endpointer closed: samples [start, end)."""

    start: int
    end: int
    speech: int  # samples the VAD called speech

    @property
    def worth_decoding(self) -> bool:
        return self.speech >= MIN_BURST

    @property
    def speech_share(self) -> float:
        return self.speech / max(1, self.end - self.start)


class Endpointer:
    def __init__(self, rules: EndpointRules) -> None:
        self.rules = rules
        self.position = 0  # samples the VAD has judged
        self.in_speech = False
        self.start = 0  # of the phrase in progress
        self.speech = 0  # its samples of speech
        self.last_speech_end = 0
        self.silence_windows = 0
        self.probs: list[float] = []  # per window of the phrase in progress, to cut a long one well
        self.previous_end = 0

    def push(self, prob: float, *, earliest: int = 0) -> list[Started | Phrase]:
        """The next window's probability; what it started or ended. `earliest`: the first sample a
        phrase may start at (the audio before it is gone)."""
        window_start = self.position
        self.position += VAD_WINDOW
        if not self.in_speech:
            if prob < SPEECH_ON:
                return []
            self.in_speech = True
            self.start = max(earliest, self.previous_end, window_start - PREROLL)
            self.speech = VAD_WINDOW
            self.last_speech_end = self.position
            self.silence_windows = 0
            self.probs = [prob]
            return [Started(self.start)]
        self.probs.append(prob)
        if prob >= SPEECH_ON:
            self.speech += VAD_WINDOW
            self.last_speech_end = self.position
            self.silence_windows = 0
        elif prob < SPEECH_OFF:
            self.silence_windows += 1
        wait = SHORT_BURST_WAIT_WINDOWS if self.speech < MIN_SPEECH else self.rules.endpoint_windows
        if self.silence_windows >= wait:
            return [self.finish(min(self.position, self.last_speech_end + TAIL))]
        if self.position - self.start >= self.rules.max_phrase:
            return self._cut()
        return []

    @property
    def known_end(self) -> int | None:
        """Where the phrase in progress will end if no more speech comes: known once TAIL of silence
        follows its last speech (a short burst, still waiting for more, has none)."""
        if not self.in_speech or self.speech < MIN_SPEECH:
            return None
        end = self.last_speech_end + TAIL
        return end if self.start < end <= self.position else None

    def finish(self, end: int) -> Phrase | None:
        """End the phrase in progress at `end` (the endpoint, a client's finalize, the stream's end)."""
        if not self.in_speech:
            return None
        phrase = Phrase(self.start, end, self.speech)
        self.in_speech = False
        self.probs = []
        self.speech = 0
        self.silence_windows = 0
        self.previous_end = end
        return phrase

    def _cut(self) -> list[Started | Phrase]:
        look = min(len(self.probs) - 1, CUT_LOOK_BACK_WINDOWS)
        tail = self.probs[-look:] if look > 0 else self.probs
        return self._split(int(np.argmin(tail)) + len(self.probs) - len(tail))

    def cut_between(self, earliest: int, latest: int) -> list[Started | Phrase]:
        """End the phrase in progress at its quietest window ending in [earliest, latest] (another voice
        took over there); the speech after goes on as the next phrase."""
        count = len(self.probs)
        ends = [self.position - (count - 1 - j) * VAD_WINDOW for j in range(count - 1)]
        candidates = [j for j, end in enumerate(ends) if earliest <= end <= latest and end > self.start]
        if not self.in_speech or not candidates:
            return []
        return self._split(min(candidates, key=lambda j: self.probs[j]))

    def _split(self, quietest: int) -> list[Started | Phrase]:
        cut = self.position - (len(self.probs) - quietest - 1) * VAD_WINDOW
        rest = self.probs[quietest + 1 :]
        phrase = self.finish(cut)
        self.in_speech = True  # the speech after the cut goes on as the next phrase
        self.start = cut
        self.probs = rest or [1.0]
        self.speech = sum(VAD_WINDOW for p in rest if p >= SPEECH_ON)
        self.silence_windows = 0
        return [phrase, Started(cut)]

"""A change of voice inside a phrase, so that a final never spans two speakers even when one starts the
moment the other stops (no pause for the endpointer to find).

While a phrase grows, the last WINDOW of it is embedded every HOP. Each window is compared with the mean
of the phrase's earlier windows that do not overlap it. Two windows in a row below CHANGE_BELOW mean a
new voice: the phrase is cut between the first of them and the end of the audio before it, at the
quietest VAD window (engines/whisper.py). The cost is bounded: one 1.5 s embedding (~25 ms) per 0.5 s of
speech, only in sessions with speaker labels, and none in phrases shorter than WINDOW + HOP.
"""
from __future__ import annotations

import numpy as np

from ..audio import SAMPLE_RATE

WINDOW = SAMPLE_RATE * 3 // 2  # 1.5 s (1 s saw 2 % more changes on the tune part, but cut jfk and kspon_003 alone)
HOP = SAMPLE_RATE // 2
CHANGE_BELOW = 0.4  # cosine similarity to the phrase so far that means another voice (bench/speaker_eval.py)
CONFIRM = 2  # windows in a row under it
SIDE = SAMPLE_RATE  # locating the change: 1 s either side of each candidate point...
STEP = SAMPLE_RATE // 5  # ...every 0.2 s of the second the change is in (12 embeddings of 1 s, ~0.15 s)
NEAR = SAMPLE_RATE // 10  # the cut is at the quietest VAD window this close to the located point


class ChangeDetector:
    def __init__(self, embed) -> None:
        self.embed = embed  # float32 samples -> unit embedding
        self.phrase_start: int | None = None
        self.windows: list[tuple[int, np.ndarray]] = []  # (end sample, embedding) of the phrase in progress
        self.low: list[int] = []  # ends of the latest windows in a row under CHANGE_BELOW
        self.reference: np.ndarray | None = None  # the phrase's voice before the first of them
        self.next_end = 0

    def check(self, samples, start: int, position: int) -> tuple[int, int] | None:
        """Called as the phrase starting at `start` grows to `position`; `samples(a, b)` reads its audio.
        Returns (earliest, latest) sample to cut at when a new voice took over, else None."""
        if start != self.phrase_start:
            self.phrase_start, self.windows, self.low, self.next_end = start, [], [], start + WINDOW
        while self.next_end <= position:
            end = self.next_end
            self.next_end += HOP
            embedding = self.embed(samples(end - WINDOW, end))
            before = [e for t, e in self.windows if t <= end - WINDOW]
            self.windows.append((end, embedding))
            if not before:
                continue
            mean = np.sum(before, axis=0)
            mean = mean / (np.linalg.norm(mean) + 1e-9)
            similarity = float(embedding @ mean)
            if similarity >= CHANGE_BELOW:
                self.low = []
                continue
            if not self.low:
                self.reference = mean
            self.low.append(end)
            if len(self.low) >= CONFIRM:
                first = self.low[0]  # its window is mostly the new voice: the change is in its first part
                at = self.locate(samples, max(start + HOP, first - WINDOW + HOP // 2), first - HOP // 2)
                self.windows, self.low = [], []
                return at - NEAR, at + NEAR
        return None

    def locate(self, samples, earliest: int, latest: int) -> int:
        """The point in [earliest, latest] where the second before is most the old voice and the second
        after least."""
        best, score = (earliest + latest) // 2, -np.inf
        for point in range(earliest, latest + 1, STEP):
            before = self.embed(samples(max(self.phrase_start, point - SIDE), point))
            after = self.embed(samples(point, point + SIDE))
            margin = float(before @ self.reference) - float(after @ self.reference)
            if margin > score:
                best, score = point, margin
        return best

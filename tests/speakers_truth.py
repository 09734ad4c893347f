"""The truth of tests/data/speakers/conversation.wav and the scores of speaker labels against it
(shared by tests/test_speakers.py and bench/speakers.py)."""
from __future__ import annotations

import collections
import json
from pathlib import Path

CONVERSATION = Path(__file__).resolve().parent / "data" / "speakers" / "conversation.wav"
TRUTH = CONVERSATION.with_suffix(".json")


def ranges() -> list[dict]:
    return json.loads(TRUTH.read_text())["ranges"]


def true_speaker(start_ms: int, end_ms: int) -> str:
    """Whoever's range overlaps [start_ms, end_ms) most."""
    overlap = collections.Counter()
    for r in ranges():
        overlap[r["speaker"]] += max(0, min(end_ms, r["end_ms"]) - max(start_ms, r["start_ms"]))
    return overlap.most_common(1)[0][0]


def purity(finals: list[tuple[int, int, str]]) -> tuple[float, float]:
    """(purity, inverse purity) of (start_ms, end_ms, label) finals, each final counted once:
    purity = how much each label holds one true speaker; inverse = how much each speaker keeps one label."""
    pairs = [(label, true_speaker(start, end)) for start, end, label in finals]
    by_label = collections.defaultdict(collections.Counter)
    by_speaker = collections.defaultdict(collections.Counter)
    for label, speaker in pairs:
        by_label[label][speaker] += 1
        by_speaker[speaker][label] += 1
    total = len(pairs)
    return (sum(c.most_common(1)[0][1] for c in by_label.values()) / total,
            sum(c.most_common(1)[0][1] for c in by_speaker.values()) / total)

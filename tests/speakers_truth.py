"""The truth of tests/data/speakers/conversation.wav and the scores of speaker labels against it
(shared by tests/test_speakers.py and bench/speakers.py)."""
from __future__ import annotations

import collections
import json
from pathlib import Path

import numpy as np

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


# The evaluation set of issue 25 (tests/data/speakers/voices, built by tools/make_speaker_set.py):
# 18 voices in two parts, tune and held-out, and conversations made of their turns.
VOICES = Path(__file__).resolve().parent / "data" / "speakers" / "voices"
RATE = 16000

CONVERSATIONS = {
    "tune": [("FEE083", "MEO069"), ("FEE078", "FEE083"), ("MEO069", "MEE075"), ("FEE087", "FEE088"),
             ("FEE083", "MEO069", "FEE078"), ("MEE075", "FEE087", "MEE076"), ("FEE078", "MEO069", "FEE088"),
             ("FEE083", "MEO069", "FEE078", "MEE075"), ("FEE087", "FEE088", "MEE076", "MEO086")],
    "held-out": [("MEE009", "MEE012"), ("speaker90", "speaker91"), ("jfk", "beckett"), ("FEO070", "MEE009"),
                 ("kspon_003", "speaker91"),
                 ("FEO070", "FEO072", "MEE073"), ("MEE009", "speaker90", "beckett"), ("MEE012", "speaker91", "jfk"),
                 ("MEE009", "kspon_003", "FEO070"),
                 ("MEE009", "MEE012", "speaker90", "speaker91"), ("jfk", "beckett", "FEO070", "MEE009"),
                 ("FEO070", "FEO072", "MEE073", "MEE012")],
}


def voice_set() -> dict:
    return json.loads((VOICES / "voices.json").read_text())


def voice_audio(voice: str) -> np.ndarray:
    import wave
    with wave.open(str(VOICES / voice_set()["voices"][voice]["file"])) as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)


def conversation(voices: tuple[str, ...], *, back_to_back: bool, seed: int = 0,
                 turns_each: int = 4) -> tuple[np.ndarray, list[dict]]:
    """PCM16 of `voices` taking turns of 1-8 s (each voice's material read in order, from the start again
    when used up), and the truth: one range per turn. Between turns, 0-0.1 s (back to back) or 0.4-1.2 s
    of faint noise."""
    rng = np.random.default_rng(seed)
    material = {v: voice_audio(v) for v in voices}
    read_at = dict.fromkeys(voices, 0)
    order, previous = [], None
    remaining = {v: turns_each for v in voices}
    while any(remaining.values()):
        choices = [v for v in voices if remaining[v] and v != previous] or [v for v in voices if remaining[v]]
        previous = choices[int(rng.integers(len(choices)))]
        remaining[previous] -= 1
        order.append(previous)
    pieces, ranges, at = [], [], 0
    for voice in order:
        audio = material[voice]
        length = min(int(rng.uniform(1.0, 8.0) * RATE), len(audio))
        start = read_at[voice] if read_at[voice] + length <= len(audio) else 0
        read_at[voice] = start + length
        pieces.append(audio[start:start + length])
        ranges.append({"speaker": voice, "start_ms": at * 1000 // RATE, "end_ms": (at + length) * 1000 // RATE})
        at += length
        gap = int(rng.uniform(0.0, 0.1) * RATE) if back_to_back else int(rng.uniform(0.4, 1.2) * RATE)
        pieces.append((rng.normal(0, 20, gap)).astype(np.int16))
        at += gap
    return np.concatenate(pieces), ranges


def weighted_purity(finals: list[tuple[int, int, str]], truth: list[dict]) -> tuple[float, float]:
    """(purity, inverse purity), each final's label counting for the time it overlaps each true speaker."""
    overlap = collections.defaultdict(collections.Counter)
    for start, end, label in finals:
        for r in truth:
            overlap[label][r["speaker"]] += max(0, min(end, r["end_ms"]) - max(start, r["start_ms"]))
    by_speaker = collections.defaultdict(collections.Counter)
    for label, speakers in overlap.items():
        for speaker, ms in speakers.items():
            by_speaker[speaker][label] += ms
    total = sum(sum(c.values()) for c in overlap.values())
    if not total:
        return 0.0, 0.0
    return (sum(max(c.values()) for c in overlap.values()) / total,
            sum(max(c.values()) for c in by_speaker.values()) / total)

"""A session's vocabulary for Whisper: measured, a prompt of terms on every phrase hurts (ko20 CER
0.235 -> 0.257 with ten unrelated terms; faster-whisper's hotwords 0.272: short phrases derail, "그래?"
became "클리어"), while the right term needs it ("친애하는 판사님께" was heard as "친해안은 펜사님께").

So by default ("confirm") a phrase is decoded as usual, and only when its text has something that
sounds like a term (Hangul compared by its letters, jamo, so "펜사님께" is near "판사님께") is it
decoded again with the terms as the prompt; the second decode is kept if it has the term and
otherwise says much the same. Phrases with nothing near a term cost nothing and do not change.
"""
from __future__ import annotations

import unicodedata
from difflib import SequenceMatcher
from typing import Sequence

NEAR = 0.65  # how alike a stretch of the text must sound to a term to try the term
SAME_ELSEWHERE = 0.7  # how alike the two decodes must sound as a whole for the second to be kept
MIN_LETTERS = 4  # a term shorter than this (in jamo or letters) is too short to judge by sound


def sounds(text: str) -> str:
    """How a text sounds, roughly: Hangul syllables as their jamo, other letters lower-cased; no spaces
    or punctuation."""
    out = []
    for ch in unicodedata.normalize("NFC", text.lower()):
        code = ord(ch) - 0xAC00
        if 0 <= code < 11172:
            out += [chr(0x1100 + code // 588), chr(0x1161 + code % 588 // 28)]
            if code % 28:
                out.append(chr(0x11A7 + code % 28))
        elif ch.isalnum():
            out.append(ch)
    return "".join(out)


def nearness(term: str, text: str) -> float:
    """How much the stretch of `text` that sounds most like `term` does (0-1)."""
    t, x = sounds(term), sounds(text)
    best = 0.0
    for n in range(max(1, len(t) - 3), len(t) + 4):
        for i in range(0, max(1, len(x) - n + 1)):
            best = max(best, SequenceMatcher(None, t, x[i:i + n], autojunk=False).ratio())
    return best


def terms_to_try(text: str, vocabulary: Sequence[str]) -> list[str]:
    """The terms some stretch of `text` sounds like, which the text does not already have."""
    heard = sounds(text)
    return [term for term in vocabulary
            if len(sounds(term)) >= MIN_LETTERS and sounds(term) not in heard and nearness(term, text) >= NEAR]


def keep_second(first: str, second: str, terms: Sequence[str]) -> bool:
    """The decode with the terms is kept if it has one of them and otherwise says much the same."""
    has_term = any(sounds(term) in sounds(second) for term in terms)
    return has_term and SequenceMatcher(None, sounds(first), sounds(second), autojunk=False).ratio() >= SAME_ELSEWHERE

"""Guards against Whisper's known failure modes on non-speech: loops and stock phrases."""
from __future__ import annotations

import re
import unicodedata

# Phrases Whisper is known to produce from silence or noise (learned from subtitled video).
# Applied only when the phrase's audio was mostly non-speech, so a person who says them is heard.
SILENCE_HALLUCINATIONS = {
    "en": ["thanks for watching", "thank you for watching", "please subscribe", "subscribe to my channel",
           "thank you", "bye", "you"],
    "ko": ["시청해주셔서 감사합니다", "시청해 주셔서 감사합니다", "구독과 좋아요", "감사합니다", "mbc 뉴스"],
    "ja": ["ご視聴ありがとうございました", "チャンネル登録"],
    "zh": ["字幕由amaraorg社区提供", "请不吝点赞 订阅 转发 打赏支持明镜与点点栏目", "谢谢观看"],
    "es": ["subtítulos realizados por la comunidad de amaraorg", "gracias por ver el video"],
    "fr": ["soustitres réalisés par la communauté damaraorg", "merci davoir regardé"],
    "de": ["untertitel der amaraorg community", "untertitel im auftrag des zdf", "vielen dank fürs zuschauen"],
}

_REPEAT = re.compile(r"(.{2,60}?)(?:[\s,.!?、。]*\1){3,}", re.DOTALL)


def cut_repetitions(text: str) -> str:
    """'a b a b a b a b' -> 'a b': a span repeated four or more times in a row is kept once."""
    return _REPEAT.sub(r"\1", text).strip()


def _key(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    kept = "".join(ch for ch in text if ch.isalnum() or ch.isspace())
    return " ".join(kept.split())


def is_silence_hallucination(text: str, language: str | None) -> bool:
    key = _key(text)
    if not key:
        return True
    candidates = SILENCE_HALLUCINATIONS.get((language or "").split("-")[0].lower(), [])
    if language is None:  # unknown language: check them all
        candidates = [p for phrases in SILENCE_HALLUCINATIONS.values() for p in phrases]
    return any(key == _key(p) or (len(_key(p)) > 8 and _key(p) in key) for p in candidates)

"""When Whisper's output is not to be trusted, in one place: its own thresholds, used by the live
decoder (whisper_decoding.py), the batch path (batch.py), the whole-file pass (offline.py) and speech
translation (translation/whisper.py); and a final in another script than its session's language."""
from __future__ import annotations

import re

COMPRESSION_RATIO_MAX = 2.4  # above: the text repeats itself, a loop, not a transcript
UNSURE_LOG_PROB = -1.0  # below (mean log-probability of its tokens): too unsure
NO_SPEECH_PROB = 0.6  # above, and unsure too: Whisper's own "there was no speech"


def looped(compression_ratio: float) -> bool:
    return compression_ratio > COMPRESSION_RATIO_MAX


def unsure(avg_logprob: float) -> bool:
    return avg_logprob < UNSURE_LOG_PROB


def silent(no_speech_prob: float, avg_logprob: float) -> bool:
    return no_speech_prob > NO_SPEECH_PROB and unsure(avg_logprob)


# The script each language with its own writes in (a language written in Latin letters is not checked:
# English words in German are no sign of a wrong language).
SCRIPTS = {
    "ko": re.compile(r"[\uac00-\ud7a3\u1100-\u11ff\u3130-\u318f]"),
    "ja": re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]"),
    "zh": re.compile(r"[\u4e00-\u9fff\u3400-\u4dbf]"),
    "ru": re.compile(r"[\u0400-\u04ff]"), "uk": re.compile(r"[\u0400-\u04ff]"),
    "el": re.compile(r"[\u0370-\u03ff]"), "he": re.compile(r"[\u0590-\u05ff]"),
    "ar": re.compile(r"[\u0600-\u06ff]"), "fa": re.compile(r"[\u0600-\u06ff]"),
    "hi": re.compile(r"[\u0900-\u097f]"), "th": re.compile(r"[\u0e00-\u0e7f]"),
}


def wrong_script(text: str, language: str | None) -> bool:
    """Whisper, told `language` (ISO 639-1), answered in another script: letters, and none of that
    language's (told "ko", it sometimes writes an English translation of the phrase)."""
    script = SCRIPTS.get(language or "")
    return script is not None and any(ch.isalpha() for ch in text) and not script.search(text)

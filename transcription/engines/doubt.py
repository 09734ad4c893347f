"""When Whisper's output is not to be trusted, in one place: its own thresholds, used by the live
decoder (whisper_decoding.py), the batch path (batch.py), the whole-file pass (offline.py) and speech
translation (translation/whisper.py)."""
from __future__ import annotations

COMPRESSION_RATIO_MAX = 2.4  # above: the text repeats itself, a loop, not a transcript
UNSURE_LOG_PROB = -1.0  # below (mean log-probability of its tokens): too unsure
NO_SPEECH_PROB = 0.6  # above, and unsure too: Whisper's own "there was no speech"


def looped(compression_ratio: float) -> bool:
    return compression_ratio > COMPRESSION_RATIO_MAX


def unsure(avg_logprob: float) -> bool:
    return avg_logprob < UNSURE_LOG_PROB


def silent(no_speech_prob: float, avg_logprob: float) -> bool:
    return no_speech_prob > NO_SPEECH_PROB and unsure(avg_logprob)

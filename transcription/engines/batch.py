"""Several sessions' finals decoded in one pass of the model: the GPU path (STT_WHISPER_BATCH).

On a GPU one decode leaves most of the device idle, so finals of different sessions that fall due
together are encoded as one batch of 30 s windows and decoded together (greedy), as faster-whisper
decodes one. On this CPU it does not pay (measured: 0.59-0.68 s per item at batch 1-8), so it is off
unless the device is CUDA. A phrase the greedy decode gets wrong (a loop, or too unsure: what would
make faster-whisper fall back to sampling) is decoded again alone the usual way, so the text is
the same as single decodes (tests/test_scheduler.py compares them on this CPU).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import doubt


@dataclass(frozen=True)
class BatchItem:
    audio: np.ndarray  # float32, 16 kHz, at most 30 s
    language: str | None  # ISO 639-1, or None to detect
    prefix: str | None = None
    prompt: str | None = None


@dataclass(frozen=True)
class BatchResult:
    text: str  # "" when Whisper's no-speech rule says there is none
    needs_fallback: bool  # greedy failed the checks: decode alone, with temperature fallback
    language: str | None


def decode_batch(model, items: list[BatchItem]) -> list[BatchResult]:
    """Greedy decodes of `items` in one encoder and one decoder pass (same prompts as transcribe())."""
    from faster_whisper.audio import pad_or_trim
    from faster_whisper.tokenizer import Tokenizer
    from faster_whisper.transcribe import get_compression_ratio, get_ctranslate2_storage, get_suppressed_tokens

    features = np.stack([pad_or_trim(model.feature_extractor(item.audio)[..., :-1]) for item in items])
    encoded = model.model.encode(get_ctranslate2_storage(features.astype(np.float32)))
    tokenizers, prompts = [], []
    for index, item in enumerate(items):
        language = item.language
        if language is None:  # detect it as transcribe() does, from this item's encoding
            language = model.model.detect_language(encoded)[index][0][0][2:-2]
        tokenizer = Tokenizer(model.hf_tokenizer, model.model.is_multilingual, task="transcribe", language=language)
        previous = tokenizer.encode(" " + item.prompt.strip()) if item.prompt else []
        tokenizers.append(tokenizer)
        prompts.append(model.get_prompt(tokenizer, previous, without_timestamps=True, prefix=item.prefix))
    results = model.model.generate(
        encoded, prompts, beam_size=1, patience=1, length_penalty=1, repetition_penalty=1, no_repeat_ngram_size=0,
        max_length=model.max_length, return_scores=True, return_no_speech_prob=True, suppress_blank=True,
        suppress_tokens=get_suppressed_tokens(tokenizers[0], [-1]), max_initial_timestamp_index=50,
    )
    out = []
    for tokenizer, result, item in zip(tokenizers, results, items):
        tokens = result.sequences_ids[0]
        avg_logprob = result.scores[0] * len(tokens) / (len(tokens) + 1)
        text = tokenizer.decode(tokens).strip()
        silent = doubt.silent(result.no_speech_prob, avg_logprob)
        unsure = doubt.looped(get_compression_ratio(text)) or doubt.unsure(avg_logprob)
        out.append(BatchResult("" if silent else text, unsure and not silent, tokenizer.language_code))
    return out

"""Moonshine base-en (moonshine-cpp 0.1.4, its C API) against Whisper base and tiny.en, per phrase.

    pip install moonshine-cpp==0.1.4 && python bench/moonshine.py

The English recordings (jfk, beckett) are cut into phrases where the server's own endpointing cuts
them (Silero VAD, 500 ms of silence), and each phrase is decoded alone by each model: WER of the
joined phrases against the references, and the median cost of one phrase on this machine. The
package's Python `transcribe()` is broken (it uses `ctypes.c_float_p`, which does not exist), so this
calls `moonshine_transcribe` through ctypes directly. Moonshine's encoder takes audio of any length,
Whisper's always a 30 s window: the question is whether that saving comes without a cost in words.
"""
from __future__ import annotations

import ctypes
import os
import statistics
import sys
import time
import wave
from pathlib import Path

import jiwer
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sttproject.settings")


def phrases(path: Path) -> list[np.ndarray]:
    """The recording cut as the live engine cuts it (its VAD and endpointing, no decoding)."""
    from faster_whisper.vad import get_vad_model

    from transcription.engines.base import StreamConfig
    from transcription.engines.whisper import PhraseStreamer, StreamingVad

    with wave.open(str(path)) as w:
        pcm = w.readframes(w.getnframes()) + bytes(32000)
    cuts: list[tuple[int, int]] = []

    class Cutter(PhraseStreamer):  # the streamer's endpointing, with the decode replaced by a note
        def decode(self, start, end, *, final, prompt=None):
            from transcription.engines.whisper import Decoded
            if final:
                cuts.append((start, end))
            return Decoded("", None, None)

    streamer = Cutter(None, StreamingVad(get_vad_model()), StreamConfig(language="en-US", interim_results=False))
    list(streamer.run(iter([pcm[i:i + 3200] for i in range(0, len(pcm), 3200)])))
    audio = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768
    return [audio[start:end] for start, end in cuts]


class Moonshine:
    def __init__(self) -> None:
        import moonshine_cpp

        folder = Path(moonshine_cpp.__file__).parent
        self.lib = moonshine_cpp.moonshine_lib
        models = folder / "models" / "base-en"
        self.handle = self.lib.moonshine_load_model(str(models / "encoder_model.ort").encode(),
                                                    str(models / "decoder_model_merged.ort").encode(),
                                                    str(models / "tokenizer.bin").encode(), 1)
        if self.handle < 0:
            raise RuntimeError("moonshine_load_model failed")

    def __call__(self, audio: np.ndarray) -> str:
        samples = np.ascontiguousarray(audio, dtype=np.float32)
        out = ctypes.c_char_p()
        status = self.lib.moonshine_transcribe(self.handle, samples.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
                                               len(samples), ctypes.byref(out))
        if status != 0:
            raise RuntimeError(f"moonshine_transcribe failed ({status})")
        return (out.value or b"").decode()


def whisper(name: str):
    from transcription.engines.whisper_model import load_model

    model = load_model(name)

    def decode(audio: np.ndarray) -> str:
        segments, _ = model.transcribe(audio, language="en", beam_size=1, temperature=0.0,
                                       without_timestamps=True, vad_filter=False, condition_on_previous_text=False)
        return " ".join(s.text.strip() for s in segments)
    return decode


def main() -> None:
    import django

    django.setup()
    from latency import normalise

    files = [ROOT / "tests/data/en/jfk.wav", ROOT / "tests/data/en/beckett.wav"]
    cut = {f: phrases(f) for f in files}
    print(f"{sum(len(p) for p in cut.values())} phrases, {statistics.mean(len(a) / 16000 for p in cut.values() for a in p):.1f} s "
          "on average")
    for label, decode in (("moonshine base-en", Moonshine()), ("whisper base", whisper("base")),
                          ("whisper tiny.en", whisper("tiny.en"))):
        decode(cut[files[0]][0])  # warm up
        costs, refs, hyps = [], [], []
        for path in files:
            texts = []
            for audio in cut[path]:
                began = time.monotonic()
                texts.append(decode(audio))
                costs.append(time.monotonic() - began)
            refs.append(normalise(path.with_suffix(".txt").read_text(), False))
            hyps.append(normalise(" ".join(texts), False))
        print(f"{label:18} WER {jiwer.wer(refs, hyps):.3f}   cost per phrase: median {statistics.median(costs):.2f} s, "
              f"max {max(costs):.2f} s   ({' | '.join(hyps)})")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()

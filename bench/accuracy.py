"""Streaming accuracy against an offline whole-file decode of the same model on the same files.

    python bench/accuracy.py                       # the 20 Korean utterances, kspon_long, jfk, beckett
    python bench/accuracy.py --sets en --model tiny.en

Each file is streamed through the real socket of a daphne on loopback at real-time pace (`--speed`
to send faster, within the server's rate limit), and decoded offline in one call with the same
faster-whisper model, int8, beam as configured. Scores: joined CER (Korean: characters, no spaces or
punctuation) or WER (English: lower-case words), summed over each set's files. Goals (issue 3):
streaming within 10 % (relative) of offline; the 20 Korean files CER <= 0.24, kspon_long <= 0.30,
jfk and beckett WER 0.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
import wave
from pathlib import Path

import jiwer
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, Server, stream_session, write_result  # noqa: E402
from latency import normalise  # noqa: E402

DATA = ROOT / "tests" / "data"
SETS = {
    "ko20": ("ko-KR", True, sorted(DATA.glob("ko/kspon_0[0-2][0-9].wav"))),
    "ko-long": ("ko-KR", True, [DATA / "ko" / "kspon_long.wav"]),
    "en": ("en-US", False, [DATA / "en" / "jfk.wav", DATA / "en" / "beckett.wav"]),
}


def pcm_of(path: Path) -> bytes:
    with wave.open(str(path)) as w:
        return w.readframes(w.getnframes())


def offline(model_name: str, files: list[Path], language: str) -> list[str]:
    """Whole-file decodes in this process, with the engine's model loader (same files, same model)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sttproject.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    import logging

    logging.getLogger("faster_whisper").setLevel(logging.WARNING)
    from django.conf import settings
    from faster_whisper import WhisperModel

    from transcription.engines.whisper import resolve_model

    model = WhisperModel(resolve_model(model_name), device="cpu", compute_type="int8",
                         cpu_threads=settings.STT_WHISPER_THREADS, local_files_only=True)
    texts = []
    for path in files:
        audio = np.frombuffer(pcm_of(path), dtype="<i2").astype(np.float32) / 32768
        segments, _ = model.transcribe(audio, language=language.split("-")[0], beam_size=settings.STT_WHISPER_BEAM_SIZE,
                                       vad_filter=True)
        texts.append(" ".join(s.text.strip() for s in segments))
    return texts


async def streamed(server: Server, files: list[Path], language: str, speed: float) -> list[str]:
    texts = []
    for path in files:
        pcm = pcm_of(path)
        frames = [pcm[i:i + 3200] for i in range(0, len(pcm), 3200)] + [bytes(3200)] * 8
        run = await stream_session(server.url, server.cookies[0], frames, language, pace=0.1 / speed)
        texts.append(" ".join(e["text"] for _, e in run["events"] if e["type"] == "final"))
    return texts


def score(references: list[str], hypotheses: list[str], cer: bool) -> float:
    refs = [normalise(r, cer) for r in references]
    hyps = [normalise(h, cer) for h in hypotheses]
    return (jiwer.cer if cer else jiwer.wer)(refs, hyps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    parser.add_argument("--model", default="base")
    parser.add_argument("--speed", type=float, default=1.0, help="send N times faster than real time (<= 3)")
    args = parser.parse_args()

    server = Server(env={"STT_WHISPER_MODEL": args.model, "STT_WHISPER_MODEL_EN": "", "STT_MAX_SESSIONS": "4"})
    rows, detail = [], {}
    try:
        asyncio.run(streamed(server, [DATA / "en" / "jfk.wav"], "en-US", 3.0))  # load the model first
        for name in args.sets:
            language, cer, files = SETS[name]
            stream_texts = asyncio.run(streamed(server, files, language, args.speed))
            offline_texts = offline(args.model, files, language)
            references = [p.with_suffix(".txt").read_text() for p in files]
            s, o = score(references, stream_texts, cer), score(references, offline_texts, cer)
            rows.append((name, len(files), "CER" if cer else "WER", s, o))
            detail[name] = [{"file": p.name, "reference": r, "streamed": st, "offline": of}
                            for p, r, st, of in zip(files, references, stream_texts, offline_texts)]
    finally:
        server.stop()
    print(f"model {args.model}, streamed at {args.speed:g}x real time through the socket vs one offline decode per file")
    print(f"{'set':10} {'files':>5} {'metric':>6} {'streamed':>9} {'offline':>8} {'relative':>9}")
    for name, n, metric, s, o in rows:
        relative = f"{(s - o) / o:+.0%}" if o else ("+0%" if s == 0 else "n/a")
        print(f"{name:10} {n:>5} {metric:>6} {s:>9.3f} {o:>8.3f} {relative:>9}")
    path = write_result(f"accuracy-{args.model}", {"args": vars(args), "rows": rows, "detail": detail})
    print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

"""Streaming accuracy against an offline whole-file decode of the same model on the same files.

    python bench/accuracy.py                       # the 20 Korean utterances, kspon_long, jfk, beckett
    python bench/accuracy.py --sets en --model tiny.en
    python bench/accuracy.py --vocabulary "Kubernetes,김민수" --vocabulary-mode hotwords   # a glossary
    python bench/accuracy.py --refine             # also the second pass over each recording (issue 14)

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
from common import ROOT, Server, decode_calibration, final_delays, stream_session, summary, write_result  # noqa: E402
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


def offline(model_name: str, files: list[Path], language: str, vocabulary: list[str], mode: str) -> list[str]:
    """Whole-file decodes in this process, with the engine's model loader (same files, same model)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sttproject.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    import logging

    logging.getLogger("faster_whisper").setLevel(logging.WARNING)
    from django.conf import settings
    from faster_whisper import WhisperModel

    from transcription.engines.whisper_decoding import vocabulary_options
    from transcription.engines.whisper_model import resolve_model

    settings.STT_WHISPER_VOCABULARY = mode
    model = WhisperModel(resolve_model(model_name), device="cpu", compute_type="int8",
                         cpu_threads=settings.STT_WHISPER_THREADS, local_files_only=True)
    texts = []
    for path in files:
        audio = np.frombuffer(pcm_of(path), dtype="<i2").astype(np.float32) / 32768
        segments, _ = model.transcribe(audio, language=language.split("-")[0], beam_size=settings.STT_WHISPER_BEAM_SIZE,
                                       vad_filter=True, **vocabulary_options(tuple(vocabulary)))
        texts.append(" ".join(s.text.strip() for s in segments))
    return texts


DELAYS: dict[str, list[float]] = {}  # per language: every streamed final's delay (at real time only)
FIRST_INTERIMS: dict[str, list[float]] = {}  # per language: each file's first interim after its start


async def streamed(server, files: list[Path], language: str, speed: float, vocabulary: list[str],
                   refine: bool = False) -> tuple[list[str], list[str]]:
    """The joined finals of each file streamed through the socket; with `refine`, also the text after
    the server's second pass (waited for through the REST API)."""
    texts, refined = [], []
    for path in files:
        pcm = pcm_of(path)
        frames = [pcm[i:i + 3200] for i in range(0, len(pcm), 3200)] + [bytes(3200)] * 8
        run = await stream_session(server.url, server.cookies[0], frames, language, pace=0.1 / speed,
                                   vocabulary=vocabulary)
        texts.append(" ".join(e["text"] for _, e in run["events"] if e["type"] == "final"))
        DELAYS.setdefault(language, []).extend(final_delays(run))
        interims = [at for at, e in run["events"] if e["type"] == "interim"]
        if interims:
            FIRST_INTERIMS.setdefault(language, []).append(interims[0] - run["t0"])
        if refine:
            session = next(e["session"] for _, e in run["events"] if e.get("event") == "started")
            refined.append(await asyncio.to_thread(wait_refined, server, session))
    return texts, refined


def wait_refined(server, session: str, timeout: float = 300) -> str:
    """The session's text once its second pass is done (the detail JSON's `refinement`)."""
    import json
    import time
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        request = urllib.request.Request(f"{server.url}/api/sessions/{session}/", headers={"Cookie": server.cookies[0]})
        detail = json.loads(urllib.request.urlopen(request).read())
        if detail["refinement"] in ("done", "failed", "off"):
            return " ".join(s["text"] for s in detail["segments"])
        time.sleep(0.5)
    raise TimeoutError(f"no second pass of {session} within {timeout} s")


def score(references: list[str], hypotheses: list[str], cer: bool) -> float:
    refs = [normalise(r, cer) for r in references]
    hyps = [normalise(h, cer) for h in hypotheses]
    return (jiwer.cer if cer else jiwer.wer)(refs, hyps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    parser.add_argument("--model", default="base")
    parser.add_argument("--speed", type=float, default=1.0, help="send N times faster than real time (<= 3)")
    parser.add_argument("--vocabulary", default="", help="comma-separated terms sent in every start")
    parser.add_argument("--vocabulary-mode", default="confirm", choices=["confirm", "prompt", "hotwords", "off"],
                        help="STT_WHISPER_VOCABULARY of the server (and the offline decode)")
    parser.add_argument("--refine", action="store_true", help="also score the server's second pass")
    parser.add_argument("--refine-beam", type=int, default=5, help="STT_REFINE_BEAM_SIZE of the server")
    parser.add_argument("--no-offline", action="store_true", help="skip the offline decodes")
    args = parser.parse_args()
    vocabulary = [t.strip() for t in args.vocabulary.split(",") if t.strip()]

    server = Server(env={"STT_WHISPER_MODEL": args.model, "STT_WHISPER_MODEL_EN": "", "STT_MAX_SESSIONS": "4",
                         "STT_WHISPER_VOCABULARY": args.vocabulary_mode, "STT_REFINE": "1" if args.refine else "0",
                         "STT_REFINE_BEAM_SIZE": str(args.refine_beam)})
    rows, detail = [], {}
    try:
        asyncio.run(streamed(server, [DATA / "en" / "jfk.wav"], "en-US", 3.0, []))  # load the model first
        DELAYS.clear(), FIRST_INTERIMS.clear()
        for name in args.sets:
            language, cer, files = SETS[name]
            stream_texts, refined_texts = asyncio.run(streamed(server, files, language, args.speed, vocabulary,
                                                               args.refine))
            offline_texts = [] if args.no_offline else offline(args.model, files, language, vocabulary,
                                                                args.vocabulary_mode)
            references = [p.with_suffix(".txt").read_text() for p in files]
            delays, firsts = summary(DELAYS.pop(language, [])), summary(FIRST_INTERIMS.pop(language, []))
            if args.speed == 1.0 and delays["p50"] is not None:
                print(f"{name}: final delay p50 {delays['p50']:.2f} p95 {delays['p95']:.2f} max {delays['max']:.2f} s; "
                      f"first interim p50 {firsts['p50']:.2f} max {firsts['max']:.2f} s", flush=True)
                detail[f"{name}-delays"] = {"final": delays, "first_interim": firsts}
            s = score(references, stream_texts, cer)
            o = score(references, offline_texts, cer) if offline_texts else None
            r = score(references, refined_texts, cer) if refined_texts else None
            rows.append((name, len(files), "CER" if cer else "WER", s, o, r))
            detail[name] = [{"file": p.name, "reference": ref, "streamed": st,
                             "offline": offline_texts[i] if offline_texts else None,
                             "refined": refined_texts[i] if refined_texts else None}
                            for i, (p, ref, st) in enumerate(zip(files, references, stream_texts))]
    finally:
        server.stop()
    print(f"one base decode of a 1 s clip here: {decode_calibration():.2f} s")
    print(f"model {args.model}, streamed at {args.speed:g}x real time through the socket vs one offline decode per file"
          + (f"; vocabulary ({args.vocabulary_mode}): {vocabulary}" if vocabulary else "")
          + (f"; second pass beam {args.refine_beam}" if args.refine else ""))
    print(f"{'set':10} {'files':>5} {'metric':>6} {'streamed':>9} {'offline':>8} {'refined':>8} {'relative':>9}")
    fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    for name, n, metric, s, o, r in rows:
        relative = f"{(s - o) / o:+.0%}" if o else ("+0%" if s == 0 and o is not None else "n/a")
        print(f"{name:10} {n:>5} {metric:>6} {s:>9.3f} {fmt(o):>8} {fmt(r):>8} {relative:>9}")
    path = write_result(f"accuracy-{args.model}", {"args": vars(args), "rows": rows, "detail": detail})
    print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

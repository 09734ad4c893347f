"""Final latency on the real socket: stream a WAV at real-time pace and time every final.

Starts its own daphne on loopback (or uses --url with --user/--password), logs in over HTTP, sends
100 ms frames at real-time pace, and reports: each final's delay from the moment the frame holding
its end (end_ms) was sent; the delay from the end of the audio to the last final; the first interim
after speech starts; interims per second; WER (or CER with --cer) of the joined finals; the server's
CPU seconds per audio second and peak RSS (when it started the server).

    python bench/latency.py tests/data/en/beckett.wav --lang en-US
    python bench/latency.py tests/data/ko/kspon_long.wav --lang ko-KR --cer
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
import unicodedata
import wave
from pathlib import Path

import jiwer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (PASSWORD, ROOT, Server, decode_calibration, final_delays, login, stream_session,  # noqa: E402
                    summary, write_result)


def normalise(text: str, cer: bool) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    kept = "".join(ch if ch.isalnum() or ch.isspace() or ch == "'" else " " for ch in text)
    return "".join(kept.split()) if cer else " ".join(kept.split())


def measure(wav: str, lang: str, *, cer: bool = False, model: str = "base", translate_to: str | None = None,
            url: str | None = None, user: str = "bench0", password: str = PASSWORD, env: dict | None = None) -> dict:
    """Stream `wav` at real-time pace to a fresh daphne (or `url`) and time every final."""
    with wave.open(wav) as w:
        pcm = w.readframes(w.getnframes())
    frames = [pcm[i : i + 3200] for i in range(0, len(pcm), 3200)]
    server = None if url else Server(env={"STT_WHISPER_MODEL": model, "STT_WHISPER_MODEL_EN": "", **(env or {})})
    base = url or server.url
    try:
        cookie = login(base, user, password)
        if server:  # load the model before timing
            asyncio.run(stream_session(base, cookie, frames[:10], lang))
            cpu0 = server.cpu_seconds()
        run = asyncio.run(stream_session(base, cookie, frames, lang, translate_to=translate_to))
        cpu = server.cpu_seconds() - cpu0 if server else None
        rss = server.rss_mb() if server else None
    finally:
        if server:
            server.stop()
    finals = [(t, e) for t, e in run["events"] if e["type"] == "final"]
    interims = [(t, e) for t, e in run["events"] if e["type"] == "interim"]
    audio_s = len(frames) / 10
    reference = Path(wav).with_suffix(".txt")
    hypothesis = " ".join(e["text"] for _, e in finals)
    score = None
    if reference.exists():
        score = round((jiwer.cer if cer else jiwer.wer)(normalise(reference.read_text(), cer), normalise(hypothesis, cer)), 3)
    delays = final_delays(run)
    return {
        "file": os.path.relpath(wav, ROOT),
        "audio_s": audio_s,
        "translate_to": translate_to,
        "translations": len([e for _, e in run["events"] if e["type"] == "translation" and e.get("done")]),
        "finals": [e["text"] for _, e in finals],
        "final_delays_s": [round(d, 3) for d in delays],
        "final_delay_s": summary(delays),
        "last_final_after_audio_end_s": round(finals[-1][0] - run["audio_end"], 3) if finals else None,
        "first_interim_s": round(interims[0][0] - run["t0"], 3) if interims else None,
        "interims_per_s": round(len(interims) / audio_s, 2),
        ("cer" if cer else "wer"): score,
        "server_cpu_s_per_audio_s": round(cpu / audio_s, 3) if cpu is not None else None,
        "server_rss_mb": [round(v) for v in rss] if rss else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wav", nargs="?", default=str(ROOT / "tests/data/en/beckett.wav"))
    parser.add_argument("--lang", default="en-US")
    parser.add_argument("--cer", action="store_true", help="score by characters (Korean, Japanese, Chinese)")
    parser.add_argument("--model", default="base", help="STT_WHISPER_MODEL when the script starts the server")
    parser.add_argument("--translate-to", default=None, help="also translate every final (e.g. en)")
    parser.add_argument("--url", help="http://host:port of a running server (default: start one)")
    parser.add_argument("--user", default="bench0")
    parser.add_argument("--password", default=PASSWORD)
    args = parser.parse_args()
    result = measure(args.wav, args.lang, cer=args.cer, model=args.model, translate_to=args.translate_to,
                     url=args.url, user=args.user, password=args.password)
    result["decode_1s_clip_s"] = round(decode_calibration(args.model), 3)  # this machine's speed, beside the delays
    out = write_result(f"latency-{Path(args.wav).stem}", result)
    for key, value in result.items():
        print(f"{key:30} {value}")
    if Path(args.wav).stem == "kspon_long":  # the goals of issue 15, each beside its number
        d, cer = result["final_delay_s"], result.get("cer")
        for name, value, goal in (("final delay p95", d["p95"], 2.0), ("final delay max", d["max"], 3.0),
                                  ("CER", cer, 0.25)):
            if value is not None:
                print(f"goal {name} <= {goal}: {value:.3f} {'met' if value <= goal else 'NOT met'} "
                      f"(one {args.model} decode of a 1 s clip here: {result['decode_1s_clip_s']:.2f} s)")
    print(f"written to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

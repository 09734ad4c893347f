"""Uploads: throughput on a 10-minute recording, and a live session's final delay while one is processed.

    python bench/upload.py                  # both
    python bench/upload.py --parts throughput

- throughput: a 10-minute Korean recording (the 20 KsponSpeech utterances and kspon_long, repeated,
  with 1 s pauses) uploaded through POST /api/sessions/ to a fresh daphne: seconds of audio per
  wall-clock second, from the upload to `"status": "ended"`, and the segments made.
- live: kspon_long streamed at real time through the socket, alone and while that upload is processed
  (it arrives 2 s into the live session), alternating runs, final delay pooled. Goal: p95 with an
  upload within +10 %.
- compare: a 7-minute Korean recording (the 32 KsponSpeech utterances in a shuffled order, twice,
  with pauses of 0.3-2 s) uploaded to an idle server, and the same file through faster-whisper's own
  BatchedInferencePipeline (same model, threads and beam 5, batch 8, its VAD), alternating runs:
  wall time, seconds of audio per second and CER of each, and whether each gives the same text
  every run. Goal: the upload at least as fast and as accurate.
"""
from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import random
import sys
import threading
import time
import urllib.request
import uuid
import wave
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, Server, final_delays, stream_session, summary, write_result  # noqa: E402

LIVE = ROOT / "tests/data/ko/kspon_long.wav"
SOURCES = sorted((ROOT / "tests/data/ko").glob("kspon_0[0-2][0-9].wav")) + [LIVE]


def ten_minutes() -> bytes:
    pcm, pause = b"", bytes(32000)
    while len(pcm) < 600 * 32000:
        for path in SOURCES:
            with wave.open(str(path)) as w:
                pcm += w.readframes(w.getnframes()) + pause
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
        w.writeframes(pcm[:600 * 32000])
    return out.getvalue()


def conversation() -> tuple[bytes, str]:
    """The 7-minute recording of `compare` (see above) and its reference text."""
    rng, parts, references = random.Random(7), [], []
    utterances = sorted((ROOT / "tests/data/ko").glob("kspon_0[0-2][0-9].wav"))
    for _ in range(2):
        for path in rng.sample(utterances, len(utterances)) + [LIVE]:
            with wave.open(str(path)) as w:
                parts.append(w.readframes(w.getnframes()))
            parts.append(bytes(2 * int(16000 * rng.uniform(0.3, 2.0))))
            references.append(path.with_suffix(".txt").read_text(encoding="utf-8").strip())
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
        w.writeframes(b"".join(parts))
    return out.getvalue(), " ".join(references)


def frames_of(path: Path) -> list[bytes]:
    with wave.open(str(path)) as w:
        pcm = w.readframes(w.getnframes())
    return [pcm[i:i + 3200] for i in range(0, len(pcm), 3200)]


def api(server, path: str, *, data: bytes | None = None, headers: dict | None = None) -> dict:
    request = urllib.request.Request(server.url + path, data=data, headers={"Authorization": f"Bearer {server.token}",
                                                                           **(headers or {})})
    return json.loads(urllib.request.urlopen(request, timeout=120).read())


def upload(server, wav: bytes) -> str:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"language\"\r\n\r\nko-KR\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"ten-minutes.wav\"\r\n"
            f"Content-Type: audio/wav\r\n\r\n").encode() + wav + f"\r\n--{boundary}--\r\n".encode()
    return api(server, "/api/sessions/", data=body,
               headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})["id"]


def start_server(users: int = 1, env: dict | None = None):
    server = Server(env={"STT_MAX_SESSIONS_PER_USER": "4", **(env or {})}, users=users)
    server.token = server.create_token("bench0")
    asyncio.run(stream_session(server.url, server.cookies[0], frames_of(LIVE)[:20], "ko-KR"))  # load the model
    return server


def throughput(wav: bytes) -> dict:
    server = start_server()
    try:
        began = time.monotonic()
        session = upload(server, wav)
        accepted = time.monotonic() - began
        while (detail := api(server, f"/api/sessions/{session}/"))["status"] == "processing":
            time.sleep(1)
        wall = time.monotonic() - began
    finally:
        server.stop()
    audio = detail["audio_ms"] / 1000
    print(f"throughput: {audio:.0f} s of audio accepted in {accepted:.1f} s, ended after {wall:.1f} s: "
          f"{audio / wall:.2f} s of audio per second ({wall / audio:.2f}x real time), {detail['segment_count']} "
          f"segments, status {detail['status']}", flush=True)
    return {"audio_s": audio, "accepted_s": accepted, "wall_s": wall, "rate": audio / wall,
            "segments": detail["segment_count"], "status": detail["status"]}


def ours(wav: bytes, reference: str, env: dict) -> dict:
    from accuracy import score

    server = start_server(env=env)  # a server that has run a session: its model is loaded
    try:
        time.sleep(32)  # idle: that session's second pass done, and past the scheduler's LIVE_GRACE_SECONDS
        began = time.monotonic()
        session = upload(server, wav)
        while (detail := api(server, f"/api/sessions/{session}/"))["status"] == "processing":
            time.sleep(0.5)
        wall = time.monotonic() - began
    finally:
        server.stop()
    text = " ".join(segment["text"] for segment in detail["segments"])
    return {"wall_s": wall, "rate": detail["audio_ms"] / 1000 / wall, "cer": score([reference], [text], True),
            "text": text}


def theirs(wav: bytes, reference: str) -> dict:
    """faster-whisper's BatchedInferencePipeline, as its README runs it, in a fresh process."""
    import subprocess
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".wav") as f:
        f.write(wav), f.flush()
        out = subprocess.run([sys.executable, "-c", PIPELINE, f.name], check=True, capture_output=True, text=True,
                             cwd=ROOT, env={**os.environ, "DJANGO_SETTINGS_MODULE": "sttproject.settings"}).stdout
    from accuracy import score

    result = json.loads(out.strip().splitlines()[-1])
    result["cer"] = score([reference], [result["text"]], True)
    return result


PIPELINE = """
import json, sys, time
import django; django.setup()
from django.conf import settings
from faster_whisper import BatchedInferencePipeline, WhisperModel, decode_audio
from transcription.engines.whisper_model import resolve_model
model = WhisperModel(resolve_model("base"), device="cpu", compute_type="int8", cpu_threads=settings.STT_WHISPER_THREADS,
                     local_files_only=True)
audio = decode_audio(sys.argv[1])
began = time.monotonic()
segments, _ = BatchedInferencePipeline(model).transcribe(audio, language="ko", beam_size=5, batch_size=8)
text = " ".join(s.text.strip() for s in segments)
wall = time.monotonic() - began
print(json.dumps({"wall_s": wall, "rate": len(audio) / 16000 / wall, "text": text}))
"""


def compare(runs: int, env: dict) -> dict:
    wav, reference = conversation()
    seconds = (len(wav) - 44) / 32000
    rows: dict[str, list[dict]] = {"ours": [], "pipeline": []}
    for number in range(runs):
        for label in ("ours", "pipeline"):
            row = ours(wav, reference, env) if label == "ours" else theirs(wav, reference)
            rows[label].append(row)
            print(f"run {number + 1} {label:8}: {seconds:.0f} s of audio in {row['wall_s']:.1f} s = {row['rate']:.1f} s "
                  f"per second, CER {row['cer']:.3f}", flush=True)
    for label, done in rows.items():
        same = len({row["text"] for row in done}) == 1
        print(f"{label:8}: rate {min(r['rate'] for r in done):.1f}-{max(r['rate'] for r in done):.1f} s/s, "
              f"CER {', '.join(format(r['cer'], '.3f') for r in done)}; the same text every run: {same}")
    return {label: [{k: v for k, v in row.items() if k != "text"} for row in done] for label, done in rows.items()}


def live_run(wav: bytes | None) -> list[float]:
    server = start_server()
    try:
        if wav is not None:  # the upload comes 2 s into the live session (its jobs then small ones)
            threading.Timer(2.0, upload, args=(server, wav)).start()
        return final_delays(asyncio.run(stream_session(server.url, server.cookies[0], frames_of(LIVE), "ko-KR")))
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", default=["throughput", "live"], choices=["throughput", "live", "compare"])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--env", nargs="*", default=[], help="NAME=VALUE for our server (compare)")
    args = parser.parse_args()
    wav, result = ten_minutes(), {}
    if "compare" in args.parts:
        result["compare"] = compare(args.runs, dict(pair.split("=", 1) for pair in args.env))
    if "throughput" in args.parts:
        result["throughput"] = throughput(wav)
    if "live" in args.parts:
        pooled = {"without": [], "with": []}
        for number in range(args.runs):
            for label in ("without", "with"):
                delays = live_run(wav if label == "with" else None)
                pooled[label] += delays
                d = summary(delays)
                print(f"run {number + 1} {label:7} an upload: p50 {d['p50']:.2f} p95 {d['p95']:.2f} max {d['max']:.2f} s",
                      flush=True)
        rows = {label: summary(values) for label, values in pooled.items()}
        ratio = rows["with"]["p95"] / rows["without"]["p95"]
        for label, row in rows.items():
            print(f"pooled {label:7} ({len(pooled[label])} finals): p50 {row['p50']:.2f} p95 {row['p95']:.2f} "
                  f"max {row['max']:.2f} s")
        print(f"p95 with / without = {ratio:.2f} (goal <= 1.10: {'met' if ratio <= 1.10 else 'NOT met'})")
        result["live"] = {"pooled": rows, "ratio_p95": ratio}
    print(f"written to {write_result('upload', result).relative_to(ROOT)}")


if __name__ == "__main__":
    main()

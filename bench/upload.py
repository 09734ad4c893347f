"""Uploads: throughput on a 10-minute recording, and a live session's final delay while one is processed.

    python bench/upload.py                  # both
    python bench/upload.py --parts throughput

- throughput: a 10-minute Korean recording (the 20 KsponSpeech utterances and kspon_long, repeated,
  with 1 s pauses) uploaded through POST /api/sessions/ to a fresh daphne: seconds of audio per
  wall-clock second, from the upload to `"status": "ended"`, and the segments made.
- live: kspon_long streamed at real time through the socket, alone and while that upload is processed
  (started just before), alternating runs, final delay pooled. Goal: p95 with an upload within +10 %.
"""
from __future__ import annotations

import argparse
import asyncio
import io
import json
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


def start_server(users: int = 1):
    server = Server(env={"STT_MAX_SESSIONS_PER_USER": "4"}, users=users)
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


def live_run(wav: bytes | None) -> list[float]:
    server = start_server()
    try:
        if wav is not None:
            threading.Thread(target=upload, args=(server, wav), daemon=True).start()
            time.sleep(2)  # accepted, its job running
        return final_delays(asyncio.run(stream_session(server.url, server.cookies[0], frames_of(LIVE), "ko-KR")))
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", default=["throughput", "live"], choices=["throughput", "live"])
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    wav, result = ten_minutes(), {}
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

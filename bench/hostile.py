"""Hostile input against `make run`'s server: what an attacker's bodies cost everyone else.

    python bench/hostile.py                   # bodies: refusal times, live finals and page loads meanwhile, RSS
    python bench/hostile.py --long-hours 4    # also: memory of decoding and planning a 4-hour upload

Bodies. A fresh server (scripted engine) runs one live session at real time (a final every 0.8 s) and
loads a page every 0.2 s, twice: alone (the baseline), and while three anonymous 200 MB
multipart bodies are thrown at /v1/audio/transcriptions at full speed by clients that ignore the
answer and send everything. Then a logged-in 100 MB body against a 20 MB limit. Goals (issue 20):
refusal within 3 s, a page or live final elsewhere delayed by at most 0.5 s, RSS growth at most 100 MB.

Long upload. A 4-hour Opus file (a Korean conversation repeated) is decoded into the kept WAV and its
speech planned into windows, in a process of its own: its peak memory, against the process before.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, Server, final_delays, percentile, stream_session, write_result  # noqa: E402

MB = 1024 * 1024


def scripted_frames(seconds: float) -> list[bytes]:
    loud = (np.ones(1600, dtype="<i2") * 5000).tobytes()
    phrase = [loud] * 5 + [bytes(3200)] * 3  # one final each 0.8 s
    return (phrase * int(seconds / 0.8 + 1))[: int(seconds * 10)]


def page_loads(url: str, stop: threading.Event, out: list[float]) -> None:
    while not stop.is_set():
        began = time.monotonic()
        urllib.request.urlopen(url, timeout=30).read()
        out.append(time.monotonic() - began)
        time.sleep(0.2)


def attacker(port: int, size: int, path: str, headers: str, out: list) -> None:
    """Sends the whole body whatever the server says, then reads the answer: (seconds to the
    first byte of the answer, status)."""
    boundary = "xyz"
    prologue = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n\r\n").encode()
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary={boundary}\r\n"
            f"Content-Length: {len(prologue) + size}\r\n{headers}\r\n").encode()
    began = time.monotonic()
    answered = None
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setblocking(False)
        pending = head + prologue
        left, block, answer = size, os.urandom(MB), b""
        while True:
            try:
                data = sock.recv(65536)
                if data:
                    answered = answered or time.monotonic() - began
                    answer += data
                if not data or b"\r\n\r\n" in answer and left <= 0:
                    break
            except BlockingIOError:
                pass
            except (ConnectionResetError, BrokenPipeError):
                break
            if left > 0 or pending:
                if not pending:
                    pending, left = block[: min(MB, left)], left - min(MB, left)
                try:
                    pending = pending[sock.send(pending):]
                except BlockingIOError:
                    time.sleep(0.001)
                except (ConnectionResetError, BrokenPipeError):
                    break
            elif answered is not None:
                break
            else:
                time.sleep(0.01)
    status = int(answer.split()[1]) if answer.startswith(b"HTTP/") else None
    out.append((answered, status, size - left))


def bodies_run(attack: bool) -> dict:
    server = Server(env={"STT_ENGINE": "scripted", "STT_MAX_UPLOAD_MB": "500"})
    try:
        base_rss = server.rss_mb()[0]
        stop, pages, attacks = threading.Event(), [], []
        loader = threading.Thread(target=page_loads, args=(f"{server.url}/accounts/login/", stop, pages))
        loader.start()
        threads = []
        if attack:
            def launch():
                time.sleep(5)
                for _ in range(3):
                    thread = threading.Thread(target=attacker, args=(server.port, 200 * MB, "/v1/audio/transcriptions",
                                                                     "", attacks))
                    thread.start()
                    threads.append(thread)
            threading.Thread(target=launch).start()
        live = asyncio.run(stream_session(server.url, server.cookies[0], scripted_frames(20), "ko-KR"))
        time.sleep(6 if attack else 0)
        for thread in threads:
            thread.join(60)
        stop.set()
        loader.join()
        rss, peak = server.rss_mb()
        return {"finals": final_delays(live, trigger_frames=1), "pages": pages, "attacks": attacks,
                "rss_growth": rss - base_rss, "peak_growth": peak - base_rss}
    finally:
        server.stop()


def over_limit_run() -> dict:
    """A logged-in 100 MB body against STT_MAX_UPLOAD_MB=20."""
    server = Server(env={"STT_ENGINE": "scripted", "STT_MAX_UPLOAD_MB": "20"})
    try:
        server.create_user("member")
        token = server.create_token("member")
        out = []
        attacker(server.port, 100 * MB, "/v1/audio/transcriptions", f"Authorization: Bearer {token}\r\n", out)
        return {"seconds": out[0][0], "status": out[0][1]}
    finally:
        server.stop()


LONG_PROBE = """
import os, resource, sys, time
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sttproject.settings")
import django; django.setup()
from django.conf import settings
settings.STT_MAX_UPLOAD_SECONDS = 5 * 3600
from transcription.sources.uploads import decode_to_wav
from transcription.recording import WavReader
from transcription.engines.offline import speech_chunks, speech_windows
import faster_whisper.vad
faster_whisper.vad.get_vad_model()  # (loaded before the baseline: it is loaded once per process anyway)
def rss(): return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
base = rss(); t = time.monotonic()
from pathlib import Path
frames = decode_to_wav(Path(sys.argv[1]), Path(sys.argv[2]) / "kept.wav")
decoded = rss(); t_decode = time.monotonic() - t; t = time.monotonic()
reader = WavReader(sys.argv[2] + "/kept.wav")
windows = speech_windows(speech_chunks(reader.samples, reader.frames))
print(frames / 16000, base, decoded, rss(), t_decode, time.monotonic() - t, len(windows))
"""


def long_upload(hours: float) -> dict:
    import tempfile
    import wave

    import av

    folder = Path(tempfile.mkdtemp(prefix="sttbench-long-"))
    with wave.open(str(ROOT / "tests/data/ko/kspon_long.wav")) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    path = folder / "long.webm"
    began = time.monotonic()
    with av.open(str(path), "w", format="webm") as muxer:
        stream = muxer.add_stream("libopus", rate=16000, layout="mono")
        stream.bit_rate = 12000
        needed = int(hours * 3600 * 16000)
        while needed > 0:
            piece = pcm[: min(len(pcm), needed)]
            needed -= len(piece)
            frame = av.AudioFrame.from_ndarray(piece.reshape(1, -1), format="s16", layout="mono")
            frame.sample_rate = 16000
            for packet in stream.encode(frame):
                muxer.mux(packet)
        for packet in stream.encode(None):
            muxer.mux(packet)
    made = time.monotonic() - began
    env = dict(os.environ, STT_DATA_DIR=str(folder), STT_MEDIA_ROOT=str(folder / "media"))
    out = subprocess.run([sys.executable, "-c", LONG_PROBE, str(path), str(folder)], cwd=ROOT, env=env,
                         capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])
    out = out.stdout.split()
    seconds, base, decoded, planned, t_decode, t_plan, windows = map(float, out[-7:])
    return {"file_mb": path.stat().st_size / MB, "made_seconds": made, "audio_hours": seconds / 3600,
            "base_mb": base, "decode_peak_growth_mb": decoded - base, "plan_peak_growth_mb": planned - base,
            "decode_seconds": t_decode, "plan_seconds": t_plan, "windows": int(windows)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--long-hours", type=float, default=0)
    args = parser.parse_args()
    result = {}
    baseline, attacked = bodies_run(False), bodies_run(True)
    result["bodies"] = {"baseline": baseline, "attacked": attacked}
    refusals = [a[0] for a in attacked["attacks"]]
    print("Three anonymous 200 MB bodies at once, against a live session and page loads:")
    print(f"  refused with {[a[1] for a in attacked['attacks']]} after {[round(s, 3) for s in refusals]} s "
          f"(goal <= 3 s); the attackers sent {[round(a[2] / MB) for a in attacked['attacks']]} MB")
    for name, key in (("live final delay", "finals"), ("page load", "pages")):
        alone, during = baseline[key], attacked[key]
        print(f"  {name}: max {max(during):.3f} s with the attack, {max(alone):.3f} s without; "
              f"p95 {percentile(during, 0.95):.3f} vs {percentile(alone, 0.95):.3f} "
              f"(goal: at most 0.5 s more: {'met' if max(during) - max(alone) <= 0.5 else 'NOT met'})")
    growth = attacked["peak_growth"] - baseline["peak_growth"]
    print(f"  peak RSS grew {attacked['peak_growth']:.1f} MB with the attack, {baseline['peak_growth']:.1f} MB without "
          f"(the session and first page loads): {growth:+.1f} MB from the attack (goal <= 100 MB)")
    result["over_limit"] = over = over_limit_run()
    print(f"A logged-in 100 MB body against a 20 MB limit: {over['status']} after {over['seconds']:.3f} s")
    if args.long_hours:
        result["long"] = long = long_upload(args.long_hours)
        print(f"A {long['audio_hours']:.2f} h Opus upload ({long['file_mb']:.1f} MB): decoded into the kept WAV in "
              f"{long['decode_seconds']:.0f} s with peak memory +{long['decode_peak_growth_mb']:.1f} MB; speech "
              f"planned into {long['windows']} windows in {long['plan_seconds']:.0f} s, peak "
              f"+{long['plan_peak_growth_mb']:.1f} MB (process base {long['base_mb']:.0f} MB)")
    print(f"saved {write_result('hostile', result)}")


if __name__ == "__main__":
    main()

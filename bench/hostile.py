"""Hostile input against `make run`'s server: what an attacker's bodies cost everyone else.

    python bench/hostile.py                   # bodies, heavy pages, floods (below)
    python bench/hostile.py --only pages      # one part: bodies, pages or floods
    python bench/hostile.py --long-hours 4    # also: memory of decoding and planning a 4-hour upload

Bodies. A fresh server (scripted engine) runs one live session at real time (a final every 0.8 s) and
loads a page every 0.2 s, twice: alone (the baseline), and while three anonymous 200 MB
multipart bodies are thrown at /v1/audio/transcriptions at full speed by clients that ignore the
answer and send everything. Then a logged-in 100 MB body against a 20 MB limit. Goals (issue 20):
refusal within 3 s, a page or live final elsewhere delayed by at most 0.5 s, RSS growth at most 100 MB.

Heavy pages (issue 35). Twenty signed-up clients, each owning a 3,000-phrase session with kept audio,
hammer the heaviest endpoints in turn: its exports (txt, srt, vtt, json), its page, its captions file, voice
enrolment, a full-text search. Meanwhile a live session streams at real time and a light page loads
every 0.2 s; the same run without the clients is the baseline. Goals: the live final delay p95 at most
0.3 s over the baseline, a page load at most 0.5 s over it.

Floods (issue 35). Against a live session at real time, one at a time: a Deepgram socket sending 10,000
Finalize messages, an OpenAI socket sending 5,000 commits, a Deepgram socket sending 2-byte frames as
fast as it can for 8 s, and 30 OpenAI sockets held open without audio. Each: the server's RSS growth and
the live session's final delay p95 beside the baseline.

Long upload. A 4-hour Opus file (a Korean conversation repeated) is decoded into the kept WAV and its
speech planned into windows, in a process of its own: its peak memory, against the process before.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, Server, final_delays, percentile, stream_session, write_result  # noqa: E402

MB = 1024 * 1024
EXTRA_ENV = dict(item.split("=", 1) for item in os.environ.get("HOSTILE_ENV", "").split() if "=" in item)


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


SETUP_HEAVY = """
import json, wave
from pathlib import Path
from django.conf import settings
from django.contrib.auth.models import User
from knox.models import AuthToken
from transcription.models import Segment, ShareLink, TranscriptionSession
clients = []
words = "안녕하세요 오늘 날씨가 정말 좋네요 그렇죠".split()
audio = Path(settings.MEDIA_ROOT) / "audio" / "long.wav"
audio.parent.mkdir(parents=True, exist_ok=True)
with wave.open(str(audio), "wb") as w:
    w.setnchannels(1); w.setsampwidth(2); w.setframerate(16000)
    w.writeframes(Path("tests/data/ko/kspon_long.wav").read_bytes()[44:] * 5)
for n in range(COUNT):
    user = User.objects.create_user(f"heavy{n}", password="x-long-password-1")
    session = TranscriptionSession.objects.create(owner=user, language="ko-KR", engine="whisper", status="ended",
                                                  audio="audio/long.wav", audio_ms=6000000, title=f"long {n}")
    Segment.objects.bulk_create(Segment(
        session=session, index=i, text=" ".join(words), original_text=" ".join(words), speaker="S1",
        start_ms=i * 2000, end_ms=i * 2000 + 1800,
        words=[{"word": w, "start_ms": i * 2000 + j * 300, "end_ms": i * 2000 + j * 300 + 250, "probability": 0.9}
               for j, w in enumerate(words)]) for i in range(3000))
    link = ShareLink.objects.create(session=session)
    clients.append({"session": str(session.pk), "token": AuthToken.objects.create(user)[1], "share": link.token})
print(json.dumps(clients))
"""


def heavy_client(base: str, client: dict, stop: threading.Event, out: list) -> None:
    """One signed-up client hammering its own 3,000-phrase session's heaviest endpoints, in turn."""
    auth = {"Authorization": f"Bearer {client['token']}"}
    session = client["session"]
    requests = [("GET", f"/api/sessions/{session}/export/{fmt}/", None) for fmt in ("txt", "srt", "vtt", "json")] + [
        ("GET", f"/api/sessions/{session}/", None), ("GET", f"/live/{client['share']}/captions.vtt", None),
        ("GET", "/api/sessions/?q=날씨가", None),
        ("POST", f"/api/sessions/{session}/voices/", json.dumps({"speaker": "S1", "name": "민수"}).encode())]
    number = 0
    while not stop.is_set():
        method, path, body = requests[number % len(requests)]
        number += 1
        began = time.monotonic()
        request = urllib.request.Request(base + path, data=body, method=method,
                                         headers={**auth, "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:
                answer.read()
                status = answer.status
        except urllib.error.HTTPError as error:
            status = error.code
        out.append((path.split("/")[-2] if path.endswith("/") else path.rsplit("/", 1)[-1], status,
                    time.monotonic() - began))


def pages_run(attack: bool, clients: int = 20) -> dict:
    server = Server(env={"STT_ENGINE": "scripted", **EXTRA_ENV})
    try:
        made = server.manage("shell", "-c", SETUP_HEAVY.replace("COUNT", str(clients if attack else 1)))
        heavy = json.loads(made.stdout.strip().splitlines()[-1])
        base_rss = server.rss_mb()[0]
        stop, pages, answers = threading.Event(), [], []
        loader = threading.Thread(target=page_loads, args=(f"{server.url}/accounts/login/", stop, pages))
        loader.start()
        hammers = [threading.Thread(target=heavy_client, args=(server.url, c, stop, answers)) for c in heavy] \
            if attack else []
        for thread in hammers:
            thread.start()
        time.sleep(3 if attack else 0)
        live = asyncio.run(stream_session(server.url, server.cookies[0], scripted_frames(30), "ko-KR"))
        stop.set()
        for thread in [loader, *hammers]:
            thread.join(120)
        rss, peak = server.rss_mb()
        return {"finals": final_delays(live, trigger_frames=1), "pages": pages, "answers": answers,
                "rss_growth": rss - base_rss, "peak_growth": peak - base_rss}
    finally:
        server.stop()


async def flood(kind: str, base: str, token: str, stop: threading.Event) -> int:
    """One flood until `stop`: messages sent."""
    import websockets

    ws_base = base.replace("http", "ws", 1)
    sent = 0
    if kind == "idle sockets":
        held = []
        for _ in range(30):
            try:
                held.append(await websockets.connect(f"{ws_base}/v1/realtime?intent=transcription",
                                                     additional_headers={"Authorization": f"Bearer {token}"}))
                sent += 1
            except Exception:  # refused beyond the per-user limit
                pass
        while not stop.is_set():
            await asyncio.sleep(0.2)
        for socket in held:
            await socket.close()
        return sent
    if kind == "commit":
        url, scheme = f"{ws_base}/v1/realtime?intent=transcription", "Bearer"
    else:
        url, scheme = f"{ws_base}/v1/listen?sample_rate=16000", "Token"
    async with websockets.connect(url, additional_headers={"Authorization": f"{scheme} {token}"},
                                  max_size=None) as socket:
        audio = base64.b64encode(bytes(4800)).decode()
        if kind == "Finalize":
            await socket.send(bytes(3200))
        while not stop.is_set():
            if kind == "Finalize":
                message = json.dumps({"type": "Finalize"})
            elif kind == "commit":
                await socket.send(json.dumps({"type": "input_audio_buffer.append", "audio": audio}))
                message = json.dumps({"type": "input_audio_buffer.commit"})
            else:
                message = b"\x00\x00"
            await socket.send(message)
            sent += 1
            if sent % 200 == 0:
                await asyncio.sleep(0)  # (let the socket's reads run)
            if kind == "Finalize" and sent >= 10_000 or kind == "commit" and sent >= 5_000:
                break
        while not stop.is_set():
            await asyncio.sleep(0.2)
    return sent


def floods_run(kind: str | None) -> dict:
    server = Server(env={"STT_ENGINE": "scripted"})
    try:
        server.create_user("flooder")
        token = server.create_token("flooder")
        base_rss = server.rss_mb()[0]
        stop, sent = threading.Event(), []
        def run_flood():
            try:
                sent.append(asyncio.run(flood(kind, server.url, token, stop)))
            except Exception as exc:  # (the server closed it: what was sent still counts, below)
                sent.append(f"{type(exc).__name__}: {exc}")

        flooder = threading.Thread(target=run_flood)
        if kind is not None:
            flooder.start()
        time.sleep(2 if kind else 0)
        live = asyncio.run(stream_session(server.url, server.cookies[0], scripted_frames(12), "ko-KR"))
        rss, peak = server.rss_mb()
        stop.set()
        if kind is not None:
            flooder.join(30)
        return {"finals": final_delays(live, trigger_frames=1), "sent": sent[0] if sent else 0,
                "rss_growth": rss - base_rss, "peak_growth": peak - base_rss}
    finally:
        server.stop()


def report_pages(result: dict) -> None:
    baseline, attacked = pages_run(False), pages_run(True)
    result["pages"] = {"baseline": baseline, "attacked": attacked}
    answers = attacked["answers"]
    statuses = {}
    for _, status, _ in answers:
        statuses[status] = statuses.get(status, 0) + 1
    print(f"Twenty clients hammering exports, pages, captions, enrolment and search of 3,000-phrase sessions "
          f"({len(answers)} requests; statuses {statuses}):")
    for name, key, goal in (("live final delay", "finals", 0.3), ("page load", "pages", 0.5)):
        alone, during = percentile(baseline[key], 0.95), percentile(attacked[key], 0.95)
        print(f"  {name} p95: {during:.3f} s with them, {alone:.3f} s without: {during - alone:+.3f} s "
              f"(goal at most +{goal} s: {'met' if during - alone <= goal else 'NOT met'}); "
              f"max {max(attacked[key]):.3f} vs {max(baseline[key]):.3f}")
    print(f"  peak RSS growth {attacked['peak_growth']:.1f} MB with them, {baseline['peak_growth']:.1f} MB without")


def report_floods(result: dict) -> None:
    baseline = floods_run(None)
    result["floods"] = {"baseline": baseline}
    alone = percentile(baseline["finals"], 0.95)
    print(f"Floods against a live session (final delay p95 without one: {alone:.3f} s, "
          f"RSS +{baseline['rss_growth']:.1f} MB):")
    for kind in ("Finalize", "commit", "2-byte frames", "idle sockets"):
        run = result["floods"][kind] = floods_run(kind)
        during = percentile(run["finals"], 0.95)
        print(f"  {kind} ({run['sent']} sent): final delay p95 {during:.3f} s ({during - alone:+.3f}), "
              f"RSS +{run['rss_growth']:.1f} MB (peak +{run['peak_growth']:.1f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--long-hours", type=float, default=0)
    parser.add_argument("--only", choices=("bodies", "pages", "floods"))
    args = parser.parse_args()
    result = {}
    if args.only in (None, "bodies"):
        report_bodies(result)
    if args.only in (None, "pages"):
        report_pages(result)
    if args.only in (None, "floods"):
        report_floods(result)
    if args.long_hours:
        result["long"] = long = long_upload(args.long_hours)
        print(f"A {long['audio_hours']:.2f} h Opus upload ({long['file_mb']:.1f} MB): decoded into the kept WAV in "
              f"{long['decode_seconds']:.0f} s with peak memory +{long['decode_peak_growth_mb']:.1f} MB; speech "
              f"planned into {long['windows']} windows in {long['plan_seconds']:.0f} s, peak "
              f"+{long['plan_peak_growth_mb']:.1f} MB (process base {long['base_mb']:.0f} MB)")
    print(f"saved {write_result('hostile', result)}")


def report_bodies(result: dict) -> None:
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


if __name__ == "__main__":
    main()

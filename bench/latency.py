"""Final latency on the real socket: stream a WAV at real-time pace and time every final.

Logs in over HTTP (creating a bench user in the server's database if asked), opens the server's
WebSocket, sends 100 ms frames at real-time pace, and reports for each final the delay from the
moment the audio containing its end (end_ms) was sent to the final's arrival, and the delay from
the end of the audio to the last final. Starts its own daphne on loopback unless --url is given.

    python bench/latency.py tests/data/en/beckett.wav --lang en-US
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import wave
from http.cookiejar import CookieJar
from pathlib import Path

import websockets

ROOT = Path(__file__).resolve().parent.parent
FRAME = 3200


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int, env: dict) -> subprocess.Popen:
    py = sys.executable
    subprocess.run([py, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    subprocess.run(
        [py, "manage.py", "shell", "-c",
         "from django.contrib.auth.models import User;"
         "User.objects.filter(username='bench').exists() or User.objects.create_user('bench', password='bench-password-123')"],
        cwd=ROOT, env=env, check=True,
    )
    proc = subprocess.Popen([str(Path(py).parent / "daphne"), "-b", "127.0.0.1", "-p", str(port), "sttproject.asgi:application"],
                            cwd=ROOT, env=env, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("server did not start")


def login(base: str, username: str, password: str) -> str:
    jar = CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = opener.open(f"{base}/accounts/login/").read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    data = urllib.parse.urlencode({"username": username, "password": password, "csrfmiddlewaretoken": token}).encode()
    opener.open(urllib.request.Request(f"{base}/accounts/login/", data=data, headers={"Referer": f"{base}/accounts/login/"}))
    cookies = {c.name: c.value for c in jar}
    if "sessionid" not in cookies:
        raise RuntimeError("login failed")
    return "; ".join(f"{k}={v}" for k, v in cookies.items())


async def run_session(ws_url: str, origin: str, cookie: str, pcm: bytes, lang: str) -> dict:
    sent_at: dict[int, float] = {}  # audio ms fully sent -> wall time
    events = []
    async with websockets.connect(ws_url, origin=origin, additional_headers={"Cookie": cookie}, max_size=None) as ws:
        await ws.send(json.dumps({"type": "start", "lang": lang}))
        assert json.loads(await ws.recv())["event"] == "started"

        async def receive():
            async for message in ws:
                event = json.loads(message)
                events.append((time.monotonic(), event))
                if event.get("event") == "ended":
                    return

        receiver = asyncio.create_task(receive())
        t0 = time.monotonic()
        for i in range(0, len(pcm), FRAME):
            target = t0 + i / 32000
            await asyncio.sleep(max(0.0, target - time.monotonic()))
            await ws.send(pcm[i : i + FRAME])
            sent_at[(i + len(pcm[i : i + FRAME])) * 1000 // 32000] = time.monotonic()
        audio_end = time.monotonic()
        await ws.send(json.dumps({"type": "end"}))
        await asyncio.wait_for(receiver, 120)

    def sent_time(ms: int) -> float:
        later = [t for m, t in sent_at.items() if m >= ms]
        return min(later) if later else audio_end

    finals = [(t, e) for t, e in events if e["type"] == "final"]
    interims = [(t, e) for t, e in events if e["type"] == "interim"]
    delays = [t - sent_time(e["end_ms"]) for t, e in finals]
    return {
        "finals": [e["text"] for _, e in finals],
        "final_delays_s": [round(d, 3) for d in delays],
        "final_delay_p50_s": round(statistics.median(delays), 3) if delays else None,
        "final_delay_max_s": round(max(delays), 3) if delays else None,
        "last_final_after_audio_end_s": round(finals[-1][0] - audio_end, 3) if finals else None,
        "first_interim_s": round(interims[0][0] - t0, 3) if interims else None,
        "interims": len(interims),
        "audio_s": round(len(pcm) / 32000, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wav", nargs="?", default=str(ROOT / "tests/data/en/beckett.wav"))
    parser.add_argument("--lang", default="en-US")
    parser.add_argument("--url", help="http://host:port of a running server (default: start one)")
    parser.add_argument("--user", default="bench")
    parser.add_argument("--password", default="bench-password-123")
    args = parser.parse_args()

    with wave.open(args.wav) as w:
        pcm = w.readframes(w.getnframes())
    server = None
    base = args.url
    if not base:
        port = free_port()
        env = dict(os.environ, DJANGO_SETTINGS_MODULE="sttproject.settings")
        server = start_server(port, env)
        base = f"http://127.0.0.1:{port}"
    try:
        cookie = login(base, args.user, args.password)
        ws_url = base.replace("http", "ws", 1) + "/ws/transcribe/"
        result = asyncio.run(run_session(ws_url, base, cookie, pcm, args.lang))
    finally:
        if server:
            server.send_signal(signal.SIGTERM)
            server.wait(10)
    result["file"] = os.path.relpath(args.wav, ROOT)
    out = ROOT / "bench/results" / f"latency-{Path(args.wav).stem}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(result, ensure_ascii=False, indent=2))
    for key, value in result.items():
        print(f"{key:30} {value}")
    print(f"written to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

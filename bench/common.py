"""Shared bench harness: a real daphne on loopback, HTTP login, sessions at real-time pace."""
from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path

import websockets

ROOT = Path(__file__).resolve().parent.parent
FRAME = 3200  # 100 ms
PASSWORD = "bench-password-123"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """daphne serving the app with its own SQLite database in a temporary folder."""

    def __init__(self, env: dict[str, str] | None = None, users: int = 1) -> None:
        self.tmp = tempfile.mkdtemp(prefix="sttbench-")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = dict(os.environ, DATABASE_URL=f"sqlite:///{self.tmp}/db.sqlite3", STT_MEDIA_ROOT=f"{self.tmp}/media",
                        STT_RESUME_SECONDS="0", LOG_LEVEL="WARNING", **(env or {}))
        py = sys.executable
        subprocess.run([py, "manage.py", "migrate", "-v0"], cwd=ROOT, env=self.env, check=True)
        # Users, and a logged-in session for each (hundreds of password logins would cost minutes).
        made = subprocess.run([py, "manage.py", "shell", "-c",
                               "import json\n"
                               "from django.contrib.auth.models import User\n"
                               "from django.contrib.auth import SESSION_KEY, BACKEND_SESSION_KEY, HASH_SESSION_KEY\n"
                               "from django.contrib.sessions.backends.db import SessionStore\n"
                               "keys = []\n"
                               f"for i in range({users}):\n"
                               f"    u = User.objects.create_user(f'bench{{i}}', password='{PASSWORD}')\n"
                               "    s = SessionStore(); s[SESSION_KEY] = str(u.pk)\n"
                               "    s[BACKEND_SESSION_KEY] = 'django.contrib.auth.backends.ModelBackend'\n"
                               "    s[HASH_SESSION_KEY] = u.get_session_auth_hash(); s.create(); keys.append(s.session_key)\n"
                               "print(json.dumps(keys))"],
                              cwd=ROOT, env=self.env, check=True, capture_output=True, text=True)
        self.cookies = [f"sessionid={key}" for key in json.loads(made.stdout.strip().splitlines()[-1])]
        self.proc = subprocess.Popen([str(Path(py).parent / "daphne"), "-b", "127.0.0.1", "-p", str(self.port),
                                      "sttproject.asgi:application"], cwd=ROOT, env=self.env,
                                     stdout=subprocess.DEVNULL, stderr=open(f"{self.tmp}/server.log", "w"))
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("server did not start")

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mb(self) -> tuple[float, float]:
        status = dict(line.split(":", 1) for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines())
        return int(status["VmRSS"].split()[0]) / 1024, int(status["VmHWM"].split()[0]) / 1024

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def login(base: str, username: str, password: str = PASSWORD) -> str:
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


async def stream_session(base: str, cookie: str, frames: list[bytes], lang: str, *, start_delay: float = 0.0,
                         pace: float = 0.1, translate_to: str | None = None) -> dict:
    """Send `frames` one per `pace` seconds (0.1: real time); return the events with arrival and send times."""
    await asyncio.sleep(start_delay)
    ws_url = base.replace("http", "ws", 1) + "/ws/transcribe/"
    events: list[tuple[float, dict]] = []
    sent: list[float] = []
    async with websockets.connect(ws_url, origin=base, additional_headers={"Cookie": cookie}, max_size=None,
                                  open_timeout=30) as ws:
        start = {"type": "start", "lang": lang}
        if translate_to:
            start["translate_to"] = translate_to
        await ws.send(json.dumps(start))
        first = json.loads(await ws.recv())
        if first.get("event") != "started":
            return {"refused": first, "events": [], "sent": [], "t0": 0.0, "audio_end": 0.0}

        async def receive():
            async for message in ws:
                event = json.loads(message)
                events.append((time.monotonic(), event))
                if event.get("event") == "ended":
                    return

        receiver = asyncio.create_task(receive())
        t0 = time.monotonic()
        for i, frame in enumerate(frames):
            await asyncio.sleep(max(0.0, t0 + i * pace - time.monotonic()))
            await ws.send(frame)
            sent.append(time.monotonic())
        audio_end = time.monotonic()
        await ws.send(json.dumps({"type": "end"}))
        await asyncio.wait_for(receiver, 300)
    return {"events": events, "sent": sent, "t0": t0, "audio_end": audio_end}


def final_delays(run: dict, trigger_frames: int = 0) -> list[float]:
    """For each final: arrival minus the moment the frame holding its end_ms was sent.

    `trigger_frames`: how many frames after that one the final can first be produced (the
    scripted engine ends a phrase on the next quiet frame: 1), to measure the server's own delay.
    """
    out = []
    for t, event in run["events"]:
        if event["type"] == "final":
            frame = min(len(run["sent"]) - 1, max(0, (event["end_ms"] - 1) // 100 + trigger_frames))
            out.append(t - run["sent"][frame])
    return out


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def summary(values: list[float]) -> dict:
    return {"p50": percentile(values, 0.5), "p95": percentile(values, 0.95), "p99": percentile(values, 0.99),
            "max": max(values) if values else None,
            "mean": statistics.mean(values) if values else None}


def write_result(name: str, data: dict) -> Path:
    out = ROOT / "bench" / "results" / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(data, ensure_ascii=False, indent=2))
    return out

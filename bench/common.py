"""Shared bench harness: the tests' daphne launcher and the project's protocol client, plus figures."""
from __future__ import annotations

import asyncio
import json
import re
import statistics
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.servers import PASSWORD, ServerProcess  # noqa: E402  (one daphne launcher for tests and bench)

FRAME = 3200  # 100 ms


def Server(env: dict[str, str] | None = None, users: int = 1) -> ServerProcess:  # noqa: N802
    """A daphne on loopback with its own SQLite database, `users` logged-in users (`.cookies`)."""
    server = ServerProcess(Path(tempfile.mkdtemp(prefix="sttbench-")),
                           env={"STT_RESUME_SECONDS": "0", "LOG_LEVEL": "WARNING", **(env or {})})
    server.cookies = server.login_cookies(users)
    server.start()
    return server


def login(base: str, username: str, password: str = PASSWORD) -> str:
    """A password login over HTTP, as a person does: the Cookie header."""
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
                         pace: float = 0.1, translate_to: str | None = None, vocabulary: list[str] | None = None) -> dict:
    """Send `frames` one per `pace` seconds (0.1: real time); return the events with arrival and send times."""
    from transcription.client import Refused, TranscribeClient

    await asyncio.sleep(start_delay)
    async with TranscribeClient(base.replace("http", "ws", 1) + "/ws/transcribe/", cookie=cookie,
                                origin=base) as client:
        try:
            await client.start(lang, translate_to=translate_to, **({"vocabulary": vocabulary} if vocabulary else {}))
        except Refused as refused:
            return {"refused": refused.event, "events": [], "sent": [], "t0": 0.0, "audio_end": 0.0}
        t0 = time.monotonic()
        await client.send_audio(b"".join(frames), speed=0.1 / pace if pace else 0)
        audio_end = time.monotonic()
        await client.end(timeout=300)
    return {"events": client.events, "sent": client.sent, "t0": t0, "audio_end": audio_end}


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


def decode_calibration(model: str = "base", runs: int = 3) -> float:
    """Seconds for one Whisper decode of a 1 s clip on this machine (the median of `runs`, int8, the
    server's threads), to print beside every delay: figures from different machines compare by it."""
    import os
    import subprocess

    code = (
        "import os, time, statistics, numpy as np, django\n"
        "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'sttproject.settings'); django.setup()\n"
        "from transcription.engines.whisper_model import load_model\n"
        "import wave; w = wave.open('tests/data/en/jfk.wav'); w.setpos(16000)\n"  # "And so, my..." (speech)
        "clip = np.frombuffer(w.readframes(16000), dtype='<i2').astype('float32') / 32768\n"
        f"m = load_model({model!r})\n"
        "def once():\n"
        "    t = time.monotonic(); list(m.transcribe(clip, language='en', beam_size=1, without_timestamps=True,"
        " vad_filter=False, temperature=0.0)[0]); return time.monotonic() - t\n"
        "once()\n"
        f"print(statistics.median(once() for _ in range({runs})))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                         env={**os.environ, "STT_DATA_DIR": tempfile.mkdtemp(prefix="sttbench-cal-")})
    return float(out.stdout.split()[-1])


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

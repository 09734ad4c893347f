"""Soak: a bounded run of many sessions with random disconnects; nothing accepted may be lost.

    python bench/soak.py                 # 10 minutes
    python bench/soak.py --minutes 3 --users 40 --whisper-users 2

Two daphne processes on loopback: one with the scripted engine (many short sessions and a few long
ones, at real-time pace, about one in five cut off mid-phrase by an abrupt disconnect) and one with
whisper (a few users reading real recordings). It reports sessions, finals received vs stored (a
final received but not stored, or a completed session whose stored finals differ from those it
received, is a loss and must be 0), errors by code, and each server's RSS and thread count at the
start and the end. Loopback only; stops by itself.
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import json
import random
import sqlite3
import sys
import time
import wave
from pathlib import Path

import numpy as np
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, Server, write_result  # noqa: E402

from transcription.client import Closed, Refused, TranscribeClient  # noqa: E402

LOUD = (np.ones(1600, dtype="<i2") * 5000).tobytes()
QUIET = bytes(3200)
RSS_GROWTH_BOUND_MB = 64  # after warm-up; the figure docs/reliability.md states


def threads(server) -> int:
    return int(server.status("Threads"))


def scripted_session(rng: random.Random) -> list[bytes]:
    long = rng.random() < 0.1
    phrases = rng.randint(20, 40) if long else rng.randint(1, 5)
    frames: list[bytes] = []
    for _ in range(phrases):
        frames += [LOUD] * rng.randint(3, 12) + [QUIET] * rng.randint(2, 5)
    return frames


class Tally:
    def __init__(self) -> None:
        self.sessions = 0
        self.completed: dict[str, list[int]] = {}  # session -> segment ids received (ended normally)
        self.received: dict[str, list[int]] = {}  # every session, incl. cut off
        self.disconnects = 0
        self.errors: collections.Counter[str] = collections.Counter()
        self.refused = 0


async def one_session(url: str, cookie: str, frames: list[bytes], lang: str, tally: Tally, cut_at: int | None) -> None:
    async with TranscribeClient(url.replace("http", "ws", 1) + "/ws/transcribe/", cookie=cookie, origin=url) as client:
        try:
            started = await client.start(lang)
        except Refused as refused:
            tally.refused += 1
            tally.errors[refused.event.get("code", "?")] += 1
            return
        session = started["session"]
        tally.sessions += 1
        await client.send_audio(b"".join(frames), stop_at=cut_at)
        if cut_at is not None:
            client.ws.transport.abort()  # an abrupt TCP reset mid-phrase
            tally.disconnects += 1
        else:
            await client.end(timeout=120)
        tally.received[session] = [e["segment"] for e in client.of_type("final")]
        for event in client.of_type("error"):
            tally.errors[event["code"]] += 1
        if cut_at is None:
            tally.completed[session] = tally.received[session]


async def user_loop(url: str, cookie: str, deadline: float, make_frames, lang: str, tally: Tally, seed: int,
                    cut_rate: float) -> None:
    rng = random.Random(seed)
    while time.monotonic() < deadline:
        frames = make_frames(rng)
        cut_at = rng.randint(1, len(frames) - 1) if rng.random() < cut_rate and len(frames) > 2 else None
        try:
            await one_session(url, cookie, frames, lang, tally, cut_at)
        except (OSError, websockets.exceptions.WebSocketException, asyncio.TimeoutError, Closed) as exc:
            tally.errors[f"client:{exc.__class__.__name__}"] += 1
        await asyncio.sleep(rng.uniform(0.1, 1.0))


def stored_segments(server) -> dict[str, list[int]]:
    db = sqlite3.connect(f"{server.tmp}/db.sqlite3")
    rows = db.execute("SELECT session_id, id FROM transcription_segment ORDER BY session_id, \"index\"").fetchall()
    out: dict[str, list[int]] = collections.defaultdict(list)
    for session, segment in rows:
        out[str(session)].append(segment)
    return out


def check(server, tally: Tally) -> dict:
    stored = {k.replace("-", ""): v for k, v in stored_segments(server).items()}
    received_total = sum(len(v) for v in tally.received.values())
    shown_not_stored = sum(len(set(v) - set(stored.get(k.replace("-", ""), []))) for k, v in tally.received.items())
    completed_mismatch = sum(1 for k, v in tally.completed.items() if stored.get(k.replace("-", ""), []) != v)
    return {"sessions": tally.sessions, "completed": len(tally.completed), "disconnects": tally.disconnects,
            "refused": tally.refused, "finals_received": received_total,
            "finals_stored": sum(len(v) for v in stored.values()),
            "received_not_stored": shown_not_stored, "completed_sessions_with_different_finals": completed_mismatch,
            "errors": dict(tally.errors)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--users", type=int, default=40, help="concurrent scripted-engine users")
    parser.add_argument("--whisper-users", type=int, default=2)
    parser.add_argument("--cut-rate", type=float, default=0.2, help="share of sessions cut off by a TCP reset")
    args = parser.parse_args()

    scripted = Server({"STT_ENGINE": "scripted", "STT_KEEP_AUDIO": "1", "STT_MAX_SESSIONS": "0",
                       "STT_MAX_SESSIONS_PER_USER": "0"}, users=args.users)
    whisper = Server({"STT_ENGINE": "whisper", "STT_MAX_SESSIONS": str(max(2, args.whisper_users))},
                     users=max(1, args.whisper_users))
    recordings = []
    for name in ("jfk", "beckett"):
        with wave.open(str(ROOT / "tests" / "data" / "en" / f"{name}.wav")) as w:
            pcm = w.readframes(w.getnframes())
        recordings.append([pcm[i:i + 3200] for i in range(0, len(pcm), 3200)] + [QUIET] * 10)

    async def run() -> tuple[dict, dict]:
        # Warm up (model load, first connections), then take the baseline figures.
        warm = Tally()
        await one_session(whisper.url, whisper.cookies[0], recordings[0][:30], "en-US", warm, None)
        await one_session(scripted.url, scripted.cookies[0], [LOUD] * 5 + [QUIET] * 3, "en-US", warm, None)
        await asyncio.sleep(1)
        start = {s: {"rss_mb": s.rss_mb()[0], "threads": threads(s)} for s in (scripted, whisper)}
        deadline = time.monotonic() + args.minutes * 60
        t_scripted, t_whisper = Tally(), Tally()
        series: dict = {}

        async def sample_rss() -> None:  # every 30 s: a leak climbs, a working set levels off
            while time.monotonic() < deadline:
                await asyncio.sleep(30)
                for server in (scripted, whisper):
                    series.setdefault(server, []).append(round(server.rss_mb()[0], 1))

        sampler = asyncio.create_task(sample_rss())
        await asyncio.gather(
            *(user_loop(scripted.url, scripted.cookies[i], deadline, scripted_session, "en-US", t_scripted, i,
                        args.cut_rate) for i in range(args.users)),
            *(user_loop(whisper.url, whisper.cookies[i], deadline, lambda rng: rng.choice(recordings), "en-US",
                        t_whisper, 1000 + i, args.cut_rate) for i in range(args.whisper_users)),
        )
        sampler.cancel()
        await asyncio.sleep(3)  # sessions cut off finish their last phrase on the server
        end = {s: {"rss_mb": s.rss_mb()[0], "threads": threads(s)} for s in (scripted, whisper)}
        result = {}
        for name, server, tally in (("scripted", scripted, t_scripted), ("whisper", whisper, t_whisper)):
            figures = check(server, tally)
            figures.update(rss_start_mb=round(start[server]["rss_mb"], 1), rss_end_mb=round(end[server]["rss_mb"], 1),
                           threads_start=start[server]["threads"], threads_end=end[server]["threads"],
                           rss_every_30s_mb=series.get(server, []))
            result[name] = figures
        return result

    try:
        result = asyncio.run(run())
    finally:
        scripted.stop()
        whisper.stop()
    print(f"soak: {args.minutes:g} min, {args.users} scripted users, {args.whisper_users} whisper users, "
          f"cut rate {args.cut_rate:g}")
    keys = ["sessions", "completed", "disconnects", "refused", "finals_received", "finals_stored",
            "received_not_stored", "completed_sessions_with_different_finals", "rss_start_mb", "rss_end_mb",
            "threads_start", "threads_end"]
    print(f"{'':42} {'scripted':>10} {'whisper':>10}")
    for key in keys:
        print(f"{key:42} {result['scripted'][key]!s:>10} {result['whisper'][key]!s:>10}")
    for name in ("scripted", "whisper"):
        print(f"RSS every 30 s ({name}): {result[name]['rss_every_30s_mb']}")
        print(f"errors ({name}): {result[name]['errors'] or 'none'}")
    lost = sum(result[n]["received_not_stored"] + result[n]["completed_sessions_with_different_finals"]
               for n in result)
    growth = max(result[n]["rss_end_mb"] - result[n]["rss_start_mb"] for n in result)
    verdict = "PASS" if lost == 0 and growth <= RSS_GROWTH_BOUND_MB else "FAIL"
    print(f"lost finals: {lost}; largest RSS growth {growth:.1f} MB (bound {RSS_GROWTH_BOUND_MB} MB): {verdict}")
    path = write_result("soak", {"args": vars(args), "result": result, "lost": lost, "verdict": verdict})
    print(f"wrote {path.relative_to(ROOT)}")
    if verdict != "PASS":
        sys.exit(1)


if __name__ == "__main__":
    main()

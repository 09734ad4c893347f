"""Background work never delays a live session's finals: final delay with and without it.

    python bench/background.py                 # the second pass of a 3.5-minute session, kspon_long live

Each run starts a fresh daphne. Without: one Korean session (kspon_long) streamed at real time, every
final's delay timed. With: first a 3.5-minute session (kspon_long three times) is streamed at 3x
real time and ended, which queues its second pass (STT_REFINE=1: a whole-file decode at background
priority); the same live session then runs while that pass works, and the table says how much of
the pass overlapped it. Runs alternate and are pooled (16 finals a run is too few for a stable p95).
Goal: p95 with background work within +10 % of without.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import urllib.request
import wave
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, Server, final_delays, stream_session, summary, write_result  # noqa: E402

LIVE = ROOT / "tests" / "data" / "ko" / "kspon_long.wav"


def frames_of(path: Path, times: int = 1) -> list[bytes]:
    with wave.open(str(path)) as w:
        pcm = w.readframes(w.getnframes()) * times
    return [pcm[i:i + 3200] for i in range(0, len(pcm), 3200)]


def refinement(server, session: str) -> str:
    request = urllib.request.Request(f"{server.url}/api/sessions/{session}/", headers={"Cookie": server.cookies[1]})
    return json.loads(urllib.request.urlopen(request).read())["refinement"]


def one_run(with_background: bool) -> dict:
    server = Server(env={"STT_REFINE": "1", "STT_MAX_SESSIONS": "4"}, users=2)
    try:
        asyncio.run(stream_session(server.url, server.cookies[0], frames_of(LIVE)[:20], "ko-KR"))  # load the model
        background = None
        if with_background:
            run = asyncio.run(stream_session(server.url, server.cookies[1], frames_of(LIVE, 3), "ko-KR", pace=0.1 / 3))
            background = next(e["session"] for _, e in run["events"] if e.get("event") == "started")
        began = time.monotonic()
        live = asyncio.run(stream_session(server.url, server.cookies[0], frames_of(LIVE), "ko-KR"))
        state = refinement(server, background) if background else None
        return {"delays": final_delays(live), "live_seconds": time.monotonic() - began,
                "background_still": state}
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    pooled: dict[str, list[float]] = {"without": [], "with": []}
    for number in range(args.runs):
        for label in ("without", "with"):
            result = one_run(label == "with")
            pooled[label] += result["delays"]
            d = summary(result["delays"])
            note = f", the second pass was {result['background_still']} when the live session ended" if label == "with" else ""
            print(f"run {number + 1} {label:7} background work: p50 {d['p50']:.2f} p95 {d['p95']:.2f} "
                  f"max {d['max']:.2f} s{note}", flush=True)
    rows = {label: summary(values) for label, values in pooled.items()}
    for label, row in rows.items():
        print(f"pooled {label:7} ({len(pooled[label])} finals): p50 {row['p50']:.2f} p95 {row['p95']:.2f} "
              f"max {row['max']:.2f} s")
    ratio = rows["with"]["p95"] / rows["without"]["p95"]
    print(f"p95 with / without = {ratio:.2f} (goal <= 1.10: {'met' if ratio <= 1.10 else 'NOT met'})")
    out = write_result("background", {"runs": args.runs, "pooled": rows, "ratio_p95": ratio})
    print(f"written to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

"""Speaker labels, measured: purity on a conversation with known truth, Korean behaviour, and what the
embedding costs in final delay.

    python bench/speakers.py                    # all three parts
    python bench/speakers.py --parts purity

- purity: tests/data/speakers/conversation.wav (jfk, beckett, kspon_003 alternating; the truth in
  conversation.json) streamed at real time through the socket (lang auto); purity and inverse purity of
  the finals' labels (each final counted once, its true speaker the one its time overlaps most),
  and how many labels against the 3 speakers. Goal: both >= 0.9, at most 4 labels.
- korean: the 20 KsponSpeech utterances, each one speaker: (a) each file streamed alone: how many
  files got more than one label (a speaker split); (b) kspon_long (twelve utterances joined): how many
  labels it gets. KsponSpeech does not say whether two files share a speaker, so across files there is
  no truth; within a file there is.
- delay: kspon_long at real time with STT_SPEAKERS on and off, alternating, final delay pooled.
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import sys
import wave
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common import ROOT, Server, final_delays, login, stream_session, summary, write_result  # noqa: E402
from tests.speakers_truth import CONVERSATION, purity  # noqa: E402

KO = sorted((ROOT / "tests/data/ko").glob("kspon_0[0-2][0-9].wav"))
LONG = ROOT / "tests/data/ko/kspon_long.wav"


def frames_of(path: Path) -> list[bytes]:
    with wave.open(str(path)) as w:
        pcm = w.readframes(w.getnframes())
    return [pcm[i:i + 3200] for i in range(0, len(pcm), 3200)]


def finals(run: dict) -> list[dict]:
    """The finals, each with its label, also when the label came after it as a `speaker` event."""
    late = {e["segment"]: e["speaker"] for _, e in run["events"] if e["type"] == "speaker"}
    return [{**e, "speaker": e.get("speaker") or late.get(e.get("segment"))}
            for _, e in run["events"] if e["type"] == "final"]


def with_server(env: dict, work):
    server = Server(env={"STT_MAX_AUDIO_RATE": "0", **env})
    try:
        cookie = login(server.url, "bench0")
        asyncio.run(stream_session(server.url, cookie, frames_of(LONG)[:10], "ko-KR"))  # load the models
        return work(server.url, cookie)
    finally:
        server.stop()


def measure_purity(base: str, cookie: str) -> dict:
    run = asyncio.run(stream_session(base, cookie, frames_of(CONVERSATION), "auto"))
    got = [(e["start_ms"], e["end_ms"], e.get("speaker") or "-") for e in finals(run)]
    p, inverse = purity(got)
    labels = sorted({label for _, _, label in got})
    print(f"conversation: {len(got)} finals, labels {labels} (3 speakers): purity {p:.3f}, inverse purity {inverse:.3f}"
          f" | goal >= 0.9 both, <= 4 labels: {'met' if p >= 0.9 and inverse >= 0.9 and len(labels) <= 4 else 'NOT met'}")
    return {"finals": got, "purity": p, "inverse_purity": inverse, "labels": len(labels)}


def measure_korean(base: str, cookie: str) -> dict:
    split = {}
    for path in KO:
        run = asyncio.run(stream_session(base, cookie, frames_of(path), "ko-KR", pace=0.05))
        labels = [e.get("speaker") for e in finals(run)]
        split[path.name] = len(set(labels))
    split_files = [name for name, n in split.items() if n > 1]
    run = asyncio.run(stream_session(base, cookie, frames_of(LONG), "ko-KR", pace=0.05))
    long_labels = collections.Counter(e.get("speaker") for e in finals(run))
    print(f"korean: {len(split_files)} of {len(KO)} single-speaker files split into more than one label {split_files}; "
          f"kspon_long (12 utterances): {len(long_labels)} labels {dict(long_labels)}")
    return {"split_files": split_files, "labels_per_file": split, "kspon_long_labels": dict(long_labels)}


def measure_delay(rounds: int) -> dict:
    pooled = {"on": [], "off": []}
    for _ in range(rounds):
        for mode in ("on", "off"):
            run = with_server({"STT_SPEAKERS": "1" if mode == "on" else "0"},
                              lambda base, cookie: asyncio.run(stream_session(base, cookie, frames_of(LONG), "ko-KR")))
            pooled[mode] += final_delays(run)
    on, off = summary(pooled["on"]), summary(pooled["off"])
    print(f"final delay, kspon_long at real time, {rounds} runs each, pooled: labels on p50 {on['p50']:.2f} "
          f"p95 {on['p95']:.2f} max {on['max']:.2f} s | off p50 {off['p50']:.2f} p95 {off['p95']:.2f} "
          f"max {off['max']:.2f} s | p95 ratio {on['p95'] / off['p95']:.2f}")
    return {"on": on, "off": off, "rounds": rounds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", default=["purity", "korean", "delay"], choices=["purity", "korean", "delay"])
    parser.add_argument("--rounds", type=int, default=2, help="runs per mode for the delay")
    args = parser.parse_args()
    result = {}
    if "purity" in args.parts or "korean" in args.parts:
        def work(base, cookie):
            out = {}
            if "purity" in args.parts:
                out["purity"] = measure_purity(base, cookie)
            if "korean" in args.parts:
                out["korean"] = measure_korean(base, cookie)
            return out
        result.update(with_server({"STT_SPEAKERS": "1"}, work))
    if "delay" in args.parts:
        result["delay"] = measure_delay(args.rounds)
    write_result("speakers", result)


if __name__ == "__main__":
    main()

"""Vocabulary: how often a glossary term comes out right, and what a glossary costs elsewhere.

    python bench/vocabulary.py                  # key terms, 3 runs per file and mode, through the socket

Two real recordings whose key term the base model mishears on its own: kspon_006 says the drama
title "친애하는 판사님께" (heard as "친해안은 펜사님께") and kspon_016 the district "강남" (heard as
"강릉"). Each is streamed through the socket of a daphne on loopback (at 3x real time) without a
vocabulary and with the term as the session's vocabulary, under each STT_WHISPER_VOCABULARY mode;
the table counts the runs whose finals contain the term. (The cost on other speech: bench/accuracy.py
with `--vocabulary` of unrelated terms.)
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import wave
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, Server, stream_session, write_result  # noqa: E402

CASES = [("kspon_006", "친애하는 판사님께"), ("kspon_016", "강남")]


def frames_of(name: str) -> list[bytes]:
    with wave.open(str(ROOT / "tests" / "data" / "ko" / f"{name}.wav")) as w:
        pcm = w.readframes(w.getnframes())
    return [pcm[i:i + 3200] for i in range(0, len(pcm), 3200)] + [bytes(3200)] * 8


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--modes", nargs="+", default=["confirm", "prompt", "hotwords"])
    args = parser.parse_args()
    rows = []
    for mode in args.modes:
        server = Server(env={"STT_WHISPER_VOCABULARY": mode, "STT_MAX_SESSIONS": "4"})
        try:
            for name, term in CASES:
                for vocabulary in ([], [term]):
                    texts = []
                    for _ in range(args.runs):
                        run = asyncio.run(stream_session(server.url, server.cookies[0], frames_of(name), "ko-KR",
                                                         pace=0.1 / 3, vocabulary=vocabulary))
                        texts.append(" ".join(e["text"] for _, e in run["events"] if e["type"] == "final"))
                    right = sum(term.replace(" ", "") in t.replace(" ", "") for t in texts)
                    rows.append({"mode": mode, "file": name, "term": term, "vocabulary": bool(vocabulary),
                                 "right": right, "runs": args.runs, "texts": texts})
                    print(f"{mode:9} {name} {'with   ' if vocabulary else 'without'} {term}: {right}/{args.runs} right "
                          f"({texts[0]})", flush=True)
        finally:
            server.stop()
    out = write_result("vocabulary", {"rows": rows})
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

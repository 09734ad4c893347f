"""Captions of a live HLS broadcast pulled by URL, against the same audio sent through the socket.

A loopback server publishes the recording as a live HLS stream (FFmpeg's muxer, `--segment` s
segments), each segment listed once its audio has "happened" (real time), ENDLIST at the end. A
daphne pulls it (POST /api/sessions/ with `source_url`) and a viewer socket times every final. A
final's delay is counted from the moment its last word was spoken in the broadcast (the stream's
clock: the session's 0 is the start of the segment it joined on), so it includes HLS's own segment
latency. The same file is then streamed through the socket at real time (bench/latency.py's measure)
on a fresh daphne, for the ratio.

    python bench/stream_pull.py tests/data/ko/kspon_long.wav conversation --lang ko-KR --cer

`conversation` is made here: the 20 KsponSpeech utterances (20 speakers) in a shuffled order with
pauses of 0.3-1.5 s, about 2 minutes. The pulled session is refined afterwards (a second pass, as any
live whisper session): its refined error rate is printed beside the live one.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import jiwer
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, Server, decode_calibration, login, summary, write_result  # noqa: E402
from latency import measure, normalise  # noqa: E402

from tests.fakes.stream_server import StreamServer, write_hls  # noqa: E402


class LiveBroadcast:
    """Rewrites `growing.m3u8` as time passes: segment k is listed once its end has been reached."""

    def __init__(self, folder: Path, segment: float) -> None:
        self.folder, self.segment = folder, segment
        self.names = sorted(p.name for p in folder.glob("seg*.ts"))
        self.durations = _durations(folder / "live.m3u8")
        self.started = None

    def write(self, count: int) -> None:
        lines = ["#EXTM3U", "#EXT-X-VERSION:3", f"#EXT-X-TARGETDURATION:{round(self.segment)}", "#EXT-X-MEDIA-SEQUENCE:0"]
        for name, duration in zip(self.names[:count], self.durations):
            lines += [f"#EXTINF:{duration:.3f},", name]
        ended = count == len(self.names)
        (self.folder / "growing.m3u8").write_text("\n".join(lines + (["#EXT-X-ENDLIST"] if ended else [])) + "\n")

    def run(self) -> None:
        self.started = time.monotonic()
        elapsed = 0.0
        for count in range(1, len(self.names) + 1):
            elapsed += self.durations[count - 1]
            time.sleep(max(0.0, self.started + elapsed - time.monotonic()))
            self.write(count)


def _durations(playlist: Path) -> list[float]:
    return [float(line.split(":")[1].rstrip(",")) for line in playlist.read_text().splitlines()
            if line.startswith("#EXTINF")]


async def watch(base: str, cookie: str, session: str) -> list[tuple[float, dict]]:
    events = []
    async with websockets.connect(f"{base.replace('http', 'ws', 1)}/ws/sessions/{session}/live/",
                                  additional_headers={"Cookie": cookie, "Origin": base}) as viewer:
        async for raw in viewer:
            event = json.loads(raw)
            events.append((time.monotonic(), event))
            if event.get("event") == "ended":
                return events


def conversation(folder: Path) -> Path:
    """The 20 KsponSpeech utterances, shuffled, with pauses of 0.3-1.5 s: a WAV and its reference."""
    import random
    import wave

    rng = random.Random(7)
    names = [f"kspon_{n:03d}" for n in range(1, 21)]
    rng.shuffle(names)
    path = folder / "conversation.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1), out.setsampwidth(2), out.setframerate(16000)
        for name in names:
            with wave.open(str(ROOT / f"tests/data/ko/{name}.wav")) as w:
                out.writeframes(w.readframes(w.getnframes()))
            out.writeframes(bytes(int(rng.uniform(0.3, 1.5) * 16000) * 2))
    path.with_suffix(".txt").write_text(" ".join((ROOT / f"tests/data/ko/{n}.txt").read_text().strip()
                                                  for n in names))
    return path


def pulled(wav: str, lang: str, segment: float, model: str) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="sttbench-hls-"))
    write_hls(Path(wav), folder, segment_seconds=segment)
    broadcast = LiveBroadcast(folder, segment)
    server = Server(env={"STT_WHISPER_MODEL": model, "STT_WHISPER_MODEL_EN": "", "STT_REFINE": "auto",
                         "STT_STREAM_ALLOWED_HOSTS": "127.0.0.1"})
    try:
        cookie = login(server.url, "bench0")
        with StreamServer(folder) as source:
            thread = threading.Thread(target=broadcast.run, daemon=True)
            thread.start()
            while not (folder / "growing.m3u8").exists():
                time.sleep(0.01)
            page = urllib.request.urlopen(urllib.request.Request(f"{server.url}/api/sessions/", method="POST", data=json.dumps(
                {"source_url": f"{source.url}/growing.m3u8", "language": lang}).encode(), headers={
                "Cookie": cookie, "Content-Type": "application/json", "X-CSRFToken": _csrf(cookie),
                "Referer": server.url}), timeout=60)
            session = json.loads(page.read())["id"]
            events = asyncio.run(watch(server.url, cookie, session))
            thread.join()
        detail = {}
        for _ in range(600):  # the second pass runs in the background once the session has ended
            detail = json.loads(urllib.request.urlopen(urllib.request.Request(
                f"{server.url}/api/sessions/{session}/", headers={"Cookie": cookie}), timeout=30).read())
            if detail["refinement"] not in ("pending",):
                break
            time.sleep(0.5)
    finally:
        server.stop()
    finals = [(t, e) for t, e in events if e["type"] == "final"]
    # The session's 0 is the start of the first segment, which exists from broadcast.started on.
    delays = [t - (broadcast.started + e["end_ms"] / 1000) for t, e in finals]
    return {"finals": [e["text"] for _, e in finals], "delays": delays,
            "ended": next(e.get("reason") for _, e in events if e.get("event") == "ended"),
            "refinement": detail.get("refinement"), "refined": [s["text"] for s in detail.get("segments", [])]}


def _csrf(cookie: str) -> str:
    return dict(part.split("=", 1) for part in cookie.split("; ")).get("csrftoken", "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("wavs", nargs="+", help="WAV files (each with a .txt reference), or `conversation`")
    parser.add_argument("--lang", default="ko-KR")
    parser.add_argument("--cer", action="store_true")
    parser.add_argument("--segment", type=float, default=2.0, help="HLS segment length (s)")
    parser.add_argument("--model", default="base")
    args = parser.parse_args()
    calibration = decode_calibration(args.model)
    results = []
    for wav in args.wavs:
        if wav == "conversation":
            wav = str(conversation(Path(tempfile.mkdtemp(prefix="sttbench-conv-"))))
        stream = pulled(wav, args.lang, args.segment, args.model)
        socket = measure(wav, args.lang, cer=args.cer, model=args.model)
        reference = normalise(Path(wav).with_suffix(".txt").read_text(), args.cer)
        rate = jiwer.cer if args.cer else jiwer.wer
        result = {"wav": wav, "segment_s": args.segment, "decode_calibration_s": calibration,
                  "pulled": {"final_delay": summary(stream["delays"]), "finals": len(stream["finals"]),
                             "error_rate": rate(reference, normalise(" ".join(stream["finals"]), args.cer)),
                             "ended": stream["ended"], "refinement": stream["refinement"],
                             "refined_error_rate": rate(reference, normalise(" ".join(stream["refined"]), args.cer))
                             if stream["refined"] else None},
                  "socket": {"final_delay": socket["final_delay_s"], "finals": len(socket["finals"]),
                             "error_rate": socket.get("cer", socket.get("wer"))}}
        results.append(result)
        pulled_run, socket_run = result["pulled"], result["socket"]
        print(f"{Path(wav).name}: pulled {pulled_run['error_rate']:.3f} (refinement {pulled_run['refinement']}, "
              f"refined {pulled_run['refined_error_rate'] or 0:.3f}), socket {socket_run['error_rate']:.3f}: "
              f"difference {pulled_run['error_rate'] - socket_run['error_rate']:+.3f} (goal within 0.02); final delay "
              f"p50 {pulled_run['final_delay']['p50']:.2f} vs {socket_run['final_delay']['p50']:.2f} s; "
              f"decode calibration {calibration:.2f} s", flush=True)
    print("written", write_result("stream_pull", {"runs": results}).relative_to(ROOT))


if __name__ == "__main__":
    main()

"""Stream an audio file to a running server and print the transcript as it comes.

    python manage.py stream talk.mp3 --url ws://host:8000/ws/transcribe/ --token stt_... --lang ko-KR

Any file PyAV can read (wav, mp3, flac, ogg, m4a, ...) is decoded and resampled to 16 kHz mono PCM16.
Audio is sent in 100 ms frames at real-time pace; `--speed N` uploads N times faster (the server
accepts up to STT_MAX_AUDIO_RATE times real time and answers `rate` beyond it). Interims are shown on
one updating line (on a terminal), finals one per line. The exit status is non-zero on any error.
"""
from __future__ import annotations

import asyncio
import json
import os
import sys
import time

from django.core.management.base import BaseCommand, CommandError

FRAME_MS = 100
SAMPLE_RATE = 16000


def load_pcm16(path: str) -> bytes:
    """Decode any common audio file to 16 kHz mono PCM16 (PyAV, through faster-whisper)."""
    import numpy as np
    from faster_whisper.audio import decode_audio

    try:
        samples = decode_audio(path, sampling_rate=SAMPLE_RATE)
    except Exception as exc:  # PyAV's errors for missing or undecodable files
        raise CommandError(f"cannot decode {path}: {exc}") from exc
    return (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2").tobytes()


class Command(BaseCommand):
    help = "Stream an audio file to the WebSocket API and print interims and finals."

    def add_arguments(self, parser):
        parser.add_argument("file", help="audio file (any format PyAV decodes)")
        parser.add_argument("--url", default="ws://127.0.0.1:8000/ws/transcribe/", help="the server's socket URL")
        parser.add_argument("--token", default=os.environ.get("STT_API_TOKEN", ""),
                            help="API token (default: $STT_API_TOKEN; prefer the variable, it stays out of shell history)")
        parser.add_argument("--lang", default="ko-KR", help="language code, or 'auto'")
        parser.add_argument("--translate-to", default=None, help="also translate each final into this language")
        pace = parser.add_mutually_exclusive_group()
        pace.add_argument("--realtime", action="store_true", help="send at real-time pace, like a microphone (the default)")
        pace.add_argument("--speed", type=float, default=1.0,
                          help="upload N times faster than real time (explicit; the server refuses more than its STT_MAX_AUDIO_RATE)")
        parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the last final after the file is sent")

    def handle(self, *args, **options):
        if not options["token"]:
            raise CommandError("an API token is needed: --token or STT_API_TOKEN (create one on the API tokens page)")
        if options["speed"] <= 0:
            raise CommandError("--speed must be positive")
        audio = load_pcm16(options["file"])
        client = StreamClient(
            url=options["url"], token=options["token"], lang=options["lang"], translate_to=options["translate_to"],
            speed=1.0 if options["realtime"] else options["speed"], timeout=options["timeout"],
            out=self.stdout, err=self.stderr,
        )
        failure = asyncio.run(client.run(audio))
        if failure:
            raise CommandError(failure)


class StreamClient:
    def __init__(self, *, url, token, lang, translate_to, speed, timeout, out, err) -> None:
        self.url, self.token, self.lang, self.translate_to = url, token, lang, translate_to
        self.speed, self.timeout = speed, timeout
        self.out, self.err = out, err
        self.tty = sys.stdout.isatty()
        self.interim_shown = False
        self.failure: str | None = None
        self.finals = 0

    async def run(self, audio: bytes) -> str | None:
        import websockets

        try:
            async with websockets.connect(self.url, additional_headers={"Authorization": f"Bearer {self.token}"},
                                          max_size=2**22) as ws:
                start = {"type": "start", "lang": self.lang}
                if self.translate_to:
                    start["translate_to"] = self.translate_to
                await ws.send(json.dumps(start))
                started = json.loads(await asyncio.wait_for(ws.recv(), 30))
                if started.get("event") != "started":
                    return f"the server refused to start: {started.get('message')} ({started.get('code')})"
                self.err.write(f"session {started['session']} · {started['engine']} · {started['lang']}")
                receiver = asyncio.create_task(self.receive(ws))
                sender = asyncio.create_task(self.send_audio(ws, audio))
                done, _ = await asyncio.wait({receiver, sender}, return_when=asyncio.FIRST_COMPLETED)
                if sender in done and not receiver.done():
                    sender.result()
                    await ws.send(json.dumps({"type": "end"}))
                    try:
                        await asyncio.wait_for(receiver, self.timeout)
                    except asyncio.TimeoutError:
                        self.failure = f"no 'ended' within {self.timeout:.0f} s after the audio was sent"
                sender.cancel()
                if receiver.done():
                    receiver.result()  # a connection error in it is raised here
        except websockets.exceptions.ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd else None
            if code == 4401:
                return "not authenticated: the token is wrong, revoked or expired"
            return self.failure or f"the connection closed (code {code})"
        except (OSError, websockets.exceptions.InvalidHandshake) as exc:
            return f"cannot connect to {self.url}: {exc}"
        self.clear_interim()
        self.err.write(f"{self.finals} final(s)")
        return self.failure

    async def send_audio(self, ws, audio: bytes) -> None:
        frame = SAMPLE_RATE * 2 * FRAME_MS // 1000
        began = time.monotonic()
        for i, offset in enumerate(range(0, len(audio), frame)):
            await ws.send(audio[offset:offset + frame])
            due = began + (i + 1) * FRAME_MS / 1000 / self.speed
            await asyncio.sleep(max(0.0, due - time.monotonic()))

    async def receive(self, ws) -> None:
        async for raw in ws:
            event = json.loads(raw)
            kind = event.get("type")
            if kind == "interim" and self.tty:
                self.out.write(f"\r\x1b[K… {event['text']}", ending="")
                self.out.flush()
                self.interim_shown = True
            elif kind == "final":
                self.clear_interim()
                self.finals += 1
                ms = event["start_ms"]
                self.out.write(f"[{ms // 60000}:{ms // 1000 % 60:02d}] {event['text']}")
            elif kind == "translation" and event.get("done"):
                self.clear_interim()
                self.out.write(f"        → ({event['lang']}) {event['text']}")
            elif kind == "error":
                self.clear_interim()
                self.err.write(f"error: {event['message']} ({event['code']})")
                if event["code"] != "translation_failed":
                    self.failure = self.failure or f"{event['message']} ({event['code']})"
            elif kind == "system" and event.get("event") == "ended":
                return

    def clear_interim(self) -> None:
        if self.interim_shown:
            self.out.write("\r\x1b[K", ending="")
            self.interim_shown = False

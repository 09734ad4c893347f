"""Stream an audio file to a running server and print the transcript as it comes.

    python manage.py stream talk.mp3 --url ws://host:8000/ws/transcribe/ --token stt_... --lang ko-KR

Any file PyAV can read (wav, mp3, flac, ogg, m4a, ...) is decoded and resampled to 16 kHz mono PCM16.
Audio is sent in 100 ms frames at real-time pace; `--speed N` uploads N times faster (the server
accepts up to STT_MAX_AUDIO_RATE times real time and answers `rate` beyond it). Interims are shown on
one updating line (on a terminal), finals one per line. The exit status is non-zero on any error.
"""
from __future__ import annotations

import asyncio
import os
import sys

import websockets
from django.core.management.base import BaseCommand, CommandError

from transcription.client import Closed, Refused, TranscribeClient
from transcription import protocol

def load_pcm16(path: str) -> bytes:
    """Decode any common audio file to 16 kHz mono PCM16 (the uploads' decoder: PyAV)."""
    from pathlib import Path

    from transcription.sources.decoding import DecodeError, pcm16_chunks

    try:
        return b"".join(pcm16_chunks(Path(path)))
    except (DecodeError, OSError) as exc:
        raise CommandError(f"cannot decode {path}: {exc}") from exc


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
        failure = asyncio.run(stream(
            audio, url=options["url"], token=options["token"], lang=options["lang"],
            translate_to=options["translate_to"], speed=1.0 if options["realtime"] else options["speed"],
            timeout=options["timeout"], printer=Printer(self.stdout, self.stderr)))
        if failure:
            raise CommandError(failure)


class Printer:
    """Shows the events of a session as they come: interims on one updating line, finals one per line."""

    def __init__(self, out, err) -> None:
        self.out, self.err = out, err
        self.tty = sys.stdout.isatty()
        self.interim_shown = False
        self.failure: str | None = None
        self.finals = 0

    def __call__(self, event: dict) -> None:
        kind = event.get("type")
        if kind == protocol.INTERIM and self.tty:
            self.out.write(f"\r\x1b[K… {event['text']}", ending="")
            self.out.flush()
            self.interim_shown = True
        elif kind == protocol.FINAL:
            self.clear_interim()
            self.finals += 1
            ms = event["start_ms"]
            self.out.write(f"[{ms // 60000}:{ms // 1000 % 60:02d}] {event['text']}")
        elif kind == protocol.TRANSLATION and event.get("done"):
            self.clear_interim()
            self.out.write(f"        → ({event['lang']}) {event['text']}")
        elif kind == protocol.ERROR:
            self.clear_interim()
            self.err.write(f"error: {event['message']} ({event['code']})")
            if event["code"] != protocol.TRANSLATION_FAILED:
                self.failure = self.failure or f"{event['message']} ({event['code']})"

    def clear_interim(self) -> None:
        if self.interim_shown:
            self.out.write("\r\x1b[K", ending="")
            self.interim_shown = False


async def stream(audio: bytes, *, url: str, token: str, lang: str, translate_to: str | None, speed: float,
                 timeout: float, printer: Printer) -> str | None:
    """Stream the audio; None on success, else why it failed."""
    try:
        async with TranscribeClient(url, token=token, on_event=printer) as client:
            try:
                started = await client.start(lang, translate_to=translate_to)
            except Refused as refused:
                return f"the server refused to start: {refused}"
            printer.err.write(f"session {started['session']} · {started['engine']} · {started['lang']}")
            sender = asyncio.create_task(client.send_audio(audio, speed=speed))
            ended = asyncio.create_task(client.wait_for(protocol.is_session_over, timeout=None))
            await asyncio.wait({sender, ended}, return_when=asyncio.FIRST_COMPLETED)
            if not ended.done():
                sender.result()  # (a send error is raised here)
                try:
                    await client.end(timeout)
                except asyncio.TimeoutError:
                    printer.failure = f"no 'ended' within {timeout:.0f} s after the audio was sent"
            sender.cancel()
            ended.cancel()
    except Closed as closed:
        if closed.code == protocol.CLOSE_UNAUTHENTICATED:
            return "not authenticated: the token is wrong, revoked or expired"
        return printer.failure or str(closed)
    except (OSError, websockets.exceptions.InvalidHandshake) as exc:
        return f"cannot connect to {url}: {exc}"
    printer.clear_interim()
    printer.err.write(f"{printer.finals} final(s)")
    return printer.failure

"""OpenAI's realtime transcription socket (`/v1/realtime?intent=transcription`), for the `openai`
client and the programs built on it (this project's own STT_ENGINE=openai included: a node with no
model can use a decode node through OPENAI_BASE_URL).

Bearer token. The client configures with `session.update` (`audio.input.format` audio/pcm at 24 kHz,
`transcription.language`, `transcription.prompt` into the session's terms, `turn_detection`
server_vad or null, `include` item.input_audio_transcription.logprobs), then appends base64 audio.
The session (a real LiveSession) opens with the first audio, so the configuration applies to it.
Our events become OpenAI's: a phrase's first interim `input_audio_buffer.speech_started`, its
final `speech_stopped`, `committed`, then the transcript as one `delta` (as OpenAI's whisper-1 sends
it: later interims may rewrite the text, and deltas only append) and `completed`, with `logprobs`
(the words' probabilities) when asked. A client `commit` is answered with `committed` at once and
its item's `completed` once the engine has finalised the phrase ("" when there was no speech); an
empty buffer gets `input_audio_buffer_commit_empty`. `clear` drops the phrase in progress from this
client's events (the server has heard it: it is still stored). Errors follow OpenAI's error shape.
"""
from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import math
import re
import uuid
from dataclasses import dataclass

from django.conf import settings

from .. import admission as rules
from .. import protocol
from ..engines.base import AUTO_LANGUAGE
from ..protocol import ProtocolError
from . import admission
from .compat import MAX_VENDOR_AUDIO_BYTES, CompatConsumer, PcmTo16k, Refused, query
from .limits import AudioRateLimit, connections

INPUT_RATE = 24000
LOGPROBS = "item.input_audio_transcription.logprobs"
COMMIT_SECONDS = 30.0  # at most this long for the engine to finalise a committed phrase
# Base64 characters in one append: at most the audio a vendor socket takes in one message (OpenAI allows 15 MB).
MAX_APPEND_BYTES = 4 * (MAX_VENDOR_AUDIO_BYTES // 3)


def event_id() -> str:
    return f"event_{uuid.uuid4().hex[:20]}"


def item_id() -> str:
    return f"item_{uuid.uuid4().hex[:20]}"


class BadEvent(Exception):
    def __init__(self, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.param = code, message, param


@dataclass(frozen=True)
class TranscriptionConfig:
    """What `session.update` set: the session's language, terms, turn detection and logprobs."""

    language: str = AUTO_LANGUAGE
    terms: tuple[str, ...] = ()
    vad: bool = True
    logprobs: bool = False

    def updated(self, session) -> TranscriptionConfig:
        if not isinstance(session, dict):
            raise BadEvent("missing_required_parameter", "Missing required parameter: 'session'.", "session")
        if session.get("type", "transcription") != "transcription":
            raise BadEvent("invalid_value", "this server offers transcription sessions only", "session.type")
        audio = (session.get("audio") or {}).get("input") or {}
        audio_format = audio.get("format") or {}
        if audio_format and (audio_format.get("type") != "audio/pcm" or audio_format.get("rate", INPUT_RATE) != INPUT_RATE):
            raise BadEvent("invalid_value", "audio.input.format must be audio/pcm at 24000 Hz here",
                           "session.audio.input.format")
        changes = {}
        transcription = audio.get("transcription") or {}
        language = transcription.get("language")
        if language is not None:
            if not isinstance(language, str) or not re.fullmatch(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})?", language):
                raise BadEvent("invalid_value", "language must be an ISO-639-1 code such as ko",
                               "session.audio.input.transcription.language")
            try:  # checked now, not with the first audio
                rules.check_language(language=language)
            except ProtocolError as exc:
                raise BadEvent("invalid_value", exc.message, "session.audio.input.transcription.language") from None
            changes["language"] = language
        prompt = transcription.get("prompt")
        if prompt is not None:
            if not isinstance(prompt, str) or len(prompt) > 4000:
                raise BadEvent("invalid_value", "prompt must be text", "session.audio.input.transcription.prompt")
            changes["terms"] = tuple(t for t in dict.fromkeys(p.strip() for p in re.split(r"[,\n]", prompt))
                                     if t and len(t) <= 50)[:100]
        if "turn_detection" in audio:
            turn = audio["turn_detection"]
            if turn is not None and (not isinstance(turn, dict) or turn.get("type") != "server_vad"):
                raise BadEvent("invalid_value", "turn_detection must be server_vad or null here",
                               "session.audio.input.turn_detection")
            changes["vad"] = turn is not None
        include = session.get("include")
        if include is not None:
            changes["logprobs"] = isinstance(include, list) and LOGPROBS in include
        return dataclasses.replace(self, **changes)

    def as_session(self) -> dict:
        return {"type": "transcription", "object": "realtime.transcription_session",
                "audio": {"input": {"format": {"type": "audio/pcm", "rate": INPUT_RATE},
                                    "transcription": {"model": "whisper",
                                                      "language": None if self.language == AUTO_LANGUAGE else self.language,
                                                      "prompt": ", ".join(self.terms)},
                                    "turn_detection": {"type": "server_vad"} if self.vad else None}},
                "include": [LOGPROBS] if self.logprobs else []}


def transcript_events(item: str, text: str, words: list, *, seconds: float, logprobs: bool) -> list[dict]:
    """A phrase's transcript: one delta (when it has text) and `completed`."""
    delta = {"type": "conversation.item.input_audio_transcription.delta", "event_id": event_id(),
             "item_id": item, "content_index": 0, "delta": text}
    done = {"type": "conversation.item.input_audio_transcription.completed", "event_id": event_id(),
            "item_id": item, "content_index": 0, "transcript": text,
            "usage": {"type": "duration", "seconds": round(seconds, 3)}}
    if logprobs:
        delta["logprobs"] = done["logprobs"] = [
            {"token": w["word"], "logprob": round(math.log(max(w.get("probability") or 0.0, 1e-6)), 4),
             "bytes": list(w["word"].encode())} for w in words]
    return ([delta] if text else []) + [done]


class OpenAIRealtimeConsumer(CompatConsumer):
    config = TranscriptionConfig()
    item: str | None = None  # the phrase in progress: its item, once speech started
    phrase = -1  # our phrase index of that item
    previous_item: str | None = None
    committed: str | None = None  # an item the client committed whose transcript is still to come
    cleared_phrase = -1  # a phrase the client cleared: its events are not sent
    last_final_end_ms = 0

    # -- handshake: authenticate; the session opens with the first audio --
    async def connect(self) -> None:
        user = self.scope.get("user")
        intent = (query(self.scope).get("intent") or [""])[-1]
        if user is None or not user.is_authenticated:
            await self.deny(Refused(401, error_body("invalid_request_error", "invalid_api_key",
                                                    "Incorrect API key provided.")))
            return
        if intent != "transcription":
            await self.deny(Refused(400, error_body("invalid_request_error", "invalid_intent",
                                                    "this server offers transcription sessions only: "
                                                    "connect with ?intent=transcription")))
            return
        if not connections.acquire(user.pk, settings.STT_MAX_CONNECTIONS_PER_USER):  # counted open, not at audio
            await self.deny(Refused(429, error_body("rate_limit_error", "too_many_connections",
                                                    "too many open connections for this API key")))
            return
        self.account = self.user = user
        self.converter = PcmTo16k(INPUT_RATE, 1)
        await self.accept()
        await self.send_json({"type": "session.created", "event_id": event_id(), "session": self.config.as_session()})
        self.watch_idle()

    async def expired(self) -> None:
        await self.send_error("invalid_request_error", "session_expired",
                              f"no audio for {settings.STT_IDLE_SECONDS:g} s: the connection is closed")

    def start_message(self) -> protocol.Start:
        return protocol.Start(lang=self.config.language, vocabulary=self.config.terms)

    async def open_live(self) -> None:
        """The first audio: our `start`, with the configuration the client sent."""
        start = self.start_message()
        admitted = await admission.check(message=start, token_digest=self.scope.get("auth_token"))
        self.live = await admission.open_session(admitted, user=self.account)
        self.rate = AudioRateLimit(settings.STT_MAX_AUDIO_RATE, settings.STT_AUDIO_BURST_SECONDS)
        await self.live.start(self)

    # -- client events --
    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        client_event = None
        try:
            if len(text_data or "") > MAX_APPEND_BYTES + 4096:  # (not parsed: the largest event is an append)
                raise BadEvent("invalid_value", f"event too large: audio at most {MAX_APPEND_BYTES:,} characters "
                                                "an append")
            try:
                message = json.loads(text_data or "")
            except ValueError:
                raise BadEvent("invalid_json", "events are JSON text messages") from None
            if not isinstance(message, dict):
                raise BadEvent("invalid_json", "an event is a JSON object")
            client_event = message.get("event_id")
            kind = message.get("type")
            if kind == "session.update":
                await self.update(message.get("session"))
            elif kind == "input_audio_buffer.append":
                await self.append(message.get("audio"))
            elif kind == "input_audio_buffer.commit":
                await self.commit()
            elif kind == "input_audio_buffer.clear":
                self.clear()
                await self.send_json({"type": "input_audio_buffer.cleared", "event_id": event_id()})
            else:
                raise BadEvent("unknown_event", f"Invalid value: {str(kind)[:64]!r}. Supported values are: "
                               "'session.update', 'input_audio_buffer.append', 'input_audio_buffer.commit' and "
                               "'input_audio_buffer.clear'.", "type")
        except BadEvent as exc:
            await self.send_error("invalid_request_error", exc.code, exc.message, param=exc.param,
                                  client_event=client_event)
        except ProtocolError as exc:
            kind = "server_error" if exc.code in (protocol.BUSY,) else "invalid_request_error"
            code = {protocol.RATE: "rate_limit_exceeded", protocol.BUSY: "server_busy"}.get(exc.code, exc.code)
            await self.send_error(kind, code, exc.message, client_event=client_event)

    async def update(self, session) -> None:
        if self.live is not None:
            raise BadEvent("session_already_started", "the session's configuration is fixed once audio has "
                           "arrived; connect again to change it", "session")
        self.config = self.config.updated(session)
        await self.send_json({"type": "session.updated", "event_id": event_id(), "session": self.config.as_session()})

    async def append(self, audio) -> None:
        if not isinstance(audio, str) or not audio or len(audio) > MAX_APPEND_BYTES:
            raise BadEvent("invalid_value", f"audio must be base64 PCM16, at most {MAX_APPEND_BYTES:,} characters an "
                                            "append", "audio")
        try:
            pcm = base64.b64decode(audio, validate=True)
        except (binascii.Error, ValueError):
            raise BadEvent("invalid_value", "audio is not valid base64", "audio") from None
        if self.live is None:
            await self.open_live()
        self.feed(pcm)

    async def commit(self) -> None:
        live = self.live
        unheard = live is not None and live.audio_seconds * 1000 > self.last_final_end_ms + 100  # since the last final
        if live is None or (self.item is None and live.backlog_seconds == 0 and not unheard):
            raise BadEvent("input_audio_buffer_commit_empty",
                           "Error committing input audio buffer: the buffer is empty.")
        item = self.item or item_id()
        self.item, self.committed = item, item
        await self.send_json({"type": "input_audio_buffer.committed", "event_id": event_id(),
                              "previous_item_id": self.previous_item, "item_id": item})
        number = live.finalize()
        self.spawn_commit(live, number, item)

    def spawn_commit(self, live, number: int, item: str) -> None:
        async def answer() -> None:
            if self.committed == item:  # the engine found no words in it
                self.committed = None
                self.item = None
                self.previous_item = item
                await self.completed(item, "", [], seconds=0.0)
        self.after_marker(live, number, COMMIT_SECONDS, answer)

    def clear(self) -> None:
        if self.item is not None:
            self.cleared_phrase = self.phrase
        self.item = None

    # -- our events, as OpenAI's --
    async def send_event(self, event: dict) -> None:
        kind = event.get("type")
        if kind == protocol.INTERIM:
            if event["phrase"] != self.phrase and event["phrase"] != self.cleared_phrase and self.item is None:
                self.phrase, self.item = event["phrase"], item_id()
                if self.config.vad:
                    await self.send_json({"type": "input_audio_buffer.speech_started", "event_id": event_id(),
                                          "audio_start_ms": event.get("start_ms", 0), "item_id": self.item})
        elif kind == protocol.FINAL:
            self.last_final_end_ms = event["end_ms"]
            if event["phrase"] == self.cleared_phrase:
                return
            item = self.item
            if item is None or self.phrase != event["phrase"] and self.committed != item:
                item = item_id()  # no interim before it (a short phrase)
                if self.config.vad:
                    await self.send_json({"type": "input_audio_buffer.speech_started", "event_id": event_id(),
                                          "audio_start_ms": event["start_ms"], "item_id": item})
            if self.committed != item:
                if self.config.vad:
                    await self.send_json({"type": "input_audio_buffer.speech_stopped", "event_id": event_id(),
                                          "audio_end_ms": event["end_ms"], "item_id": item})
                await self.send_json({"type": "input_audio_buffer.committed", "event_id": event_id(),
                                      "previous_item_id": self.previous_item, "item_id": item})
            else:
                self.committed = None
            self.item, self.previous_item = None, item
            seconds = (event["end_ms"] - event["start_ms"]) / 1000
            await self.completed(item, event["text"], event.get("words") or [], seconds=seconds)
        elif kind == protocol.ERROR:
            transient = event["code"] in (protocol.ENGINE_UNAVAILABLE, protocol.BUSY, protocol.STORAGE)
            await self.send_error("server_error" if transient else "invalid_request_error", event["code"],
                                  event["message"])
        elif event.get("event") == protocol.ENDED and not self.closed:
            await self.close()

    async def completed(self, item: str, text: str, words: list, *, seconds: float) -> None:
        for message in transcript_events(item, text, words, seconds=seconds, logprobs=self.config.logprobs):
            await self.send_json(message)

    async def send_error(self, kind: str, code: str, message: str, *, param: str | None = None,
                         client_event: str | None = None) -> None:
        await self.send_json({"type": "error", "event_id": event_id(),
                              "error": {"type": kind, "code": code, "message": message, "param": param,
                                        "event_id": client_event}})

    async def send_json(self, message: dict) -> None:
        if not self.closed:
            await self.send(text_data=json.dumps(message, ensure_ascii=False))


def error_body(kind: str, code: str, message: str) -> dict:
    return {"error": {"type": kind, "code": code, "message": message, "param": None}}

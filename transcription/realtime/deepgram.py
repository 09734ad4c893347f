"""Deepgram's live transcription socket (`/v1/listen`), for programs and SDKs written against it.

Authenticated by a project API token as Deepgram sends it (`Authorization: Token <key>`, or
`Bearer`). The query parameters are Deepgram's; the messages follow Deepgram's documented shapes
(the deepgram-sdk's own models parse every one: tests/test_compat.py):
- Results (interims when `interim_results=true`; finals with `is_final`, `speech_final`, words with
  start, end, confidence and, with `diarize=true`, speaker), SpeechStarted (`vad_events=true`),
  UtteranceEnd (`utterance_end_ms`), Metadata when the stream ends, Error;
- client messages: binary audio, KeepAlive, Finalize, CloseStream (or an empty binary message), and
  Configure, which is answered ConfigureFailure: keyterms are fixed when the socket opens here.
A bad parameter or a wrong token is refused at the handshake with Deepgram's HTTP status and error
body. `model` is accepted and mapped to this server's engine (Metadata says which).
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from datetime import datetime, timezone

from .. import protocol
from ..engines.base import AUTO_LANGUAGE
from ..protocol import ProtocolError
from .compat import CompatConsumer, PcmTo16k, Refused, query

ENCODINGS = {"linear16"}  # PCM16LE; containers (opus, webm) are refused with 400: not decoded here
SAMPLE_RATES = range(8000, 48001)
MAX_TERMS = 100
LABEL_HOLD_SECONDS = 2.0  # with diarize, how long a final may wait for a late speaker label
TRUE, FALSE = {"true", "1", "yes"}, {"false", "0", "no", ""}

# Our error codes as Deepgram's: handshake refusals (HTTP status, err_code) and in-stream errors.
HTTP_STATUS = {protocol.BUSY: 503, protocol.TOO_MANY_SESSIONS: 429, protocol.UNAUTHENTICATED: 401}


def flag(values: list[str], name: str, default: bool = False) -> bool:
    if not values:
        return default
    value = values[-1].strip().lower()
    if value in TRUE or value in FALSE:
        return value in TRUE
    raise ProtocolError(protocol.BAD_REQUEST, f"{name} must be true or false")


def number(values: list[str], name: str, allowed: range, default: int | None = None) -> int | None:
    if not values or values[-1] == "":
        return default
    try:
        value = int(values[-1])
    except ValueError:
        raise ProtocolError(protocol.BAD_REQUEST, f"{name} must be an integer") from None
    if value not in allowed:
        raise ProtocolError(protocol.BAD_REQUEST, f"{name} must be between {allowed.start} and {allowed.stop - 1}")
    return value


def language_of(values: list[str]) -> str:
    language = (values[-1] if values else "en").strip()
    if language == "multi":
        return AUTO_LANGUAGE
    if not 2 <= len(language) <= 16:
        raise ProtocolError(protocol.BAD_REQUEST, "language must be a BCP-47 tag such as ko or en-US")
    return language


def terms_of(params: dict[str, list[str]]) -> tuple[str, ...]:
    """keyterm=... (each a term) and keywords=word:boost (the boost is dropped): the session's terms."""
    terms = [t.strip() for t in params.get("keyterm", [])]
    terms += [k.rsplit(":", 1)[0].strip() if ":" in k else k.strip() for k in params.get("keywords", [])]
    terms = [t for t in dict.fromkeys(terms) if t]
    if len(terms) > MAX_TERMS or any(len(t) > 50 for t in terms):
        raise ProtocolError(protocol.BAD_REQUEST, f"at most {MAX_TERMS} keyterms of at most 50 characters")
    return tuple(terms)


def speaker_number(label: str | None) -> int | None:
    """Our labels S1, S2, ... as Deepgram's speakers 0, 1, ..."""
    if label and label[1:].isdigit():
        return int(label[1:]) - 1
    return None


def results_message(event: dict, *, final: bool, from_finalize: bool, diarize: bool, heard_ms: int,
                    metadata: dict) -> dict:
    """Our interim or final as Deepgram's `Results` (an interim runs to the audio heard so far)."""
    start_ms = event.get("start_ms", 0)
    speaker = speaker_number(event.get("speaker")) if diarize else None
    words = [{"word": w["word"], "start": round(w["start_ms"] / 1000, 3), "end": round(w["end_ms"] / 1000, 3),
              "confidence": round(w.get("probability") or 0.0, 3), "punctuated_word": w["word"],
              **({"speaker": speaker} if speaker is not None else {})} for w in event.get("words") or []]
    end_ms = event.get("end_ms", start_ms) if final else max(start_ms, heard_ms)
    return {
        "type": "Results",
        "channel_index": [0, 1],
        "duration": round(max(0, end_ms - start_ms) / 1000, 3),
        "start": round(start_ms / 1000, 3),
        "is_final": final,
        "speech_final": final and not from_finalize,
        "from_finalize": from_finalize,
        "channel": {"alternatives": [{"transcript": event["text"], "confidence": round(event.get("confidence") or 0.0, 3),
                                      "words": words}]},
        "metadata": metadata,
    }


class DeepgramListenConsumer(CompatConsumer):
    finalizing = False
    held: dict | None = None  # a final waiting for its speaker label (diarize)
    queued: list[dict]  # the events after it (set when a final is held)
    phrase_open = -1  # the phrase whose SpeechStarted was sent
    # -- handshake --
    def unauthenticated(self) -> Refused:
        return Refused(401, {"err_code": "INVALID_AUTH", "err_msg": "Invalid credentials.",
                             "request_id": str(uuid.uuid4())})

    def refusal(self, code: str, message: str) -> Refused:
        status = HTTP_STATUS.get(code, 400)
        return Refused(status, {"err_code": "INVALID_QUERY_PARAMETER" if status == 400 else code.upper(),
                                "err_msg": message, "request_id": str(uuid.uuid4())})

    def start_message(self) -> protocol.Start:
        params = query(self.scope)
        encoding = (params.get("encoding") or ["linear16"])[-1].lower()
        if encoding not in ENCODINGS:
            raise ProtocolError(protocol.BAD_REQUEST, f"encoding {encoding!r} is not supported here; "
                                                      "send linear16 (PCM16LE) with sample_rate")
        rate = number(params.get("sample_rate", []), "sample_rate", SAMPLE_RATES, 16000)
        channels = number(params.get("channels", []), "channels", range(1, 3), 1)
        self.interim_results = flag(params.get("interim_results", []), "interim_results")
        flag(params.get("punctuate", []), "punctuate")  # (Whisper punctuates anyway)
        flag(params.get("smart_format", []), "smart_format")
        self.vad_events = flag(params.get("vad_events", []), "vad_events")
        self.diarize = flag(params.get("diarize", []), "diarize")
        endpointing = (params.get("endpointing") or [""])[-1].lower()
        if endpointing not in TRUE | FALSE:  # accepted; this server's endpoint is STT_ENDPOINT_SILENCE_MS
            number([endpointing], "endpointing", range(10, 10001))
        self.utterance_end_ms = number(params.get("utterance_end_ms", []), "utterance_end_ms", range(1000, 5001))
        self.model = (params.get("model") or ["base"])[-1][:64]
        self.converter = PcmTo16k(rate, channels)
        self.channels = channels
        self.created = datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")
        self.audio_hash = hashlib.sha256()
        self.model_uuid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"sttproject/{self.model}"))
        return protocol.Start(lang=language_of(params.get("language", [])), vocabulary=terms_of(params),
                              speakers=True)

    # -- client messages --
    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.live is None or self.closed:
            return
        try:
            if bytes_data is not None:
                if not bytes_data:  # Deepgram's older way to say CloseStream
                    await self.close_stream()
                    return
                self.audio_hash.update(bytes_data)
                self.feed(bytes_data)
                return
            try:
                message = json.loads(text_data or "") if len(text_data or "") <= protocol.MAX_TEXT_FRAME_BYTES else None
                kind = message.get("type") if isinstance(message, dict) else None
            except ValueError:
                kind = None
            if kind == "KeepAlive":
                self.live.touch()
            elif kind == "Finalize":
                self.finalizing = True  # the final it makes says so; with no phrase in progress, none does
                self.after_marker(self.live, self.live.finalize(), 30.0, self.finalize_done)
            elif kind == "CloseStream":
                await self.close_stream()
            elif kind == "Configure":
                await self.send_json({"type": "ConfigureFailure", "request_id": self.live.id,
                                      "code": "CONFIGURE_KEYTERMS_NOT_SUPPORTED",
                                      "description": "keyterms are set when the socket opens (keyterm=...) on "
                                                     "this server"})
            else:
                raise ProtocolError(protocol.UNKNOWN_TYPE, "expected KeepAlive, Finalize, CloseStream or Configure")
        except ProtocolError as exc:
            await self.send_error(exc.code, exc.message)

    async def finalize_done(self) -> None:
        self.finalizing = False

    async def close_stream(self) -> None:
        live = self.live
        if live is not None and not live.closing:
            await live.end(reason=protocol.REASON_END)

    # -- our events, as Deepgram's --
    async def send_event(self, event: dict) -> None:
        """With `diarize`, a final whose speaker label is still being computed waits for it (at most
        LABEL_HOLD_SECONDS, the events after it queued behind it): Deepgram's words carry speakers."""
        if event.get("type") == protocol.FINAL:
            event = {**event, "from_finalize": self.finalizing}
            self.finalizing = False
        if self.held is not None:
            if event.get("type") == protocol.SPEAKER and event["segment"] == self.held["segment"]:
                await self.release(event["speaker"])
            else:
                self.queued.append(event)
                if event.get("event") == protocol.ENDED:
                    await self.release(None)
            return
        if self.diarize and event.get("type") == protocol.FINAL and not event.get("speaker"):
            self.held, self.queued = event, []
            held = event
            self.live.spawn(self.release_later(held))
            return
        await self.translate(event)

    async def release_later(self, held: dict) -> None:
        await asyncio.sleep(LABEL_HOLD_SECONDS)
        if self.held is held:
            await self.release(None)

    async def release(self, speaker: str | None) -> None:
        held, queued = self.held, self.queued
        self.held, self.queued = None, []
        await self.translate({**held, "speaker": speaker} if speaker else held)
        for event in queued:
            await self.send_event(event)

    async def translate(self, event: dict) -> None:
        kind = event.get("type")
        if kind == protocol.INTERIM:
            if self.vad_events and event["phrase"] != self.phrase_open:
                self.phrase_open = event["phrase"]
                await self.send_json({"type": "SpeechStarted", "channel": [0], "timestamp":
                                      round(event.get("start_ms", 0) / 1000, 3)})
            if self.interim_results:
                await self.send_json(self.results(event, final=False))
        elif kind == protocol.FINAL:
            await self.send_json(self.results(event, final=True, from_finalize=event["from_finalize"]))
            if self.utterance_end_ms is not None:
                words = event.get("words") or []
                end = words[-1]["end_ms"] if words else event["end_ms"]
                await self.send_json({"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": round(end / 1000, 3)})
        elif kind == protocol.ERROR:
            await self.send_error(event["code"], event["message"])
        elif event.get("event") == protocol.ENDED:
            await self.send_json(self.metadata())
            await self.close()

    def results(self, event: dict, *, final: bool, from_finalize: bool = False) -> dict:
        heard_ms = int(self.live.audio_seconds * 1000) if self.live else 0
        metadata = {"request_id": self.live.id if self.live else "",
                    "model_info": {"name": self.model, "version": "sttproject", "arch": self.engine_name()},
                    "model_uuid": self.model_uuid}
        return results_message(event, final=final, from_finalize=from_finalize, diarize=self.diarize,
                               heard_ms=heard_ms, metadata=metadata)

    def metadata(self) -> dict:
        live = self.live
        return {"type": "Metadata", "transaction_key": "deprecated", "request_id": live.id if live else "",
                "sha256": self.audio_hash.hexdigest(), "created": self.created,
                "duration": round(live.audio_seconds, 3) if live else 0.0, "channels": self.channels,
                "models": [self.model_uuid],
                "model_info": {self.model_uuid: {"name": self.model, "version": "sttproject",
                                                 "arch": self.engine_name()}}}

    def engine_name(self) -> str:
        return self.live.engine_name if self.live else ""

    async def send_error(self, code: str, message: str) -> None:
        await self.send_json({"type": "Error", "variant": code, "description": message, "message": message,
                              "code": code})

    async def send_json(self, message: dict) -> None:
        if not self.closed:
            await self.send(text_data=json.dumps(message, ensure_ascii=False))

"""WebSocket protocol v1: client message parsing, server event building, error and close codes.

docs/protocol.md is the reference for clients; keep the two in step.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from .engines import Result

PROTOCOL_VERSION = 2
MAX_AUDIO_FRAME_BYTES = 64 * 1024
MAX_TEXT_FRAME_BYTES = 4096

# Close codes (4000-4999 are the application's).
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403  # live viewer: not the owner and no active share link (or it was revoked)
CLOSE_REPLACED = 4409  # another connection resumed this connection's session
CLOSE_TOO_MANY_CONNECTIONS = 4429  # this user already has STT_MAX_CONNECTIONS_PER_USER sockets open
CLOSE_SHUTTING_DOWN = 1012  # the server is restarting: reconnect (to another server) shortly
CLOSE_TRY_AGAIN = 1013  # live viewer: the channel layer is unreachable; reconnect later

# Error codes sent in {"type":"error","code":...}; the connection stays usable after each.
BAD_JSON = "bad_json"  # text frame is not a JSON object
UNKNOWN_TYPE = "unknown_type"  # "type" missing or not a known message type
BAD_REQUEST = "bad_request"  # a field has the wrong type or value
UNSUPPORTED_LANGUAGE = "unsupported_language"  # the engine cannot recognise this language
TEXT_TOO_LARGE = "text_too_large"  # text frame over MAX_TEXT_FRAME_BYTES
NOT_STARTED = "not_started"  # audio or end before start
BAD_AUDIO = "bad_audio"  # empty or odd-length binary frame (PCM16 is 2 bytes a sample)
FRAME_TOO_LARGE = "frame_too_large"  # binary frame over MAX_AUDIO_FRAME_BYTES
BUSY = "busy"  # the engine is too far behind: this audio frame was not accepted
RATE = "rate"  # audio sent faster than STT_MAX_AUDIO_RATE x real time: this frame was not accepted
ENGINE_ERROR = "engine_error"  # the recognition engine failed; the session is ended
ENGINE_UNAVAILABLE = "engine_unavailable"  # a cloud engine cannot be reached / has no credentials; ended
ENGINE_REJECTED = "engine_rejected"  # a cloud engine refused the request (permission, argument); ended
STORAGE = "storage"  # a final could not be saved; it is not shown as a final
TOO_MANY_SESSIONS = "too_many_sessions"  # this user already runs STT_MAX_SESSIONS_PER_USER sessions
SESSION_EXPIRED = "session_expired"  # resume of a session that is over, unknown, or not yours
TRANSLATION_UNSUPPORTED = "translation_unsupported"  # the translator cannot produce translate_to
UNAUTHENTICATED = "unauthenticated"  # the API token of this connection was revoked or expired; closed 4401
READ_ONLY = "read_only"  # a live viewer sent something: viewers only receive
LIVE_UNAVAILABLE = "live_unavailable"  # live captions cannot be delivered now (channel layer down)
TRANSLATION_FAILED = "translation_failed"  # one phrase's translation failed twice; the session goes on


class ProtocolError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Start:
    lang: str
    translate_to: str | None = None


@dataclass(frozen=True)
class End:
    pass


@dataclass(frozen=True)
class Finalize:
    pass


@dataclass(frozen=True)
class KeepAlive:
    pass


@dataclass(frozen=True)
class Resume:
    session: str
    last_seq: int


ClientMessage = Start | End | Finalize | KeepAlive | Resume


def parse_text(text: str, *, default_language: str) -> ClientMessage:
    if len(text.encode("utf-8")) > MAX_TEXT_FRAME_BYTES:
        raise ProtocolError(TEXT_TOO_LARGE, f"text frames are limited to {MAX_TEXT_FRAME_BYTES} bytes")
    try:
        data = json.loads(text)
    except ValueError:
        raise ProtocolError(BAD_JSON, "text frames must be JSON objects") from None
    if not isinstance(data, dict):
        raise ProtocolError(BAD_JSON, "text frames must be JSON objects")
    kind = data.get("type")
    if kind == "start":
        lang = data.get("lang", default_language)
        if not isinstance(lang, str) or not 2 <= len(lang) <= 16:
            raise ProtocolError(BAD_REQUEST, "'lang' must be a language code such as 'ko-KR'")
        target = data.get("translate_to") or None
        if target is not None and (not isinstance(target, str) or not 2 <= len(target) <= 16):
            raise ProtocolError(BAD_REQUEST, "'translate_to' must be a language code such as 'en'")
        return Start(lang=lang, translate_to=target)
    if kind == "end":
        return End()
    if kind == "finalize":
        return Finalize()
    if kind == "keepalive":
        return KeepAlive()
    if kind == "resume":
        session, last_seq = data.get("session"), data.get("last_seq", 0)
        if not isinstance(session, str) or not session or len(session) > 64:
            raise ProtocolError(BAD_REQUEST, "'session' must be the id from the 'started' event")
        if not isinstance(last_seq, int) or isinstance(last_seq, bool) or last_seq < 0:
            raise ProtocolError(BAD_REQUEST, "'last_seq' must be a non-negative integer")
        return Resume(session=session, last_seq=last_seq)
    raise ProtocolError(
        UNKNOWN_TYPE, f"unknown message type {str(kind)[:40]!r}; expected start, end, finalize, keepalive or resume"
    )


def check_audio(data: bytes) -> None:
    if len(data) > MAX_AUDIO_FRAME_BYTES:
        raise ProtocolError(FRAME_TOO_LARGE, f"audio frames are limited to {MAX_AUDIO_FRAME_BYTES} bytes")
    if not data or len(data) % 2:
        raise ProtocolError(BAD_AUDIO, "audio frames must be PCM16LE: a non-empty, even number of bytes")


# ---- server events ----


def event_started(*, session_id, language: str, engine: str, translate_to: str | None = None) -> dict:
    return {
        "type": "system",
        "event": "started",
        "session": str(session_id),
        "version": PROTOCOL_VERSION,
        "lang": language,
        "engine": engine,
        "translate_to": translate_to,
        "message": "Listening",
    }


def event_ended(*, session_id, reason: str = "end") -> dict:
    return {"type": "system", "event": "ended", "session": str(session_id), "reason": reason, "message": "Session ended"}


def event_resumed(*, session_id, last_seq: int) -> dict:
    return {"type": "system", "event": "resumed", "session": str(session_id), "last_seq": last_seq,
            "message": "Session resumed"}


def event_lag(seconds: float) -> dict:
    return {"type": "system", "event": "lag", "seconds": round(seconds, 1)}


def event_interim(result: Result, *, phrase: int, revision: int) -> dict:
    event = {"type": "interim", "text": result.text, "phrase": phrase, "revision": revision}
    if result.stability is not None:
        event["stability"] = round(result.stability, 2)
    return event


def event_translation(*, segment_id: int, language: str, text: str, done: bool) -> dict:
    return {"type": "translation", "segment": segment_id, "lang": language, "text": text, "done": done}


def event_translation_done(translation) -> dict:
    event = event_translation(segment_id=translation.segment_id, language=translation.language,
                              text=translation.text, done=True)
    event["seq"] = translation.seq
    return event


def event_translation_failed(*, segment_id: int, message: str) -> dict:
    event = event_error(TRANSLATION_FAILED, message)
    event["segment"] = segment_id
    return event


def event_final_from_segment(segment) -> dict:
    """A final as sent, rebuilt from its stored row (also used to replay it on resume)."""
    event = {
        "type": "final",
        "text": segment.text,
        "segment": segment.pk,
        "phrase": segment.index,
        "start_ms": segment.start_ms,
        "end_ms": segment.end_ms,
        "language": segment.language,
        "seq": segment.seq,
    }
    if segment.confidence is not None:
        event["confidence"] = round(segment.confidence, 3)
    if segment.words:
        event["words"] = segment.words
    return event


def event_error(code: str, message: str) -> dict:
    return {"type": "error", "code": code, "message": message}

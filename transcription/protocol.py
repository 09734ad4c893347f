"""The wire protocol, in one place: client messages, server events, error codes, close codes and
the reasons a session ends. It imports nothing of the project, so every layer may use it.

docs/protocol.md is the reference for clients and static/transcription/protocol.js the browser's
copy of the codes (tests/test_protocol.py keeps the three in step).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..engines import Result

PROTOCOL_VERSION = 2
MAX_AUDIO_FRAME_BYTES = 64 * 1024
MAX_TEXT_FRAME_BYTES = 16 * 1024  # room for a `start` with a full vocabulary (100 terms of 50 characters)
MAX_VOCABULARY_TERMS = 100
MAX_TERM_CHARS = 50

# Close codes (4000-4999 are the application's).
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403  # live viewer: not the owner and no active share link (or it was revoked)
CLOSE_REPLACED = 4409  # another connection resumed this connection's session
CLOSE_TOO_MANY_CONNECTIONS = 4429  # this user already has STT_MAX_CONNECTIONS_PER_USER sockets open
# 4012 and 4013 are the application-range twins of the standard 1012 (service restart) and 1013
# (try again later): daphne's WebSocket library sends only 1000 or 3000-4999 (it failed with 1011).
CLOSE_SHUTTING_DOWN = 4012  # the server is restarting: reconnect (to another server) shortly
CLOSE_TRY_AGAIN = 4013  # live viewer: the channel layer is unreachable or failed; reconnect later
CLOSE_NORMAL = 1000

# Why a session ended: `ended.reason`.
REASON_END = "end"  # the client sent `end` (or the owner stopped the session: POST .../stop/)
REASON_RESTART = "restart"  # the client sent a new `start` (or resumed another session) on this socket
REASON_IDLE = "idle"  # neither audio nor keepalive for STT_IDLE_SECONDS
REASON_MAX_LENGTH = "max_length"  # STT_MAX_SESSION_SECONDS of audio; the page starts the next session
REASON_ERROR = "error"  # the engine failed (an error event came first)
REASON_DISCONNECT = "disconnect"  # the socket dropped and nobody resumed in time (the client never hears it)
REASON_SHUTDOWN = "shutdown"  # the server is stopping (SIGTERM); reconnect to go on in a new session
REASON_SOURCE_ENDED = "source_ended"  # a stream pulled by URL ended (HLS ENDLIST, end of the file or broadcast)
REASON_SOURCE_LOST = "source_lost"  # a pulled stream dropped and did not come back (STT_STREAM_RECONNECTS)

# Server event types ("type"), and the system events ("event" of type "system").
SYSTEM, INTERIM, FINAL, TRANSLATION, ERROR, SNAPSHOT = "system", "interim", "final", "translation", "error", "snapshot"
CORRECTION = "correction"
SPEAKER = "speaker"  # a final's speaker label, computed after the final was sent
STARTED, ENDED, RESUMED, LAG = "started", "ended", "resumed", "lag"
PROGRESS = "progress"  # an uploaded recording's transcription, 0-1 (live viewers of an upload)
SPEAKERS = "speakers"  # the owner named the session's speakers: {"S1": "민수", ...}

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
TOO_MANY_JOBS = "too_many_jobs"  # this user already has STT_MAX_JOBS_PER_USER background jobs queued or running
SESSION_EXPIRED = "session_expired"  # resume of a session that is over, unknown, or not yours
TRANSLATION_UNSUPPORTED = "translation_unsupported"  # the translator cannot produce translate_to
UNAUTHENTICATED = "unauthenticated"  # the API token of this connection was revoked or expired; closed 4401
READ_ONLY = "read_only"  # a live viewer sent something: viewers only receive
LIVE_UNAVAILABLE = "live_unavailable"  # live captions cannot be delivered now (channel layer down)
TRANSLATION_FAILED = "translation_failed"  # one phrase's translation failed twice; the session goes on
SOURCE_NOT_ALLOWED = "source_not_allowed"  # a stream URL whose scheme, host or address this server does not pull
SOURCE_UNREACHABLE = "source_unreachable"  # a stream URL that could not be opened (nothing was started)
SOURCE_LOST = "source_lost"  # a pulled stream dropped and did not come back; the session ended
SERVER_LOST = "server_lost"  # the server pulling a stream died (a session's `failure`, not an event)
TOO_MANY_LANGUAGES = "too_many_languages"  # viewers already have captions in STT_MAX_VIEWER_LANGUAGES languages


# How each kind of engine failure is told (engines.EngineError.kind -> code).
ENGINE_CODES = {"failed": ENGINE_ERROR, "unavailable": ENGINE_UNAVAILABLE, "rejected": ENGINE_REJECTED}


class ProtocolError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Start:
    lang: str
    translate_to: str | None = None
    vocabulary: tuple[str, ...] = ()
    speakers: bool = True  # speaker labels on finals (where STT_SPEAKERS is on)


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
        return parse_start_fields(data, default_language=default_language)
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


def parse_start_fields(data: dict, *, default_language: str) -> Start:
    """The fields of a `start` (also those of a stream pulled by URL, POST /api/sessions/)."""
    lang = data.get("lang", default_language)
    if not isinstance(lang, str) or not 2 <= len(lang) <= 16:
        raise ProtocolError(BAD_REQUEST, "'lang' must be a language code such as 'ko-KR'")
    target = data.get("translate_to") or None
    if target is not None and (not isinstance(target, str) or not 2 <= len(target) <= 16):
        raise ProtocolError(BAD_REQUEST, "'translate_to' must be a language code such as 'en'")
    speakers = data.get("speakers", True)
    if not isinstance(speakers, bool):
        raise ProtocolError(BAD_REQUEST, "'speakers' must be true or false")
    return Start(lang=lang, translate_to=target, vocabulary=parse_vocabulary(data.get("vocabulary", [])),
                 speakers=speakers)


def parse_vocabulary(terms) -> tuple[str, ...]:
    """`vocabulary`: names and words to expect, at most 100 terms of at most 50 characters."""
    if not isinstance(terms, list) or len(terms) > MAX_VOCABULARY_TERMS or not all(
            isinstance(t, str) and 0 < len(t.strip()) <= MAX_TERM_CHARS for t in terms):
        raise ProtocolError(BAD_REQUEST, f"'vocabulary' must be a list of at most {MAX_VOCABULARY_TERMS} terms of "
                                         f"1-{MAX_TERM_CHARS} characters")
    return tuple(dict.fromkeys(t.strip() for t in terms))


def check_audio(data: bytes) -> None:
    if len(data) > MAX_AUDIO_FRAME_BYTES:
        raise ProtocolError(FRAME_TOO_LARGE, f"audio frames are limited to {MAX_AUDIO_FRAME_BYTES} bytes")
    if not data or len(data) % 2:
        raise ProtocolError(BAD_AUDIO, "audio frames must be PCM16LE: a non-empty, even number of bytes")


# ---- server events ----


def event_started(*, session_id, language: str, engine: str, translate_to: str | None = None) -> dict:
    return {
        "type": SYSTEM,
        "event": STARTED,
        "session": str(session_id),
        "version": PROTOCOL_VERSION,
        "lang": language,
        "engine": engine,
        "translate_to": translate_to,
        "message": "Listening",
    }


def event_ended(*, session_id, reason: str = REASON_END) -> dict:
    return {"type": SYSTEM, "event": ENDED, "session": str(session_id), "reason": reason, "message": "Session ended"}


def event_speakers(names: dict[str, str]) -> dict:
    return {"type": SYSTEM, "event": SPEAKERS, "names": dict(names)}


def event_progress(progress: float) -> dict:
    return {"type": SYSTEM, "event": PROGRESS, "progress": round(min(1.0, max(0.0, progress)), 3)}


def event_resumed(*, session_id, last_seq: int) -> dict:
    return {"type": SYSTEM, "event": RESUMED, "session": str(session_id), "last_seq": last_seq,
            "message": "Session resumed"}


def event_lag(seconds: float) -> dict:
    return {"type": SYSTEM, "event": LAG, "seconds": round(seconds, 1)}


def event_interim(result: Result, *, phrase: int, revision: int) -> dict:
    event = {"type": INTERIM, "text": result.text, "phrase": phrase, "revision": revision, "start_ms": result.start_ms}
    if result.stability is not None:
        event["stability"] = round(result.stability, 2)
    return event


def event_translation(*, segment_id: int, language: str, text: str, done: bool) -> dict:
    return {"type": TRANSLATION, "segment": segment_id, "lang": language, "text": text, "done": done}


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
        "type": FINAL,
        "text": segment.text,
        "segment": segment.pk,
        "phrase": segment.index,
        "start_ms": segment.start_ms,
        "end_ms": segment.end_ms,
        "language": segment.language,
        "seq": segment.seq,
    }
    if segment.speaker:
        event["speaker"] = segment.speaker
    if segment.corrected:
        event["corrected"] = True
    if segment.doubtful:  # not in the session's language, even decoded again
        event["doubtful"] = True
    if segment.confidence is not None:
        event["confidence"] = round(segment.confidence, 3)
    if segment.words:
        event["words"] = segment.words
    return event


def event_correction(*, segment_id: int, text: str) -> dict:
    """The owner corrected a final: its new text (shown instead of the final's)."""
    return {"type": CORRECTION, "segment": segment_id, "text": text}


def event_speaker(*, segment_id: int, phrase: int, speaker: str) -> dict:
    """The speaker of a final that was sent before its label was ready."""
    return {"type": SPEAKER, "segment": segment_id, "phrase": phrase, "speaker": speaker}


def event_error(code: str, message: str) -> dict:
    return {"type": ERROR, "code": code, "message": message}


def event_snapshot(session, segments, *, language: str | None = None, progress: float | None = None) -> dict:
    """What a viewer who joins late sees first: the session's stored finals (corrections included)
    and their translations into the viewer's language (`language`, else the speaker's)."""
    language = language or session.translate_to
    finals = [event_final_from_segment(s) for s in segments]
    translations = [event_translation_done(t) for s in segments for t in s.translations.all() if t.language == language]
    return {
        "type": SNAPSHOT,
        "session": str(session.pk),
        "title": session.title,
        "lang": session.language,
        "translate_to": language or None,
        "status": session.status,
        "speakers": dict(session.speaker_names or {}),
        **({"progress": progress} if progress is not None else {}),
        "finals": finals,
        "translations": translations,
        "seq": max((e["seq"] or 0 for e in finals + translations), default=0),
    }


def is_session_over(event: dict) -> bool:
    return event.get("type") == SYSTEM and event.get("event") == ENDED

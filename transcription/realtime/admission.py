"""Opening a live session, or saying why not.

`check` runs before anything changes (a refused start leaves the socket's running session alone):
the API token still valid, then the rules every session passes (transcription/admission.py: the
language, the translation). `open_session` then applies the server's limits (draining, sessions per
process) and the user's (live sessions here and uploads being transcribed, counted as uploads count
them), merges the vocabulary with the glossary, creates the session's row and its LiveSession. Each
refusal is a ProtocolError with a documented code.
"""
from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from .. import admission, metrics, protocol, services
from ..auth import token_is_valid
from ..engines import Recognizer, StreamConfig, get_engine
from ..protocol import ProtocolError
from ..translation import Translator
from ..voices import enrolled
from . import shutdown
from .live_db import live_db
from .registry import sessions
from .session import LiveSession


@dataclass(frozen=True)
class Admission:
    """A start that passed `check`: what will run it."""

    message: protocol.Start
    engine: Recognizer
    translator: Translator | None


async def check(*, message: protocol.Start, token_digest: str | None) -> Admission:
    if token_digest and not await token_is_valid(token_digest):  # revoked since this socket opened
        raise ProtocolError(protocol.UNAUTHENTICATED, "this API token was revoked or has expired")
    translator = admission.check_language(language=message.lang, translate_to=message.translate_to or "")
    return Admission(message, get_engine(), translator)


async def open_session(admitted: Admission, *, user, source_url: str = "") -> LiveSession:
    if shutdown.draining():
        raise refused(protocol.BUSY, "this server is shutting down; connect again to continue elsewhere")
    limit = settings.STT_MAX_SESSIONS
    if limit and sessions.count() >= limit:  # full: refuse, so the client can go elsewhere
        raise refused(protocol.BUSY, f"this server is running its maximum of {limit} sessions; try again later")
    uploads = await live_db(admission.uploads_processing)(user=user)
    try:  # (no await between this count and `opening`: two starts at once cannot both pass)
        admission.check_per_user(running=sessions.count(owner_id=user.pk) + uploads)
    except ProtocolError as exc:
        raise refused(exc.code, exc.message) from None
    with sessions.opening(user.pk):  # (the LiveSession is added before anything else awaits)
        message = admitted.message
        vocabulary = await live_db(admission.vocabulary_for)(
            user=user, language=message.lang, terms=message.vocabulary)
        record = await live_db(services.session_start)(
            owner=user, language=message.lang, engine=admitted.engine.name, translate_to=message.translate_to or "",
            vocabulary=vocabulary, source_url=source_url)
        labels = speakers_wanted(message.speakers)
        voices = await live_db(enrolled)(user.pk) if labels else ()
        metrics.sessions_started.labels(engine=admitted.engine.name).inc()
        return LiveSession(record=record, engine=admitted.engine,
                           config=StreamConfig(language=message.lang, vocabulary=tuple(vocabulary),
                                              speaker_changes=labels and settings.STT_SPEAKER_CHANGES),
                           translator=admitted.translator, translate_to=message.translate_to,
                           speakers=labels, voices=voices)


def refused(code: str, message: str) -> ProtocolError:
    metrics.sessions_refused.labels(reason=code).inc()
    return ProtocolError(code, message)


def speakers_wanted(asked: bool) -> bool:
    """Speaker labels: STT_SPEAKERS (on by default), unless this session's `start` said false."""
    from .. import speakers

    return asked and settings.STT_SPEAKERS and speakers.available()

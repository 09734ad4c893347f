"""Opening a session, or saying why not: the rules a `start` must pass, in one place.

`check` runs before anything changes (a refused start leaves the socket's running session alone):
the API token still valid, the engine knows the language, the translator can produce the target.
`open_session` then applies the server's limits (draining, sessions per process and per user), merges
the session's vocabulary with the user's glossary (the session's terms first, 100 in all), creates the
session's row and builds its LiveSession. Each refusal is a ProtocolError with a documented code.
"""
from __future__ import annotations

from dataclasses import dataclass

from channels.db import database_sync_to_async
from django.conf import settings

from .. import metrics, selectors, services
from ..engines import Recognizer, StreamConfig, get_engine
from ..translation import Translator, get_translator
from . import protocol, shutdown
from .auth import token_is_valid
from .protocol import ProtocolError
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
    engine = get_engine()
    if not engine.supports_language(message.lang):
        raise ProtocolError(protocol.UNSUPPORTED_LANGUAGE, f"engine {engine.name!r} cannot recognise {message.lang!r}")
    translator = None
    if message.translate_to:
        translator = get_translator()
        if not translator.supports(source=message.lang, target=message.translate_to):
            raise ProtocolError(protocol.TRANSLATION_UNSUPPORTED, f"translator {translator.name!r} cannot translate "
                                                                  f"{message.lang!r} into {message.translate_to!r}")
    return Admission(message, engine, translator)


async def open_session(admission: Admission, *, user) -> LiveSession:
    if shutdown.draining():
        raise refused(protocol.BUSY, "this server is shutting down; connect again to continue elsewhere")
    limit = settings.STT_MAX_SESSIONS
    if limit and sessions.count() >= limit:  # full: refuse, so the client can go elsewhere
        raise refused(protocol.BUSY, f"this server is running its maximum of {limit} sessions; try again later")
    per_user = settings.STT_MAX_SESSIONS_PER_USER
    if per_user and sessions.count(owner_id=user.pk) >= per_user:
        raise refused(protocol.TOO_MANY_SESSIONS, f"you already have {per_user} sessions running")
    with sessions.opening(user.pk):  # (the LiveSession is added before anything else awaits)
        message = admission.message
        glossary = await database_sync_to_async(selectors.glossary_terms_for)(user=user, language=message.lang)
        vocabulary = tuple(dict.fromkeys(message.vocabulary + tuple(glossary)))[:protocol.MAX_VOCABULARY_TERMS]
        record = await database_sync_to_async(services.session_start)(
            owner=user, language=message.lang, engine=admission.engine.name, translate_to=message.translate_to or "",
            vocabulary=list(vocabulary))
        metrics.sessions_started.labels(engine=admission.engine.name).inc()
        return LiveSession(record=record, engine=admission.engine,
                           config=StreamConfig(language=message.lang, vocabulary=vocabulary),
                           translator=admission.translator, translate_to=message.translate_to,
                           speakers=speakers_wanted(message.speakers))


def refused(code: str, message: str) -> ProtocolError:
    metrics.sessions_refused.labels(reason=code).inc()
    return ProtocolError(code, message)


def speakers_wanted(asked: bool) -> bool:
    """Speaker labels: STT_SPEAKERS (on by default), unless this session's `start` said false."""
    from .. import speakers

    return asked and settings.STT_SPEAKERS and speakers.available()

"""The rules a new session must pass, live or uploaded, in one place: the engine knows the language,
the translator can produce the target, the user is under STT_MAX_SESSIONS_PER_USER, and its
vocabulary is the session's terms then the user's glossary. Each refusal is a ProtocolError with a
documented code. realtime/admission.py adds what only a serving process knows (draining, its own
limit); sources/uploads.py adds the file's checks.
"""
from __future__ import annotations

from django.conf import settings

from . import protocol, selectors
from .engines import get_engine
from .models import TranscriptionSession
from .protocol import ProtocolError
from .translation import Translator, get_translator


def check_language(*, language: str, translate_to: str = "") -> Translator | None:
    """The engine can recognise `language` and the translator produce `translate_to` (its translator)."""
    engine = get_engine()
    if not language or not engine.supports_language(language):
        raise ProtocolError(protocol.UNSUPPORTED_LANGUAGE, f"engine {engine.name!r} cannot recognise {language!r}")
    if not translate_to:
        return None
    translator = get_translator()
    if not translator.supports(source=language, target=translate_to):
        raise ProtocolError(protocol.TRANSLATION_UNSUPPORTED,
                            f"translator {translator.name!r} cannot translate {language!r} into {translate_to!r}")
    return translator


def uploads_processing(*, user) -> int:
    """The user's uploads being transcribed (they count as running sessions)."""
    return TranscriptionSession.objects.filter(owner=user, status=TranscriptionSession.Status.PROCESSING).count()


def check_per_user(*, running: int) -> None:
    """`running`: the user's live sessions in this process and uploads being transcribed."""
    limit = settings.STT_MAX_SESSIONS_PER_USER
    if limit and running >= limit:
        raise ProtocolError(protocol.TOO_MANY_SESSIONS, f"you already have {limit} sessions running or processing")


def vocabulary_for(*, user, language: str, terms) -> list[str]:
    """The session's own terms first, then the user's glossary for the language: 100 at most."""
    glossary = selectors.glossary_terms_for(user=user, language=language)
    return list(dict.fromkeys([*terms, *glossary]))[:protocol.MAX_VOCABULARY_TERMS]

"""Translator registry: STT_TRANSLATOR names a backend (short name or dotted path), built once."""
from __future__ import annotations

import threading

from django.conf import settings
from django.utils.module_loading import import_string

from .base import TranslationError, Translator

__all__ = ["TranslationError", "Translator", "get_translator", "translator_path"]

TRANSLATORS = {
    "whisper": "transcription.translation.whisper.WhisperTranslator",
    "openai": "transcription.translation.openai.OpenAITranslator",
    "scripted": "transcription.translation.scripted.ScriptedTranslator",
}

_cache: dict[str, Translator] = {}
_lock = threading.Lock()


def translator_path(name: str | None = None) -> str:
    name = name or settings.STT_TRANSLATOR
    return TRANSLATORS.get(name, name)


def get_translator(name: str | None = None) -> Translator:
    path = translator_path(name)
    with _lock:
        translator = _cache.get(path)
        if translator is None:
            translator = import_string(path)()
            _cache[path] = translator
        return translator

"""Translator registry: STT_TRANSLATOR names a backend (short name or dotted path), built once."""
from __future__ import annotations

from django.conf import settings

from ..backends import load_backend
from .base import TranslationError, Translator

__all__ = ["TranslationError", "Translator", "get_translator", "translator_path"]

TRANSLATORS = {
    "whisper": "transcription.translation.whisper.WhisperTranslator",
    "openai": "transcription.translation.openai.OpenAITranslator",
    "scripted": "transcription.translation.scripted.ScriptedTranslator",
}

_cache: dict[str, Translator] = {}


def translator_path(name: str | None = None) -> str:
    name = name or settings.STT_TRANSLATOR
    return TRANSLATORS.get(name, name)


def get_translator(name: str | None = None) -> Translator:
    return load_backend(translator_path(name), _cache)

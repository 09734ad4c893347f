"""Engine registry: STT_ENGINE names a backend (short name or dotted path), built once per process."""
from __future__ import annotations

from django.conf import settings

from ..backends import load_backend
from .base import AUTO_LANGUAGE, FINALIZE, Control, EngineError, Recognizer, Result, StreamConfig, Word

__all__ = [
    "AUTO_LANGUAGE", "FINALIZE", "Control", "EngineError", "Recognizer", "Result", "StreamConfig", "Word",
    "get_engine", "engine_path",
]

ENGINES = {
    "whisper": "transcription.engines.whisper.WhisperRecognizer",
    "scripted": "transcription.engines.scripted.ScriptedRecognizer",
    "openai": "transcription.engines.openai.OpenAIRealtimeRecognizer",
    "google": "transcription.engines.google.GoogleRecognizer",
}

_cache: dict[str, Recognizer] = {}


def engine_path(name: str | None = None) -> str:
    name = name or settings.STT_ENGINE
    return ENGINES.get(name, name)


def get_engine(name: str | None = None) -> Recognizer:
    """The process-wide engine object (holds the loaded model; per-session state lives in stream())."""
    return load_backend(engine_path(name), _cache)

"""Shared plumbing for pluggable backends (engines, translators) and the OpenAI client."""
from __future__ import annotations

import threading
from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string

_lock = threading.Lock()


def load_backend(path: str, cache: dict[str, Any]) -> Any:
    """The process-wide instance of the class at dotted `path`, built once."""
    with _lock:
        backend = cache.get(path)
        if backend is None:
            backend = import_string(path)()
            cache[path] = backend
        return backend


_openai_clients: dict[tuple, Any] = {}


def openai_client(*, timeout: float | None = None):
    """One OpenAI client per configuration (it pools its connections), shared by engine and translator."""
    key = (settings.OPENAI_BASE_URL, settings.OPENAI_API_KEY, timeout)
    with _lock:
        client = _openai_clients.get(key)
        if client is None:
            from openai import OpenAI

            client = OpenAI(
                api_key=settings.OPENAI_API_KEY or "not-needed-for-local-servers",
                base_url=settings.OPENAI_BASE_URL or None,
                timeout=timeout if timeout is not None else 600.0,
                max_retries=0,  # callers decide: the session retries a phrase, the engine reconnects
            )
            _openai_clients[key] = client
        return client


def test_setting(name: str, default: float) -> float:
    """A knob of the scripted (test-only) backends: a test's settings override, else the environment
    (for a real daphne started by a test), else `default`. Not in settings.py: no user sets them."""
    import os

    value = getattr(settings, name, None)
    if value is None:
        value = os.environ.get(name) or default
    return float(value)

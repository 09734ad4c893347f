"""Translation with an OpenAI (or OpenAI-compatible: vLLM, llama.cpp, Ollama) chat model, streamed."""
from __future__ import annotations

import logging
import threading
from typing import Iterator, Sequence

from django.conf import settings

from .base import TranslationError

logger = logging.getLogger(__name__)

SYSTEM_PROMPT = (
    "You translate live speech transcripts from {source} into {target}. Keep names, numbers, units and "
    "code words exactly as they are. Reply with the translation of the last phrase only: no notes, no quotes."
)


class OpenAITranslator:
    name = "openai"

    def __init__(self) -> None:
        self._client = None
        self._lock = threading.Lock()

    def client(self):
        """One client per process (it pools its HTTP connections)."""
        with self._lock:
            if self._client is None:
                from openai import OpenAI

                self._client = OpenAI(
                    api_key=settings.OPENAI_API_KEY or "not-needed-for-local-servers",
                    base_url=settings.OPENAI_BASE_URL or None,
                    timeout=settings.OPENAI_TIMEOUT,
                    max_retries=0,  # the session retries a failed phrase once itself
                )
            return self._client

    def supports(self, *, source: str, target: str) -> bool:
        return True

    def translate(
        self, text: str, *, source: str, target: str, audio: bytes = b"", context: Sequence[str] = ()
    ) -> Iterator[str]:
        import openai

        messages = [{"role": "system", "content": SYSTEM_PROMPT.format(source=source, target=target)}]
        if context:
            earlier = "\n".join(context)
            messages.append({"role": "user", "content": f"Earlier phrases, for context only:\n{earlier}"})
        messages.append({"role": "user", "content": text})
        try:
            stream = self.client().chat.completions.create(
                model=settings.OPENAI_TRANSLATE_MODEL, messages=messages, stream=True, temperature=0
            )
            for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    yield chunk.choices[0].delta.content
        except openai.OpenAIError as exc:
            logger.warning("OpenAI translation failed: %s", exc)
            raise TranslationError(f"translation service error: {exc.__class__.__name__}") from exc

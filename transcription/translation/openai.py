"""Translation with an OpenAI (or OpenAI-compatible: vLLM, llama.cpp, Ollama) chat model, streamed."""
from __future__ import annotations

import logging
from typing import Iterator, Sequence

from django.conf import settings

from ..backends import openai_client
from .base import TranslationError

logger = logging.getLogger(__name__)

SYSTEM_PROMPT = (
    "You translate live speech transcripts from {source} into {target}. Keep names, numbers, units and "
    "code words exactly as they are. Reply with the translation of the last phrase only: no notes, no quotes."
)


class OpenAITranslator:
    name = "openai"

    def supports(self, *, source: str, target: str) -> bool:
        """Only the languages of STT_TRANSLATION_LANGUAGES: a model would answer for any code at all."""
        return target.split("-")[0].lower() in settings.STT_TRANSLATION_LANGUAGES

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
            stream = openai_client(timeout=settings.OPENAI_TIMEOUT).chat.completions.create(
                model=settings.OPENAI_TRANSLATE_MODEL, messages=messages, stream=True, temperature=0
            )
            for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    yield chunk.choices[0].delta.content
        except openai.OpenAIError as exc:
            logger.warning("OpenAI translation failed: %s", exc)
            raise TranslationError(f"translation service error: {exc.__class__.__name__}") from exc

"""A deterministic translator for tests: '<target>:' + the text upper-cased, one word per delta.

Target "xx" is unsupported; target "zz-fail" always raises TranslationError, "zz-flaky" fails the
first attempt of each phrase. STT_SCRIPTED_TRANSLATION_DELAY (seconds per word) makes it slow.
"""
from __future__ import annotations

import time
from typing import Iterator, Sequence

from ..backends import test_setting

from .base import TranslationError


class ScriptedTranslator:
    name = "scripted"

    def __init__(self) -> None:
        self.attempts: dict[tuple[str, bytes], int] = {}

    def supports(self, *, source: str, target: str) -> bool:
        return target != "xx"

    def translate(
        self, text: str, *, source: str, target: str, audio: bytes = b"", context: Sequence[str] = ()
    ) -> Iterator[str]:
        key = (text, audio)
        self.attempts[key] = self.attempts.get(key, 0) + 1
        if target == "zz-fail" or (target == "zz-flaky" and self.attempts[key] == 1):
            raise TranslationError("scripted translation failure")
        delay = test_setting("STT_SCRIPTED_TRANSLATION_DELAY", 0.0)
        yield f"{target}:"
        for word in text.upper().split():
            if delay:
                time.sleep(delay)
            yield " " + word

"""The Translator seam: one final phrase in, the translation out as a stream of text deltas."""
from __future__ import annotations

from typing import Iterator, Protocol, Sequence


class TranslationError(Exception):
    """The translator failed; the message is safe to show to the client."""


class Translator(Protocol):
    name: str

    def supports(self, *, source: str, target: str) -> bool:
        """Whether this backend can translate `source` speech/text into `target`."""
        ...

    def translate(
        self, text: str, *, source: str, target: str, audio: bytes = b"", context: Sequence[str] = ()
    ) -> Iterator[str]:
        """Yield the translation in pieces (deltas); blocking, run off the event loop.

        `audio` is the phrase's PCM16 16 kHz mono when the engine kept it; `context` the last few
        source finals, oldest first.
        """
        ...

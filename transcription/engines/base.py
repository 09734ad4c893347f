"""The Recognizer seam: audio chunks in, results out, blocking, in the session's own thread."""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Iterator, Protocol

from ..audio import BYTES_PER_SECOND, SAMPLE_RATE  # noqa: F401  (the engines' audio: 16 kHz mono PCM16)


class Control(Enum):
    """Markers that may appear among the audio chunks."""

    FINALIZE = "finalize"  # the phrase in progress becomes a final now


FINALIZE = Control.FINALIZE
AUTO_LANGUAGE = "auto"  # StreamConfig.language: let the engine detect it per phrase


@dataclass(frozen=True)
class StreamConfig:
    language: str  # BCP-47 as the client sent it, e.g. "ko-KR" (audio is always 16 kHz mono PCM16)
    interim_results: bool = True
    vocabulary: tuple[str, ...] = ()  # names and jargon to expect (the session's terms and the glossary)
    speaker_changes: bool = False  # end a phrase where another voice takes over (with speaker labels)


@dataclass(frozen=True)
class Word:
    word: str
    start_ms: int
    end_ms: int
    probability: float | None = None


@dataclass(frozen=True)
class Result:
    text: str
    is_final: bool
    start_ms: int = 0
    end_ms: int = 0
    confidence: float | None = None
    words: tuple[Word, ...] = field(default_factory=tuple)
    language: str | None = None  # BCP-47 or ISO 639-1 code of what was recognised
    stability: float | None = None  # an interim's likelihood of not changing (Google), 0-1
    speaker: str | None = None  # a final's speaker label (S1, S2, ...), given by the session (speakers/)
    doubtful: bool = False  # a final not in its session's language, even decoded again (engines/doubt.py)
    # The label still being computed when the final was handed on (a concurrent Future; the session's).
    pending_speaker: object = field(default=None, repr=False, compare=False)
    # A final's audio (PCM16 16 kHz mono), for speech translation; engines may leave it empty.
    audio: bytes = field(default=b"", repr=False, compare=False)


class EngineError(Exception):
    """The engine failed; the message is safe to show to the client. Its `kind` says how (the
    session core maps it to the protocol's error code): FAILED (the default), UNAVAILABLE (the
    service cannot be reached or has no credentials), REJECTED (the service refused the request)."""

    FAILED, UNAVAILABLE, REJECTED = "failed", "unavailable", "rejected"

    def __init__(self, message: str, kind: str = FAILED) -> None:
        super().__init__(message)
        self.kind = kind


class Recognizer(Protocol):
    name: str

    def stream(self, chunks: Iterator[bytes | Control], config: StreamConfig) -> Iterator[Result]:
        """Consume PCM16LE 16 kHz mono chunks until the iterator ends; yield results as they come.

        FINALIZE among the chunks, and the end of `chunks`, finalise the phrase in progress.
        """
        ...

    def supports_language(self, language: str) -> bool:
        ...

"""Session audio retention (STT_KEEP_AUDIO): one WAV per session, written as the audio arrives."""
from __future__ import annotations

import logging
import wave
from pathlib import Path
from typing import Iterator

from django.conf import settings

from .engines import Control

logger = logging.getLogger(__name__)


def audio_name(session_id) -> str:
    """Storage name, relative to MEDIA_ROOT."""
    return f"audio/{session_id}.wav"


class WavRecorder:
    """Appends PCM16 16 kHz mono to a WAV file; the header is completed on close."""

    def __init__(self, wav: wave.Wave_write) -> None:
        self._wav = wav

    @classmethod
    def open(cls, path: Path) -> WavRecorder | None:
        """Called in the recognition thread (file I/O stays off the event loop); None if it cannot be
        written: recognition goes on without keeping the audio."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            wav = wave.open(str(path), "wb")
        except OSError:
            logger.exception("audio retention failed; recognition goes on without it")
            return None
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        return cls(wav)

    def write(self, pcm: bytes) -> None:
        self._wav.writeframes(pcm)  # writeframes also rewrites the header sizes: the file stays valid

    def close(self) -> None:
        self._wav.close()


def tee_to_recorder(chunks: Iterator[bytes | Control], recorder: WavRecorder | None) -> Iterator[bytes | Control]:
    """Pass chunks on to the engine, writing the audio to disk on the way (in the session's thread)."""
    try:
        for chunk in chunks:
            if recorder is not None and isinstance(chunk, bytes):
                try:
                    recorder.write(chunk)
                except OSError:
                    logger.exception("audio retention failed; recognition goes on without it")
                    recorder.close()
                    recorder = None
            yield chunk
    finally:
        if recorder is not None:
            recorder.close()


def audio_path_for(session_id) -> Path | None:
    """Where a session's audio is kept, or None when STT_KEEP_AUDIO is off."""
    if not settings.STT_KEEP_AUDIO:
        return None
    return Path(settings.MEDIA_ROOT) / audio_name(session_id)


def read_span(session, start_ms: int, end_ms: int) -> bytes:
    """PCM16 of [start_ms, end_ms) from a finished session's kept audio (b"" if none was kept)."""
    if not session.audio or not session.audio.storage.exists(session.audio.name):
        return b""
    with session.audio.open("rb") as f:
        return _read(f, start_ms, end_ms)


def read_span_at(path: Path, start_ms: int, end_ms: int) -> bytes:
    """The same from a WAV still being written (a running session's), b"" if there is none."""
    try:
        with open(path, "rb") as f:
            return _read(f, start_ms, end_ms)
    except (OSError, EOFError, wave.Error):
        return b""


def _read(f, start_ms: int, end_ms: int) -> bytes:
    with wave.open(f) as w:
        w.setpos(min(w.getnframes(), start_ms * 16))
        return w.readframes(max(0, (end_ms - start_ms) * 16))


class WavReader:
    """Spans of a kept recording (16 kHz mono PCM16 WAV), read as they are needed."""

    def __init__(self, path) -> None:
        self.path = path
        with wave.open(str(path), "rb") as w:
            self.frames = w.getnframes()

    def pcm(self, start: int, end: int) -> bytes:
        """PCM16 of samples [start, end)."""
        with wave.open(str(self.path), "rb") as w:
            w.setpos(min(self.frames, max(0, start)))
            return w.readframes(max(0, end - start))

    def samples(self, start: int, end: int) -> "np.ndarray":
        """The same as float32 in [-1, 1), what Whisper and the VAD take."""
        import numpy as np

        return np.frombuffer(self.pcm(start, end), dtype="<i2").astype(np.float32) / 32768.0

"""Recordings: one WAV per session (16 kHz mono PCM16), kept in Django's storage (STORAGES).

A live session writes its WAV locally as the audio arrives (STT_KEEP_AUDIO) and hands it to the
storage when it ends; an upload's WAV is decoded straight into the storage's place for it. The
default storage is the local file system (MEDIA_ROOT), where writing there is the storing; with an
S3-compatible store (django-storages, docs/operations.md) the file is uploaded, and whoever needs it
later (a worker on another machine, playback) reads it through the same storage.
"""
from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
import wave
from pathlib import Path
from typing import Iterator

from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage

from .audio import SAMPLE_RATE, open_wav_writer, pcm16_to_float
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
            wav = open_wav_writer(path)
        except OSError:
            logger.exception("audio retention failed; recognition goes on without it")
            return None
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


def local_path(name: str) -> Path | None:
    """Where the storage keeps `name` on this machine's disk, or None if it is not a local storage."""
    try:
        return Path(default_storage.path(name))
    except NotImplementedError:
        return None


@contextlib.contextmanager
def local_copy(name: str) -> Iterator[Path]:
    """A stored file as a path on this machine: the file itself on a local storage, else a
    temporary copy (a worker on another machine reading what a server received)."""
    path = local_path(name)
    if path is not None:
        yield path
        return
    with tempfile.NamedTemporaryFile(prefix="stt-stored-", suffix=Path(name).suffix) as copy:
        with default_storage.open(name, "rb") as stored:
            shutil.copyfileobj(stored, copy, 1024 * 1024)
        copy.flush()
        yield Path(copy.name)


@contextlib.contextmanager
def local_target(name: str) -> Iterator[Path]:
    """A path to write a file that is to be stored as `name`: the storage's own place when it is
    local, else a temporary file stored (replacing `name`) when the block ends without error."""
    path = local_path(name)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="stt-store-") as folder:
        target = Path(folder) / Path(name).name
        yield target
        store(target, name)


def store(path: Path, name: str) -> None:
    """A local file into the storage as `name`, replacing what was there."""
    if default_storage.exists(name):
        default_storage.delete(name)
    with open(path, "rb") as f:
        saved = default_storage.save(name, File(f))
    if saved != name:  # (a storage that renames instead of replacing)
        raise OSError(f"the storage saved {name!r} as {saved!r}")


def recording_publish(session_id) -> None:
    """A live session's WAV, written locally as it ran, into the storage (nothing to do when the
    storage is the local MEDIA_ROOT it was written in)."""
    written = audio_path_for(session_id)
    name = audio_name(session_id)
    if written is None or not written.exists() or local_path(name) == written:
        return
    store(written, name)
    written.unlink()


def audio_path_for(session_id) -> Path | None:
    """Where a session's audio is kept, or None when STT_KEEP_AUDIO is off."""
    if not settings.STT_KEEP_AUDIO:
        return None
    return Path(settings.MEDIA_ROOT) / audio_name(session_id)


def read_span(session, start_ms: int, end_ms: int) -> bytes:
    """PCM16 of [start_ms, end_ms) from a finished session's kept audio (b"" if none was kept),
    through the storage."""
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
        per_ms = SAMPLE_RATE // 1000
        w.setpos(min(w.getnframes(), start_ms * per_ms))
        return w.readframes(max(0, (end_ms - start_ms) * per_ms))


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

        return pcm16_to_float(self.pcm(start, end))

"""Any audio file PyAV reads, as 16 kHz mono PCM16, decoded as a stream.

Limits are counted on the decoded samples, never on what a file's header says: a WebM written by a
browser's MediaRecorder has no duration, an mp3 whose bitrate drops after its first frames declares
a fraction of its length. Memory stays that of one decoded packet and the resampler's, whatever the
file's length: the caller writes each chunk on (to the kept WAV) as it comes.
"""
from __future__ import annotations

from pathlib import Path
from typing import BinaryIO, Callable, Iterator

from ..audio import BYTES_PER_SECOND, SAMPLE_RATE

NOT_AUDIO = "not_audio"
TOO_LONG = "too_long"


class DecodeError(Exception):
    """The file cannot be used: a documented `code` (not_audio, too_long) and a message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def pcm16_chunks(source: Path | BinaryIO, *, max_seconds: float | None = None,
                 on_start: Callable[[float], None] | None = None) -> Iterator[bytes]:
    """The first audio track of `source` (a path, a file object PyAV reads from, or a container PyAV
    opened), as PCM16LE 16 kHz mono chunks (one per decoded packet). `on_start` is told the first
    frame's timestamp, in seconds (a live stream's clock).

    Raises DecodeError(TOO_LONG) as soon as more than `max_seconds` have been decoded, and
    DecodeError(NOT_AUDIO) when PyAV cannot open the file or it has no audio track. A damaged packet
    inside a readable file is skipped, as FFmpeg's players do.
    """
    import av

    limit = None if max_seconds is None else int(max_seconds * BYTES_PER_SECOND)
    decoded = 0
    try:
        container = source if isinstance(source, av.container.InputContainer) else av.open(
            str(source) if isinstance(source, Path) else source, metadata_errors="ignore")
    except Exception as exc:  # av.error.InvalidDataError and its kin: not something PyAV reads
        raise DecodeError(NOT_AUDIO, "the file is not audio that can be decoded (wav, mp3, m4a, ogg, webm, "
                                     "flac or a video's audio track)") from exc
    with container:
        if not container.streams.audio:
            raise DecodeError(NOT_AUDIO, "the file has no audio track")
        resampler, source_format = None, None
        for frame in _frames(container, container.streams.audio[0]):
            if on_start is not None and frame.time is not None:
                on_start(frame.time)
                on_start = None
            if (frame.format.name, frame.layout.name, frame.sample_rate) != source_format:
                # A stream may change its rate or channels midway (joined files): a new resampler.
                yield from _drained(resampler)
                source_format = (frame.format.name, frame.layout.name, frame.sample_rate)
                resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
            for out in resampler.resample(frame):
                chunk = out.to_ndarray().tobytes()
                decoded += len(chunk)
                if limit is not None and decoded > limit:
                    raise DecodeError(TOO_LONG, f"the recording is longer than {_hours(max_seconds)}")
                yield chunk
        yield from _drained(resampler)


def _drained(resampler) -> Iterator[bytes]:
    """What a resampler still holds."""
    if resampler is not None:
        for out in resampler.resample(None):
            yield out.to_ndarray().tobytes()


def _frames(container, stream):
    import av

    for packet in container.demux(stream):
        try:
            yield from packet.decode()
        except av.error.InvalidDataError:
            continue  # one damaged packet: the rest of the file still plays


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:g} h" if seconds >= 3600 else f"{seconds:g} s"

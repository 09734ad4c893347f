"""A live stream pulled by URL, as 16 kHz mono PCM16: HLS, HTTP audio (Icecast, a file), RTMP, RTSP, SRT.

HTTP and HLS bytes are fetched here (http_fetch: checked hosts and redirects) and handed to PyAV as a
file, so FFmpeg never opens an HTTP URL itself. RTMP, RTSP and SRT are opened by FFmpeg at the
checked address (stream_urls.Target.pinned_url), with only that protocol allowed.

A connection that fails, stalls (STT_STREAM_STALL_SECONDS without data) or drops is opened again,
after 1, 2, 4... s; after STT_STREAM_RECONNECTS failures in a row (a connection that gave audio
resets the count) the stream is lost (StreamLost). A stream that ends (an HLS ENDLIST, an HTTP body
of its declared length, the end of an RTMP/RTSP stream) simply stops.
"""
from __future__ import annotations

import functools
import itertools
import logging
import threading
import time
from typing import Iterator

import httpx
import m3u8

from ..protocol import SOURCE_LOST, SOURCE_UNREACHABLE
from . import http_fetch, stream_urls
from .decoding import DecodeError, pcm16_chunks
from .hls import MAX_PLAYLIST_BYTES, HlsError, HlsReader, looks_like_playlist

logger = logging.getLogger(__name__)

FFMPEG_PROTOCOLS = {"rtmp": "rtmp,tcp", "rtmps": "rtmps,rtmp,tls,tcp", "rtsp": "rtsp,rtp,udp,tcp", "srt": "srt,libsrt"}
MAX_BACKOFF_SECONDS = 8.0
OPEN_SECONDS = 15.0  # opening a stream (and each reconnection's playlists) takes at most this long in all


class StreamError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class StreamLost(StreamError):
    def __init__(self, message: str) -> None:
        super().__init__(SOURCE_LOST, message)


class _Bytes:
    """Byte chunks as a file PyAV reads (no seek: FFmpeg reads it as a live stream). A failure to
    fetch them ends the file and is kept in `error`: FFmpeg would report it as undecodable data. A chunk
    is read through a view at an offset: re-slicing the rest at every 32 kB read copied a 50 MB segment
    quadratically (tens of GB, the GIL held)."""

    def __init__(self, parts: Iterator[bytes], stop: threading.Event) -> None:
        self.parts = parts
        self.stop = stop
        self.buffer = memoryview(b"")
        self.offset = 0
        self.error: Exception | None = None

    def read(self, size: int = -1) -> bytes:
        while self.offset >= len(self.buffer) and not self.stop.is_set():
            try:
                part = next(self.parts, None)
            except Exception as exc:
                self.error = exc
                return b""
            if part is None:
                return b""
            self.buffer, self.offset = memoryview(part), 0
        if self.stop.is_set():
            return b""
        end = len(self.buffer) if size < 0 else min(len(self.buffer), self.offset + size)
        out = self.buffer[self.offset:end].tobytes()
        self.offset = end
        return out


class PulledStream:
    """One stream URL. `open` makes the first connection (errors reach the person who asked);
    `chunks` then yields audio, reconnecting as needed, until the stream ends, is lost or `stop`."""

    def __init__(self, url: str, *, stall_seconds: float, reconnects: int) -> None:
        self.target = stream_urls.check(url)
        self.stall_seconds = stall_seconds
        self.reconnects = reconnects
        self.stop_event = threading.Event()
        self.http = http_fetch.client(stall_seconds) if self.target.scheme in ("http", "https") else None
        self.hls: HlsReader | None = None
        self._first = None  # what `open` got: an HTTP body, an HLS playlist or a PyAV container
        self._body: _Body | None = None
        self.start_seconds: float | None = None  # the stream's timestamp at its first audio (the session's 0)

    def open(self) -> None:
        """Connect once, within OPEN_SECONDS however slowly the source answers; SourceNotAllowed (a
        redirect elsewhere) or StreamError(SOURCE_UNREACHABLE)."""
        if self.target.scheme == "srt" and not _ffmpeg_has("srt"):
            raise StreamError(SOURCE_UNREACHABLE, "this server's FFmpeg cannot read SRT streams")
        try:
            self._first = self._connect(deadline=time.monotonic() + OPEN_SECONDS)
        except stream_urls.SourceNotAllowed:
            self.close()
            raise
        except Exception as exc:  # HTTP, HLS, and PyAV's av.error.* alike (FFmpeg's quote the URL)
            self.close()
            raise StreamError(SOURCE_UNREACHABLE, self.target.scrub(f"the stream could not be opened: {exc}")) from None

    def stop(self) -> None:
        self.stop_event.set()

    def close(self) -> None:
        self.stop_event.set()
        self.disconnect()

    def disconnect(self) -> None:
        """Close the HTTP connections (from the thread that reads them)."""
        if self.http is not None:
            self.http.close()

    def chunks(self) -> Iterator[bytes]:
        failures = 0
        while not self.stop_event.is_set():
            opened, self._first = self._first, None
            gave_audio = False
            try:
                source = opened if opened is not None else self._connect()
                for chunk in self._decoded(source):
                    gave_audio = True
                    yield chunk
                if self._ended():
                    return
                error = "the stream dropped"
            except stream_urls.SourceNotAllowed:
                raise
            except DecodeError as exc:  # it is not audio: trying again would not change that
                raise StreamLost(self.target.scrub(str(exc))) from None
            except (http_fetch.FetchError, HlsError, OSError, httpx.HTTPError) as exc:
                error = self.target.scrub(str(exc) or type(exc).__name__)
            except Exception as exc:  # PyAV's errors (av.error.*) and the like: treated as a drop
                error = self.target.scrub(f"{type(exc).__name__}: {exc}")
            if self.stop_event.is_set():
                return
            failures = 0 if gave_audio else failures + 1
            if failures > self.reconnects:
                raise StreamLost(f"gave up after {self.reconnects} reconnection attempts: {error}")
            logger.info("stream %s: %s; reconnecting (%d)", self.target.redacted, error, failures)
            self.stop_event.wait(min(MAX_BACKOFF_SECONDS, 2.0 ** max(0, failures - 1)))

    # ---- connections ----

    def _connect(self, deadline: float | None = None):
        """A PyAV container (RTMP, RTSP, SRT), an HLS media playlist, or an HTTP body as _Body; a playlist
        is read by `deadline` (monotonic), if given."""
        deadline = deadline or time.monotonic() + OPEN_SECONDS
        if self.http is None:
            import av

            return av.open(self.target.pinned_url, timeout=(10.0, self.stall_seconds), metadata_errors="ignore",
                           options={"protocol_whitelist": FFMPEG_PROTOCOLS[self.target.scheme],
                                    **({"rtsp_transport": "tcp"} if self.target.scheme == "rtsp" else {})})
        if self.hls is not None:
            return self.hls.load(deadline=deadline)
        response, final_url = http_fetch.get(self.http, self.target.url)
        parts = response.iter_bytes()
        try:
            head = next(parts, b"")
        except httpx.HTTPError as exc:
            response.close()
            raise http_fetch.FetchError(f"{self.target.redacted} was cut off ({type(exc).__name__})") from exc
        if looks_like_playlist(final_url, response.headers.get("content-type", ""), head[:64]):
            text = http_fetch.read_rest(response, final_url, limit=MAX_PLAYLIST_BYTES, head=head, parts=parts,
                                        deadline=deadline)
            self.hls = HlsReader(self.http, final_url, stall_seconds=self.stall_seconds, stop=self.stop_event)
            return self.hls.load(text.decode("utf-8", "replace"), deadline=deadline)
        return _Body(response, head, parts)

    def _decoded(self, source) -> Iterator[bytes]:
        on_start = self._started if self.start_seconds is None else None
        if not isinstance(source, (_Body, m3u8.M3U8)):  # a PyAV container FFmpeg opened
            with source:
                yield from pcm16_chunks(source, on_start=on_start)
            return
        if isinstance(source, _Body):
            self._body = source
        data = _Bytes(source.parts() if isinstance(source, _Body) else self.hls.segments(source), self.stop_event)
        try:
            yield from pcm16_chunks(data, on_start=on_start)
        except DecodeError:
            if data.error is None:
                raise
        if data.error is not None:  # the fetching failed, not the decoding
            raise data.error

    def _started(self, seconds: float) -> None:
        self.start_seconds = seconds

    def _ended(self) -> bool:
        if self.hls is not None:
            return self.hls.ended
        if self._body is not None:
            return self._body.complete
        return True  # FFmpeg read an RTMP/RTSP/SRT stream to its end: the publisher stopped


class _Body:
    """An HTTP audio body (Icecast, a file), its first bytes already read; `complete` once the length
    it declared has arrived (a body without a length, like Icecast's, never ends by itself)."""

    def __init__(self, response: httpx.Response, head: bytes, rest: Iterator[bytes]) -> None:
        self.response = response
        self.head = head
        self.rest = rest
        self.received = 0
        try:
            self.declared = int(response.headers["content-length"])
        except (KeyError, ValueError):
            self.declared = None

    @property
    def complete(self) -> bool:
        return self.declared is not None and self.received >= self.declared

    def parts(self) -> Iterator[bytes]:
        try:
            for part in itertools.chain([self.head], self.rest):
                self.received += len(part)
                yield part
        finally:
            self.response.close()


@functools.cache
def _ffmpeg_has(protocol: str) -> bool:
    """Whether this FFmpeg build reads `protocol` URLs (PyAV's wheels have no SRT)."""
    import av

    try:
        av.open(f"{protocol}://0.0.0.0:1", timeout=0.01)
    except av.error.ProtocolNotFoundError:
        return False
    except Exception:
        return True
    return True

"""An HLS stream as one byte stream: its media segments, in order, as a player would fetch them.

The playlist is parsed by the m3u8 library and every playlist, segment and init section is fetched
through http_fetch (checked hosts, checked redirects); FFmpeg's own HLS reader is not used because it
would open segment URLs on any host. A live playlist is reloaded every half target duration and read
from its newest segment (captions close to the live edge); a finished one (ENDLIST) from its first.
Segment bytes of one rendition join into one stream FFmpeg reads as is (MPEG-TS, packed audio, or
fMP4 after its init section).
"""
from __future__ import annotations

import threading
import time
from typing import Iterator

import httpx
import m3u8

from . import http_fetch

MAX_PLAYLIST_BYTES = 1_000_000
MAX_SEGMENT_BYTES = 50_000_000


class HlsError(Exception):
    pass


class HlsStalled(HlsError):
    """A live playlist stopped growing."""


def looks_like_playlist(url: str, content_type: str, head: bytes) -> bool:
    return (url.split("?", 1)[0].lower().endswith(".m3u8") or "mpegurl" in content_type.lower()
            or head.lstrip(b"\xef\xbb\xbf").startswith(b"#EXTM3U"))


class HlsReader:
    """Follows one rendition of an HLS stream; keeps its place across reconnections (`segments`
    starts again after the last segment it gave)."""

    def __init__(self, session: httpx.Client, url: str, *, stall_seconds: float, stop: threading.Event) -> None:
        self.session = session
        self.url = url
        self.stall_seconds = stall_seconds
        self.stop = stop
        self.last_sequence: int | None = None
        self.ended = False  # the playlist said ENDLIST and every segment was given

    def load(self, text: str | None = None) -> m3u8.M3U8:
        """The media playlist (a variant's, for a master playlist)."""
        if text is None:
            body, self.url = http_fetch.read_all(self.session, self.url, limit=MAX_PLAYLIST_BYTES)
            text = body.decode("utf-8", "replace")
        playlist = m3u8.loads(text, uri=self.url)
        if playlist.is_variant:
            self.url = _audio_rendition(playlist)
            return self.load()
        return playlist

    def segments(self, first: m3u8.M3U8 | None = None) -> Iterator[bytes]:
        playlist = first or self.load()
        if self.last_sequence is None and not playlist.is_endlist and playlist.segments:
            self.last_sequence = (playlist.media_sequence or 0) + len(playlist.segments) - 2  # the newest only
        init_uri = None
        grew_at = time.monotonic()
        while not self.stop.is_set():
            for number, segment in enumerate(playlist.segments, start=playlist.media_sequence or 0):
                if self.last_sequence is not None and number <= self.last_sequence:
                    continue
                if segment.key is not None and (segment.key.method or "NONE").upper() != "NONE":
                    raise HlsError("encrypted HLS streams are not supported")
                if segment.init_section is not None and segment.init_section.absolute_uri != init_uri:
                    init_uri = segment.init_section.absolute_uri
                    yield http_fetch.read_all(self.session, init_uri, limit=MAX_SEGMENT_BYTES)[0]
                yield http_fetch.read_all(self.session, segment.absolute_uri, limit=MAX_SEGMENT_BYTES)[0]
                self.last_sequence = number
                grew_at = time.monotonic()
                if self.stop.is_set():
                    return
            if playlist.is_endlist:
                self.ended = True
                return
            if time.monotonic() - grew_at > max(self.stall_seconds, 3 * (playlist.target_duration or 2)):
                raise HlsStalled("the live playlist stopped growing")
            self.stop.wait(max(0.5, (playlist.target_duration or 2) / 2))
            playlist = self.load()


def _audio_rendition(master: m3u8.M3U8) -> str:
    """An audio-only rendition if the master lists one, else the variant with the least bandwidth."""
    audio = [m for m in master.media if (m.type or "").upper() == "AUDIO" and m.uri]
    if audio:
        chosen = next((m for m in audio if (m.default or "").upper() == "YES"), audio[0])
        return chosen.absolute_uri
    if not master.playlists:
        raise HlsError("the master playlist lists no streams")
    return min(master.playlists, key=lambda p: p.stream_info.bandwidth or 0).absolute_uri

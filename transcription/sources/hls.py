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
MAX_RELOAD_SECONDS = 10.0  # a live playlist is reloaded at least this often, whatever its target duration says


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

    def load(self, text: str | None = None, *, deadline: float | None = None) -> m3u8.M3U8:
        """The media playlist (a variant's, for a master playlist: one level only, as HLS has)."""
        if text is None:
            body, self.url = http_fetch.read_all(self.session, self.url, limit=MAX_PLAYLIST_BYTES, deadline=deadline)
            text = body.decode("utf-8", "replace")
        playlist = m3u8.loads(text, uri=self.url)
        if playlist.is_variant:
            self.url = _audio_rendition(playlist)
            body, self.url = http_fetch.read_all(self.session, self.url, limit=MAX_PLAYLIST_BYTES, deadline=deadline)
            playlist = m3u8.loads(body.decode("utf-8", "replace"), uri=self.url)
            if playlist.is_variant:  # a master naming a master (or itself): not a stream
                raise HlsError("the master playlist names another master playlist, not a media playlist")
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
                # a segment arrives within the stall time plus its own length, however it trickles
                deadline = time.monotonic() + self.stall_seconds + min(segment.duration or 0, MAX_RELOAD_SECONDS)
                if segment.init_section is not None and segment.init_section.absolute_uri != init_uri:
                    init_uri = segment.init_section.absolute_uri
                    yield http_fetch.read_all(self.session, init_uri, limit=MAX_SEGMENT_BYTES, deadline=deadline)[0]
                yield http_fetch.read_all(self.session, segment.absolute_uri, limit=MAX_SEGMENT_BYTES,
                                          deadline=deadline)[0]
                self.last_sequence = number
                grew_at = time.monotonic()
                if self.stop.is_set():
                    return
            if playlist.is_endlist:
                self.ended = True
                return
            target = min(playlist.target_duration or 2, MAX_RELOAD_SECONDS)  # (a playlist may claim years)
            if time.monotonic() - grew_at > max(self.stall_seconds, 1.5 * target):
                raise HlsStalled("the live playlist stopped growing")
            self.stop.wait(max(0.5, target / 2))
            playlist = self.load(deadline=time.monotonic() + self.stall_seconds)


def _audio_rendition(master: m3u8.M3U8) -> str:
    """An audio-only rendition if the master lists one, else the variant with the least bandwidth."""
    audio = [m for m in master.media if (m.type or "").upper() == "AUDIO" and m.uri]
    if audio:
        chosen = next((m for m in audio if (m.default or "").upper() == "YES"), audio[0])
        return chosen.absolute_uri
    if not master.playlists:
        raise HlsError("the master playlist lists no streams")
    return min(master.playlists, key=lambda p: p.stream_info.bandwidth or 0).absolute_uri

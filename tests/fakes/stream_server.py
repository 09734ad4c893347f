"""A stream source on loopback for pull-by-URL tests: HLS written by FFmpeg's own HLS muxer (PyAV),
served by the standard library's HTTP server, which counts every connection it accepts."""
from __future__ import annotations

import functools
import http.server
import threading
import time
from pathlib import Path

import av


def write_hls(wav: Path, folder: Path, *, segment_seconds: float = 2.0, name: str = "live.m3u8") -> Path:
    """`wav` as an HLS VOD: AAC in MPEG-TS segments and a playlist with ENDLIST (FFmpeg's hls muxer)."""
    folder.mkdir(parents=True, exist_ok=True)
    playlist = folder / name
    _encode(wav, playlist, "aac", "fltp", format="hls", options={
        "hls_time": str(segment_seconds), "hls_playlist_type": "vod", "hls_segment_filename": str(folder / "seg%03d.ts")})
    return playlist


def write_mp3(wav: Path, path: Path) -> Path:
    _encode(wav, path, "mp3", "s16p", format="mp3")
    return path


def _encode(wav: Path, path: Path, codec: str, sample_format: str, **output) -> None:
    """`wav` encoded as 44.1 kHz mono `codec` into `path` (PyAV's muxer for `output['format']`)."""
    with av.open(str(wav)) as source, av.open(str(path), "w", **output) as out:
        stream = out.add_stream(codec, rate=44100, layout="mono")
        resampler = av.AudioResampler(format=sample_format, layout="mono", rate=44100)
        for frame in source.decode(audio=0):
            _mux(out, stream, resampler.resample(frame))
        _mux(out, stream, [*resampler.resample(None), None])  # what the resampler and the encoder still hold


def _mux(out, stream, frames) -> None:
    for frame in frames:
        for packet in stream.encode(frame):
            out.mux(packet)


class _Handler(http.server.SimpleHTTPRequestHandler):
    redirects: dict[str, str] = {}
    drop_after: dict[str, int] = {}  # path -> bytes sent before the connection is cut (no length sent)
    trickle: dict[str, float] = {}  # path -> seconds between bytes (a server answering a byte at a time)

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        self.server.requests.append(self.path)
        if self.path in self.redirects:
            self.send_response(302)
            self.send_header("Location", self.redirects[self.path])
            self.end_headers()
            return
        if self.path in self.trickle:
            body = (Path(self.directory) / self.path.lstrip("/")).read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "application/vnd.apple.mpegurl")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            for byte in body:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(self.trickle[self.path])
            return
        if self.path.split("?")[0] in self.drop_after:
            body = (Path(self.directory) / self.path.lstrip("/").split("?")[0]).read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "audio/mpeg")
            self.end_headers()
            self.wfile.write(body[:self.drop_after[self.path.split("?")[0]]])
            self.close_connection = True
            return
        super().do_GET()


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.connections = 0
        self.requests: list[str] = []

    def verify_request(self, request, client_address) -> bool:
        self.connections += 1
        return True


class StreamServer:
    """Serves `folder` on `host` (any 127.x address) and a random port; `connections` counts TCP accepts."""

    def __init__(self, folder: Path, host: str = "127.0.0.1", *, redirects: dict[str, str] | None = None,
                 drop_after: dict[str, int] | None = None, trickle: dict[str, float] | None = None) -> None:
        handler = type("Handler", (_Handler,), {"redirects": redirects or {}, "drop_after": drop_after or {},
                                                "trickle": trickle or {}})
        self.httpd = _Server((host, 0), functools.partial(handler, directory=str(folder)))
        self.url = f"http://{host}:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def connections(self) -> int:
        return self.httpd.connections

    @property
    def requests(self) -> list[str]:
        return self.httpd.requests

    def __enter__(self) -> "StreamServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

"""What the drop-in sockets for other vendors' clients share (deepgram.py, openai_realtime.py).

A session opened through either is a real LiveSession, opened by the same admission rules as our own
protocol: stored, listed, watchable by viewers, refined, labelled, counted by limits and metrics. Each
subclass only translates: its vendor's parameters into a `start`, its client messages into ours, and
our events (`send_event`, the session's sink) into its vendor's messages.
"""
from __future__ import annotations

import asyncio
import json
from urllib.parse import parse_qs

from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from .. import protocol
from ..audio import SAMPLE_RATE
from ..protocol import ProtocolError
from . import admission, shutdown
from .consumers import NO_CHANNEL_LAYER, feed_audio
from .limits import AudioRateLimit, connections
from .session import LiveSession

DENIAL = "websocket.http.response"  # the ASGI extension for an HTTP answer instead of a handshake
MAX_VENDOR_AUDIO_BYTES = protocol.MAX_AUDIO_FRAME_BYTES * 8  # audio in one vendor message, at most
CLEAN_CLOSES = (1000, 1001, 1005)  # normal, going away, a close frame with no code


class Refused(Exception):
    """The handshake is refused with an HTTP status and the vendor's error body."""

    def __init__(self, status: int, body: dict) -> None:
        super().__init__(body)
        self.status = status
        self.body = body


class PcmTo16k:
    """Interleaved PCM16 at any rate and channel count -> 16 kHz mono PCM16 (libswresample via PyAV)."""

    def __init__(self, rate: int, channels: int) -> None:
        self.rate, self.channels = rate, channels
        self.frame_bytes = 2 * channels
        self.rest = b""
        self.resampler = None
        if (rate, channels) != (SAMPLE_RATE, 1):
            import av

            self.resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)

    def convert(self, data: bytes) -> bytes:
        """Whole samples only: a byte left over (an odd-length message) waits for the next one."""
        data, whole = self.rest + data, (len(self.rest) + len(data)) // self.frame_bytes * self.frame_bytes
        data, self.rest = data[:whole], data[whole:]
        if self.resampler is None or not data:
            return data
        import av
        import numpy as np

        samples = np.frombuffer(data, dtype="<i2").reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono" if self.channels == 1 else "stereo")
        frame.sample_rate = self.rate
        return b"".join(bytes(out.planes[0])[: out.samples * 2] for out in self.resampler.resample(frame))


def query(scope) -> dict[str, list[str]]:
    return parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)


class CompatConsumer(AsyncWebsocketConsumer):
    channel_layer_alias = NO_CHANNEL_LAYER
    live: LiveSession | None = None
    user = None
    converter: PcmTo16k | None = None
    closed = False
    idle_watch: asyncio.Task | None = None

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.awaited: set[int] = set()  # FINALIZE numbers a task waits for (one task per marker)

    # -- what a vendor's socket defines --
    def unauthenticated(self) -> Refused: ...

    def refusal(self, code: str, message: str) -> Refused: ...

    def start_message(self) -> protocol.Start:
        """The vendor's parameters as our `start` (ProtocolError for a bad one)."""
        ...

    async def send_event(self, event: dict) -> None: ...

    async def dispatch(self, message: dict) -> None:
        # Every message skips channels' per-message close_old_connections, a hop to the thread all
        # synchronous views share (our own socket does the same for audio: consumers.py): these sockets
        # touch the database only through database_sync_to_async, which closes stale connections itself.
        if message["type"] == "websocket.receive":
            await self.websocket_receive(message)
            return
        await super().dispatch(message)

    # -- handshake --
    async def connect(self) -> None:
        user = self.scope.get("user")
        try:
            if user is None or not user.is_authenticated:
                raise self.unauthenticated()
            if shutdown.draining():
                raise self.refusal(protocol.BUSY, "this server is shutting down; connect again")
            try:
                start = self.start_message()
                admitted = await admission.check(message=start, token_digest=self.scope.get("auth_token"))
            except ProtocolError as exc:
                raise self.refusal(exc.code, exc.message) from None
            if not connections.acquire(user.pk, settings.STT_MAX_CONNECTIONS_PER_USER):
                raise self.refusal(protocol.TOO_MANY_SESSIONS, "too many connections for this user")
            self.user = user
            try:
                live = await admission.open_session(admitted, user=user)
            except ProtocolError as exc:
                raise self.refusal(exc.code, exc.message) from None
        except Refused as refused:
            await self.deny(refused)
            return
        self.rate = AudioRateLimit(settings.STT_MAX_AUDIO_RATE, settings.STT_AUDIO_BURST_SECONDS)
        await self.accept(self.subprotocol())
        self.live = live
        await self.opened()
        await live.start(self)

    def subprotocol(self) -> str | None:
        return None

    async def opened(self) -> None:
        """Accepted, before the session's first event."""

    async def deny(self, refused: Refused) -> None:
        """An HTTP status and body where the server can (our daphne), else a plain 403."""
        if DENIAL in self.scope.get("extensions", {}):
            await self.base_send({"type": "websocket.http.response.start", "status": refused.status,
                                  "headers": [(b"content-type", b"application/json")]})
            await self.base_send({"type": "websocket.http.response.body", "body": json.dumps(refused.body).encode()})
        else:
            await self.close()

    def after_marker(self, live: LiveSession, number: int, timeout: float, then) -> None:
        """`then()` once the engine has acted on FINALIZE `number` (or after `timeout`): one task per marker
        however many Finalize or commit messages asked for it."""
        if number in self.awaited:
            return
        self.awaited.add(number)
        live.spawn(self._after_marker(live, number, timeout, then))

    async def _after_marker(self, live: LiveSession, number: int, timeout: float, then) -> None:
        try:
            await live.recognition.finalized(number, timeout)
        finally:
            self.awaited.discard(number)
        await then()

    def watch_idle(self) -> None:
        """A socket whose session opens with its first audio: closed if none comes in STT_IDLE_SECONDS
        (once the session is open, its own idle limit applies)."""
        self.idle_watch = asyncio.get_running_loop().create_task(self._close_if_idle())

    async def _close_if_idle(self) -> None:
        await asyncio.sleep(settings.STT_IDLE_SECONDS)
        if self.live is None and not self.closed:
            await self.expired()
            await self.close()

    async def expired(self) -> None:
        """The vendor's message before an idle socket is closed."""

    async def disconnect(self, code: int) -> None:
        if self.idle_watch is not None:
            self.idle_watch.cancel()
        self.closed = True
        if self.user is not None:
            connections.release(self.user.pk)
            self.user = None
        live, self.live = self.live, None
        if live is not None and live.sink is self:  # no resume on these protocols: finish and store
            # Neither protocol has to send an end message: a clean close is the normal end (`ended`);
            # a dropped connection (1006) leaves the session `interrupted`.
            reason = protocol.REASON_END if code in CLEAN_CLOSES else protocol.REASON_DISCONNECT
            await live.end(reason=reason, timeout=settings.STT_CLOSE_TIMEOUT, notify=False)

    # -- audio --
    def feed(self, data: bytes) -> None:
        """PCM16 at the client's rate and channels, into the session in frames of our protocol's size;
        ProtocolError when refused."""
        live = self.live
        if live is None or live.closing:
            raise ProtocolError(protocol.NOT_STARTED, "the stream is closed")
        if len(data) > MAX_VENDOR_AUDIO_BYTES:
            raise ProtocolError(protocol.FRAME_TOO_LARGE, "audio message too large")
        if self.converter is None:
            self.converter = PcmTo16k(SAMPLE_RATE, 1)
        pcm = self.converter.convert(data)
        for at in range(0, len(pcm), protocol.MAX_AUDIO_FRAME_BYTES):
            feed_audio(live, self.rate, pcm[at:at + protocol.MAX_AUDIO_FRAME_BYTES])

    async def replaced(self) -> None:  # (no resume here: never called)
        await self.close()

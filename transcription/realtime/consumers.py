"""WebSocket protocol only: validate frames, dispatch to the connection's LiveSession, send events.

The rules for opening a session are in admission.py, the session itself in session.py.
"""
from __future__ import annotations

import asyncio
import json
import logging
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from .. import metrics, selectors, services
from ..models import TranscriptionSession
from ..translation import get_translator
from .. import protocol
from . import admission, control, shutdown
from .broadcast import live_group
from .limits import AudioRateLimit, connections
from ..protocol import ProtocolError
from .registry import sessions
from .session import LiveSession, Refusal

logger = logging.getLogger(__name__)
UPLOAD_POLL_SECONDS = 0.5


# An alias no CHANNEL_LAYERS entry has: channels gives a consumer with it no channel layer at all.
NO_CHANNEL_LAYER = "none"


def feed_audio(live: LiveSession, rate: AudioRateLimit, pcm: bytes) -> None:
    """16 kHz PCM16 into a running session, within the audio rate limit; ProtocolError when refused
    (every socket that takes audio: ours, Deepgram's, OpenAI's)."""
    if not rate.allow(len(pcm)):
        raise ProtocolError(protocol.RATE, f"audio is arriving faster than {settings.STT_MAX_AUDIO_RATE:g}x real time; "
                                           "this frame was not accepted")
    refusal = live.feed(pcm)
    if refusal is Refusal.ENDED:
        raise ProtocolError(protocol.NOT_STARTED, "this session has ended; send 'start' for a new one")
    if refusal is Refusal.BUSY:
        raise ProtocolError(protocol.BUSY, "recognition is too far behind; this audio frame was not accepted")
    # (Refusal.FAILING: dropped; the engine's error and `ended`, which say why, come next)


class JsonEvents:
    """Events go to the client as JSON text frames, Korean and all as it is."""

    async def send_event(self, event: dict) -> None:
        await self.send(text_data=json.dumps(event, ensure_ascii=False))


class TranscriptionConsumer(JsonEvents, AsyncWebsocketConsumer):
    # No channel layer for the speaker's socket: it receives nothing through one, so an unreachable
    # Redis cannot stop transcription (viewers' events are published from the LiveSession instead).
    channel_layer_alias = NO_CHANNEL_LAYER
    live: LiveSession | None = None
    user = None

    async def connect(self) -> None:
        user = self.scope.get("user")
        await self.accept()  # then close with a code, so clients can read the reason
        if user is None or not user.is_authenticated:
            await self.close(code=protocol.CLOSE_UNAUTHENTICATED)
            return
        if shutdown.draining():
            await self.close(code=protocol.CLOSE_SHUTTING_DOWN)
            return
        if not connections.acquire(user.pk, settings.STT_MAX_CONNECTIONS_PER_USER):
            await self.close(code=protocol.CLOSE_TOO_MANY_CONNECTIONS)
            return
        self.user = user
        self.rate = AudioRateLimit(settings.STT_MAX_AUDIO_RATE, settings.STT_AUDIO_BURST_SECONDS)

    async def dispatch(self, message: dict) -> None:
        # Channels (4.2+) runs close_old_connections in the shared sync thread before every message.
        # For audio that is a thread hop per 100 ms frame per session, queued behind any slow
        # database call: at 150 sessions it saturated the event loop. A frame touches no database,
        # and every database call here goes through database_sync_to_async, which closes stale
        # connections itself.
        if message["type"] == "websocket.receive" and message.get("bytes") is not None:
            await self.websocket_receive(message)
            return
        await super().dispatch(message)

    async def disconnect(self, code: int) -> None:
        if self.user is not None:
            connections.release(self.user.pk)
            self.user = None
        live, self.live = self.live, None
        if live is None or live.sink is not self:
            return
        if settings.STT_RESUME_SECONDS > 0:
            live.detach(self)  # it keeps recognising; a resume within the window picks it up
        else:  # the phrase in progress is finalised and stored if the engine can in time
            await live.end(reason=protocol.REASON_DISCONNECT, timeout=settings.STT_CLOSE_TIMEOUT, notify=False)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.user is None:
            return
        try:
            if bytes_data is not None:
                await self.on_audio(bytes_data)
                return
            message = protocol.parse_text(text_data or "", default_language=settings.STT_DEFAULT_LANGUAGE)
            handler = {
                protocol.Start: self.on_start,
                protocol.End: self.on_end,
                protocol.Finalize: self.on_finalize,
                protocol.KeepAlive: self.on_keepalive,
                protocol.Resume: self.on_resume,
            }[type(message)]
            await handler(message)
        except ProtocolError as exc:
            await self.send_event(protocol.event_error(exc.code, exc.message))
            if exc.code == protocol.UNAUTHENTICATED:
                await self.close(code=protocol.CLOSE_UNAUTHENTICATED)

    # ---- client messages ----

    async def on_start(self, message: protocol.Start) -> None:
        admitted = await admission.check(message=message, token_digest=self.scope.get("auth_token"))
        if self.live is not None:  # a second start ends the first cleanly, its finals stored
            await self.live.end(reason=protocol.REASON_RESTART)
            self.live = None
        self.live = await admission.open_session(admitted, user=self.user)
        await self.live.start(self)

    async def on_end(self, message: protocol.End) -> None:
        live = self.running()
        await live.end(reason=protocol.REASON_END)
        self.live = None

    async def on_finalize(self, message: protocol.Finalize) -> None:
        self.running().finalize()

    async def on_keepalive(self, message: protocol.KeepAlive) -> None:
        self.running().touch()

    async def on_resume(self, message: protocol.Resume) -> None:
        live = sessions.get(message.session)
        if live is None or live.owner_id != self.user.pk or live.closing:
            raise ProtocolError(protocol.SESSION_EXPIRED, "that session is over or unknown here; start a new one")
        if self.live is not None and self.live is not live:
            await self.live.end(reason=protocol.REASON_RESTART)
        if message.last_seq > live.seq:
            raise ProtocolError(protocol.BAD_REQUEST, "'last_seq' is ahead of the session")
        self.live = live
        await live.attach(self, last_seq=message.last_seq)

    async def on_audio(self, data: bytes) -> None:
        protocol.check_audio(data)
        live = self.live
        if live is None or live.closing:
            raise ProtocolError(protocol.NOT_STARTED, "audio before 'start' is not accepted")
        feed_audio(live, self.rate, data)

    def running(self) -> LiveSession:
        if self.live is None or self.live.closing:
            raise ProtocolError(protocol.NOT_STARTED, "no session is running; send 'start' first")
        return self.live

    # ---- the LiveSession's sink (send_event: JsonEvents) ----

    async def replaced(self) -> None:
        """Another connection resumed our session: this one is closed."""
        self.live = None
        await self.close(code=protocol.CLOSE_REPLACED)


class LiveViewerConsumer(JsonEvents, AsyncWebsocketConsumer):
    """Read-only live captions of one session, for its owner or a holder of an active share link.

    A viewer first gets a `snapshot` (the finals and translations stored so far), then the session's
    events as they happen, from the channel layer group, whichever process runs the session. An
    uploaded recording being transcribed (a background job, in any process) is followed in the
    database instead: its new phrases and progress, every UPLOAD_POLL_SECONDS.
    """

    link = None  # the ShareLink this viewer came in by (None for the owner)
    group = None
    follower: asyncio.Task | None = None
    snapshot_seq = 0
    language = None  # the captions' translation this viewer wants (`?translate_to=`), else the speaker's

    async def __call__(self, scope, receive, send):
        """A viewer never stays connected after its receive loop died (e.g. the channel layer failed):
        the socket is closed with 4013, so the page reconnects and gets a fresh snapshot."""
        try:
            await super().__call__(scope, receive, send)
        except Exception as exc:
            logger.warning("live viewer of %s closed (4013): its receive loop failed: %r",
                           scope.get("url_route", {}).get("kwargs", {}).get("session_id"), exc)
            try:
                await send({"type": "websocket.close", "code": protocol.CLOSE_TRY_AGAIN})
            except Exception:  # the client is already gone
                pass

    async def connect(self) -> None:
        self.session_id = str(self.scope["url_route"]["kwargs"]["session_id"])
        await self.accept()
        access = await self.db_access()
        if access is False:
            await self.close(code=protocol.CLOSE_FORBIDDEN)
            return
        self.link = None if access is True else access
        try:
            await self.channel_layer.group_add(live_group(self.session_id), self.channel_name)
            self.group = live_group(self.session_id)
            metrics.viewers.inc()
        except Exception as exc:  # e.g. Redis down: tell the viewer, who reconnects later
            logger.warning("live viewer of %s: channel layer unavailable: %s", self.session_id, exc)
            await self.send_event(protocol.event_error(protocol.LIVE_UNAVAILABLE, "live captions are unavailable right now"))
            await self.close(code=protocol.CLOSE_TRY_AGAIN)
            return
        # Joined before the snapshot is read: nothing falls between; events it already holds are skipped.
        session, segments = await database_sync_to_async(selectors.transcript_of_session)(session_id=self.session_id)
        refused = await self.choose_language(session)
        progress = None
        if session.status == TranscriptionSession.Status.PROCESSING:
            progress = await database_sync_to_async(selectors.upload_progress)(session=session)
        snapshot = protocol.event_snapshot(session, segments, language=self.language, progress=progress)
        self.snapshot_seq = snapshot["seq"]
        await self.send_event(snapshot)
        if refused is not None:
            await self.send_event(refused)
        if snapshot["status"] == TranscriptionSession.Status.PROCESSING:
            self.follower = asyncio.get_running_loop().create_task(self.follow_upload(progress))
        elif snapshot["status"] != TranscriptionSession.Status.ACTIVE:
            await self.close()
        elif self.language and self.language != session.translate_to:  # made once per language, for all
            await control.tell(self.session_id, {"type": control.WANT_TRANSLATION, "language": self.language})

    async def follow_upload(self, progress: float) -> None:
        """An upload's phrases as they are stored, its progress, then `ended` (and close)."""
        last_seq = self.snapshot_seq
        while True:
            await asyncio.sleep(UPLOAD_POLL_SECONDS)
            if self.link is not None and not await database_sync_to_async(selectors.share_link_active)(link=self.link):
                await self.close(code=protocol.CLOSE_FORBIDDEN)  # the link expired or was revoked meanwhile
                return
            status, segments, now = await database_sync_to_async(selectors.upload_state)(
                session_id=self.session_id, last_seq=last_seq)
            for segment in segments:
                await self.send_event({**protocol.event_final_from_segment(segment), "seq": segment.seq})
                last_seq = segment.seq
            if now != progress:
                progress = now
                await self.send_event(protocol.event_progress(now))
            if status != TranscriptionSession.Status.PROCESSING:
                reason = protocol.REASON_END if status == TranscriptionSession.Status.ENDED else protocol.REASON_ERROR
                await self.send_event({**protocol.event_ended(session_id=self.session_id, reason=reason),
                                       "seq": last_seq + 1})
                await self.close()
                return

    async def choose_language(self, session) -> dict | None:
        """`?translate_to=xx`: captions translated into xx. If the translator cannot
        (`translation_unsupported`), or the session's viewers already have captions in
        STT_MAX_VIEWER_LANGUAGES other languages (`too_many_languages`: anyone with a share link could
        otherwise have every phrase translated, on the owner's account, into any number of languages),
        the viewer is told (the error returned) and watches with the speaker's translation."""
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        wanted = (query.get("translate_to") or [""])[0].strip()
        self.language = session.translate_to or None
        if not wanted or wanted == self.language:
            return None
        translator = get_translator()
        if not 2 <= len(wanted) <= 16 or not translator.supports(source=session.language, target=wanted):
            return protocol.event_error(protocol.TRANSLATION_UNSUPPORTED,
                                        f"translator {translator.name!r} cannot translate into {wanted[:16]!r}")
        limit = settings.STT_MAX_VIEWER_LANGUAGES
        if not await database_sync_to_async(services.session_claim_viewer_language)(
                session_id=self.session_id, language=wanted, limit=limit):
            return protocol.event_error(protocol.TOO_MANY_LANGUAGES,
                                        f"this session's viewers already have captions in {limit} languages")
        self.language = wanted
        return None

    async def disconnect(self, code: int) -> None:
        if self.follower is not None:
            self.follower.cancel()
        if self.group is not None:
            metrics.viewers.dec()
            try:
                await self.channel_layer.group_discard(self.group, self.channel_name)
            except Exception:
                pass  # the layer is down; its group entries expire by themselves

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        await self.send_event(protocol.event_error(protocol.READ_ONLY, "live viewers only receive"))

    async def live_event(self, message: dict) -> None:
        event = message["event"]
        if self.link is not None and not self.link.is_active():
            await self.close(code=protocol.CLOSE_FORBIDDEN)  # the link expired while watching
            return
        if event.get("seq", 0) <= self.snapshot_seq and event.get("event") != protocol.PROGRESS:
            return  # already in the snapshot (progress, of an upload, is not numbered)
        if event.get("type") == protocol.TRANSLATION and event.get("lang") != self.language:
            return  # another viewer's language
        await self.send_event(event)
        if protocol.is_session_over(event):
            await self.close()

    async def live_revoked(self, message: dict) -> None:
        if self.link is not None and self.link.pk == message["share"]:
            await self.close(code=protocol.CLOSE_FORBIDDEN)

    @database_sync_to_async
    def db_access(self):
        """True for the owner, the ShareLink for a link holder, False for anyone else."""
        session = self.scope.get("session")
        granted = session.get(selectors.SHARES_SESSION_KEY, []) if session is not None else []
        return selectors.viewer_access(user=self.scope.get("user"), session_id=self.session_id, share_ids=granted)

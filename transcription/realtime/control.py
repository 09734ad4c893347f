"""Messages to a running session from anywhere: an owner's correction made through a page or the
REST API, a live viewer's wish for captions in another language.

They travel through the channel layer group `control.<session id>`, so they reach the session on
whichever process runs it. The session listens in a task of its own; if the layer is down the
listener waits and tries again, and transcription goes on regardless (corrections are stored first;
what did not reach the session shows at the next snapshot or reload).
"""
from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from ..models import TranscriptionSession

logger = logging.getLogger(__name__)

CORRECTION = "control.correction"  # {"segment": id, "text": ...}
RENAME_SPEAKERS = "control.speakers"  # {"names": {"S1": "민수"}}
WANT_TRANSLATION = "control.want_translation"  # {"language": "en"}
STOP = "control.stop"  # the owner stopped the session (a stream pulled by URL has no socket to send `end`)
RETRY_SECONDS = 2.0


def control_group(session_id) -> str:
    return f"control.{session_id}"


async def tell(session_id, message: dict) -> bool:
    """Send `message` to the session, wherever it runs; False if the channel layer failed."""
    layer = get_channel_layer()
    if layer is None:
        return False
    try:
        await layer.group_send(control_group(session_id), message)
        return True
    except Exception as exc:  # stored already: the session shows it at the next snapshot
        logger.warning("session %s not told %s: %s", session_id, message.get("type"), exc)
        return False


def tell_from_sync(session_id, message: dict) -> bool:
    return async_to_sync(tell)(session_id, message)


def announce_correction(segment) -> None:
    """A stored correction reaches the session's speaker and viewers, if it is running (from a view)."""
    if segment.session.status == TranscriptionSession.Status.ACTIVE:
        tell_from_sync(segment.session_id, {"type": CORRECTION, "segment": segment.pk, "text": segment.text})


def announce_speakers(session) -> None:
    """The owner renamed speakers: the running session's speaker and viewers hear of it (from a view)."""
    if session.status == TranscriptionSession.Status.ACTIVE:
        tell_from_sync(session.pk, {"type": RENAME_SPEAKERS, "names": dict(session.speaker_names)})


def stop_session(session) -> bool:
    """The owner stops a running session, wherever it runs (from a view); False if it could not be told."""
    return session.status == TranscriptionSession.Status.ACTIVE and tell_from_sync(session.pk, {"type": STOP})


class ControlListener:
    """Receives the session's control messages and hands each to `handle`."""

    def __init__(self, session_id: str, handle: Callable[[dict], Awaitable[None]]) -> None:
        self.group = control_group(session_id)
        self.handle = handle
        self.layer = get_channel_layer()
        self.channel: str | None = None

    async def run(self) -> None:
        if self.layer is None:
            return
        while True:
            try:
                if self.channel is None:
                    self.channel = await self.layer.new_channel()
                    await self.layer.group_add(self.group, self.channel)
                message = await self.layer.receive(self.channel)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the layer failed: transcription goes on; listen again later
                logger.warning("%s: channel layer unavailable (%s); retrying", self.group, exc)
                self.channel = None
                await asyncio.sleep(RETRY_SECONDS)
                continue
            try:
                await self.handle(message)
            except Exception:  # a boundary: a bad message never ends the session
                logger.exception("%s: control message %s failed", self.group, message.get("type"))

    async def stop(self) -> None:
        if self.layer is not None and self.channel is not None:
            try:
                await self.layer.group_discard(self.group, self.channel)
            except Exception:
                pass

"""Live captions for viewers: a session's events, published to its channel layer group.

Viewers on any server process join the group `live.<session id>` (Redis carries it between
processes). Publishing runs in its own task behind a bounded queue, so a slow or unreachable channel
layer never delays the speaker: their events are sent and stored first, viewers get what the layer
can carry. A viewer that misses events (a gap in `seq`) reconnects and gets a fresh snapshot.
"""
from __future__ import annotations

import asyncio
import logging

from channels.layers import get_channel_layer

from .. import protocol

logger = logging.getLogger(__name__)

# What a viewer sees; errors, lag and control replies stay with the speaker.
PUBLISHED = {(protocol.INTERIM, None), (protocol.FINAL, None), (protocol.TRANSLATION, None),
             (protocol.CORRECTION, None), (protocol.SPEAKER, None), (protocol.SYSTEM, protocol.ENDED), (protocol.SYSTEM, protocol.SPEAKERS)}
QUEUE_EVENTS = 500
SEND_TIMEOUT = 2.0


def live_group(session_id) -> str:
    return f"live.{session_id}"


def is_published(event: dict) -> bool:
    return (event.get("type"), event.get("event")) in PUBLISHED


class Broadcaster:
    def __init__(self, session_id: str) -> None:
        self.group = live_group(session_id)
        self.layer = get_channel_layer()
        self._queue: asyncio.Queue[dict | None] = asyncio.Queue(maxsize=QUEUE_EVENTS)
        self._task: asyncio.Task | None = None
        self._failing = False

    def start(self) -> None:
        if self.layer is not None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    def publish(self, event: dict) -> None:
        if self._task is None or not is_published(event):
            return
        try:
            self._queue.put_nowait(dict(event))
        except asyncio.QueueFull:  # viewers see a gap in seq and reload the transcript
            logger.warning("live captions for %s: queue full, an event was not published", self.group)

    async def close(self, timeout: float = SEND_TIMEOUT) -> None:
        """Deliver what is queued (the `ended` event included) within `timeout`, then stop."""
        if self._task is None:
            return
        try:
            self._queue.put_nowait(None)
            await asyncio.wait_for(asyncio.shield(self._task), timeout)
        except (asyncio.QueueFull, asyncio.TimeoutError):
            self._task.cancel()

    async def _run(self) -> None:
        while (event := await self._queue.get()) is not None:
            try:
                await asyncio.wait_for(self.layer.group_send(self.group, {"type": "live.event", "event": event}),
                                       SEND_TIMEOUT)
                if self._failing:
                    logger.info("live captions for %s: channel layer reachable again", self.group)
                self._failing = False
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the speaker goes on; viewers recover by snapshot
                if not self._failing:
                    logger.warning("live captions for %s not published: %s", self.group, exc)
                self._failing = True


async def notify_revoked(session_id, share_id: int) -> None:
    """Close the sockets of viewers who came in through a link that was just revoked."""
    layer = get_channel_layer()
    if layer is not None:
        await layer.group_send(live_group(session_id), {"type": "live.revoked", "share": share_id})

"""A small client of the WebSocket protocol: used by `manage.py stream`, bench/ and the soak.

    async with TranscribeClient(url, token=token) as client:
        started = await client.start("ko-KR")
        await client.send_audio(pcm)          # 100 ms frames at real-time pace
        events = await client.end()           # everything up to `ended`

Every event is kept in `client.events` with its arrival time; `on_event` sees each one as it comes.
"""
from __future__ import annotations

import asyncio
import json
import time
from typing import Callable

import websockets

from . import protocol

FRAME_BYTES = 3200  # 100 ms of 16 kHz mono PCM16


class Refused(Exception):
    """The server answered `start` with an error instead of `started`."""

    def __init__(self, event: dict) -> None:
        super().__init__(f"{event.get('message')} ({event.get('code')})")
        self.event = event


class Closed(Exception):
    """The socket closed before the awaited event came; `code` is the close code."""

    def __init__(self, code: int | None) -> None:
        super().__init__(f"the connection closed (code {code})")
        self.code = code


class TranscribeClient:
    def __init__(self, url: str, *, token: str | None = None, cookie: str | None = None, origin: str | None = None,
                 on_event: Callable[[dict], None] | None = None, open_timeout: float = 30) -> None:
        self.url = url
        self.headers = {}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        if cookie:
            self.headers["Cookie"] = cookie
        self.origin = origin
        self.on_event = on_event
        self.open_timeout = open_timeout
        self.events: list[tuple[float, dict]] = []  # (arrival time, event)
        self.sent: list[float] = []  # when each audio frame was sent
        self.closed_code: int | None = None
        self._arrived = asyncio.Condition()
        self._reader: asyncio.Task | None = None
        self.ws = None

    async def __aenter__(self) -> TranscribeClient:
        self.ws = await websockets.connect(self.url, additional_headers=self.headers, origin=self.origin,
                                           max_size=2**22, open_timeout=self.open_timeout)
        self._reader = asyncio.get_running_loop().create_task(self._read())
        return self

    async def __aexit__(self, *exc) -> None:
        if self._reader is not None:
            self._reader.cancel()
        await self.ws.close()

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                event = json.loads(raw)
                self.events.append((time.monotonic(), event))
                if self.on_event is not None:
                    self.on_event(event)
                async with self._arrived:
                    self._arrived.notify_all()
        except websockets.exceptions.ConnectionClosed as closed:
            self.closed_code = closed.rcvd.code if closed.rcvd else None
        finally:
            self.closed_code = self.closed_code or (self.ws.close_code if self.ws else None)
            async with self._arrived:
                self._arrived.notify_all()

    async def wait_for(self, predicate: Callable[[dict], bool], timeout: float = 60, *, after: int = 0) -> dict:
        """The first event (from index `after` on) matching `predicate`; TimeoutError, or Closed if
        the socket closed first."""
        async def matching() -> dict:
            async with self._arrived:
                while True:
                    for _, event in self.events[after:]:
                        if predicate(event):
                            return event
                    if self._reader.done():
                        raise Closed(self.closed_code)
                    await self._arrived.wait()

        return await asyncio.wait_for(matching(), timeout)

    async def send_json(self, message: dict) -> None:
        await self._send(json.dumps(message))

    async def _send(self, data: str | bytes) -> None:
        try:
            await self.ws.send(data)
        except websockets.exceptions.ConnectionClosed as closed:
            raise Closed(closed.rcvd.code if closed.rcvd else None) from closed

    async def start(self, lang: str, *, translate_to: str | None = None, timeout: float = 30, **fields) -> dict:
        """Send `start`; the `started` event, or Refused with the error that came instead."""
        after = len(self.events)
        message = {"type": "start", "lang": lang, **fields}
        if translate_to:
            message["translate_to"] = translate_to
        await self.send_json(message)
        event = await self.wait_for(lambda e: e.get("event") == protocol.STARTED or e["type"] == protocol.ERROR,
                                    timeout, after=after)
        if event["type"] == protocol.ERROR:
            raise Refused(event)
        return event

    async def send_audio(self, pcm: bytes, *, speed: float = 1.0, stop_at: int | None = None) -> None:
        """PCM16 16 kHz mono in 100 ms frames, `speed` times real time (0: as fast as possible);
        `stop_at`: stop before that frame (a client cut off mid-phrase)."""
        began = time.monotonic()
        for i, offset in enumerate(range(0, len(pcm), FRAME_BYTES)):
            if stop_at is not None and i >= stop_at:
                return
            if speed:
                await asyncio.sleep(max(0.0, began + i * 0.1 / speed - time.monotonic()))
            await self._send(pcm[offset:offset + FRAME_BYTES])
            self.sent.append(time.monotonic())

    async def end(self, timeout: float = 300) -> list[dict]:
        """Send `end` and wait for `ended`: every event received so far."""
        await self.send_json({"type": "end"})
        await self.wait_for(protocol.is_session_over, timeout)
        return [event for _, event in self.events]

    def of_type(self, kind: str) -> list[dict]:
        return [event for _, event in self.events if event["type"] == kind]

"""The one bridge from a worker thread to the event loop: recognition and translation both use it.

A blocking iterator (an engine's stream, a translator's deltas) runs in a thread of its own; its
items, its exception and its end are handed to the event loop of the connection that made the
bridge (`asyncio.get_running_loop()` at construction, never a module global) with
`call_soon_threadsafe`, and come out of `async for` in the order the thread produced them.
"""
from __future__ import annotations

import asyncio
import logging
import threading
from typing import AsyncIterator, Callable, Generic, Iterable, TypeVar

logger = logging.getLogger(__name__)
T = TypeVar("T")

_ITEM, _ERROR, _END = "item", "error", "end"


class ThreadStream(Generic[T]):
    """`async for item in ThreadStream(make)`: `make()`'s items, produced in their own thread.

    The queue holds what the thread produced and the loop has not yet taken: a few results per
    second of audio at most, since the producer is paced by its input.
    """

    def __init__(self, make: Callable[[], Iterable[T]], *, name: str) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[tuple[str, object]] = asyncio.Queue()
        self._thread = threading.Thread(target=self._run, args=(make,), name=name, daemon=True)

    def start(self) -> ThreadStream[T]:
        self._thread.start()
        return self

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def waiting(self) -> int:
        """Items produced and not yet taken (loop side): a newer result may make an older one stale."""
        return self._queue.qsize()

    # -- worker thread --
    def _post(self, kind: str, payload: object) -> None:
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, (kind, payload))
        except RuntimeError:  # the loop is closed: the connection is gone for good
            logger.warning("%s: result dropped, its event loop is closed", self._thread.name)

    def _run(self, make: Callable[[], Iterable[T]]) -> None:
        try:
            for item in make():
                self._post(_ITEM, item)
        except BaseException as exc:  # handed to the loop and raised there: never lost in the thread
            self._post(_ERROR, exc)
        else:
            self._post(_END, None)  # the thread's last act: it ends right after

    # -- event loop --
    def __aiter__(self) -> AsyncIterator[T]:
        return self._items()

    async def _items(self) -> AsyncIterator[T]:
        while True:
            kind, payload = await self._queue.get()
            if kind == _END:
                return
            if kind == _ERROR:
                raise payload  # type: ignore[misc]
            yield payload  # type: ignore[misc]

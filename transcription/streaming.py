"""StreamingSession: a bounded audio queue, one recognition thread, and a bridge back to the loop.

The thread runs `engine.stream(audio, config)`. Each result is handed to the event loop of the
connection that owns the session (`loop.call_soon_threadsafe`, the loop taken when the session was
made, never a module global), where one pump task handles results strictly in order.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Awaitable, Callable, Iterator

from .engines import FINALIZE, Control, EngineError, Recognizer, Result, StreamConfig
from .engines.base import BYTES_PER_SECOND
from .recording import WavRecorder, tee_to_recorder

logger = logging.getLogger(__name__)


class AudioQueue:
    """Audio accepted from the client and not yet consumed by the engine, bounded in bytes.

    Iterating yields everything queued so far joined into one chunk, so an engine that fell behind
    catches up in one step instead of one frame at a time. Control markers (FINALIZE) keep their
    place between the audio before and after them.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._chunks: list[bytes | Control] = []
        self._size = 0
        self._closed = False
        self._cancelled = False
        self._cond = threading.Condition()
        self.last_taken = time.monotonic()  # when the engine last took audio (or audio began waiting)

    def put(self, data: bytes) -> bool:
        """False when the backlog is full (the audio is refused, not silently dropped)."""
        with self._cond:
            if self._closed:
                return False
            if self._size + len(data) > self.max_bytes:
                return False
            if not self._chunks:
                self.last_taken = time.monotonic()
            self._chunks.append(data)
            self._size += len(data)
            self._cond.notify()
            return True

    def finalize(self) -> None:
        with self._cond:
            if not self._closed:
                self._chunks.append(FINALIZE)
                self._cond.notify()

    def close(self) -> None:
        """No more audio: the engine drains what is queued, then finishes its last phrase."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def cancel(self) -> None:
        """Stop now: queued audio is discarded."""
        with self._cond:
            self._closed = self._cancelled = True
            self._chunks.clear()
            self._size = 0
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    def stalled(self, seconds: float) -> bool:
        """Audio has been waiting for `seconds` and the engine took none of it: it hangs."""
        return self._size > 0 and time.monotonic() - self.last_taken > seconds

    @property
    def backlog_seconds(self) -> float:
        return self._size / BYTES_PER_SECOND

    def __iter__(self) -> Iterator[bytes | Control]:
        while True:
            with self._cond:
                while not self._chunks and not self._closed:
                    self._cond.wait()
                if not self._chunks:
                    return
                if isinstance(self._chunks[0], Control):
                    item: bytes | Control = self._chunks.pop(0)
                else:
                    cut = next((i for i, c in enumerate(self._chunks) if isinstance(c, Control)), len(self._chunks))
                    item = b"".join(self._chunks[:cut])  # type: ignore[arg-type]
                    del self._chunks[:cut]
                    self._size -= len(item)
                self.last_taken = time.monotonic()
            yield item


ResultHandler = Callable[[Result], Awaitable[None]]
ErrorHandler = Callable[[Exception], Awaitable[None]]


class StreamingSession:
    def __init__(
        self,
        *,
        engine: Recognizer,
        config: StreamConfig,
        on_result: ResultHandler,
        on_error: ErrorHandler,
        max_backlog_seconds: float,
        name: str = "stt-session",
        recorder: WavRecorder | None = None,
    ) -> None:
        self.engine = engine
        self.config = config
        self.on_result = on_result
        self.on_error = on_error
        self.audio = AudioQueue(int(max_backlog_seconds * BYTES_PER_SECOND))
        self._loop = asyncio.get_running_loop()
        self._results: asyncio.Queue[tuple[str, object]] = asyncio.Queue()
        self._thread = threading.Thread(target=self._recognize, name=name, daemon=True)
        self._pump_task: asyncio.Task | None = None
        self.failed = False
        self.recorder = recorder

    def start(self) -> None:
        self._pump_task = self._loop.create_task(self._pump())
        self._thread.start()

    def feed(self, data: bytes) -> bool:
        return self.audio.put(data)

    @property
    def accepting(self) -> bool:
        """False once the session is closing or its engine has failed: audio is no longer wanted."""
        return not self.audio.closed

    def finalize(self) -> None:
        self.audio.finalize()

    async def fail(self, exc: EngineError) -> None:
        """Declare the engine failed from outside its thread (it hangs): audio is refused from now."""
        if not self.failed:
            self.failed = True
            self.audio.cancel()
            await self.on_error(exc)

    # -- recognition thread --
    def _emit(self, kind: str, payload: object) -> None:
        try:
            self._loop.call_soon_threadsafe(self._results.put_nowait, (kind, payload))
        except RuntimeError:  # the loop is closed: the connection is gone for good
            logger.warning("session result dropped: event loop closed")

    def _recognize(self) -> None:
        try:
            for result in self.engine.stream(tee_to_recorder(iter(self.audio), self.recorder), self.config):
                self._emit("result", result)
        except EngineError as exc:
            self.audio.cancel()  # at once, so frames still arriving are refused as "ended", not "busy"
            self._emit("error", exc)
        except Exception as exc:  # a boundary: the thread must report, never die silently
            logger.exception("recognition thread failed")
            self.audio.cancel()
            self._emit("error", EngineError(f"engine failed: {exc.__class__.__name__}"))
        finally:
            self._emit("done", None)

    # -- event loop side --
    async def _pump(self) -> None:
        while True:
            kind, payload = await self._results.get()
            if kind == "done":
                return
            if kind == "error":
                if not self.failed:  # (a hang already reported stays the one error)
                    self.failed = True
                    self.audio.cancel()
                    await self.on_error(payload)  # type: ignore[arg-type]
                continue
            result: Result = payload  # type: ignore[assignment]
            if not result.is_final and not self._results.empty():
                continue  # a newer result is waiting: this interim is stale, shed it
            await self.on_result(result)

    async def finish(self, timeout: float) -> bool:
        """Let the engine finish the audio it has and its last phrase; True if it did in time."""
        self.audio.close()
        if self.failed:  # a failed (perhaps hung) engine produces nothing more: do not wait on it
            timeout = min(timeout, 0.5)
        return await self._wait(timeout)

    async def _wait(self, timeout: float) -> bool:
        assert self._pump_task is not None
        try:
            await asyncio.wait_for(asyncio.shield(self._pump_task), timeout)
            done = True
        except asyncio.TimeoutError:
            logger.warning("session did not finish within %.1f s: cancelling", timeout)
            self.audio.cancel()
            done = False
            try:  # results already produced still get handled (stored) if they come quickly
                await asyncio.wait_for(asyncio.shield(self._pump_task), 0.5 if self.failed else 2.0)
            except asyncio.TimeoutError:
                self._pump_task.cancel()
        if done:
            self._thread.join(timeout=1.0)  # it emitted "done" as its last act: returns at once
        if self._thread.is_alive():
            logger.warning("recognition thread still busy; it exits after its current decode")
        return done

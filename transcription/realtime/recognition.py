"""One session's recognition: a bounded audio queue, and the engine's stream in its own thread.

The engine runs `engine.stream(audio, config)` in a thread of its own (a ThreadStream); one pump task
on the event loop handles its results strictly in order, shedding an interim when a newer result
already waits. The session's kept audio is written in that thread too, never on the loop.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
import time
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Awaitable, Callable, Iterator

from ..engines import FINALIZE, Control, EngineError, Recognizer, Result, StreamConfig
from ..engines.base import BYTES_PER_SECOND
from ..recording import WavRecorder, tee_to_recorder
from ..speakers import SpeakerLabeller, label_worker
from .bridge import ThreadStream

logger = logging.getLogger(__name__)


MAX_PENDING_FINALIZES = 4  # FINALIZE markers queued and not yet acted on, at most


class AudioQueue:
    """Audio accepted from the client and not yet consumed by the engine, bounded in bytes.

    Iterating yields everything queued so far joined into one chunk, so an engine that fell behind
    catches up in one step instead of one frame at a time. Control markers (FINALIZE) keep their
    place between the audio before and after them. Every read and write holds the lock: the loop
    puts and asks, the recognition thread takes.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._chunks: list[bytes | Control] = []
        self._size = 0
        self._closed = False
        self._cond = threading.Condition()
        self._last_taken = time.monotonic()  # when the engine last took audio (or audio began waiting)
        self.finalizes_asked = 0
        self._audio_since_finalize = False
        self.finalizes_done = 0  # FINALIZE markers the engine has acted on (it asked for what follows)

    def put(self, data: bytes) -> bool:
        """False when the backlog is full or the queue closed (the audio is refused, never dropped)."""
        with self._cond:
            if self._closed or self._size + len(data) > self.max_bytes:
                return False
            if not self._chunks:
                self._last_taken = time.monotonic()
            self._chunks.append(data)
            self._size += len(data)
            self._audio_since_finalize = True
            self._cond.notify()
            return True

    def finalize(self) -> int:
        """Queue a FINALIZE; its number, which `finalizes_done` reaches once the engine acted on it. A
        FINALIZE with no audio since the last one has nothing to finalise and is not queued again; beyond
        MAX_PENDING_FINALIZES waiting ones a flood of them joins the newest (each costs the engine a decode)."""
        with self._cond:
            pending = self.finalizes_asked - self.finalizes_done
            coalesced = not self._audio_since_finalize or pending >= MAX_PENDING_FINALIZES
            if not self._closed and not coalesced:
                self._chunks.append(FINALIZE)
                self.finalizes_asked += 1
                self._audio_since_finalize = False
                self._cond.notify()
            return self.finalizes_asked

    def close(self) -> None:
        """No more audio: the engine drains what is queued, then finishes its last phrase."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def cancel(self) -> None:
        """Stop now: queued audio is discarded."""
        with self._cond:
            self._closed = True
            self._chunks.clear()
            self._size = 0
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        with self._cond:
            return self._closed

    def stalled(self, seconds: float) -> bool:
        """Audio has been waiting for `seconds` and the engine took none of it: it hangs."""
        with self._cond:
            return self._size > 0 and time.monotonic() - self._last_taken > seconds

    @property
    def backlog_seconds(self) -> float:
        with self._cond:
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
                self._last_taken = time.monotonic()
            yield item
            if item is FINALIZE:  # the engine asks for more: it has finalised what came before
                with self._cond:
                    self.finalizes_done += 1
                    self._cond.notify_all()


SPEAKER_MEMORY_SECONDS = 30  # audio kept for labelling: a final comes within seconds of its audio
LABEL_WAIT_SECONDS = 0.1  # a final next in line waits this long for its label; a later one follows as an event


class RecentAudio:
    """The recent part of a session's audio, as it passes to the engine (recognition thread)."""

    def __init__(self, seconds: float) -> None:
        self.max_bytes = int(seconds * BYTES_PER_SECOND)
        self.data = bytearray()
        self.offset = 0  # byte position in the session's audio of data[0]

    def tee(self, chunks: Iterator) -> Iterator:
        for chunk in chunks:
            if isinstance(chunk, bytes):
                # Trimmed before the newest chunk is added: a backlog taken in one chunk is kept whole
                # (its finals come after it) with `seconds` before it.
                if len(self.data) > self.max_bytes:
                    cut = len(self.data) - self.max_bytes
                    del self.data[:cut]
                    self.offset += cut
                self.data += chunk
            yield chunk

    def span(self, start_ms: int, end_ms: int) -> bytes:
        start = max(0, start_ms * BYTES_PER_SECOND // 1000 - self.offset) & ~1
        end = max(0, end_ms * BYTES_PER_SECOND // 1000 - self.offset) & ~1
        return bytes(self.data[start:end])


ResultHandler = Callable[[Result], Awaitable[None]]
ErrorHandler = Callable[[EngineError], Awaitable[None]]


class Recognition:
    """The audio queue, the engine's thread, and the pump that hands results to the session."""

    def __init__(self, *, engine: Recognizer, config: StreamConfig, on_result: ResultHandler, on_error: ErrorHandler,
                 max_backlog_seconds: float, name: str, audio_path: Path | None = None,
                 labeller: SpeakerLabeller | None = None) -> None:
        self.engine = engine
        self.config = config
        self.on_result = on_result
        self.on_error = on_error
        self.audio = AudioQueue(int(max_backlog_seconds * BYTES_PER_SECOND))
        self.audio_path = audio_path  # where the session's audio is kept (None: not kept)
        self.labeller = labeller  # speaker labels for finals (None: off)
        self.failed = False
        self._stream: ThreadStream[Result] = ThreadStream(self._recognize, name=name)
        self._pump_task: asyncio.Task | None = None
        self._handling = False  # the pump is handing a result to the session now

    def start(self) -> None:
        self._stream.start()
        self._pump_task = asyncio.get_running_loop().create_task(self._pump())

    def feed(self, data: bytes) -> bool:
        return self.audio.put(data)

    @property
    def accepting(self) -> bool:
        """False once the session is closing or its engine has failed: audio is no longer wanted."""
        return not self.audio.closed

    def finalize(self) -> int:
        return self.audio.finalize()

    async def finalized(self, number: int, timeout: float) -> bool:
        """Wait until the engine has acted on FINALIZE `number` and its final, if it had one, has been
        handled (stored and sent)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.audio.finalizes_done < number and not self.audio.closed:
            if loop.time() > deadline:
                return False
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.05)  # (the thread hands results over through the loop's queue)
        while (self._stream.waiting() or self._handling) and loop.time() < deadline:
            await asyncio.sleep(0.02)
        return True

    async def fail(self, exc: EngineError) -> None:
        """Declare the engine failed from outside its thread (it hangs): audio is refused from now."""
        if not self.failed:
            self.failed = True
            self.audio.cancel()
            await self.on_error(exc)

    # -- recognition thread --
    def _recognize(self) -> Iterator[Result]:
        recorder = WavRecorder.open(self.audio_path) if self.audio_path is not None else None
        try:
            chunks = tee_to_recorder(iter(self.audio), recorder)
            if self.labeller is None:
                yield from self.engine.stream(chunks, self.config)
                return
            # Each final's speaker, from its own audio, on the process's labelling thread (any engine).
            recent = RecentAudio(SPEAKER_MEMORY_SECONDS)
            for result in self.engine.stream(recent.tee(chunks), self.config):
                if result.is_final:
                    result = self._labelled(result, recent.span(result.start_ms, result.end_ms))
                yield result
        except EngineError:
            self.audio.cancel()  # at once, so frames still arriving are refused as "ended", not "busy"
            raise
        except Exception as exc:  # a boundary: the thread reports a bug, never dies silently
            logger.exception("recognition thread failed")
            self.audio.cancel()
            raise EngineError(f"engine failed: {exc.__class__.__name__}") from exc

    def _labelled(self, result: Result, pcm: bytes) -> Result:
        worker = label_worker()
        behind = worker.behind()  # other sessions' phrases first (a busy relay box): the final does not wait
        label = worker.submit(self.labeller, pcm)
        if behind:
            return dataclasses.replace(result, pending_speaker=label)
        try:
            return dataclasses.replace(result, speaker=label.result(timeout=LABEL_WAIT_SECONDS))
        except FutureTimeout:
            return dataclasses.replace(result, pending_speaker=label)
        except Exception:  # (logged by the labelling thread) a final without a label is better than none
            return result

    # -- event loop --
    async def _pump(self) -> None:
        try:
            async for result in self._stream:
                if not result.is_final and self._stream.waiting():
                    continue  # a newer result is waiting: this interim is stale, shed it
                self._handling = True
                try:
                    await self.on_result(result)
                finally:
                    self._handling = False
        except EngineError as exc:
            if not self.failed:  # (a hang already reported stays the one error)
                self.failed = True
                self.audio.cancel()
                await self.on_error(exc)

    async def finish(self, timeout: float) -> bool:
        """Let the engine finish the audio it has and its last phrase; True if it did in time."""
        self.audio.close()
        if self.failed:  # a failed (perhaps hung) engine produces nothing more: do not wait on it
            timeout = min(timeout, 0.5)
        assert self._pump_task is not None
        try:
            await asyncio.wait_for(asyncio.shield(self._pump_task), timeout)
            return True
        except asyncio.TimeoutError:
            logger.warning("recognition did not finish within %.1f s: cancelling", timeout)
            self.audio.cancel()
            try:  # results already produced still get handled (stored) if they come quickly
                await asyncio.wait_for(asyncio.shield(self._pump_task), 0.5 if self.failed else 2.0)
            except asyncio.TimeoutError:
                self._pump_task.cancel()
            if self._stream.alive:
                logger.warning("recognition thread still busy; it exits after its current decode")
            return False

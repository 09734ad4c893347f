"""Every Whisper decode in the process goes through one of two lanes.

The live lane (DecodeScheduler) serves recognition: finals first, interims only if affordable.

A decode costs the same whatever the clip length, so the number of decodes is the cost. Sessions'
threads submit decodes here and STT_DECODE_WORKERS threads run them:
- finals run in arrival order, always first;
- each session has at most one interim waiting; a newer request replaces it;
- an interim that could not start within INTERIM_MAX_WAIT is dropped (its session goes on at once,
  and asks again later), so under load interims thin out and finals keep their pace.

The background lane (BackgroundLane) serves work nobody waits for live: translations, second passes,
uploads. It has its own thread, at the lowest OS priority, and its own copy of each model (whose
compute threads inherit that priority), so it takes only the CPU live decodes leave and a final
never waits behind it. Measured here: a final's decode took 0.62 s alone, 0.70 s beside a busy
background lane at nice 19, 1.05 s beside one at normal priority.
"""
from __future__ import annotations

import collections
import itertools
import logging
import os
import queue
import sys
import threading
import time
from typing import Any, Callable, TypeVar

from django.conf import settings

logger = logging.getLogger(__name__)
T = TypeVar("T")
INTERIM_MAX_WAIT = 0.3  # seconds an interim may wait for a worker


class _Job:
    __slots__ = ("fn", "final", "key", "submitted", "done", "result", "error", "dropped")

    def __init__(self, fn: Callable, final: bool, key: object) -> None:
        self.fn, self.final, self.key = fn, final, key
        self.submitted = time.monotonic()
        self.done = threading.Event()
        self.result = self.error = None
        self.dropped = False


class DecodeScheduler:
    def __init__(self, workers: int) -> None:
        self.cond = threading.Condition()
        self.finals: collections.deque[_Job] = collections.deque()
        self.interims: dict[object, _Job] = {}  # one per session, oldest first (dict order)
        self.stats = collections.Counter()
        self.threads = [threading.Thread(target=self._work, name=f"stt-decode-{i}", daemon=True) for i in range(workers)]
        for thread in self.threads:
            thread.start()

    def run(self, fn: Callable[[], T], *, final: bool, key: object) -> T | None:
        """Run `fn` on a decode worker and return its result; None if an interim was dropped.

        final: a final transcript (first, never dropped); otherwise an interim (droppable).
        """
        job = _Job(fn, final, key)
        with self.cond:
            if final:
                self.finals.append(job)
            else:
                previous = self.interims.pop(key, None)
                if previous is not None:
                    self._drop(previous)
                self.interims[key] = job
            self.cond.notify()
        if final:
            job.done.wait()
        elif not job.done.wait(INTERIM_MAX_WAIT):
            with self.cond:
                if self.interims.get(key) is job:  # not started yet: give up on it
                    del self.interims[key]
                    self._drop(job)
            job.done.wait()
        if job.error is not None:
            raise job.error
        return job.result

    def _drop(self, job: _Job) -> None:
        job.dropped = True
        self.stats["interims_dropped"] += 1
        job.done.set()

    def _work(self) -> None:
        while True:
            with self.cond:
                while not self.finals and not self.interims:
                    self.cond.wait()
                if self.finals:
                    job = self.finals.popleft()
                else:
                    key = next(iter(self.interims))
                    job = self.interims.pop(key)
            try:
                job.result = job.fn()
            except BaseException as exc:  # handed to the session's thread, raised there
                job.error = exc
            self.stats["finals" if job.final else "interims"] += 1
            job.done.set()



LIVE_TRANSLATION = 0  # background priorities: a live session's translations first,
AFTER_THE_FACT = 1  # then work on finished sessions and uploads


class BackgroundLane:
    """One thread at the lowest OS priority running decodes on its own copies of the models."""

    def __init__(self, nice: int) -> None:
        self.nice = nice
        self.jobs: queue.PriorityQueue = queue.PriorityQueue()
        self.order = itertools.count()  # FIFO within a priority
        self.models: dict[str, Any] = {}
        self.thread = threading.Thread(target=self._work, name="stt-background", daemon=True)
        self.thread.start()

    def run(self, fn: Callable[[Any], T], *, model: str, load: Callable[[], Any], priority: int = AFTER_THE_FACT) -> T:
        """`fn(model_object)` on the background thread (the model loaded there once by `load()`),
        blocking the caller until it is done; its exception is raised here."""
        job = _Job(lambda: fn(self._model(model, load)), True, model)
        self.jobs.put((priority, next(self.order), job))
        job.done.wait()
        if job.error is not None:
            raise job.error
        return job.result

    def _model(self, name: str, load: Callable[[], Any]) -> Any:
        if name not in self.models:  # loaded in this thread: its compute threads inherit the priority
            self.models[name] = load()
        return self.models[name]

    def _work(self) -> None:
        if self.nice and sys.platform == "linux":  # per-thread priority is a Linux feature
            try:
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self.nice)
            except OSError as exc:
                logger.warning("background decodes run at normal priority: %s", exc)
        while True:
            _, _, job = self.jobs.get()
            try:
                job.result = job.fn()
            except BaseException as exc:  # handed to the caller, raised there
                job.error = exc
            job.done.set()


_scheduler: DecodeScheduler | None = None
_background: BackgroundLane | None = None
_lock = threading.Lock()


def get_scheduler() -> DecodeScheduler:
    global _scheduler
    with _lock:
        if _scheduler is None:
            _scheduler = DecodeScheduler(settings.STT_DECODE_WORKERS)
        return _scheduler


def get_background() -> BackgroundLane:
    global _background
    with _lock:
        if _background is None:
            _background = BackgroundLane(settings.STT_BACKGROUND_NICE)
        return _background

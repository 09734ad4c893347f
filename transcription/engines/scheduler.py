"""One queue for every Whisper decode in the process: finals first, background work in the pauses.

A decode costs the same whatever the clip length, so the number of decodes is the cost. Sessions'
threads submit decodes here and STT_DECODE_WORKERS threads run them:
- finals run in arrival order, always first;
- background work (translations, second passes, uploads) starts only while no session is in the
  middle of a phrase: a final cannot fall due for at least the endpoint silence after speech starts,
  which outlasts one decode, so a final does not wait behind it. Work kept waiting for
  BACKGROUND_MAX_WAIT by continuous speech runs anyway (it is never starved);
- interims last: each session has at most one waiting, a newer request replaces it, and one that
  could not start within INTERIM_MAX_WAIT is dropped (its session goes on at once and asks again
  later), so under load interims thin out and finals keep their pace.

Why not a second worker for background work: measured here (bench/translation.py, kspon_long at
real time), a niced second model copy decoding beside the live one raised final delay p95 by 25-40 %
and RSS by 400 MB; decoding in the pauses keeps p95 within noise and costs no memory.
"""
from __future__ import annotations

import collections
import heapq
import itertools
import threading
import time
from typing import Callable, TypeVar

from django.conf import settings

T = TypeVar("T")
INTERIM_MAX_WAIT = 0.3  # seconds an interim may wait for a worker
BACKGROUND_MAX_WAIT = 10.0  # seconds background work waits for a pause in everyone's speech, at most
LIVE_TRANSLATION = 0  # background priorities: a live session's translations first,
AFTER_THE_FACT = 1  # then work on finished sessions and uploads


class _Job:
    __slots__ = ("fn", "key", "done", "result", "error", "queued_at")

    def __init__(self, fn: Callable, key: object = None) -> None:
        self.fn, self.key = fn, key
        self.done = threading.Event()
        self.result = self.error = None
        self.queued_at = time.monotonic()

    def wait(self):
        self.done.wait()
        if self.error is not None:
            raise self.error
        return self.result


class DecodeScheduler:
    def __init__(self, workers: int) -> None:
        self.cond = threading.Condition()
        self.finals: collections.deque[_Job] = collections.deque()
        self.interims: dict[object, _Job] = {}  # one per session, oldest first (dict order)
        self.background: list[tuple[int, int, _Job]] = []  # a heap: priority, then arrival
        self.order = itertools.count()
        self.in_phrase: set[object] = set()  # sessions whose phrase is in progress: a final will follow
        self.stats = collections.Counter()
        self.threads = [threading.Thread(target=self._work, name=f"stt-decode-{i}", daemon=True) for i in range(workers)]
        for thread in self.threads:
            thread.start()

    def run(self, fn: Callable[[], T], *, final: bool, key: object) -> T | None:
        """Run `fn` on a decode worker and return its result; None if an interim was dropped.

        final: a final transcript (first, never dropped); otherwise an interim (droppable).
        """
        job = _Job(fn, key)
        with self.cond:
            if final:
                self.finals.append(job)
            else:
                previous = self.interims.pop(key, None)
                if previous is not None:
                    self._drop(previous)
                self.interims[key] = job
            self.cond.notify()
        if not final and not job.done.wait(INTERIM_MAX_WAIT):
            with self.cond:
                if self.interims.get(key) is job:  # not started yet: give up on it
                    del self.interims[key]
                    self._drop(job)
        return job.wait()

    def run_background(self, fn: Callable[[], T], *, priority: int = AFTER_THE_FACT) -> T:
        """Run `fn` in a pause of everyone's speech (see above); block until it is done."""
        job = _Job(fn)
        with self.cond:
            heapq.heappush(self.background, (priority, next(self.order), job))
            self.cond.notify()
        return job.wait()

    def phrase(self, key: object, in_progress: bool) -> None:
        """A session says its phrase began (a final will follow) or ended."""
        with self.cond:
            if in_progress:
                self.in_phrase.add(key)
            else:
                self.in_phrase.discard(key)
                self.cond.notify()

    def _drop(self, job: _Job) -> None:
        self.stats["interims_dropped"] += 1
        job.done.set()

    def _background_may_start(self) -> bool:
        if not self.background:
            return False
        oldest = min(job.queued_at for _, _, job in self.background)
        return not self.in_phrase or time.monotonic() - oldest >= BACKGROUND_MAX_WAIT

    def _next(self) -> tuple[str, _Job]:
        """The next job to run (caller holds cond); waits for one."""
        while True:
            if self.finals:
                return "finals", self.finals.popleft()
            if self._background_may_start():
                return "background", heapq.heappop(self.background)[2]
            if self.interims:
                key = next(iter(self.interims))
                return "interims", self.interims.pop(key)
            self.cond.wait(timeout=1.0 if self.background else None)  # (re-check the background's wait)

    def _work(self) -> None:
        while True:
            with self.cond:
                kind, job = self._next()
            try:
                job.result = job.fn()
            except BaseException as exc:  # handed to the submitting thread, raised there
                job.error = exc
            self.stats[kind] += 1
            job.done.set()


_scheduler: DecodeScheduler | None = None
_lock = threading.Lock()


def get_scheduler() -> DecodeScheduler:
    global _scheduler
    with _lock:
        if _scheduler is None:
            _scheduler = DecodeScheduler(settings.STT_DECODE_WORKERS)
        return _scheduler

"""One queue for every Whisper decode in the process: finals first, interims only if affordable.

A decode costs the same whatever the clip length, so the number of decodes is the cost. Sessions'
threads submit decodes here and STT_DECODE_WORKERS threads run them:
- finals run in arrival order, always first; then background work (speech translation);
- each session has at most one interim waiting; a newer request replaces it;
- an interim that could not start within INTERIM_MAX_WAIT is dropped (its session goes on at once,
  and asks again later), so under load interims thin out and finals keep their pace.
"""
from __future__ import annotations

import collections
import threading
import time
from typing import Callable, TypeVar

from django.conf import settings

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
        self.background: collections.deque[_Job] = collections.deque()
        self.interims: dict[object, _Job] = {}  # one per session, oldest first (dict order)
        self.stats = collections.Counter()
        self.threads = [threading.Thread(target=self._work, name=f"stt-decode-{i}", daemon=True) for i in range(workers)]
        for thread in self.threads:
            thread.start()

    def run(self, fn: Callable[[], T], *, final: bool, key: object, background: bool = False) -> T | None:
        """Run `fn` on a decode worker and return its result; None if an interim was dropped.

        final: a final transcript (first); background: must run, after finals (translations);
        otherwise an interim (last, droppable).
        """
        job = _Job(fn, final or background, key)
        with self.cond:
            if background and not final:
                self.background.append(job)
            elif final:
                self.finals.append(job)
            else:
                previous = self.interims.pop(key, None)
                if previous is not None:
                    self._drop(previous)
                self.interims[key] = job
            self.cond.notify()
        if final or background:
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
                while not self.finals and not self.background and not self.interims:
                    self.cond.wait()
                if self.finals:
                    job = self.finals.popleft()
                elif self.background:
                    job = self.background.popleft()
                else:
                    key = next(iter(self.interims))
                    job = self.interims.pop(key)
            try:
                job.result = job.fn()
            except BaseException as exc:  # handed to the session's thread, raised there
                job.error = exc
            self.stats["finals" if job.final else "interims"] += 1
            job.done.set()


_scheduler: DecodeScheduler | None = None
_lock = threading.Lock()


def get_scheduler() -> DecodeScheduler:
    global _scheduler
    with _lock:
        if _scheduler is None:
            _scheduler = DecodeScheduler(settings.STT_DECODE_WORKERS)
        return _scheduler

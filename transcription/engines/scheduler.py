"""One queue for every Whisper decode in the process: finals first, background work in the pauses.

A decode costs the same whatever the clip length, so the number of decodes is the cost. Sessions'
threads submit decodes here and STT_DECODE_WORKERS threads run them:
- finals run in arrival order, always first;
- background work (translations, second passes, uploads) starts only while no session is in the
  middle of a phrase: a final cannot fall due for at least the endpoint silence after speech starts,
  which outlasts one decode, so a final does not wait behind it. Work kept waiting for
  BACKGROUND_MAX_WAIT by continuous speech runs anyway (it is never starved);
- finals that fall due together may be decoded as one batch (STT_WHISPER_BATCH, the GPU path:
  engines/batch.py); a batch item that needs Whisper's fallback is decoded again alone at once;
- interims last: each session has at most one waiting, a newer request replaces it, and one that
  could not start within INTERIM_MAX_WAIT is dropped (its session goes on at once and asks again
  later), so under load interims thin out and finals keep their pace. Once the workers have been
  busy more than STT_INTERIM_LOAD_MAX of the last LOAD_WINDOW seconds, interims are not decoded at
  all until the load falls: an interim that starts just before a final falls due delays that final
  by a whole decode (bench/load.py --conversations).

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
from typing import Callable, NamedTuple, TypeVar

from django.conf import settings

from .. import metrics
from .batch import BatchItem, BatchResult, decode_batch

T = TypeVar("T")
INTERIM_MAX_WAIT = 0.3  # seconds an interim may wait for a worker
LOAD_WINDOW = 10.0  # seconds over which the workers' busy share is measured
BACKGROUND_MAX_WAIT = 10.0  # seconds background work waits for a pause in everyone's speech, at most
LIVE_TRANSLATION = 0  # background priorities: a live session's translations first,
AFTER_THE_FACT = 1  # then work on finished sessions and uploads
# After a live session ends, background work stays in small jobs this long: its second pass starts
# at once, and the next session often follows (bench/background.py); a batch of 30 s windows is
# several seconds of work that a new session's first final would wait behind.
LIVE_GRACE_SECONDS = 30.0


class Batchable(NamedTuple):
    """How a final can join a batch: its model, its item, and what makes its result of the BatchResult
    (None: the batch could not settle it, and `fn` decodes it alone)."""

    model: object
    item: BatchItem
    finish: Callable[[BatchResult], object]


class _Job:
    __slots__ = ("fn", "key", "done", "result", "error", "queued_at", "batch")

    def __init__(self, fn: Callable, key: object = None, batch: Batchable | None = None) -> None:
        self.fn, self.key, self.batch = fn, key, batch
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
        self.streams: set[object] = set()  # live sessions decoding here (background work takes smaller bites)
        self.live_until = 0.0  # (monotonic) the grace after the last one ended
        self.stats = collections.Counter()
        self.workers = workers
        self.busy: collections.deque[tuple[float, float]] = collections.deque()  # (start, end) of recent decodes
        self.running: dict[int, float] = {}  # worker -> start of its decode
        self.threads = [threading.Thread(target=self._work, args=(i,), name=f"stt-decode-{i}", daemon=True)
                        for i in range(workers)]
        for thread in self.threads:
            thread.start()

    def run(self, fn: Callable[[], T], *, final: bool, key: object, batch: Batchable | None = None) -> T | None:
        """Run `fn` on a decode worker and return its result; None if an interim was dropped.

        final: a final transcript (first, never dropped); otherwise an interim (droppable).
        batch: a final that may be decoded together with others due at the same time.
        """
        job = _Job(fn, key, batch if final else None)
        with self.cond:
            if not final and self.load() > settings.STT_INTERIM_LOAD_MAX:
                self.stats["interims_shed"] += 1  # saturated: finals only, until the load falls
                return None
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

    def streaming(self, key: object, live: bool) -> None:
        """A live session starts (or stops) decoding on this scheduler."""
        with self.cond:
            if live:
                self.streams.add(key)
            elif key in self.streams:
                self.streams.discard(key)
                self.live_until = time.monotonic() + LIVE_GRACE_SECONDS

    def live(self) -> bool:
        """Whether a live session decodes here, or did within LIVE_GRACE_SECONDS: background work
        then comes in small jobs."""
        with self.cond:
            return bool(self.streams) or time.monotonic() < self.live_until

    def saturated(self) -> bool:
        """Busy beyond STT_INTERIM_LOAD_MAX: decodes that may be wasted (interims, speculation) wait."""
        with self.cond:
            return self.load() > settings.STT_INTERIM_LOAD_MAX

    def load(self) -> float:
        """The workers' busy share over the last LOAD_WINDOW seconds, 0-1 (caller holds cond)."""
        now = time.monotonic()
        since = now - LOAD_WINDOW
        while self.busy and self.busy[0][1] < since:
            self.busy.popleft()
        spans = list(self.busy) + [(start, now) for start in self.running.values()]
        busy = sum(end - max(start, since) for start, end in spans if end > since)
        return busy / (LOAD_WINDOW * self.workers)

    def _drop(self, job: _Job) -> None:
        self.stats["interims_dropped"] += 1
        job.done.set()

    def _background_may_start(self) -> bool:
        if not self.background:
            return False
        oldest = min(job.queued_at for _, _, job in self.background)
        return not self.in_phrase or time.monotonic() - oldest >= BACKGROUND_MAX_WAIT

    def _next(self) -> tuple[str, list[_Job]]:
        """The next job(s) to run (caller holds cond); waits for one."""
        while True:
            if self.finals:
                group = [self.finals.popleft()]
                while (group[0].batch and self.finals and len(group) < settings.STT_WHISPER_BATCH_SIZE
                       and self.finals[0].batch and self.finals[0].batch.model is group[0].batch.model):
                    group.append(self.finals.popleft())
                return "finals", group
            if self._background_may_start():
                return "background", [heapq.heappop(self.background)[2]]
            if self.interims:
                key = next(iter(self.interims))
                return "interims", [self.interims.pop(key)]
            self.cond.wait(timeout=1.0 if self.background else None)  # (re-check the background's wait)

    def _work(self, worker: int) -> None:
        while True:
            with self.cond:
                kind, group = self._next()
                started = self.running[worker] = time.monotonic()
            if len(group) > 1:
                self._run_batch(group)
            for job in group:
                if not job.done.is_set():
                    self._run(job)
            ended = time.monotonic()
            with self.cond:
                del self.running[worker]
                self.busy.append((started, ended))
            metrics.decode_seconds.labels(kind=kind).observe(ended - started)
            self.stats[kind] += len(group)

    def _run_batch(self, group: list[_Job]) -> None:
        """One batched decode; jobs it settles are done, the rest are left for `_run`."""
        try:
            results = decode_batch(group[0].batch.model, [job.batch.item for job in group])
        except Exception:  # e.g. out of device memory: each is decoded alone instead
            return
        self.stats["batches"] += 1
        for job, result in zip(group, results):
            if not result.needs_fallback:
                job.result = job.batch.finish(result)
                job.done.set()

    def _run(self, job: _Job) -> None:
        try:
            job.result = job.fn()
        except BaseException as exc:  # handed to the submitting thread, raised there
            job.error = exc
        job.done.set()


_scheduler: DecodeScheduler | None = None
_lock = threading.Lock()


def get_scheduler() -> DecodeScheduler:
    global _scheduler
    with _lock:
        if _scheduler is None:
            _scheduler = DecodeScheduler(settings.STT_DECODE_WORKERS)
        return _scheduler

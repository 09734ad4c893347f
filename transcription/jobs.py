"""Background jobs on finished sessions, run off the request by one thread per process.

A job's state lives in the database (the `Job` row: status, done/total, a heartbeat), so any process
can show its progress and refuse to start the same work twice. The thread that runs it belongs to
the process that accepted the request: if that process stops, the row's heartbeat goes stale and a
new request starts the work again (each job skips what is already done). Decodes inside a job go to
the background lane (engines/scheduler.py), so a job never delays a live session's finals.
"""
from __future__ import annotations

import logging
import queue
import threading
from datetime import timedelta
from typing import Callable

from django.conf import settings
from django.db import IntegrityError, close_old_connections, transaction
from django.utils import timezone

from . import metrics
from .models import Job, TranscriptionSession

logger = logging.getLogger(__name__)

STALE_AFTER = timedelta(minutes=2)  # a running job without progress this long lost its process

Handler = Callable[[Job, Callable[[int, int], None]], None]
HANDLERS: dict[str, Handler] = {}


def handles(kind: str):
    """Register the function that does the work of one kind of job."""
    def register(fn: Handler) -> Handler:
        HANDLERS[kind] = fn
        return fn
    return register


def job_start(*, session: TranscriptionSession, kind: str, language: str = "") -> tuple[Job, bool]:
    """Queue the work unless the same work is already running: (the job, whether it was started)."""
    with transaction.atomic():
        active = (Job.objects.select_for_update()
                  .filter(session=session, kind=kind, language=language, status__in=Job.ACTIVE).first())
        if active is not None and active.updated_at > timezone.now() - STALE_AFTER:
            return active, False
        if active is not None:  # its process stopped: mark it, start afresh
            Job.objects.filter(pk=active.pk).update(status=Job.Status.FAILED, error="interrupted")
        try:
            with transaction.atomic():
                job = Job.objects.create(session=session, kind=kind, language=language)
        except IntegrityError:  # another request started it a moment ago
            return Job.objects.get(session=session, kind=kind, language=language, status__in=Job.ACTIVE), False
        transaction.on_commit(lambda: runner().submit(job.pk))
    return job, True


class JobRunner:
    """One thread per process running queued jobs in order."""

    def __init__(self) -> None:
        self.queue: queue.Queue[int] = queue.Queue()
        self.thread = threading.Thread(target=self._work, name="stt-jobs", daemon=True)
        self.thread.start()

    def submit(self, job_id: int) -> None:
        self.queue.put(job_id)

    def _work(self) -> None:
        while True:
            job_id = self.queue.get()
            try:
                self._run(job_id)
            finally:
                close_old_connections()  # this thread is not a request: tidy its connection itself
                self.queue.task_done()

    def _run(self, job_id: int) -> None:
        job = Job.objects.select_related("session").filter(pk=job_id, status=Job.Status.QUEUED).first()
        if job is None:  # deleted with its session, or taken over
            return
        Job.objects.filter(pk=job.pk).update(status=Job.Status.RUNNING, updated_at=timezone.now())

        def progress(done: int, total: int) -> None:
            Job.objects.filter(pk=job.pk).update(done=done, total=total, updated_at=timezone.now())

        try:
            HANDLERS[job.kind](job, progress)
        except Exception as exc:  # a boundary: the job fails with a message, the thread goes on
            logger.exception("job %s failed", job)
            metrics.jobs.labels(kind=job.kind, status="failed").inc()
            Job.objects.filter(pk=job.pk).update(status=Job.Status.FAILED, error=str(exc)[:500] or repr(exc),
                                                 updated_at=timezone.now())
        else:
            Job.objects.filter(pk=job.pk).update(status=Job.Status.DONE, updated_at=timezone.now())
            metrics.jobs.labels(kind=job.kind, status="done").inc()


_runner: JobRunner | None = None
_lock = threading.Lock()


def runner() -> JobRunner:
    global _runner
    with _lock:
        if _runner is None:
            _runner = JobRunner()
        return _runner


def wait_idle(timeout: float = 30.0) -> bool:
    """Tests and management commands: wait until every queued job has run."""
    done = threading.Event()
    threading.Thread(target=lambda: (runner().queue.join(), done.set()), daemon=True).start()
    return done.wait(timeout)


@handles(Job.Kind.TRANSLATE)
def translate_session(job: Job, progress: Callable[[int, int], None]) -> None:
    from . import services
    from .translation import get_translator

    services.session_translate(session=job.session, target=job.language, translator=get_translator(),
                               progress=progress)


def refine_wanted(engine: str) -> bool:
    """STT_REFINE: "auto" (the default) refines whisper sessions; "1" every session; "0" none."""
    mode = str(settings.STT_REFINE).lower()
    return mode in ("1", "true", "yes", "on") or (mode == "auto" and engine == "whisper")


def refine_after(*, session_id) -> bool:
    """A session with kept audio ended: queue its second pass (if wanted). True if queued."""
    session = TranscriptionSession.objects.get(pk=session_id)
    if not refine_wanted(session.engine) or not session.audio or not session.segments.exists():
        return False
    _, started = job_start(session=session, kind=Job.Kind.REFINE)
    if started:
        TranscriptionSession.objects.filter(pk=session_id).update(refinement=TranscriptionSession.Refinement.PENDING)
    return started


@handles(Job.Kind.REFINE)
def refine_session(job: Job, progress: Callable[[int, int], None]) -> None:
    """The second pass: the whole kept recording decoded with whole-file context (engines/offline.py),
    its words aligned to the live phrases' times and stored as their refined text."""
    from . import services
    from .engines import get_engine
    from .engines.offline import align, transcribe_recording

    session = job.session
    try:
        model = get_engine("whisper").model_for(session.language)
        words = transcribe_recording(model, session.audio.path, language=session.language,
                                     vocabulary=session.vocabulary, progress=progress)
        segments = list(session.segments.order_by("index"))
        texts = align(words, [(s.start_ms, s.end_ms) for s in segments])
        services.session_refine(session=session, refined={s.pk: t for s, t in zip(segments, texts)})
    except Exception:
        TranscriptionSession.objects.filter(pk=session.pk).update(refinement=TranscriptionSession.Refinement.FAILED)
        raise

"""Background jobs on sessions (transcribing an upload, the second pass, translating after the fact),
run by a task queue library: Django's tasks API (the django-tasks backport), whose backend is set in
TASKS: django-tasks-db by default (any worker on the same database), django-tasks-rq for Redis.

The `Job` row is ours: what the pages, REST and viewers show (status, progress), and what makes a job
durable whatever the backend. A worker that runs a job beats its heart in the row; a job whose heart
stopped (its process was killed) is put back on the queue by the watchdog (`recover_stale`, running
in every server and worker process: no request from anyone needed), and the next attempt resumes
from what the last one stored. A job that fails of itself fails for good, and says why.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
from datetime import timedelta
from typing import Any, Callable

from django.conf import settings
from django.db import IntegrityError, close_old_connections, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.module_loading import import_string
from django_tasks import task

from . import metrics
from .models import Job, TranscriptionSession
from .protocol import TOO_MANY_JOBS, ProtocolError

logger = logging.getLogger(__name__)

WORKER_ID = f"{socket.gethostname()}:{os.getpid()}"  # who runs a job (a host and a process)

# What each kind of job runs: a function (job, JobRun) -> None, by path, imported where it runs.
HANDLERS = {
    Job.Kind.TRANSCRIBE: "transcription.sources.uploads.transcribe_upload",
    Job.Kind.REFINE: "transcription.refine.refine_session",
    Job.Kind.TRANSLATE: "transcription.refine.translate_session",
    Job.Kind.SPEAKERS: "transcription.voices.relabel_session",
}


class JobTakenOver(Exception):
    """This attempt lost the job (the watchdog gave it to another worker): stop, store nothing."""


class TooManyJobs(ProtocolError):
    def __init__(self, limit: int) -> None:
        super().__init__(TOO_MANY_JOBS, f"you already have {limit} background jobs queued or running; "
                                        "try again when some are done")


def job_start(*, session: TranscriptionSession, kind: str, language: str = "") -> tuple[Job, bool]:
    """Queue the work unless the same work is already queued or running: (the job, whether it was
    started). A job whose worker died is not started again here: the watchdog resumes it. Beyond
    STT_MAX_JOBS_PER_USER of the owner's jobs queued or running, TooManyJobs (an upload's own
    transcription is bounded by the sessions a user may run instead, and always queued)."""
    with transaction.atomic():
        active = Job.objects.filter(session=session, kind=kind, language=language, status__in=Job.ACTIVE).first()
        if active is not None:
            return active, False
        limit = settings.STT_MAX_JOBS_PER_USER
        if limit and kind != Job.Kind.TRANSCRIBE and owner_jobs(session.owner_id).count() >= limit:
            raise TooManyJobs(limit)
        try:
            with transaction.atomic():
                job = Job.objects.create(session=session, kind=kind, language=language, heartbeat_at=timezone.now())
        except IntegrityError:  # the same work was queued a moment ago
            return Job.objects.get(session=session, kind=kind, language=language, status__in=Job.ACTIVE), False
        transaction.on_commit(lambda: enqueue(job.pk))
    return job, True


def owner_jobs(owner_id):
    return Job.objects.filter(session__owner_id=owner_id, status__in=Job.ACTIVE)


def enqueue(job_id: int) -> None:
    """Hand the job to the task queue (whichever worker is free takes it: transcription/workers.py).
    Each of a user's jobs already waiting lowers the next one's priority by one: one user's many jobs
    do not hold everyone else's back (the database backend takes the highest priority first; rq has none)."""
    task = run_job.using(priority=priority_of(job_id)) if run_job.get_backend().supports_priority else run_job
    result = task.enqueue(job_id)  # (the rq backend has no priorities: its queue is first come, first served)
    Job.objects.filter(pk=job_id).update(task_id=str(result.id))


def priority_of(job_id: int) -> int:
    """0 for a user's only job; one lower for each other job of theirs queued or running (at least -100)."""
    owner_id = Job.objects.filter(pk=job_id).values_list("session__owner_id", flat=True).first()
    ahead = owner_jobs(owner_id).exclude(pk=job_id).count() if owner_id is not None else 0
    return -min(ahead, 100)


@task()
def run_job(job_id: int) -> None:
    """The one task every job runs as, in whichever worker the queue gives it to."""
    attempt = JobRun.claim(job_id)
    if attempt is not None:  # (None: done already, or being run by another worker)
        attempt.run()


class JobRun:
    """One attempt at a job, in this worker: its heartbeat, its progress, its end."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.state: dict[str, Any] = dict(job.state or {})
        self.plan: list | None = job.plan
        self.done = job.done
        self._stop = threading.Event()
        self._lost = threading.Event()

    @classmethod
    def claim(cls, job_id: int) -> JobRun | None:
        claimed = Job.objects.filter(pk=job_id, status=Job.Status.QUEUED).update(
            status=Job.Status.RUNNING, worker=WORKER_ID, attempts=F("attempts") + 1, heartbeat_at=timezone.now())
        return cls(Job.objects.select_related("session").get(pk=job_id)) if claimed else None

    def run(self) -> None:
        beating = threading.Thread(target=self._beat, name=f"stt-job-{self.job.pk}", daemon=True)
        beating.start()
        try:
            import_string(HANDLERS[self.job.kind])(self.job, self)
        except JobTakenOver:
            logger.warning("job %s was taken over by another worker: this attempt stops", self.job)
            return
        except Exception as exc:  # a boundary: the job fails with its message, the worker goes on
            logger.exception("job %s failed", self.job)
            fail(self.job, code=getattr(exc, "code", "job_failed"), message=str(exc) or repr(exc))
        else:
            self._finish()
        finally:
            self._stop.set()
            beating.join(5)

    # -- what a handler calls --
    def save(self, *, done: int | None = None, total: int | None = None, state: dict | None = None,
             plan: list | None = None) -> None:
        """Progress, and what to resume from (`state`, merged; `plan`, the work's fixed list of
        parts): stored only while this attempt still owns the job, else JobTakenOver."""
        fields: dict[str, Any] = {"heartbeat_at": timezone.now()}
        if plan is not None:
            self.plan = fields["plan"] = plan
        if done is not None:
            self.done = fields["done"] = done
        if total is not None:
            fields["total"] = total
        if state is not None:
            self.state.update(state)
            fields["state"] = self.state
        if self._lost.is_set() or not self._owned().update(**fields):
            raise JobTakenOver()

    def planned(self, make: Callable[[], list]) -> list:
        """The work's parts (JSON): made by the first attempt, the same for every later one."""
        if self.plan is None:
            parts = make()
            self.save(done=0, total=len(parts), plan=parts)
        return self.plan

    def progress(self, done: int, total: int) -> None:
        self.save(done=done, total=total)

    def _owned(self):
        return Job.objects.filter(pk=self.job.pk, status=Job.Status.RUNNING, worker=WORKER_ID)

    def _finish(self) -> None:
        if self._owned().update(status=Job.Status.DONE, heartbeat_at=timezone.now()):
            metrics.jobs.labels(kind=self.job.kind, status=Job.Status.DONE).inc()

    def _beat(self) -> None:
        """The heartbeat: while the handler works (a decode may wait long behind live finals)."""
        interval = max(0.2, settings.STT_JOB_STALE_SECONDS / 4)
        while not self._stop.wait(interval):
            try:
                if not self._owned().update(heartbeat_at=timezone.now()):
                    self._lost.set()
                    return
            except Exception:  # the database is away: the next beat tries again
                logger.warning("job %s: heartbeat not stored", self.job.pk, exc_info=True)
        close_old_connections()


def fail(job: Job, *, code: str, message: str) -> None:
    """A job that failed for good: its row and, for an upload, its session say why."""
    from . import services

    Job.objects.filter(pk=job.pk).update(status=Job.Status.FAILED, error=f"{code}: {message}"[:500],
                                         heartbeat_at=timezone.now())
    metrics.jobs.labels(kind=job.kind, status=Job.Status.FAILED).inc()
    if job.kind == Job.Kind.TRANSCRIBE:
        services.session_fail(session_id=job.session_id, code=code, message=message)
    elif job.kind == Job.Kind.REFINE:
        TranscriptionSession.objects.filter(pk=job.session_id).update(
            refinement=TranscriptionSession.Refinement.FAILED)


def recover_stale(*, requeue: Callable[[int], None] = None) -> list[int]:
    """Jobs whose worker stopped beating (killed, lost its machine) go back on the queue, to resume
    from what they stored; after STT_JOB_ATTEMPTS attempts one fails for good. Returns their ids."""
    requeue = requeue or enqueue
    stale = timezone.now() - timedelta(seconds=settings.STT_JOB_STALE_SECONDS)
    recovered = []
    for job in Job.objects.filter(status=Job.Status.RUNNING, heartbeat_at__lt=stale).select_related("session"):
        if job.attempts >= settings.STT_JOB_ATTEMPTS:
            fail(job, code="interrupted", message=f"its worker stopped {job.attempts} times")
            continue
        if Job.objects.filter(pk=job.pk, status=Job.Status.RUNNING, heartbeat_at__lt=stale).update(
                status=Job.Status.QUEUED, worker="", heartbeat_at=timezone.now()):
            logger.warning("job %s: its worker %s stopped; queued again (attempt %d next)", job, job.worker,
                           job.attempts + 1)
            requeue(job.pk)
            recovered.append(job.pk)
    return recovered


@metrics.on_refresh
def count_jobs() -> None:
    from django.db.models import Count

    metrics.jobs_in_state.clear()
    for row in Job.objects.values("kind", "status").annotate(n=Count("id")):
        metrics.jobs_in_state.labels(kind=row["kind"], status=row["status"]).set(row["n"])


def wait_idle(timeout: float = 30.0) -> bool:
    """Tests and commands: wait until no job is queued or running."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not Job.objects.filter(status__in=Job.ACTIVE).exists():
            return True
        time.sleep(0.1)
    return False

"""Who runs background jobs: django-tasks-db's own worker, and the watchdog that resumes jobs whose
worker died.

- In the server (`make run`, STT_EMBEDDED_WORKER=1, the default): one worker thread in the process,
  so nothing else needs to run. Its decodes go to the decode scheduler's background lane, behind
  every live final.
- On other machines: `manage.py stt_worker` (the same worker, and the watchdog), sharing the
  database and the storage; set STT_EMBEDDED_WORKER=0 on servers that should only serve sessions.
- With the RQ backend (STT_TASKS_BACKEND=rq): django-rq's
  `manage.py rqworker default --job-class django_tasks_rq.backend.Job`; the servers keep the
  watchdog.
"""
from __future__ import annotations

import logging
import threading
import time

from django.conf import settings
from django.db import close_old_connections

from . import jobs, services

logger = logging.getLogger(__name__)

_started = False
_lock = threading.Lock()


def database_worker(*, interval: float = 0.5):
    """django-tasks-db's worker, as its `db_worker` command builds it."""
    from django_tasks_db.management.commands.db_worker import Worker

    return Worker(queue_names=["default"], interval=interval, batch=False, backend_name="default",
                  startup_delay=False, max_tasks=None, worker_id=jobs.WORKER_ID[:64], excluded_queue_names=[])


def uses_database_backend() -> bool:
    return settings.TASKS["default"]["BACKEND"] == "django_tasks_db.DatabaseBackend"


def watch(stop: threading.Event | None = None) -> None:
    """The watchdog loop, every quarter of STT_JOB_STALE_SECONDS: stale jobs back on the queue, and
    pulled streams whose process died ended."""
    stop = stop or threading.Event()
    while not stop.wait(max(0.2, settings.STT_JOB_STALE_SECONDS / 4)):
        try:
            jobs.recover_stale()
            for session_id in services.sessions_end_orphaned_streams(stale_seconds=settings.STT_STREAM_STALE_SECONDS):
                logger.warning("session %s: the server pulling its stream stopped; ended", session_id)
            close_old_connections()
        except Exception:  # the database is away: try again at the next round (the thread never dies)
            logger.warning("the job watchdog could not check for stale jobs", exc_info=True)


def start_in_process() -> None:
    """The watchdog, and (with the database backend and STT_EMBEDDED_WORKER) a worker, as daemon
    threads of this process, once. A job they run dies with the process; the watchdog of a
    process still running, or of this one restarted, resumes it."""
    global _started
    with _lock:
        if _started:
            return
        _started = True
    threading.Thread(target=watch, name="stt-job-watchdog", daemon=True).start()
    if settings.STT_EMBEDDED_WORKER and uses_database_backend():
        threading.Thread(target=keep_working, name="stt-job-worker", daemon=True).start()


def keep_working() -> None:
    """The embedded worker, started again if its loop fails (the database away for a moment)."""
    while True:
        try:
            database_worker().run()
        except Exception as exc:
            logger.warning("the job worker stopped (%r); starting again in 2 s", exc)
            time.sleep(2)
        try:
            close_old_connections()
        except Exception:  # the database is away: the next round finds out
            pass

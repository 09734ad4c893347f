"""`manage.py stt_worker`: run background jobs (uploads, second passes, translations) here, on any
machine that shares the database and the storage, with the watchdog that resumes jobs whose worker
died. For the database task backend (the default); with RQ, run django-rq's `rqworker`."""
import threading

from django.core.management.base import BaseCommand, CommandError

from transcription import workers


class Command(BaseCommand):
    help = "Run background jobs (database task backend) and resume those whose worker died"

    def add_arguments(self, parser):
        parser.add_argument("--interval", type=float, default=0.5, help="seconds between looks for work")

    def handle(self, *args, interval: float, **options):
        if not workers.uses_database_backend():
            raise CommandError("STT_TASKS_BACKEND is not the database: run "
                               "`manage.py rqworker default --job-class django_tasks_rq.backend.Job` instead")
        threading.Thread(target=workers.watch, name="stt-job-watchdog", daemon=True).start()
        worker = workers.database_worker(interval=interval)
        worker.configure_signals()  # SIGTERM: finish the job in hand, then exit
        self.stdout.write(f"stt_worker {worker.worker_id}: running jobs")
        worker.run()

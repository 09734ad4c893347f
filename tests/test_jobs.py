"""The job machinery on its own (transcription/jobs.py, workers.py): fast, no servers."""
import threading
import time


def test_the_watchdog_outlives_a_database_that_is_away(settings, monkeypatch):
    """Its thread never dies of a failing database: a dead watchdog would leave every stale job stuck."""
    from transcription import jobs, workers

    settings.STT_JOB_STALE_SECONDS = 0.8  # a round every 0.2 s
    rounds = []

    def database_away(**kwargs):
        rounds.append(1)
        raise RuntimeError("the database is away")

    monkeypatch.setattr(jobs, "recover_stale", database_away)
    monkeypatch.setattr(workers, "close_old_connections", database_away)
    stop = threading.Event()
    watchdog = threading.Thread(target=workers.watch, args=(stop,), daemon=True)
    watchdog.start()
    time.sleep(1.2)
    alive = watchdog.is_alive()
    stop.set()
    watchdog.join(2)
    assert alive and len(rounds) >= 3

"""Background jobs survive their worker's death (issue 21): a real server is SIGKILLed in the middle of
an upload's transcription and started again; nothing but reads follows, and the upload ends with every
phrase stored once. Then the same on PostgreSQL, with a worker in a second process finishing what
the killed server began.
"""
from __future__ import annotations

import io
import json
import time
import urllib.request
import wave

import jiwer
import pytest

from .conftest import DATA, normalise_ko
from .servers import ROOT, ServerProcess, postgres_database, require_services

pytestmark = pytest.mark.multiprocess

PARTS = ["ko/kspon_long", "ko/kspon_001", "ko/kspon_002", "ko/kspon_003", "ko/kspon_004"]


def conversation() -> tuple[bytes, str]:
    """About 90 s of Korean (a conversation, then four utterances, 1 s apart) and its reference."""
    pcm = b""
    for part in PARTS:
        with wave.open(str(DATA / f"{part}.wav")) as w:
            pcm += w.readframes(w.getnframes()) + bytes(32000)
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
        w.writeframes(pcm)
    return out.getvalue(), "".join((DATA / f"{part}.txt").read_text() for part in PARTS)


def upload(server: ServerProcess, token: str, data: bytes) -> str:
    boundary = "b0undary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"language\"\r\n\r\nko-KR\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"talk.wav\"\r\n"
            "Content-Type: audio/wav\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(f"{server.url}/api/sessions/", data=body, method="POST", headers={
        "Authorization": f"Bearer {token}", "Content-Type": f"multipart/form-data; boundary={boundary}"})
    answer = json.loads(urllib.request.urlopen(request, timeout=30).read())
    assert answer["status"] == "processing"
    return answer["id"]


def detail(server: ServerProcess, token: str, session_id: str) -> dict:
    request = urllib.request.Request(f"{server.url}/api/sessions/{session_id}/", headers={"Authorization": f"Bearer {token}"})
    return json.loads(urllib.request.urlopen(request, timeout=30).read())


def progress_of(found: dict) -> float:
    job = next(j for j in found["jobs"] if j["kind"] == "transcribe")
    return job["done"] / job["total"] if job["total"] else 0.0


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def check_complete(found: dict, reference: str) -> float:
    """The phrases are in order, each stored once; returns the transcript's CER."""
    segments = found["segments"]
    assert [s["index"] for s in segments] == list(range(len(segments)))
    starts = [s["start_ms"] for s in segments]
    assert starts == sorted(starts) and len(set(starts)) == len(starts), starts  # none stored twice
    assert all(a["end_ms"] <= b["start_ms"] + 500 for a, b in zip(segments, segments[1:])), "phrases overlap"
    return jiwer.cer(normalise_ko(reference), normalise_ko("".join(s["text"] for s in segments)))


@pytest.mark.model
def test_an_upload_whose_server_is_killed_resumes_after_restart_with_every_phrase_stored_once(tmp_path):
    data, reference = conversation()
    server = ServerProcess(tmp_path / "server", env={"STT_ENGINE": "whisper", "STT_JOB_STALE_SECONDS": "3",
                                                    "STT_SPEAKERS": "0", "STT_REFINE_BATCH_SIZE": "1"})
    server.create_user("uploader")
    token = server.create_token("uploader")
    server.start()
    try:
        uninterrupted = detail(server, token, upload(server, token, data))
        uninterrupted = wait_for(lambda: (d := detail(server, token, uninterrupted["id"]))["status"] != "processing"
                                 and d, 300, "the first upload")
        baseline_cer = check_complete(uninterrupted, reference)

        session = upload(server, token, data)
        at = wait_for(lambda: 0.15 <= (p := progress_of(detail(server, token, session))) <= 0.5 and p, 300,
                      "15-50 % progress")
        server.kill()  # SIGKILL: no chance to tidy up, as an OOM kill
        server.start()
        restarted = time.monotonic()
        resumed = wait_for(lambda: progress_of(detail(server, token, session)) > at, 60, "the job to resume")
        resume_seconds = time.monotonic() - restarted
        found = wait_for(lambda: (d := detail(server, token, session))["status"] != "processing" and d, 300,
                         "the upload to end")
    finally:
        server.stop()
    assert found["status"] == "ended", found.get("failure")
    job = next(j for j in found["jobs"] if j["kind"] == "transcribe")
    assert job["status"] == "done" and job["attempts"] == 2
    cer = check_complete(found, reference)
    print(f"killed at {at:.0%}; resumed {resume_seconds:.1f} s after the restart; CER {cer:.3f} "
          f"(uninterrupted {baseline_cer:.3f})")
    assert resumed and abs(cer - baseline_cer) <= 0.02, (cer, baseline_cer)


@pytest.mark.model
def test_on_postgresql_a_worker_in_another_process_finishes_an_upload_whose_server_died(tmp_path):
    require_services()
    data, reference = conversation()
    with postgres_database() as database:
        env = {"DATABASE_URL": database, "STT_ENGINE": "whisper", "STT_JOB_STALE_SECONDS": "3", "STT_SPEAKERS": "0",
               "STT_REFINE_BATCH_SIZE": "1",  # (progress window by window: a kill falls between two)
               "STT_MEDIA_ROOT": str(tmp_path / "shared-storage")}
        server = ServerProcess(tmp_path / "server", env=env)
        server.create_user("uploader")
        token = server.create_token("uploader")
        server.start()
        worker = None
        try:
            session = upload(server, token, data)
            at = wait_for(lambda: 0.15 <= (p := progress_of(detail(server, token, session))) <= 0.5 and p, 300,
                          "15-50 % progress")
            worker = server.start_worker()  # another machine's worker, sharing the database and the storage
            server.kill()
            found = wait_for(lambda: finished(server, session), 300, "the worker to finish the upload")
        finally:
            server.stop()
            if worker is not None:
                worker.terminate()
                worker.wait(20)
    assert found["status"] == "ended", found
    assert found["job_worker"].endswith(f":{worker.pid}") and found["attempts"] == 2, found
    assert check_complete(found, reference) < 0.35
    print(f"killed at {at:.0%}; finished by {found['job_worker']}")


def finished(server: ServerProcess, session_id: str) -> dict | None:
    """Read from the database the way an operator would (the server that took the upload is dead)."""
    code = ("import json; from transcription.models import TranscriptionSession as S; "
            f"s = S.objects.get(pk={session_id!r}); j = s.jobs.get(kind='transcribe'); "
            "print(json.dumps({'status': s.status, 'job_worker': j.worker, 'attempts': j.attempts, "
            "'segments': [{'index': g.index, 'start_ms': g.start_ms, 'end_ms': g.end_ms, 'text': g.text} "
            "for g in s.segments.order_by('index')]}))")
    found = json.loads(server.manage("shell", "-c", code).stdout.strip().splitlines()[-1])
    return found if found["status"] != "processing" else None


def test_on_redis_an_rq_worker_process_runs_the_jobs():
    """STT_TASKS_BACKEND=rq: the server queues an upload's job on Redis (django-tasks-rq) and an
    `rqworker` process, as django-rq runs it, transcribes it."""
    require_services()
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    import numpy as np
    import redis

    redis.Redis.from_url("redis://127.0.0.1:6379/9").flushdb()
    loud = (np.ones(8000, dtype="<i2") * 5000).tobytes()
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes((loud + bytes(9600)) * 3)
    server = ServerProcess(Path(tempfile.mkdtemp(prefix="stt-rq-")), env={
        "STT_ENGINE": "scripted", "STT_TASKS_BACKEND": "rq", "STT_TASKS_REDIS_URL": "redis://127.0.0.1:6379/9"})
    server.create_user("uploader")
    token = server.create_token("uploader")
    server.start()
    try:
        session = upload(server, token, out.getvalue())
        assert detail(server, token, session)["status"] == "processing"  # nobody runs the database's queue
        worker = subprocess.run([sys.executable, "manage.py", "rqworker", "default", "--burst", "--job-class",
                                 "django_tasks_rq.backend.Job"], cwd=ROOT, env=server.env, capture_output=True,
                                text=True, timeout=120)
        assert worker.returncode == 0, worker.stderr[-2000:]
        found = wait_for(lambda: (d := detail(server, token, session))["status"] != "processing" and d, 30, "the end")
    finally:
        server.stop()
    assert found["status"] == "ended" and [s["text"] for s in found["segments"]] == ["w1 w2 w3"] * 3


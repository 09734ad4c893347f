import os
import re
import unicodedata
import wave
from pathlib import Path

import numpy as np
import pytest
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client

os.environ.setdefault("NO_GCE_CHECK", "true")

DATA = Path(__file__).parent / "data"
ORIGIN = (b"origin", b"http://localhost")
FRAME_BYTES = 3200  # 100 ms of 16 kHz PCM16


def read_wav(path: Path) -> bytes:
    with wave.open(str(path)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2)
        return w.readframes(w.getnframes())


def frames(pcm: bytes, size: int = FRAME_BYTES):
    for i in range(0, len(pcm), size):
        yield pcm[i : i + size]


def loud_frame() -> bytes:
    return (np.ones(1600, dtype="<i2") * 5000).tobytes()


def quiet_frame() -> bytes:
    return bytes(FRAME_BYTES)


def normalise_en(text: str) -> str:
    text = re.sub(r"[^\w\s']", " ", text.lower())
    return " ".join(text.split())


def normalise_ko(text: str) -> str:
    return "".join(ch for ch in text if not unicodedata.category(ch).startswith(("P", "Z", "S")) and not ch.isspace())


@pytest.fixture(autouse=True, scope="session")
def job_worker():
    """Background jobs run as in a server: a worker thread in this process (transcription/workers.py)."""
    from transcription import workers

    workers.start_in_process()


@pytest.fixture(autouse=True)
def test_settings(settings, tmp_path):
    """A dropped socket ends its session at once, unless a test asks for a resume window;
    kept audio goes to a temporary folder; no second pass unless asked for; streams on any port."""
    settings.STT_RESUME_SECONDS = 0
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.STT_REFINE = "0"  # the second pass runs where a test asks for it (test_working_document.py)
    settings.STT_SPEAKERS = False  # speaker labels where a test asks for them (test_speakers.py)
    settings.STT_STREAM_PORTS = ["*"]  # the loopback stream servers' ports (the port rule: test_streams.py)
    # Heavy views on the test's own thread, where its transaction's data is (real servers use the pool:
    # test_hostile.py, test_limits_and_faults.py)
    settings.STT_HEAVY_THREADS = 0


@pytest.fixture
def scripted(settings):
    settings.STT_ENGINE = "scripted"
    return settings


@pytest.fixture
def make_user(django_user_model):
    def make(username="alice"):
        return django_user_model.objects.create_user(username=username, password="a-long-test-password")

    return make


def session_cookie(user) -> bytes:
    client = Client()
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}".encode()


@pytest.fixture
def connect():
    """Open a socket on the real ASGI application (tests disconnect it themselves)."""
    from sttproject.asgi import application

    async def open_socket(user=None, origin=ORIGIN, path="/ws/transcribe/"):
        headers = [origin] if origin else []
        if user is not None:
            from asgiref.sync import sync_to_async

            headers.append((b"cookie", await sync_to_async(session_cookie)(user)))
        communicator = WebsocketCommunicator(application, path, headers=headers)
        return communicator

    return open_socket


async def started(communicator, lang="ko-KR"):
    """Send `start` and return the `started` event."""
    await communicator.send_json_to({"type": "start", "lang": lang})
    event = await communicator.receive_json_from(timeout=5)
    assert event["type"] == "system" and event["event"] == "started", event
    return event


def viewer_socket(session_id, cookie: bytes | None = None, query: str = ""):
    """A live-caption viewer's socket, with a browser's session cookie if given."""
    from sttproject.asgi import application

    headers = [ORIGIN] + ([(b"cookie", cookie)] if cookie else [])
    return WebsocketCommunicator(application, f"/ws/sessions/{session_id}/live/" + (f"?{query}" if query else ""),
                                 headers=headers)


async def receive_until(communicator, predicate, timeout=30.0, limit=10000):
    """Collect events until one matches `predicate` (inclusive)."""
    events = []
    for _ in range(limit):
        event = await communicator.receive_json_from(timeout=timeout)
        events.append(event)
        if predicate(event):
            return events
    raise AssertionError(f"no matching event in {events}")

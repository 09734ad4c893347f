"""Hostile input (issue 20): what a stranger sends costs almost nothing before they are known, limits
are counted on what is really there, and share links cannot spend the owner's money.

The request-body tests run a real server (sttproject/server.py, daphne underneath) over raw sockets:
they send headers that announce a large body, then only a little of it, and expect the answer before
the rest is sent. A server that read first and checked after never answers them.
"""
from __future__ import annotations

import io
import json
import os
import select
import socket
import stat
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from asgiref.sync import sync_to_async
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from knox.models import AuthToken

from transcription.models import ShareLink, TranscriptionSession

from .conftest import ORIGIN, loud_frame, quiet_frame, receive_until, started, viewer_socket
from .servers import ROOT, ServerProcess
from .test_uploads import api, encoded, wait_ended  # noqa: F401  (api: a fixture)

MB = 1024 * 1024


# ---- request bodies, on a real server ----

def http_exchange(server: ServerProcess, head: str, *, body_bytes: int, timeout: float = 3.0,
                  chunked: bool = False) -> tuple[int, dict, bytes, int, float]:
    """Send `head` (request line and headers), then up to `body_bytes` of body while watching for an
    answer: (status, headers, body, body bytes sent, seconds to the answer). AssertionError if no
    answer comes within `timeout` of the last byte sent."""
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.setblocking(False)
    start = time.monotonic()
    sock.sendall(head.encode("latin-1") + b"\r\n")
    piece = b"\x00" * 65536
    if chunked:
        piece = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    sent, answer, deadline = 0, b"", time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            readable, writable, _ = select.select([sock], [sock] if sent < body_bytes else [], [], 0.05)
            if readable:
                data = sock.recv(65536)
                answer += data
                if not data or b"\r\n\r\n" in answer:
                    elapsed = time.monotonic() - start
                    break
            elif writable:
                try:
                    sent += sock.send(piece)
                except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                    pass
                deadline = time.monotonic() + timeout
        else:
            raise AssertionError(f"no answer within {timeout} s after {sent} body bytes")
        sock.settimeout(2)
        head_part, _, rest = answer.partition(b"\r\n\r\n")
        lines = head_part.decode("latin-1").split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines[1:])
        while len(rest) < int(headers.get("Content-Length", 0)):
            more = sock.recv(65536)
            if not more:
                break
            rest += more
        return int(lines[0].split()[1]), headers, rest, sent, elapsed
    finally:
        sock.close()


def request_head(path: str, *, length: int | None, headers: dict | None = None, chunked: bool = False) -> str:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: multipart/form-data; boundary=xyz"]
    lines += [f"Content-Length: {length}"] if length is not None else []
    lines += ["Transfer-Encoding: chunked"] if chunked else []
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return "\r\n".join(lines) + "\r\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = ServerProcess(tmp_path_factory.mktemp("hostile"), env={"STT_ENGINE": "scripted", "STT_MAX_UPLOAD_MB": "160"})
    server.create_user("member")
    server.token = server.create_token("member")
    server.start()
    yield server
    server.stop()


@pytest.mark.parametrize("path, status", [("/v1/audio/transcriptions", 401), ("/api/sessions/", 401), ("/upload/", 302)])
def test_an_upload_from_someone_not_logged_in_is_refused_before_its_body_is_read(server, path, status):
    answer, headers, body, sent, seconds = http_exchange(server, request_head(path, length=15 * MB), body_bytes=MB)
    assert answer == status and sent <= 2 * MB and seconds < 2.0, (answer, sent, seconds)
    if path.startswith("/v1"):
        assert json.loads(body)["error"]["code"] == "invalid_api_key"  # OpenAI's shape: its client raises from it
    elif path.startswith("/api"):
        assert json.loads(body)["code"] == "unauthenticated"
    else:
        assert headers["Location"].startswith("/accounts/login/")


def test_a_body_declared_over_the_limit_gets_413_without_being_read(server):
    auth = {"Authorization": f"Bearer {server.token}"}
    answer, _, body, sent, seconds = http_exchange(
        server, request_head("/v1/audio/transcriptions", length=170 * MB, headers=auth), body_bytes=MB)
    assert answer == 413 and json.loads(body)["error"]["code"] == "too_large" and sent <= 2 * MB, (answer, body)
    answer, _, body, sent, _ = http_exchange(server, request_head("/accounts/login/", length=50 * MB), body_bytes=MB)
    assert answer == 413 and sent <= 2 * MB  # a page's form: Django's 2.5 MB


def test_a_body_that_declares_no_length_is_cut_off_at_the_limit(server):
    answer, _, _, sent, _ = http_exchange(server, request_head("/accounts/login/", length=None, chunked=True),
                                          body_bytes=20 * MB, chunked=True)
    assert answer == 413 and sent < 10 * MB, (answer, sent)


def test_a_large_upload_is_spooled_to_disk_and_never_held_in_memory(server):
    """A logged-in 150 MB upload (not audio: refused once read): the server's peak memory grows by far
    less than the body (Twisted's own form parser held it whole, and daphne queued it whole)."""
    before = int(server.status("VmHWM")) / 1024
    boundary = "xyz"
    size = 150 * MB
    prologue = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.bin\"\r\n"
                "Content-Type: application/octet-stream\r\n\r\n").encode()
    epilogue = f"\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"language\"\r\n\r\nko-KR\r\n--{boundary}--\r\n".encode()
    head = request_head("/v1/audio/transcriptions", length=len(prologue) + size + len(epilogue),
                        headers={"Authorization": f"Bearer {server.token}"})
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(head.encode() + b"\r\n" + prologue)
        block = os.urandom(MB)
        for _ in range(size // MB):
            sock.sendall(block)
        sock.sendall(epilogue)
        sock.settimeout(30)
        answer = b""
        while b"not_audio" not in answer and len(answer) < 4096:
            more = sock.recv(65536)
            if not more:
                break
            answer += more
    assert answer.split()[1] == b"400" and b"not_audio" in answer, answer
    growth = int(server.status("VmHWM")) / 1024 - before
    assert growth < 100, f"peak memory grew by {growth:.0f} MB for a {size // MB} MB body"


# ---- the length of an upload is what decodes, not what its header says ----

def encoded_tone(seconds: float, container: str, codec: str, rate: int, *, bit_rate: int | None = None,
                 seekable: bool = True) -> bytes:
    """A 220 Hz tone, encoded with PyAV (test_uploads.encoded)."""
    t = np.arange(int(seconds * 16000)) / 16000
    pcm = (np.sin(2 * np.pi * 220 * t) * 8000).astype("<i2").tobytes()
    return encoded(pcm, container, codec, rate, bit_rate=bit_rate, seekable=seekable)


@pytest.mark.django_db(transaction=True)
def test_an_upload_longer_than_the_limit_is_refused_whatever_its_header_says(api, scripted, settings):
    """A 60 s WebM with no duration in its header (MediaRecorder's), and an mp3 whose first 10 s at
    320 kbps make its header say 13 s of what is 120 s: both stop with too_long at 30 s."""
    settings.STT_MAX_UPLOAD_SECONDS = 30
    _, client = api
    webm = encoded_tone(60, "webm", "libopus", 48000, seekable=False)
    mp3 = encoded_tone(10, "mp3", "mp3", 44100, bit_rate=320000) + encoded_tone(110, "mp3", "mp3", 8000, bit_rate=8000)
    for name, data in (("memo.webm", webm), ("lying.mp3", mp3)):
        answer = client.post("/api/sessions/", {"file": SimpleUploadedFile(name, data), "language": "ko-KR"},
                             format="multipart")
        assert answer.status_code == 202, (name, answer.content)  # the header passed the first check
        detail = wait_ended(client, answer.json()["id"], timeout=60)
        assert detail["status"] == "failed" and detail["failure"]["code"] == "too_long", (name, detail)
        assert detail["segments"] == []
        session = TranscriptionSession.objects.get(pk=detail["id"])
        assert not session.audio and not any((Path(settings.MEDIA_ROOT) / "audio").glob(f"{session.pk}*"))


def test_decoding_counts_samples_and_follows_a_change_of_sample_rate(tmp_path):
    from transcription.sources.decoding import pcm16_chunks

    path = tmp_path / "joined.mp3"
    path.write_bytes(encoded_tone(4, "mp3", "mp3", 44100, bit_rate=128000) + encoded_tone(6, "mp3", "mp3", 8000, bit_rate=8000))
    seconds = sum(len(chunk) for chunk in pcm16_chunks(path)) / 32000
    assert 9.8 < seconds < 10.3, seconds


# ---- the OpenAI-compatible route checks its fields as REST and the socket do ----

@pytest.mark.django_db(transaction=True)
def test_openai_route_fields_have_the_sockets_limits(api, scripted):
    user, _ = api
    from django.test import Client

    client = Client(HTTP_AUTHORIZATION=f"Bearer {AuthToken.objects.create(user)[1]}")
    wav = io.BytesIO()
    import wave

    with wave.open(wav, "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
        w.writeframes(bytes(16000))

    def post(**fields):
        return client.post("/v1/audio/transcriptions",
                           {"file": SimpleUploadedFile("a.wav", wav.getvalue()), "model": "whisper-1", **fields})

    for fields, param in (({"language": "k" * 2100}, "language"), ({"prompt": "x" * 20000}, "prompt"),
                          ({"prompt": ",".join(f"term{i}" for i in range(101))}, "prompt")):
        answer = post(**fields)
        assert answer.status_code == 400, (param, answer.content)
        assert answer.json()["error"]["code"] == "bad_request" and answer.json()["error"]["param"] == param
    assert not TranscriptionSession.objects.exists()


# ---- share links cannot spend the owner's money ----

@pytest.mark.django_db(transaction=True)
async def test_viewers_get_captions_in_at_most_the_capped_number_of_languages(connect, make_user, scripted, settings):
    settings.STT_TRANSLATOR = "scripted"
    settings.STT_MAX_VIEWER_LANGUAGES = 1
    owner = await sync_to_async(make_user)("owner")
    speaker = await connect(owner)
    await speaker.connect()
    session_id = (await started(speaker))["session"]
    link = await ShareLink.objects.acreate(session_id=session_id)
    cookie = await sync_to_async(shared_cookie)(link)
    french = viewer_socket(session_id, cookie, query="translate_to=fr")
    german = viewer_socket(session_id, cookie, query="translate_to=de")
    unknown = viewer_socket(session_id, cookie, query="translate_to=xx")
    for viewer in (french, german, unknown):
        assert (await viewer.connect())[0]
        assert (await viewer.receive_json_from(timeout=5))["type"] == "snapshot"
    assert (await german.receive_json_from(timeout=5))["code"] == "too_many_languages"
    assert (await unknown.receive_json_from(timeout=5))["code"] == "translation_unsupported"
    for frame in [loud_frame()] * 5 + [quiet_frame()] * 3:
        await speaker.send_to(bytes_data=frame)
    await receive_until(french, lambda e: e["type"] == "translation" and e.get("done"), timeout=10)
    await speaker.send_json_to({"type": "end"})
    await receive_until(speaker, lambda e: e.get("event") == "ended", timeout=10)
    languages = {t.language async for t in __import__("transcription.models", fromlist=["Translation"])
                 .Translation.objects.filter(segment__session_id=session_id)}
    assert languages == {"fr"}
    for viewer in (french, german, unknown, speaker):
        await viewer.disconnect()


def shared_cookie(link) -> bytes:
    """A browser that opened the share link (its session holds the grant)."""
    from django.conf import settings
    from django.test import Client

    browser = Client()
    assert browser.get(f"/live/{link.token}/").status_code == 200
    return f"{settings.SESSION_COOKIE_NAME}={browser.cookies[settings.SESSION_COOKIE_NAME].value}".encode()


def test_the_openai_translator_refuses_languages_it_was_not_given():
    from transcription.translation.openai import OpenAITranslator

    assert OpenAITranslator().supports(source="ko-KR", target="en-GB")
    assert not OpenAITranslator().supports(source="ko-KR", target="tlh")


# ---- the smaller holes ----

def test_one_user_is_allowed_fewer_sessions_than_the_process_by_default():
    code = "from django.conf import settings; print(settings.STT_MAX_SESSIONS, settings.STT_MAX_SESSIONS_PER_USER)"
    env = {k: v for k, v in os.environ.items() if not k.startswith("STT_MAX_SESSIONS")}
    for process_limit in ("2", "8"):
        out = subprocess.run([sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT, capture_output=True,
                             text=True, env={**env, "STT_MAX_SESSIONS": process_limit}, check=True)
        total, per_user = map(int, out.stdout.split()[-2:])
        assert per_user < total, out.stdout


@pytest.mark.django_db(transaction=True)
async def test_one_users_sessions_held_for_resume_leave_room_for_others(connect, make_user, scripted, settings):
    settings.STT_MAX_SESSIONS, settings.STT_MAX_SESSIONS_PER_USER = 2, 1
    settings.STT_RESUME_SECONDS = 30
    mallory, bob = await sync_to_async(make_user)("mallory"), await sync_to_async(make_user)("bob")
    dropped = await connect(mallory)
    await dropped.connect()
    await started(dropped)
    await dropped.disconnect()  # held for a resume
    again = await connect(mallory)
    await again.connect()
    await again.send_json_to({"type": "start", "lang": "ko-KR"})
    assert (await again.receive_json_from(timeout=5))["code"] == "too_many_sessions"
    other = await connect(bob)
    await other.connect()
    await started(other)  # the server still has room for someone else
    await other.send_json_to({"type": "end"})
    await receive_until(other, lambda e: e.get("event") == "ended", timeout=10)
    await again.disconnect()
    await other.disconnect()
    from transcription.realtime.registry import sessions

    for live in list(sessions.running()):
        await live.end(reason="end", notify=False)


@pytest.mark.django_db(transaction=True)
async def test_an_upload_viewer_is_closed_when_its_link_expires(make_user, settings):
    owner = await sync_to_async(make_user)("owner")
    session = await TranscriptionSession.objects.acreate(owner=owner, language="ko-KR", engine="scripted",
                                                         status=TranscriptionSession.Status.PROCESSING, source="upload")
    link = await ShareLink.objects.acreate(session=session, expires_at=timezone.now() + timedelta(hours=1))
    viewer = viewer_socket(session.pk, await sync_to_async(shared_cookie)(link))
    assert (await viewer.connect())[0]
    assert (await viewer.receive_json_from(timeout=5))["status"] == "processing"
    await ShareLink.objects.filter(pk=link.pk).aupdate(expires_at=timezone.now() - timedelta(seconds=1))
    closed = await viewer.receive_output(timeout=5)
    assert closed == {"type": "websocket.close", "code": 4403}
    await viewer.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_a_socket_with_a_token_ignores_the_browsers_cookie(make_user):
    """A program's token for bob, sent beside a browser cookie that holds a share link to alice's
    session: the socket is bob's alone, and bob may not watch alice's session."""
    from channels.testing import WebsocketCommunicator

    from sttproject.asgi import application

    alice, bob = await sync_to_async(make_user)("alice"), await sync_to_async(make_user)("bob")
    session = await TranscriptionSession.objects.acreate(owner=alice, language="ko-KR", engine="scripted")
    cookie = await sync_to_async(shared_cookie)(await ShareLink.objects.acreate(session=session))
    token = (await sync_to_async(AuthToken.objects.create)(bob))[1]
    with_cookie_only = viewer_socket(session.pk, cookie)
    assert (await with_cookie_only.connect())[0]
    assert (await with_cookie_only.receive_json_from(timeout=5))["type"] == "snapshot"  # the link works
    await with_cookie_only.disconnect()
    both = WebsocketCommunicator(application, f"/ws/sessions/{session.pk}/live/",
                                 headers=[ORIGIN, (b"cookie", cookie), (b"authorization", f"Bearer {token}".encode())])
    assert (await both.connect())[0]
    assert await both.receive_output(timeout=5) == {"type": "websocket.close", "code": 4403}
    await both.disconnect()


def test_the_generated_secret_key_file_is_created_private(tmp_path, monkeypatch):
    """Private from its creation: even if setting its mode afterwards never happened."""
    import sttproject.settings as project_settings

    monkeypatch.setattr(project_settings, "DATA_DIR", tmp_path)
    monkeypatch.setattr(os, "chmod", lambda *args, **kwargs: None)
    monkeypatch.setattr(Path, "chmod", lambda *args, **kwargs: None)
    old_mask = os.umask(0o022)
    try:
        key = project_settings._dev_secret_key()
    finally:
        os.umask(old_mask)
    path = tmp_path / "secret_key"
    assert path.read_text().strip() == key and len(key) > 40
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

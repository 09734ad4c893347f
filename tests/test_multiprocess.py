"""Two daphne processes sharing the machine's real Redis and PostgreSQL.

A speaker streams to process A; a viewer connected to process B receives every final, in order,
through the Redis channel layer; both processes see the same stored session through the REST API.
"""
import asyncio
import json

import pytest
import websockets

from .conftest import loud_frame, quiet_frame
from .servers import ServerProcess, postgres_database, require_services

require_services()
pytestmark = pytest.mark.multiprocess


@pytest.fixture(scope="module")
def database():
    with postgres_database() as url:
        yield url


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, database):
    env = {"DATABASE_URL": database, "REDIS_URL": "redis://127.0.0.1:6379/0", "STT_ENGINE": "scripted",
           "STT_RESUME_SECONDS": "0"}
    a = ServerProcess(tmp_path_factory.mktemp("a"), env=env)  # migrates the shared database
    b = ServerProcess(tmp_path_factory.mktemp("b"), env=env, migrate=False)
    a.create_user("speaker")
    token = a.create_token("speaker")
    a.start()
    b.start()
    yield a, b, token
    a.stop()
    b.stop()


def test_a_viewer_on_another_process_sees_every_final_in_order(cluster):
    a, b, token = cluster
    auth = {"Authorization": f"Bearer {token}"}

    async def scenario():
        async with websockets.connect(f"{a.ws_url}/ws/transcribe/", additional_headers=auth) as speaker:
            await speaker.send(json.dumps({"type": "start", "lang": "en-US"}))
            session = json.loads(await speaker.recv())["session"]
            async with websockets.connect(f"{b.ws_url}/ws/sessions/{session}/live/", additional_headers=auth) as viewer:
                snapshot = json.loads(await asyncio.wait_for(viewer.recv(), 10))
                assert snapshot["type"] == "snapshot" and snapshot["status"] == "active"
                for n in range(1, 9):  # eight phrases of growing length
                    for frame in [loud_frame()] * (n + 1) + [quiet_frame()]:
                        await speaker.send(frame)
                        await asyncio.sleep(0.01)
                await speaker.send(json.dumps({"type": "end"}))
                spoken = []
                async for raw in speaker:
                    event = json.loads(raw)
                    spoken.append(event)
                    if event.get("event") == "ended":
                        break
                watched = []
                async for raw in viewer:
                    event = json.loads(raw)
                    watched.append(event)
                    if event.get("event") == "ended":
                        break
        return session, spoken, watched

    session, spoken, watched = asyncio.run(asyncio.wait_for(scenario(), 60))
    said = [(e["segment"], e["text"], e["seq"]) for e in spoken if e["type"] == "final"]
    seen = [(e["segment"], e["text"], e["seq"]) for e in watched if e["type"] == "final"]
    assert len(said) == 8 and seen == said
    assert said[-1][1] == "w1 w2 w3 w4 w5"
    assert [e["seq"] for e in watched] == sorted(e["seq"] for e in watched)

    import urllib.request

    for server in (a, b):  # the same stored session, whichever process is asked
        request = urllib.request.Request(f"{server.url}/api/sessions/{session}/", headers=auth)
        detail = json.loads(urllib.request.urlopen(request, timeout=10).read())
        assert [s["text"] for s in detail["segments"]] == [text for _, text, _ in said]
        assert detail["status"] == "ended"


def test_a_resume_on_the_other_process_is_refused_cleanly(cluster):
    """Sessions live in the process that runs them: resume needs sticky routing (docs/operations.md)."""
    a, b, token = cluster
    auth = {"Authorization": f"Bearer {token}"}

    async def scenario():
        async with websockets.connect(f"{a.ws_url}/ws/transcribe/", additional_headers=auth) as speaker:
            await speaker.send(json.dumps({"type": "start", "lang": "en-US"}))
            session = json.loads(await speaker.recv())["session"]
            async with websockets.connect(f"{b.ws_url}/ws/transcribe/", additional_headers=auth) as other:
                await other.send(json.dumps({"type": "resume", "session": session, "last_seq": 1}))
                return json.loads(await asyncio.wait_for(other.recv(), 10))

    answer = asyncio.run(scenario())
    assert answer["type"] == "error" and answer["code"] == "session_expired"


# ---- through the pauses real speakers make ----

def microphone_silence(seconds: float, seed: int = 0) -> list[bytes]:
    """What a microphone sends while nobody speaks: a quiet room's faint noise, in 100 ms frames."""
    import numpy as np

    noise = np.random.default_rng(seed).normal(0, 30, int(seconds * 16000)).astype("<i2").tobytes()
    return [noise[i : i + 3200] for i in range(0, len(noise), 3200)]


def speech(name: str) -> list[bytes]:
    from .conftest import DATA, frames, read_wav

    return list(frames(read_wav(DATA / "ko" / f"{name}.wav")))


@pytest.fixture(scope="module")
def whisper_cluster(tmp_path_factory, database, cluster):  # (cluster migrates the database)
    """Speaker's process A runs whisper; viewer's process B only relays (never loads a model)."""
    env = {"DATABASE_URL": database, "REDIS_URL": "redis://127.0.0.1:6379/0", "STT_ENGINE": "whisper",
           "STT_RESUME_SECONDS": "0", "STT_STREAM_ALLOWED_HOSTS": "127.0.0.1"}
    a = ServerProcess(tmp_path_factory.mktemp("wa"), env=env, migrate=False)
    b = ServerProcess(tmp_path_factory.mktemp("wb"), env=env, migrate=False)
    a.create_user("talker")
    token = a.create_token("talker")
    a.start()
    b.start()
    yield a, b, token
    a.stop()
    b.stop()


@pytest.mark.model
def test_a_viewer_on_another_process_gets_every_final_through_silence_and_a_keepalive_minute(whisper_cluster):
    """Real Korean speech at real time to process A; 15 s of microphone silence, later 60 s with
    keepalives only; the viewer on process B receives every final, in order, with the same seq."""
    a, b, token = whisper_cluster
    auth = {"Authorization": f"Bearer {token}"}
    before = speech("kspon_001") + microphone_silence(1, 1) + speech("kspon_006")
    middle = speech("kspon_010")
    after = speech("kspon_013") + microphone_silence(1, 2)

    async def send_real_time(ws, frames):
        began = asyncio.get_running_loop().time()
        for i, frame in enumerate(frames):
            await asyncio.sleep(max(0.0, began + i * 0.1 - asyncio.get_running_loop().time()))
            await ws.send(frame)

    async def collect(ws, into):
        try:
            async for raw in ws:
                event = json.loads(raw)
                into.append(event)
                if event.get("event") == "ended":
                    return
        except websockets.exceptions.ConnectionClosed as closed:
            into.append({"type": "closed", "code": closed.rcvd.code if closed.rcvd else None})

    async def scenario():
        spoken, watched = [], []
        async with websockets.connect(f"{a.ws_url}/ws/transcribe/", additional_headers=auth) as speaker:
            await speaker.send(json.dumps({"type": "start", "lang": "ko-KR"}))
            session = json.loads(await speaker.recv())["session"]
            async with websockets.connect(f"{b.ws_url}/ws/sessions/{session}/live/", additional_headers=auth) as viewer:
                snapshot = json.loads(await asyncio.wait_for(viewer.recv(), 10))
                assert snapshot["type"] == "snapshot" and snapshot["status"] == "active"
                listening = asyncio.gather(collect(speaker, spoken), collect(viewer, watched))
                await send_real_time(speaker, before)
                await send_real_time(speaker, microphone_silence(15, 3))
                await send_real_time(speaker, middle)
                for _ in range(12):  # a minute of keepalives only, no audio
                    await asyncio.sleep(5)
                    await speaker.send(json.dumps({"type": "keepalive"}))
                await send_real_time(speaker, after)
                await speaker.send(json.dumps({"type": "end"}))
                await asyncio.wait_for(listening, 60)
        return spoken, watched

    spoken, watched = asyncio.run(asyncio.wait_for(scenario(), 240))
    said = [(e["segment"], e["text"], e["seq"]) for e in spoken if e["type"] == "final"]
    seen = [(e["segment"], e["text"], e["seq"]) for e in watched if e["type"] == "final"]
    assert len(said) >= 4, said  # four utterances, each at least one final
    assert seen == said, watched[-1]
    keepalive_minute_at_ms = (len(before) + 150 + len(middle)) * 100  # audio time: keepalives carry none
    late = [e for e in spoken if e["type"] == "final" and e["start_ms"] >= keepalive_minute_at_ms - 500]
    assert late, "the utterance after the keepalive minute gave a final"
    assert [e["seq"] for e in watched] == sorted(e["seq"] for e in watched)
    assert watched[-1].get("event") == "ended"


@pytest.mark.model
def test_a_stream_pulled_by_one_process_is_watched_and_stopped_through_another(whisper_cluster, tmp_path):
    """Process A pulls an HLS stream (jfk, with its own pauses, at real time); a viewer on process B
    gets its finals as they come through Redis, and the owner's stop, sent to B, ends it on A."""
    import urllib.request

    from .conftest import DATA
    from .fakes.stream_server import StreamServer, write_hls

    a, b, token = whisper_cluster
    auth = {"Authorization": f"Bearer {token}"}

    def rest(server, method, path, body=None):
        request = urllib.request.Request(f"{server.url}{path}", method=method, data=json.dumps(body).encode()
                                         if body is not None else None, headers={**auth, "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())

    async def scenario(session):
        async with websockets.connect(f"{b.ws_url}/ws/sessions/{session}/live/", additional_headers=auth) as viewer:
            watched, stopped = [], False
            async for raw in viewer:
                event = json.loads(raw)
                watched.append(event)
                if not stopped and sum(e["type"] == "final" for e in watched) == 2:
                    stopped = True
                    status, _ = await asyncio.to_thread(rest, b, "POST", f"/api/sessions/{session}/stop/")
                    assert status == 202
                if event.get("event") == "ended":
                    return watched

    with StreamServer(write_hls(DATA / "en" / "jfk.wav", tmp_path / "hls").parent) as source:
        status, created = rest(a, "POST", "/api/sessions/", {"source_url": f"{source.url}/live.m3u8",
                                                             "language": "en-US"})
        assert status == 201
        watched = asyncio.run(asyncio.wait_for(scenario(created["id"]), 60))
    finals = [e["text"] for e in watched if e["type"] == "final"]
    assert watched[-1]["reason"] == "end" and len(finals) >= 2
    _, detail = rest(b, "GET", f"/api/sessions/{created['id']}/")
    assert detail["status"] == "ended" and detail["source"] == "stream"
    assert [s["text"] for s in detail["segments"]] == finals  # stored, every one, before it was seen
    assert detail["audio_ms"] < 10_500  # stopped before the stream's 11.0 s ended (the reason says so too)

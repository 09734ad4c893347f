"""Two daphne processes sharing the machine's real Redis and PostgreSQL.

A speaker streams to process A; a viewer connected to process B receives every final, in order,
through the Redis channel layer; both processes see the same stored session through the REST API.
"""
import asyncio
import json
import os
import socket
import uuid

import pytest
import websockets

from .conftest import loud_frame, quiet_frame
from .servers import ServerProcess

REDIS = ("127.0.0.1", 6379)
POSTGRES = ("127.0.0.1", 5432)


def reachable(address) -> bool:
    try:
        socket.create_connection(address, timeout=1).close()
        return True
    except OSError:
        return False


if not (reachable(REDIS) and reachable(POSTGRES)):
    if os.environ.get("STT_REQUIRE_SERVICES") == "1":
        raise RuntimeError("Redis (127.0.0.1:6379) and PostgreSQL (127.0.0.1:5432) are needed by this test")
    pytest.skip("Redis and PostgreSQL are not running on this machine", allow_module_level=True)


@pytest.fixture(scope="module")
def database():
    """A fresh PostgreSQL database for the two processes, dropped afterwards."""
    import psycopg

    name = f"stt_multiprocess_{uuid.uuid4().hex[:8]}"
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"postgres://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


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

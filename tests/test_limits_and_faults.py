"""Limits (audio rate, connections per user) and faults (engine hang, Redis down, SIGTERM)."""
import asyncio
import json
import shutil
import signal
import sqlite3
import subprocess
import threading
import time

import numpy as np
import pytest
from asgiref.sync import sync_to_async

from transcription.engines.scripted import HANG_SAMPLE
from transcription.models import Segment, TranscriptionSession

from .conftest import loud_frame, quiet_frame, receive_until, session_cookie, started, viewer_socket
from .servers import ServerProcess, free_port

def phrase(units=4):
    return [loud_frame()] * units + [quiet_frame()]


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("scripted")
async def test_audio_far_faster_than_real_time_is_refused_with_rate_and_nothing_accepted_is_lost(connect, make_user, settings):
    settings.STT_MAX_AUDIO_RATE = 2.0
    settings.STT_AUDIO_BURST_SECONDS = 1.0  # ten frames up front
    ws = await connect(user=await sync_to_async(make_user)())
    await ws.connect()
    start = await started(ws)
    for frame in phrase() + phrase() + phrase() + phrase():  # 2 s of audio at once
        await ws.send_to(bytes_data=frame)
    await asyncio.sleep(1.0)  # the bucket refills at 2x real time: 2 s of audio
    for frame in [quiet_frame()] + phrase(6):  # (the quiet frame ends any phrase left open by refusals)
        await ws.send_to(bytes_data=frame)
    await ws.send_json_to({"type": "end"})
    events = await receive_until(ws, lambda e: e.get("event") == "ended")
    errors = [e["code"] for e in events if e["type"] == "error"]
    finals = [e["text"] for e in events if e["type"] == "final"]
    assert errors and set(errors) == {"rate"}
    assert finals[:2] == ["w1 w2", "w1 w2"] and finals[-1] == "w1 w2 w3"  # after waiting, accepted again
    stored = [s.text async for s in Segment.objects.filter(session_id=start["session"]).order_by("index")]
    assert stored == finals
    await ws.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_a_database_call_stuck_for_seconds_holds_back_neither_live_audio_nor_finals(connect, make_user,
                                                                                         settings):
    """Django runs every synchronous view and default database call on one thread. Channels would queue
    every audio frame behind it (close_old_connections before each message): one slow write stalled every
    session's interims. And a final, sent only once stored, would wait for any slow page: the live path
    stores on threads of its own (realtime/live_db.py)."""
    settings.STT_ENGINE = "scripted"
    user = await sync_to_async(make_user)()
    communicator = await connect(user=user)
    assert (await communicator.connect())[0]
    await started(communicator)
    stuck = asyncio.ensure_future(sync_to_async(time.sleep)(4))  # the shared thread, busy (a slow page)
    await asyncio.sleep(0.1)
    began = time.monotonic()
    await communicator.send_to(bytes_data=loud_frame())
    interim = await communicator.receive_json_from(timeout=2)
    assert interim["type"] == "interim" and interim["text"] == "w1"
    await communicator.send_to(bytes_data=quiet_frame())
    final = (await receive_until(communicator, lambda e: e["type"] == "final", timeout=2))[-1]
    assert time.monotonic() - began < 2 and not stuck.done()  # sent while the thread was busy
    await stuck
    assert final["text"] == "w1" and await Segment.objects.filter(pk=final["segment"]).aexists()  # (stored first)
    await communicator.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_the_live_database_threads_keep_their_sqlite_connections_between_writes(make_user, monkeypatch):
    """Every final, label and translation is one call on the live path's database threads. Opening a
    SQLite connection (with its pragmas) for each was most of that time: at 300 relay sessions it held
    every final back by seconds (docs/benchmarks.md, bench/load.py). The connections are kept instead."""
    from django.db import connection
    from django.db.backends.sqlite3.base import DatabaseWrapper

    from transcription.realtime.live_db import LIVE_DB_THREADS, live_db

    if connection.vendor != "sqlite":
        pytest.skip("SQLite's kept connection (PostgreSQL keeps DATABASE_CONN_MAX_AGE's default of 0)")

    from transcription import services
    from transcription.engines import Result

    session = await sync_to_async(TranscriptionSession.objects.create)(owner=await sync_to_async(make_user)(),
                                                                      language="ko-KR")
    opened, open_connection = [], DatabaseWrapper.get_new_connection
    monkeypatch.setattr(DatabaseWrapper, "get_new_connection",
                        lambda self, params: opened.append(1) or open_connection(self, params))
    for index in range(6):
        await live_db(services.segment_create)(
            session_id=session.pk, index=index, seq=index + 1, result=Result(f"문장 {index}", True, index * 1000,
                                                                               index * 1000 + 900))
    assert await Segment.objects.filter(session=session).acount() == 6
    assert len(opened) <= LIVE_DB_THREADS, f"{len(opened)} connections opened for 6 finals"


@pytest.mark.django_db(transaction=True)
async def test_connections_per_user_are_capped(connect, make_user, settings):
    settings.STT_MAX_CONNECTIONS_PER_USER = 2
    alice, bob = await sync_to_async(make_user)("alice"), await sync_to_async(make_user)("bob")
    first, second, third = [await connect(user=alice) for _ in range(3)]
    for ws in (first, second, third):
        await ws.connect()
    assert await third.receive_output(timeout=5) == {"type": "websocket.close", "code": 4429}
    other = await connect(user=bob)  # another user is not affected
    await other.connect()
    assert await other.receive_nothing(timeout=0.2)
    await first.disconnect()
    again = await connect(user=alice)
    await again.connect()
    assert await again.receive_nothing(timeout=0.2)  # a slot was freed
    for ws in (second, third, other, again):
        await ws.disconnect()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("scripted")
@pytest.mark.slow
async def test_a_hung_engine_is_detected_the_session_ends_and_the_server_keeps_serving(connect, make_user, settings):
    settings.STT_ENGINE_STALL_SECONDS = 1.0
    settings.STT_SCRIPTED_HANG_SECONDS = 3.0
    ws = await connect(user=await sync_to_async(make_user)())
    await ws.connect()
    start = await started(ws)
    for frame in phrase():
        await ws.send_to(bytes_data=frame)
    await ws.send_to(bytes_data=(np.ones(1600, dtype="<i2") * HANG_SAMPLE).tobytes())
    began = time.monotonic()
    for _ in range(5):  # audio waits while the engine hangs
        await ws.send_to(bytes_data=loud_frame())
        await asyncio.sleep(0.1)
    events = await receive_until(ws, lambda e: e.get("event") == "ended", timeout=10)
    assert time.monotonic() - began < 3.0  # detected before the engine came back by itself
    errors = [e for e in events if e["type"] == "error" and e["code"] != "not_started"]
    assert [e["code"] for e in errors] == ["engine_error"] and "stopped responding" in errors[0]["message"]
    assert [e["text"] for e in events if e["type"] == "final"] == ["w1 w2"]
    assert events[-1]["reason"] == "error"
    assert (await TranscriptionSession.objects.aget(pk=start["session"])).status == "failed"
    assert [s.text async for s in Segment.objects.filter(session_id=start["session"])] == ["w1 w2"]
    await started(ws)  # the server goes on serving, on the same socket too
    await ws.send_json_to({"type": "end"})
    await receive_until(ws, lambda e: e.get("event") == "ended")
    await ws.disconnect()
    await asyncio.sleep(3.0)  # the hung call returns; its thread ends
    assert [t.name for t in threading.enumerate() if t.name == f"stt-{start['session']}"] == []


# ---- the channel layer (Redis) failing ----

def redis_layer(port: int, **options) -> dict:
    """The channel layer exactly as settings build it for REDIS_URL, on a private port."""
    from sttproject.settings import redis_channel_layer

    return {"default": redis_channel_layer(f"redis://127.0.0.1:{port}/0", **options)}


async def viewer_refused(viewer) -> bool:
    """The viewer is told live captions are unavailable: `live_unavailable`, then closed with 4013."""
    await viewer.connect(timeout=5)
    first = await viewer.receive_output(timeout=10)
    assert first["type"] == "websocket.send", first
    assert json.loads(first["text"])["code"] == "live_unavailable", first
    assert await viewer.receive_output(timeout=5) == {"type": "websocket.close", "code": 4013}
    return True


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("scripted")
async def test_redis_down_at_start_speaker_transcribes_viewers_are_told(connect, make_user, settings):
    settings.CHANNEL_LAYERS = redis_layer(free_port())  # nothing listens there
    alice = await sync_to_async(make_user)()
    ws = await connect(user=alice)
    await ws.connect()
    start = await started(ws)
    viewer = viewer_socket(start["session"], await sync_to_async(session_cookie)(alice))
    assert await viewer_refused(viewer)
    for frame in phrase() + phrase(6):
        await ws.send_to(bytes_data=frame)
    await ws.send_json_to({"type": "end"})
    events = await receive_until(ws, lambda e: e.get("event") == "ended", timeout=15)
    assert [e["text"] for e in events if e["type"] == "final"] == ["w1 w2", "w1 w2 w3"]
    assert not [e for e in events if e["type"] == "error"]
    assert await Segment.objects.filter(session_id=start["session"]).acount() == 2
    await ws.disconnect()
    await viewer.disconnect()


class RedisServer:
    """A private redis-server on a free port, which a test can stop and start again."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc = None

    def start(self) -> None:
        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import redis

        for _ in range(100):
            try:
                redis.Redis(port=self.port).ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(5)


@pytest.mark.skipif(not shutil.which("redis-server"), reason="redis-server is not installed")
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("scripted")
async def test_redis_lost_while_running_speaker_goes_on_viewers_recover_when_it_returns(connect, make_user, settings):
    redis = RedisServer()
    redis.start()
    settings.CHANNEL_LAYERS = redis_layer(redis.port)
    try:
        alice = await sync_to_async(make_user)()
        cookie = await sync_to_async(session_cookie)(alice)
        ws = await connect(user=alice)
        await ws.connect()
        start = await started(ws)
        viewer = viewer_socket(start["session"], cookie)
        await viewer.connect()
        assert (await viewer.receive_json_from(timeout=5))["type"] == "snapshot"
        for frame in phrase():
            await ws.send_to(bytes_data=frame)
        seen = await receive_until(viewer, lambda e: e["type"] == "final", timeout=5)
        assert seen[-1]["text"] == "w1 w2"

        await sync_to_async(redis.stop)()
        for frame in phrase(6):  # the speaker goes on while Redis is gone
            await ws.send_to(bytes_data=frame)
        spoken = await receive_until(ws, lambda e: e["type"] == "final" and e["phrase"] == 1, timeout=10)
        assert spoken[-1]["text"] == "w1 w2 w3"
        assert not [e for e in spoken if e["type"] == "error"]
        # The watching viewer is not left silently connected: closed with 4013, so its page reconnects.
        assert await viewer.receive_output(timeout=15) == {"type": "websocket.close", "code": 4013}
        assert await viewer_refused(viewer_socket(start["session"], cookie))

        await sync_to_async(redis.start)()  # back: a viewer reconnecting (as the page does, with backoff)
        for attempt in range(10):           # gets everything so far, then live
            again = viewer_socket(start["session"], cookie)
            await again.connect()
            output = await again.receive_output(timeout=5)
            if output["type"] == "websocket.send" and json.loads(output["text"])["type"] == "snapshot":
                break
            await again.disconnect()
            await asyncio.sleep(0.5)
        snapshot = json.loads(output["text"])
        assert [f["text"] for f in snapshot["finals"]] == ["w1 w2", "w1 w2 w3"]
        for frame in phrase(8):
            await ws.send_to(bytes_data=frame)
        live = await receive_until(again, lambda e: e["type"] == "final", timeout=10)
        assert live[-1]["text"] == "w1 w2 w3 w4"
        await ws.send_json_to({"type": "end"})
        await receive_until(ws, lambda e: e.get("event") == "ended", timeout=10)
        for socket in (ws, viewer, again):
            await socket.disconnect()
    finally:
        redis.stop()


@pytest.mark.skipif(not shutil.which("redis-server"), reason="redis-server is not installed")
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("scripted")
@pytest.mark.slow
async def test_a_quiet_session_keeps_its_viewers_on_redis(connect, make_user, settings):
    """12 s without an event (keepalives only): more than two of the layer's 5 s blocking receives."""
    redis = RedisServer()
    redis.start()
    settings.CHANNEL_LAYERS = redis_layer(redis.port)  # as settings make it for REDIS_URL
    try:
        alice = await sync_to_async(make_user)()
        ws = await connect(user=alice)
        await ws.connect()
        start = await started(ws)
        viewer = viewer_socket(start["session"], await sync_to_async(session_cookie)(alice))
        await viewer.connect()
        assert (await viewer.receive_json_from(timeout=5))["type"] == "snapshot"
        for _ in range(24):
            await asyncio.sleep(0.5)
            await ws.send_json_to({"type": "keepalive"})
        for frame in phrase():
            await ws.send_to(bytes_data=frame)
        seen = await receive_until(viewer, lambda e: e["type"] == "final", timeout=10)
        assert seen[-1]["text"] == "w1 w2"
        await ws.send_json_to({"type": "end"})
        await receive_until(viewer, lambda e: e.get("event") == "ended", timeout=10)
        await ws.disconnect()
        await viewer.disconnect()
    finally:
        redis.stop()


@pytest.mark.skipif(not shutil.which("redis-server"), reason="redis-server is not installed")
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("scripted")
async def test_a_viewer_whose_receive_fails_is_closed_so_its_page_reconnects(connect, make_user, settings):
    """Whatever breaks the viewer's channel-layer receive (here a socket timeout shorter than the
    layer's blocking receive, the old default), the viewer is closed with 4013, never left open."""
    redis = RedisServer()
    redis.start()
    settings.CHANNEL_LAYERS = redis_layer(redis.port, socket_timeout=1.0)
    try:
        alice = await sync_to_async(make_user)()
        ws = await connect(user=alice)
        await ws.connect()
        start = await started(ws)
        viewer = viewer_socket(start["session"], await sync_to_async(session_cookie)(alice))
        await viewer.connect()
        assert (await viewer.receive_json_from(timeout=5))["type"] == "snapshot"
        assert await viewer.receive_output(timeout=10) == {"type": "websocket.close", "code": 4013}
        await ws.disconnect()
        await viewer.disconnect()
    finally:
        redis.stop()


@pytest.mark.skipif(not shutil.which("redis-server"), reason="redis-server is not installed")
@pytest.mark.server
def test_on_a_real_daphne_a_viewer_that_loses_redis_is_closed_with_4013(tmp_path):
    """The close code a viewer's page sees when the channel layer dies under it, through daphne's
    own WebSocket stack (which refuses some codes the ASGI test client lets through)."""
    import websockets

    redis = RedisServer()
    redis.start()
    server = scripted_daphne(tmp_path, REDIS_URL=f"redis://127.0.0.1:{redis.port}/0")
    auth = {"Authorization": f"Bearer {server.token}"}

    async def scenario():
        async with websockets.connect(f"{server.ws_url}/ws/transcribe/", additional_headers=auth) as speaker:
            await speaker.send(json.dumps({"type": "start", "lang": "en-US"}))
            session = json.loads(await speaker.recv())["session"]
            async with websockets.connect(f"{server.ws_url}/ws/sessions/{session}/live/",
                                          additional_headers=auth) as viewer:
                assert json.loads(await viewer.recv())["type"] == "snapshot"
                await asyncio.to_thread(redis.stop)
                with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
                    while True:
                        await asyncio.wait_for(viewer.recv(), 30)
                return closed.value.rcvd.code if closed.value.rcvd else None

    try:
        assert asyncio.run(asyncio.wait_for(scenario(), 60)) == 4013
    finally:
        server.stop()


# ---- graceful shutdown ----

def scripted_daphne(tmp_path, **env) -> ServerProcess:
    """A real daphne with the scripted engine and a user 'speaker' whose API token is `server.token`."""
    server = ServerProcess(tmp_path, env={"STT_ENGINE": "scripted", **env})
    server.create_user("speaker")
    server.token = server.create_token("speaker")
    server.start()
    return server


async def speak_then(server, frames, interim: str, then):
    """Start a session, send `frames`, wait for the interim `interim`, then `await then(ws)`."""
    import websockets

    async with websockets.connect(f"{server.ws_url}/ws/transcribe/",
                                  additional_headers={"Authorization": f"Bearer {server.token}"}) as ws:
        await ws.send(json.dumps({"type": "start", "lang": "en-US"}))
        session = json.loads(await ws.recv())["session"]
        for frame in frames:
            await ws.send(frame)
        while json.loads(await ws.recv()).get("text") != interim:
            pass
        return session, await then(ws)


def stored(tmp_path, session) -> tuple[list[str], str]:
    """The session's stored finals and status, read from the server's own SQLite file."""
    db = sqlite3.connect(tmp_path / "db.sqlite3")
    texts = [row[0] for row in db.execute("SELECT text FROM transcription_segment WHERE session_id = ? "
                                          "ORDER BY \"index\"", (session.replace("-", ""),))]
    return texts, db.execute("SELECT status FROM transcription_transcriptionsession").fetchone()[0]


@pytest.mark.server
def test_sigterm_finishes_the_phrase_in_progress_stores_it_and_says_ended(tmp_path):
    import websockets

    server = scripted_daphne(tmp_path, STT_SHUTDOWN_SECONDS="10")

    async def terminate(ws):
        server.proc.send_signal(signal.SIGTERM)
        events = []
        try:
            async for raw in ws:
                events.append(json.loads(raw))
        except websockets.exceptions.ConnectionClosed:
            pass
        return events

    began = time.monotonic()
    frames = phrase() + [loud_frame()] * 5  # one final, then a phrase in progress
    session, events = asyncio.run(asyncio.wait_for(speak_then(server, frames, "w1 w2 w3", terminate), 30))
    assert server.proc.wait(15) == 0 and time.monotonic() - began < 15
    finals = [e["text"] for e in events if e["type"] == "final"]
    assert finals[-1] == "w1 w2 w3"  # the phrase in progress became a final
    assert events[-1]["event"] == "ended" and events[-1]["reason"] == "shutdown"
    texts, status = stored(tmp_path, session)
    assert texts == ["w1 w2", "w1 w2 w3"]
    assert status == "ended"


@pytest.mark.server
def test_while_draining_new_sockets_get_4012_and_new_sessions_busy(tmp_path):
    """SIGTERM while a session takes a few seconds to finish (its engine is busy): meanwhile a new
    socket is closed with 4012 and a socket opened before asks to start and gets `busy`; then the
    session ends cleanly and daphne exits 0."""
    import websockets

    server = scripted_daphne(tmp_path, STT_SHUTDOWN_SECONDS="10", STT_SCRIPTED_HANG_SECONDS="3")
    url, auth = f"{server.ws_url}/ws/transcribe/", {"Authorization": f"Bearer {server.token}"}

    async def scenario():
        async with websockets.connect(url, additional_headers=auth) as speaker, \
                websockets.connect(url, additional_headers=auth) as other:
            await speaker.send(json.dumps({"type": "start", "lang": "en-US"}))
            json.loads(await speaker.recv())
            for frame in phrase() + [(np.ones(1600, dtype="<i2") * HANG_SAMPLE).tobytes()]:
                await speaker.send(frame)
            while json.loads(await speaker.recv())["type"] != "final":
                pass
            server.proc.send_signal(signal.SIGTERM)  # the engine is now stuck for 3 s: the drain waits
            await asyncio.sleep(0.5)
            async with websockets.connect(url, additional_headers=auth) as late:
                with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
                    await asyncio.wait_for(late.recv(), 5)
            await other.send(json.dumps({"type": "start", "lang": "en-US"}))
            refused = json.loads(await asyncio.wait_for(other.recv(), 5))
            ended = []
            while not ended or ended[-1].get("event") != "ended":
                ended.append(json.loads(await asyncio.wait_for(speaker.recv(), 10)))
            return closed.value.rcvd.code, refused, ended

    code, refused, ended = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert code == 4012
    assert refused["type"] == "error" and refused["code"] == "busy"
    assert ended[-1]["event"] == "ended" and ended[-1]["reason"] == "shutdown"
    assert server.proc.wait(15) == 0


@pytest.mark.server
def test_an_abrupt_tcp_reset_mid_phrase_still_stores_the_phrase(tmp_path):
    server = scripted_daphne(tmp_path, STT_RESUME_SECONDS="0")

    async def reset(ws):
        ws.transport.abort()  # RST, no close handshake

    try:
        frames = phrase() + [loud_frame()] * 7  # one final, then a phrase in progress
        session, _ = asyncio.run(asyncio.wait_for(speak_then(server, frames, "w1 w2 w3 w4", reset), 30))
        for _ in range(100):
            texts, status = stored(tmp_path, session)
            if status != "active":
                break
            time.sleep(0.1)
        assert texts == ["w1 w2", "w1 w2 w3 w4"] and status == "interrupted"
    finally:
        server.stop()

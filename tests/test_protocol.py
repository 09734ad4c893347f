"""Protocol v1 over the real ASGI application, with the scripted engine (deterministic results)."""
import asyncio

import pytest
from asgiref.sync import sync_to_async

from transcription.engines.scripted import CRASH_SAMPLE, FAIL_SAMPLE
from transcription.models import Segment, TranscriptionSession

from .conftest import loud_frame, quiet_frame, receive_until, started

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("scripted")]


async def test_anonymous_socket_is_refused(connect):
    communicator = await connect(user=None)
    await communicator.connect()
    closed = await communicator.receive_output(timeout=5)
    assert closed == {"type": "websocket.close", "code": 4401}
    await communicator.disconnect()


async def test_foreign_origin_is_refused(connect, make_user):
    user = await sync_to_async(make_user)()
    communicator = await connect(user=user, origin=(b"origin", b"http://evil.example"))
    connected, _ = await communicator.connect()
    assert not connected
    await communicator.disconnect()


async def test_events_in_order_and_final_stored_before_it_is_sent(connect, make_user):
    user = await sync_to_async(make_user)()
    communicator = await connect(user=user)
    assert (await communicator.connect())[0]
    start = await started(communicator)
    assert start["version"] == 2 and start["lang"] == "ko-KR" and start["seq"] == 1

    await communicator.send_to(bytes_data=loud_frame())
    assert await communicator.receive_json_from(timeout=5) == {
        "type": "interim", "text": "w1", "phrase": 0, "revision": 1, "start_ms": 0, "seq": 2}
    await communicator.send_to(bytes_data=loud_frame())  # engine repeats "w1": not sent again
    assert await communicator.receive_nothing(timeout=0.3)
    await communicator.send_to(bytes_data=loud_frame())
    assert await communicator.receive_json_from(timeout=5) == {
        "type": "interim", "text": "w1 w2", "phrase": 0, "revision": 2, "start_ms": 0, "seq": 3}
    await communicator.send_to(bytes_data=quiet_frame())
    final = await communicator.receive_json_from(timeout=5)
    assert final["type"] == "final" and final["text"] == "w1 w2" and final["seq"] == 4 and final["phrase"] == 0
    assert (final["start_ms"], final["end_ms"]) == (0, 300)
    assert [w["word"] for w in final["words"]] == ["w1", "w2"]
    # Already committed when the client hears of it.
    segment = await Segment.objects.select_related("session").aget(pk=final["segment"])
    assert segment.text == "w1 w2" and str(segment.session_id) == start["session"]
    assert segment.session.owner_id == user.pk

    await communicator.send_json_to({"type": "end"})
    ended = await communicator.receive_json_from(timeout=5)
    assert ended == {"type": "system", "event": "ended", "session": start["session"], "reason": "end",
                     "message": "Session ended", "seq": 5}
    record = await TranscriptionSession.objects.aget(pk=start["session"])
    assert record.status == "ended" and record.ended_at is not None and record.audio_ms == 400
    await communicator.disconnect()


async def test_end_flushes_the_phrase_in_progress(connect, make_user):
    communicator = await connect(user=await sync_to_async(make_user)())
    await communicator.connect()
    start = await started(communicator)
    for _ in range(5):
        await communicator.send_to(bytes_data=loud_frame())
    await communicator.send_json_to({"type": "end"})
    events = await receive_until(communicator, lambda e: e.get("event") == "ended")
    finals = [e for e in events if e["type"] == "final"]
    assert [f["text"] for f in finals] == ["w1 w2 w3"]
    assert events[-1]["session"] == start["session"]
    await communicator.disconnect()


async def test_second_start_ends_the_first_cleanly(connect, make_user):
    communicator = await connect(user=await sync_to_async(make_user)())
    await communicator.connect()
    first = await started(communicator)
    for _ in range(3):
        await communicator.send_to(bytes_data=loud_frame())
    await communicator.send_json_to({"type": "start", "lang": "en-US"})
    events = await receive_until(communicator, lambda e: e.get("event") == "started")
    kinds = [(e["type"], e.get("event")) for e in events if e["type"] != "interim"]
    assert kinds == [("final", None), ("system", "ended"), ("system", "started")]
    final, ended, second = [e for e in events if e["type"] != "interim"]
    assert final["text"] == "w1 w2" and ended["session"] == first["session"] and ended["reason"] == "restart"
    assert second["session"] != first["session"] and second["lang"] == "en-US"
    segment = await Segment.objects.aget(pk=final["segment"])
    assert str(segment.session_id) == first["session"]
    assert (await TranscriptionSession.objects.aget(pk=first["session"])).status == "ended"
    await communicator.send_json_to({"type": "end"})
    await receive_until(communicator, lambda e: e.get("event") == "ended")
    await communicator.disconnect()


@pytest.mark.parametrize(
    "frame, code",
    [
        ({"text_data": "{not json"}, "bad_json"),
        ({"text_data": "[1, 2]"}, "bad_json"),
        ({"text_data": '{"type": "dance"}'}, "unknown_type"),
        ({"text_data": '{"type": 5}'}, "unknown_type"),
        ({"text_data": "{}"}, "unknown_type"),
        ({"text_data": '{"type": "start", "lang": 7}'}, "bad_request"),
        ({"text_data": '{"type": "start", "lang": "xx-XX"}'}, "unsupported_language"),
        ({"text_data": '{"type": "end", "pad": "' + "x" * 17000 + '"}'}, "text_too_large"),
        ({"text_data": '{"type": "end"}'}, "not_started"),
        ({"bytes_data": bytes(3200)}, "not_started"),
    ],
)
async def test_bad_input_before_start_gets_an_error_and_the_socket_stays_usable(connect, make_user, settings, frame, code):
    if code == "unsupported_language":
        settings.STT_ENGINE = "whisper"  # the scripted engine accepts every language
    communicator = await connect(user=await sync_to_async(make_user)())
    await communicator.connect()
    await communicator.send_to(**frame)
    error = await communicator.receive_json_from(timeout=5)
    assert error["type"] == "error" and error["code"] == code and error["message"]
    settings.STT_ENGINE = "scripted"
    await started(communicator)
    await communicator.send_to(bytes_data=loud_frame())
    await communicator.send_to(bytes_data=quiet_frame())
    events = await receive_until(communicator, lambda e: e["type"] == "final")
    assert events[-1]["text"] == "w1"
    await communicator.send_json_to({"type": "end"})
    await receive_until(communicator, lambda e: e.get("event") == "ended")
    await communicator.disconnect()


@pytest.mark.parametrize(
    "frame, code",
    [
        (b"\x01\x02\x03", "bad_audio"),
        (bytes(64 * 1024 + 2), "frame_too_large"),
        (None, "bad_json"),
    ],
)
async def test_bad_input_mid_session_loses_nothing_already_accepted(connect, make_user, frame, code):
    communicator = await connect(user=await sync_to_async(make_user)())
    await communicator.connect()
    await started(communicator)
    for _ in range(3):
        await communicator.send_to(bytes_data=loud_frame())
    if frame is None:
        await communicator.send_to(text_data="nonsense")
    else:
        await communicator.send_to(bytes_data=frame)
    for _ in range(3):
        await communicator.send_to(bytes_data=loud_frame())
    await communicator.send_json_to({"type": "end"})
    events = await receive_until(communicator, lambda e: e.get("event") == "ended")
    assert [e["code"] for e in events if e["type"] == "error"] == [code]
    finals = [e["text"] for e in events if e["type"] == "final"]
    assert finals == ["w1 w2 w3"]  # all six accepted loud frames, none of the rejected one
    await communicator.disconnect()


async def test_disconnect_mid_phrase_keeps_the_finals(connect, make_user):
    communicator = await connect(user=await sync_to_async(make_user)())
    await communicator.connect()
    start = await started(communicator)
    for frame in [loud_frame(), loud_frame(), quiet_frame(), loud_frame(), loud_frame(), loud_frame()]:
        await communicator.send_to(bytes_data=frame)
    await receive_until(communicator, lambda e: e["type"] == "final")
    await communicator.disconnect()  # the second phrase is in progress
    texts = [s.text async for s in Segment.objects.filter(session_id=start["session"]).order_by("index")]
    assert texts == ["w1", "w1 w2"]
    record = await TranscriptionSession.objects.aget(pk=start["session"])
    assert record.status == "interrupted" and record.ended_at is not None


async def test_engine_failure_reports_an_error_ends_the_session_and_keeps_finals(connect, make_user):
    import numpy as np

    communicator = await connect(user=await sync_to_async(make_user)())
    await communicator.connect()
    start = await started(communicator)
    await communicator.send_to(bytes_data=loud_frame())
    await communicator.send_to(bytes_data=quiet_frame())
    await communicator.send_to(bytes_data=(np.ones(1600, dtype="<i2") * FAIL_SAMPLE).tobytes())
    events = await receive_until(communicator, lambda e: e.get("event") == "ended")
    kinds = [e["type"] for e in events if e["type"] != "interim"]
    assert kinds == ["final", "error", "system"]
    assert events[-1]["reason"] == "error"
    assert [e["code"] for e in events if e["type"] == "error"] == ["engine_error"]
    record = await TranscriptionSession.objects.aget(pk=start["session"])
    assert record.status == "failed"
    assert await Segment.objects.filter(session_id=start["session"]).acount() == 1
    # The connection still works: a new session can start.
    await started(communicator)
    await communicator.disconnect()


async def test_an_unexpected_exception_in_the_engine_is_reported_not_silent(connect, make_user):
    """Not an EngineError but a bug (RuntimeError): the recognition thread's boundary reports it as
    engine_error, keeps the finals, ends the session, and the socket can start again."""
    import numpy as np

    communicator = await connect(user=await sync_to_async(make_user)())
    await communicator.connect()
    start = await started(communicator)
    for frame in [loud_frame(), loud_frame(), quiet_frame(), (np.ones(1600, dtype="<i2") * CRASH_SAMPLE).tobytes()]:
        await communicator.send_to(bytes_data=frame)
    events = await receive_until(communicator, lambda e: e.get("event") == "ended")
    errors = [e for e in events if e["type"] == "error"]
    assert [e["code"] for e in errors] == ["engine_error"] and "RuntimeError" in errors[0]["message"]
    assert [e["text"] for e in events if e["type"] == "final"] == ["w1"]
    assert events[-1]["reason"] == "error"
    assert (await TranscriptionSession.objects.aget(pk=start["session"])).status == "failed"
    assert [s.text async for s in Segment.objects.filter(session_id=start["session"])] == ["w1"]
    await started(communicator)
    await communicator.disconnect()


async def test_twenty_concurrent_sessions_all_make_progress(connect, make_user, settings):
    settings.STT_MAX_SESSIONS = 25
    users = [await sync_to_async(make_user)(f"user{i}") for i in range(20)]
    sockets = [await connect(user=u) for u in users]
    for s in sockets:
        assert (await s.connect())[0]

    async def talk(s, n):
        await started(s)
        for _ in range(2 * n):
            await s.send_to(bytes_data=loud_frame())
        await s.send_to(bytes_data=quiet_frame())
        await s.send_json_to({"type": "end"})
        events = await receive_until(s, lambda e: e.get("event") == "ended", timeout=20)
        return [e["text"] for e in events if e["type"] == "final"]

    results = await asyncio.gather(*(talk(s, i + 1) for i, s in enumerate(sockets)))
    for i, finals in enumerate(results):
        assert finals == [" ".join(f"w{k}" for k in range(1, i + 2))]
    for s in sockets:
        await s.disconnect()
    assert await Segment.objects.acount() == 20


async def test_audio_beyond_the_backlog_is_refused_with_busy(connect, make_user, settings):
    settings.STT_MAX_BACKLOG_SECONDS = 0.25  # less than three frames
    settings.STT_SCRIPTED_CHUNK_DELAY = 0.5  # the engine is slower than the client
    communicator = await connect(user=await sync_to_async(make_user)())
    await communicator.connect()
    await started(communicator)
    for _ in range(6):
        await communicator.send_to(bytes_data=loud_frame())
    await communicator.send_json_to({"type": "end"})
    events = await receive_until(communicator, lambda e: e.get("event") == "ended")
    busy = [e for e in events if e["type"] == "error"]
    finals = [e for e in events if e["type"] == "final"]
    # Every frame not refused made it into the final: one word per two accepted frames.
    accepted = 6 - len(busy)
    assert busy and all(e["code"] == "busy" for e in busy)
    assert finals and finals[0]["text"] == " ".join(f"w{k}" for k in range(1, (accepted + 1) // 2 + 1))
    await communicator.disconnect()


async def test_a_final_that_cannot_be_stored_is_retried_then_reported_not_shown(connect, make_user, monkeypatch):
    from django.db import OperationalError

    from transcription import services

    real = services.segment_create
    calls = {"n": 0}

    def flaky(**kwargs):
        calls["n"] += 1
        if calls["n"] <= 3:  # the first final fails twice (given up), the second once (retried)
            raise OperationalError("database is locked")
        return real(**kwargs)

    monkeypatch.setattr(services, "segment_create", flaky)
    communicator = await connect(user=await sync_to_async(make_user)())
    await communicator.connect()
    start = await started(communicator)
    for frame in [loud_frame(), quiet_frame(), loud_frame(), loud_frame(), loud_frame(), quiet_frame()]:
        await communicator.send_to(bytes_data=frame)
    await communicator.send_json_to({"type": "end"})
    events = await receive_until(communicator, lambda e: e.get("event") == "ended")
    kinds = [(e["type"], e.get("code")) for e in events if e["type"] != "interim"]
    assert kinds == [("error", "storage"), ("final", None), ("system", None)]
    final = next(e for e in events if e["type"] == "final")
    assert final["text"] == "w1 w2"
    assert [s.text async for s in Segment.objects.filter(session_id=start["session"])] == ["w1 w2"]
    await communicator.disconnect()


async def test_no_thread_outlives_its_session_over_100_connections(connect, make_user, settings):
    import threading

    settings.STT_TRANSLATOR = "scripted"
    user = await sync_to_async(make_user)()

    async def cycle(i):
        communicator = await connect(user=user)
        await communicator.connect()
        await communicator.send_json_to({"type": "start", "lang": "en-US", **({"translate_to": "de"} if i % 2 else {})})
        await communicator.receive_json_from(timeout=5)
        await communicator.send_to(bytes_data=loud_frame())
        await communicator.disconnect()  # mid-phrase

    await cycle(0)  # warm-up: process-wide threads (database, decode workers) start once
    await asyncio.sleep(0.2)
    before = {t.name for t in threading.enumerate()}
    for i in range(100):
        await cycle(i)
    await asyncio.sleep(0.5)
    leaked = [t.name for t in threading.enumerate() if t.name not in before and t.name.startswith("stt")]
    assert leaked == []


def test_the_browsers_protocol_module_matches_the_servers():
    """static/transcription/protocol.js carries the same codes, close codes, reasons and event names."""
    import re
    from pathlib import Path

    from transcription import protocol

    js = (Path(__file__).resolve().parent.parent / "static/transcription/protocol.js").read_text()

    def table(name):
        body = re.search(rf"export const {name} = {{(.*?)}};", js, re.S).group(1)
        return {key: int(value) if value.isdigit() else value.strip('"')
                for key, value in re.findall(r'(\w+): ("[^"]*"|\d+)', body)}

    python = {name: value for name, value in vars(protocol).items() if name.isupper()}
    assert {f"CLOSE_{k}": v for k, v in table("CLOSE").items()} == {k: v for k, v in python.items() if k.startswith("CLOSE_")}
    assert {f"REASON_{k}": v for k, v in table("REASON").items()} == {k: v for k, v in python.items() if k.startswith("REASON_")}
    names = ("SYSTEM", "INTERIM", "FINAL", "TRANSLATION", "ERROR", "SNAPSHOT", "CORRECTION", "STARTED", "ENDED",
             "RESUMED", "LAG", "PROGRESS", "SPEAKERS", "SPEAKER")
    codes = {v for k, v in python.items() if isinstance(v, str) and k not in names and not k.startswith("REASON_")}
    assert set(table("CODE").values()) == codes
    assert all(python[k] == v for k, v in table("CODE").items())
    assert all(python[k] == v for k, v in {**table("EVENT"), **table("SYSTEM")}.items())

"""Protocol v2 additions with the scripted engine: seq, resume, finalize, keepalive, idle, lag."""
import asyncio

import pytest
from asgiref.sync import sync_to_async

from transcription.realtime.registry import sessions
from transcription.models import Segment, TranscriptionSession

from .conftest import loud_frame, quiet_frame, receive_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("scripted")]


async def open_started(connect, user, lang="en-US"):
    communicator = await connect(user=user)
    assert (await communicator.connect())[0]
    await communicator.send_json_to({"type": "start", "lang": lang})
    started = await communicator.receive_json_from(timeout=5)
    assert started["event"] == "started"
    return communicator, started


def seqs(events):
    return [e["seq"] for e in events if "seq" in e]


async def test_every_session_event_is_numbered_without_gaps(connect, make_user):
    communicator, started = await open_started(connect, await sync_to_async(make_user)())
    seen = [started]
    for _ in range(2):
        for _ in range(3):
            await communicator.send_to(bytes_data=loud_frame())
        await communicator.send_to(bytes_data=quiet_frame())
    await communicator.send_json_to({"type": "end"})
    seen += await receive_until(communicator, lambda e: e.get("event") == "ended")
    assert seqs(seen) == list(range(1, len(seen) + 1))
    finals = [e for e in seen if e["type"] == "final"]
    assert [f["phrase"] for f in finals] == [0, 1]
    await communicator.disconnect()


async def test_finalize_makes_the_phrase_so_far_a_final_at_once(connect, make_user):
    communicator, started = await open_started(connect, await sync_to_async(make_user)())
    for _ in range(4):
        await communicator.send_to(bytes_data=loud_frame())
    await communicator.send_json_to({"type": "finalize"})
    events = await receive_until(communicator, lambda e: e["type"] == "final", timeout=5)
    assert events[-1]["text"] == "w1 w2"
    # The session goes on: the next phrase is a new final.
    for _ in range(2):
        await communicator.send_to(bytes_data=loud_frame())
    await communicator.send_json_to({"type": "finalize"})
    events = await receive_until(communicator, lambda e: e["type"] == "final", timeout=5)
    assert events[-1]["text"] == "w1" and events[-1]["phrase"] == 1
    await communicator.send_json_to({"type": "finalize"})  # nothing in progress: nothing happens
    assert await communicator.receive_nothing(timeout=0.3)
    await communicator.send_json_to({"type": "end"})
    await receive_until(communicator, lambda e: e.get("event") == "ended")
    assert await Segment.objects.filter(session_id=started["session"]).acount() == 2
    await communicator.disconnect()


async def test_idle_session_is_ended_and_keepalive_prevents_it(connect, make_user, settings):
    settings.STT_IDLE_SECONDS = 1.2
    communicator, started = await open_started(connect, await sync_to_async(make_user)())
    await communicator.send_to(bytes_data=loud_frame())
    await communicator.send_to(bytes_data=quiet_frame())
    for _ in range(4):  # 2 s of keepalives, no audio: still open
        await asyncio.sleep(0.5)
        await communicator.send_json_to({"type": "keepalive"})
    events = await receive_until(communicator, lambda e: e["type"] == "final", timeout=5)
    assert not [e for e in events if e.get("event") == "ended"]
    events = await receive_until(communicator, lambda e: e.get("event") == "ended", timeout=5)
    assert events[-1]["reason"] == "idle"
    record = await TranscriptionSession.objects.aget(pk=started["session"])
    assert record.status == "ended"
    assert [s.text async for s in Segment.objects.filter(session_id=started["session"])] == ["w1"]
    await communicator.send_json_to({"type": "keepalive"})  # the session is over
    assert (await communicator.receive_json_from(timeout=5))["code"] == "not_started"
    await communicator.disconnect()


async def test_resume_after_a_drop_replays_what_was_missed_and_keeps_recognising(connect, make_user, settings):
    settings.STT_RESUME_SECONDS = 5
    user = await sync_to_async(make_user)()
    first, started = await open_started(connect, user)
    seen = [started]
    for frame in [loud_frame(), loud_frame(), quiet_frame()]:
        await first.send_to(bytes_data=frame)
    seen += await receive_until(first, lambda e: e["type"] == "final")
    # Mid-phrase the connection drops; the client did not see anything after this point.
    for frame in [loud_frame(), loud_frame(), loud_frame(), loud_frame(), quiet_frame(), loud_frame(), loud_frame()]:
        await first.send_to(bytes_data=frame)
    await asyncio.sleep(0.3)  # the engine produces a final and interims while nobody listens
    await first.disconnect()
    await asyncio.sleep(0.3)

    second = await connect(user=user)
    assert (await second.connect())[0]
    await second.send_json_to({"type": "resume", "session": started["session"], "last_seq": seen[-1]["seq"]})
    resumed = await second.receive_json_from(timeout=5)
    assert resumed["event"] == "resumed" and resumed["session"] == started["session"]
    replayed = await receive_until(second, lambda e: e["type"] == "interim" and e["phrase"] == 2, timeout=5)
    assert [e["text"] for e in replayed if e["type"] == "final"] == ["w1 w2"]  # produced while away
    assert replayed[-1]["text"] == "w1"  # the phrase in progress, as far as it got
    seen += replayed
    for frame in [loud_frame(), loud_frame(), quiet_frame()]:  # the same phrase goes on
        await second.send_to(bytes_data=frame)
    await second.send_json_to({"type": "end"})
    seen += await receive_until(second, lambda e: e.get("event") == "ended")
    await second.disconnect()

    finals = [e for e in seen if e["type"] == "final"]
    assert [f["text"] for f in finals] == ["w1", "w1 w2", "w1 w2"]
    assert seqs(seen) == list(range(1, len(seqs(seen)) + 1))  # contiguous: nothing missed, nothing twice
    final_seqs = [f["seq"] for f in finals]
    stored = [(s.seq, s.text) async for s in Segment.objects.filter(session_id=started["session"]).order_by("index")]
    assert stored == [(f["seq"], f["text"]) for f in finals]  # nothing missing, nothing twice
    assert final_seqs == sorted(final_seqs)
    assert (await TranscriptionSession.objects.aget(pk=started["session"])).status == "ended"


async def test_resume_is_refused_for_unknown_foreign_or_expired_sessions(connect, make_user, settings):
    settings.STT_RESUME_SECONDS = 0.5
    alice, mallory = await sync_to_async(make_user)("alice"), await sync_to_async(make_user)("mallory")
    first, started = await open_started(connect, alice)
    await first.send_to(bytes_data=loud_frame())
    await first.disconnect()

    thief = await connect(user=mallory)
    await thief.connect()
    await thief.send_json_to({"type": "resume", "session": started["session"], "last_seq": 0})
    assert (await thief.receive_json_from(timeout=5))["code"] == "session_expired"
    await thief.send_json_to({"type": "resume", "session": "no-such-session", "last_seq": 0})
    assert (await thief.receive_json_from(timeout=5))["code"] == "session_expired"
    await thief.disconnect()

    await asyncio.sleep(1.5)  # the window passes: the session is ended and its phrase stored
    assert sessions.get(started["session"]) is None
    record = await TranscriptionSession.objects.aget(pk=started["session"])
    assert record.status == "interrupted"
    late = await connect(user=alice)
    await late.connect()
    await late.send_json_to({"type": "resume", "session": started["session"], "last_seq": 1})
    assert (await late.receive_json_from(timeout=5))["code"] == "session_expired"
    await late.disconnect()


async def test_resume_from_a_second_connection_replaces_the_first(connect, make_user, settings):
    settings.STT_RESUME_SECONDS = 5
    user = await sync_to_async(make_user)()
    first, started = await open_started(connect, user)
    second = await connect(user=user)
    await second.connect()
    await second.send_json_to({"type": "resume", "session": started["session"], "last_seq": 1})
    assert (await second.receive_json_from(timeout=5))["event"] == "resumed"
    assert await first.receive_output(timeout=5) == {"type": "websocket.close", "code": 4409}
    await second.send_to(bytes_data=loud_frame())
    await second.send_json_to({"type": "end"})
    events = await receive_until(second, lambda e: e.get("event") == "ended")
    assert [e["text"] for e in events if e["type"] == "final"] == ["w1"]
    await second.disconnect()
    await first.disconnect()


@pytest.mark.slow
async def test_lag_is_reported_and_cleared(connect, make_user, settings):
    settings.STT_SCRIPTED_CHUNK_DELAY = 2.5  # every chunk costs the engine 2.5 s
    communicator, _ = await open_started(connect, await sync_to_async(make_user)())
    await communicator.send_to(bytes_data=quiet_frame())
    await asyncio.sleep(0.2)  # the engine is now busy with that frame
    for _ in range(30):  # 3 s of audio pile up behind it
        await communicator.send_to(bytes_data=quiet_frame())
    lag = await receive_until(communicator, lambda e: e.get("event") == "lag", timeout=5)
    assert lag[-1]["seconds"] > 2
    cleared = await receive_until(communicator, lambda e: e.get("event") == "lag" and e["seconds"] == 0, timeout=10)
    assert cleared[-1]["seconds"] == 0
    await communicator.send_json_to({"type": "end"})
    await receive_until(communicator, lambda e: e.get("event") == "ended", timeout=15)
    await communicator.disconnect()


async def test_resume_after_a_long_absence_replays_finals_from_the_database(connect, make_user, settings, monkeypatch):
    monkeypatch.setattr("transcription.realtime.events.REPLAY_EVENTS", 3)  # memory holds only the last 3 events
    settings.STT_RESUME_SECONDS = 5
    user = await sync_to_async(make_user)()
    first, started = await open_started(connect, user)
    await first.disconnect()
    for _ in range(3):  # three phrases while nobody is connected
        live = sessions.get(started["session"])
        for frame in [loud_frame(), loud_frame(), quiet_frame()]:
            live.feed(frame)
    await asyncio.sleep(0.5)
    second = await connect(user=user)
    await second.connect()
    await second.send_json_to({"type": "resume", "session": started["session"], "last_seq": 1})
    assert (await second.receive_json_from(timeout=5))["event"] == "resumed"
    await second.send_json_to({"type": "end"})
    events = await receive_until(second, lambda e: e.get("event") == "ended")
    finals = [e for e in events if e["type"] == "final"]
    assert [f["text"] for f in finals] == ["w1", "w1", "w1"]
    assert [f["phrase"] for f in finals] == [0, 1, 2]
    await second.disconnect()

"""The decode scheduler's guarantees, and refusing sessions when the server is full."""
import threading
import time

import pytest
from asgiref.sync import sync_to_async

from transcription.engines.scheduler import AFTER_THE_FACT, LIVE_TRANSLATION, DecodeScheduler

from .conftest import loud_frame, receive_until


def test_finals_run_first_in_order_and_none_is_dropped_under_a_flood_of_interims():
    scheduler = DecodeScheduler(workers=1)
    ran: list[str] = []
    gate = threading.Event()
    results: dict[str, object] = {}

    def job(name, hold=None):
        def fn():
            if hold:
                hold.wait(5)
            ran.append(name)
            return name
        return fn

    def submit(name, **kind):
        results[name] = scheduler.run(job(name), key=name.split("-")[0], **kind)

    blocker = threading.Thread(target=lambda: scheduler.run(job("busy", gate), final=True, key="x"))
    blocker.start()
    time.sleep(0.05)  # the only worker is now busy
    threads = []
    for i in range(40):  # a flood of interims from 20 sessions, and finals among them
        threads.append(threading.Thread(target=submit, args=(f"s{i % 20}-interim{i}",), kwargs={"final": False}))
        if i % 10 == 0:
            threads.append(threading.Thread(target=submit, args=(f"f{i}-final",), kwargs={"final": True}))
    for t in threads:
        t.start()
        time.sleep(0.005)  # submission order = thread order
    time.sleep(0.1)
    gate.set()
    for t in threads:
        t.join(5)
    blocker.join(5)
    finals = [name for name in ran if name.endswith("-final")]
    assert finals == ["f0-final", "f10-final", "f20-final", "f30-final"]  # all, in order
    assert ran[1:5] == finals  # before anything else once the worker was free
    assert all(results[name] == name for name in finals)
    dropped = [name for name, value in results.items() if value is None]
    assert dropped and all("interim" in name for name in dropped)  # only interims are shed
    assert scheduler.stats["interims_dropped"] == len(dropped)


def test_background_work_waits_for_a_pause_in_speech_and_never_holds_up_a_final():
    """A translation (or a second pass) starts only when no session is mid-phrase, so a final that
    falls due is never queued behind it; finals always run first."""
    scheduler = DecodeScheduler(workers=1)
    ran: list[str] = []
    scheduler.phrase("speaker", True)  # someone is speaking: a final will follow
    translation = threading.Thread(target=scheduler.run_background, args=(lambda: ran.append("translation"),),
                                   kwargs={"priority": LIVE_TRANSLATION})
    translation.start()
    time.sleep(0.3)
    assert ran == []  # not while the phrase is in progress
    assert scheduler.run(lambda: ran.append("final") or "final", final=True, key="speaker") == "final"
    scheduler.phrase("speaker", False)  # the phrase ended: a pause
    translation.join(5)
    assert ran == ["final", "translation"]


def test_background_work_is_never_starved_by_continuous_speech(monkeypatch):
    monkeypatch.setattr("transcription.engines.scheduler.BACKGROUND_MAX_WAIT", 0.5)
    scheduler = DecodeScheduler(workers=1)
    scheduler.phrase("talker", True)  # and never stops
    began = time.monotonic()
    assert scheduler.run_background(lambda: "done") == "done"
    assert 0.4 < time.monotonic() - began < 2.5


def test_background_work_runs_in_order_of_priority():
    scheduler = DecodeScheduler(workers=1)
    gate, order = threading.Event(), []
    hold = threading.Thread(target=scheduler.run, args=(lambda: gate.wait(5),), kwargs={"final": True, "key": "x"})
    hold.start()
    time.sleep(0.1)
    jobs = [threading.Thread(target=scheduler.run_background, args=(lambda n=name: order.append(n),),
                             kwargs={"priority": priority})
            for name, priority in [("upload", AFTER_THE_FACT), ("live translation", LIVE_TRANSLATION)]]
    for job in jobs:
        job.start()
        time.sleep(0.05)
    gate.set()
    for job in jobs + [hold]:
        job.join(5)
    assert order == ["live translation", "upload"]
    with pytest.raises(RuntimeError, match="exploded"):
        scheduler.run_background(lambda: (_ for _ in ()).throw(RuntimeError("exploded")))


def test_an_error_in_a_decode_reaches_its_caller():
    scheduler = DecodeScheduler(workers=1)

    def boom():
        raise RuntimeError("decoder exploded")

    with pytest.raises(RuntimeError, match="exploded"):
        scheduler.run(boom, final=True, key="a")
    assert scheduler.run(lambda: 7, final=True, key="a") == 7  # the worker survived


@pytest.mark.django_db(transaction=True)
async def test_a_full_server_refuses_new_sessions_with_busy(connect, make_user, scripted, settings):
    settings.STT_MAX_SESSIONS = 2
    sockets = []
    for i in range(3):
        c = await connect(user=await sync_to_async(make_user)(f"u{i}"))
        await c.connect()
        await c.send_json_to({"type": "start", "lang": "en-US"})
        sockets.append((c, await c.receive_json_from(timeout=5)))
    assert [e.get("event") for _, e in sockets[:2]] == ["started", "started"]
    refused = sockets[2][1]
    assert refused["type"] == "error" and refused["code"] == "busy"
    # The two running sessions are unaffected; when one ends, there is room again.
    first = sockets[0][0]
    await first.send_to(bytes_data=loud_frame())
    await first.send_json_to({"type": "end"})
    await receive_until(first, lambda e: e.get("event") == "ended")
    third = sockets[2][0]
    await third.send_json_to({"type": "start", "lang": "en-US"})
    assert (await third.receive_json_from(timeout=5))["event"] == "started"
    for c, _ in sockets:
        await c.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_one_user_cannot_hold_more_than_the_per_user_limit(connect, make_user, scripted, settings):
    settings.STT_MAX_SESSIONS, settings.STT_MAX_SESSIONS_PER_USER = 10, 1
    alice, bob = await sync_to_async(make_user)("alice"), await sync_to_async(make_user)("bob")
    first, second, other = await connect(user=alice), await connect(user=alice), await connect(user=bob)
    for c in (first, second, other):
        await c.connect()
        await c.send_json_to({"type": "start", "lang": "en-US"})
    assert (await first.receive_json_from(timeout=5))["event"] == "started"
    assert (await second.receive_json_from(timeout=5))["code"] == "too_many_sessions"
    assert (await other.receive_json_from(timeout=5))["event"] == "started"  # other users are unaffected
    for c in (first, second, other):
        await c.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_a_session_is_ended_at_its_maximum_length_with_its_finals_kept(connect, make_user, scripted, settings):
    settings.STT_MAX_SESSION_SECONDS = 0.5
    c = await connect(user=await sync_to_async(make_user)())
    await c.connect()
    await c.send_json_to({"type": "start", "lang": "en-US"})
    await c.receive_json_from(timeout=5)
    for _ in range(5):
        await c.send_to(bytes_data=loud_frame())
    events = await receive_until(c, lambda e: e.get("event") == "ended")
    assert events[-1]["reason"] == "max_length"
    assert [e["text"] for e in events if e["type"] == "final"] == ["w1 w2 w3"]
    await c.send_json_to({"type": "start", "lang": "en-US"})  # the next session starts at once
    assert (await c.receive_json_from(timeout=5))["event"] == "started"
    await c.disconnect()


def test_finals_due_together_are_decoded_as_one_batch_and_a_doubtful_one_again_alone(settings, monkeypatch):
    """The GPU path (STT_WHISPER_BATCH): finals waiting together go to one batched decode; an item the
    batch could not settle (Whisper would fall back) is decoded alone; interims never join."""
    from transcription.engines import scheduler as module
    from transcription.engines.batch import BatchItem, BatchResult
    from transcription.engines.scheduler import Batchable

    settings.STT_WHISPER_BATCH_SIZE = 3
    batches: list[list[str]] = []

    def fake_decode_batch(model, items):
        batches.append([item.prefix for item in items])
        return [BatchResult(f"batched {item.prefix}", item.prefix == "doubtful", "ko") for item in items]

    monkeypatch.setattr(module, "decode_batch", fake_decode_batch)
    scheduler = DecodeScheduler(workers=1)
    model = object()
    gate = threading.Event()
    results = {}
    blocker = threading.Thread(target=lambda: scheduler.run(lambda: gate.wait(5), final=True, key="x"))
    blocker.start()
    time.sleep(0.05)

    def submit(name):
        batch = Batchable(model, BatchItem(None, "ko", prefix=name), lambda r: r.text)
        results[name] = scheduler.run(lambda: f"alone {name}", final=True, key=name, batch=batch)

    threads = [threading.Thread(target=submit, args=(name,)) for name in ("a", "doubtful", "b", "c")]
    for t in threads:
        t.start()
        time.sleep(0.01)
    gate.set()
    for t in threads + [blocker]:
        t.join(5)
    assert batches == [["a", "doubtful", "b"]]  # (three at most; "c", alone, is decoded the usual way)
    assert results == {"a": "batched a", "doubtful": "alone doubtful", "b": "batched b", "c": "alone c"}


def test_a_saturated_worker_decodes_finals_only_until_the_load_falls(settings, monkeypatch):
    """Interims are shed at once while the workers have been busy most of the last seconds (each one
    that starts would delay the next final by a whole decode), and decoded again once load falls."""
    from transcription.engines import scheduler as module

    settings.STT_INTERIM_LOAD_MAX = 0.5
    monkeypatch.setattr(module, "LOAD_WINDOW", 1.0)
    scheduler = DecodeScheduler(workers=1)
    assert scheduler.run(lambda: "early", final=False, key="s") == "early"  # idle: interims run
    for _ in range(8):  # 0.8 s of finals back to back
        scheduler.run(lambda: time.sleep(0.1), final=True, key="f")
    assert scheduler.load() > 0.5
    assert scheduler.run(lambda: "shed", final=False, key="s") is None
    assert scheduler.stats["interims_shed"] == 1
    assert scheduler.run(lambda: "final", final=True, key="f") == "final"  # finals always run
    time.sleep(1.1)  # the window passes with nothing to do
    assert scheduler.load() < 0.1
    assert scheduler.run(lambda: "again", final=False, key="s") == "again"


@pytest.mark.django_db(transaction=True)
async def test_two_starts_at_once_cannot_both_pass_the_per_user_limit(connect, make_user, scripted, settings,
                                                                        monkeypatch):
    """The limit is checked before the database calls that open a session: a second `start` arriving
    meanwhile must count the first (made certain here by a slow glossary lookup)."""
    from transcription import selectors

    settings.STT_MAX_SESSIONS, settings.STT_MAX_SESSIONS_PER_USER = 10, 1
    lookup = selectors.glossary_terms_for

    def slow_lookup(**kwargs):
        time.sleep(0.5)
        return lookup(**kwargs)

    monkeypatch.setattr(selectors, "glossary_terms_for", slow_lookup)
    alice = await sync_to_async(make_user)("alice")
    first, second = await connect(user=alice), await connect(user=alice)
    for c in (first, second):
        await c.connect()
    await first.send_json_to({"type": "start", "lang": "en-US"})
    await second.send_json_to({"type": "start", "lang": "en-US"})  # while the first is still opening
    answers = [await first.receive_json_from(timeout=10), await second.receive_json_from(timeout=10)]
    assert sorted(a.get("event") or a.get("code") for a in answers) == ["started", "too_many_sessions"], answers
    for c in (first, second):
        await c.disconnect()

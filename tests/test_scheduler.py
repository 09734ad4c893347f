"""The decode scheduler's guarantees, and refusing sessions when the server is full."""
import os
import threading
import time

import pytest
from asgiref.sync import sync_to_async

from transcription.engines.scheduler import AFTER_THE_FACT, LIVE_TRANSLATION, BackgroundLane, DecodeScheduler

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


def test_a_final_never_waits_behind_background_work():
    """A translation (or second pass) decoding on the background lane does not hold up a final."""
    scheduler, background = DecodeScheduler(workers=1), BackgroundLane(nice=19)
    gate = threading.Event()
    translation = threading.Thread(target=background.run, args=(lambda model: gate.wait(5),),
                                   kwargs={"model": "m", "load": lambda: "model"})
    translation.start()
    time.sleep(0.1)  # the background lane is busy now
    began = time.monotonic()
    assert scheduler.run(lambda: "final", final=True, key="s") == "final"
    assert time.monotonic() - began < 0.5
    gate.set()
    translation.join(5)


def test_background_work_runs_at_the_lowest_priority_in_order_of_priority():
    background = BackgroundLane(nice=19)
    niceness = background.run(lambda model: os.getpriority(os.PRIO_PROCESS, threading.get_native_id()),
                              model="m", load=lambda: "model")
    assert niceness == 19
    gate, order = threading.Event(), []
    hold = threading.Thread(target=background.run, args=(lambda m: gate.wait(5),), kwargs={"model": "m", "load": str})
    hold.start()
    time.sleep(0.1)
    jobs = [threading.Thread(target=background.run, args=(lambda m, n=name: order.append(n),),
                             kwargs={"model": "m", "load": str, "priority": priority})
            for name, priority in [("upload", AFTER_THE_FACT), ("live translation", LIVE_TRANSLATION)]]
    for job in jobs:
        job.start()
        time.sleep(0.05)
    gate.set()
    for job in jobs + [hold]:
        job.join(5)
    assert order == ["live translation", "upload"]
    with pytest.raises(RuntimeError, match="exploded"):
        background.run(lambda m: (_ for _ in ()).throw(RuntimeError("exploded")), model="m", load=str)


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

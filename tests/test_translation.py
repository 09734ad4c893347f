"""Translation of each final: streamed, stored before `done`, off the recognition path."""
import asyncio

import pytest
from asgiref.sync import sync_to_async

from transcription.models import Translation

from .conftest import DATA, loud_frame, quiet_frame, read_wav, receive_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("scripted")]


@pytest.fixture
def scripted_translator(settings):
    settings.STT_TRANSLATOR = "scripted"


async def start(connect, user, **fields):
    c = await connect(user=user)
    await c.connect()
    await c.send_json_to({"type": "start", "lang": "ko-KR", **fields})
    first = await c.receive_json_from(timeout=5)
    return c, first


async def test_each_final_is_translated_streamed_and_stored_before_done(connect, make_user, scripted_translator):
    c, started = await start(connect, await sync_to_async(make_user)(), translate_to="de")
    assert started["translate_to"] == "de"
    for frame in [loud_frame(), loud_frame(), loud_frame(), quiet_frame()]:
        await c.send_to(bytes_data=frame)
    events = await receive_until(c, lambda e: e["type"] == "translation" and e["done"])
    final = next(e for e in events if e["type"] == "final")
    deltas = [e for e in events if e["type"] == "translation" and not e["done"]]
    done = events[-1]
    assert final["text"] == "w1 w2"
    assert [d["text"] for d in deltas] == ["de:", " W1", " W2"]
    assert all(d["segment"] == final["segment"] and d["lang"] == "de" for d in deltas)
    assert done["text"] == "de: W1 W2" and done["segment"] == final["segment"]
    row = await Translation.objects.aget(segment_id=final["segment"], language="de")
    assert row.text == "de: W1 W2" and row.seq == done["seq"] and row.engine == "scripted"
    await c.send_json_to({"type": "end"})
    await receive_until(c, lambda e: e.get("event") == "ended")
    await c.disconnect()


async def test_a_slow_translator_never_delays_the_next_final(connect, make_user, scripted_translator, settings):
    settings.STT_SCRIPTED_TRANSLATION_DELAY = 0.4  # per word: 0.8 s for the first phrase
    c, _ = await start(connect, await sync_to_async(make_user)(), translate_to="de")
    for frame in [loud_frame(), loud_frame(), loud_frame(), quiet_frame(), loud_frame(), quiet_frame()]:
        await c.send_to(bytes_data=frame)
    await c.send_json_to({"type": "end"})
    events = await receive_until(c, lambda e: e.get("event") == "ended", timeout=10)
    order = [(e["type"], e.get("done")) for e in events if e["type"] in ("final", "translation")]
    first_done = order.index(("translation", True))
    assert [kind for kind, _ in order[:first_done]].count("final") == 2  # both finals came first
    dones = [e for e in events if e["type"] == "translation" and e["done"]]
    assert [d["text"] for d in dones] == ["de: W1 W2", "de: W1"]  # in phrase order, before `ended`
    await c.disconnect()


async def test_a_failed_translation_is_retried_once_then_reported_and_the_session_goes_on(connect, make_user, scripted_translator):
    user = await sync_to_async(make_user)()
    c, _ = await start(connect, user, translate_to="zz-flaky")
    for frame in [loud_frame(), quiet_frame()]:
        await c.send_to(bytes_data=frame)
    events = await receive_until(c, lambda e: e["type"] == "translation" and e["done"])
    assert not [e for e in events if e["type"] == "error"]  # the retry succeeded
    await c.send_json_to({"type": "end"})
    await receive_until(c, lambda e: e.get("event") == "ended")

    await c.send_json_to({"type": "start", "lang": "ko-KR", "translate_to": "zz-fail"})
    for frame in [loud_frame(), quiet_frame(), loud_frame(), loud_frame(), loud_frame(), quiet_frame()]:
        await c.send_to(bytes_data=frame)
    await c.send_json_to({"type": "end"})
    events = await receive_until(c, lambda e: e.get("event") == "ended")
    finals = [e for e in events if e["type"] == "final"]
    errors = [e for e in events if e["type"] == "error"]
    assert [f["text"] for f in finals] == ["w1", "w1 w2"]  # transcripts kept
    assert [(e["code"], e["segment"]) for e in errors] == [("translation_failed", f["segment"]) for f in finals]
    assert events[-1]["reason"] == "end"
    await c.disconnect()


async def test_unsupported_target_is_refused_at_start(connect, make_user, settings):
    settings.STT_TRANSLATOR = "whisper"  # speech translation: English only
    c, error = await start(connect, await sync_to_async(make_user)(), translate_to="fr")
    assert error["type"] == "error" and error["code"] == "translation_unsupported"
    await c.send_json_to({"type": "start", "lang": "ko-KR", "translate_to": 5})
    assert (await c.receive_json_from(timeout=5))["code"] == "bad_request"
    await c.send_to(bytes_data=loud_frame())  # no session was started
    assert (await c.receive_json_from(timeout=5))["code"] == "not_started"
    await c.disconnect()


async def test_resume_replays_translations(connect, make_user, scripted_translator, settings):
    settings.STT_RESUME_SECONDS = 5
    user = await sync_to_async(make_user)()
    c, started = await start(connect, user, translate_to="de")
    await c.disconnect()
    for frame in [loud_frame(), loud_frame(), quiet_frame()]:
        from transcription.realtime.registry import sessions

        sessions.get(started["session"]).feed(frame)
    await asyncio.sleep(0.5)
    again = await connect(user=user)
    await again.connect()
    await again.send_json_to({"type": "resume", "session": started["session"], "last_seq": 1})
    events = await receive_until(again, lambda e: e["type"] == "translation" and e["done"])
    assert [e["type"] for e in events if e["type"] != "interim"][:2] == ["system", "final"]
    assert events[-1]["text"] == "de: W1"
    seqs = [e["seq"] for e in events if "seq" in e]
    assert seqs == list(range(2, 2 + len(seqs)))
    await again.send_json_to({"type": "end"})
    await receive_until(again, lambda e: e.get("event") == "ended")
    await again.disconnect()


@pytest.mark.model
def test_whisper_translates_korean_speech_into_english(settings):
    from transcription.translation import get_translator

    settings.STT_WHISPER_MODEL = "base"
    text = "".join(get_translator("whisper").translate(
        "", source="ko-KR", target="en", audio=read_wav(DATA / "ko/kspon_005.wav")))
    assert "famil" in text.lower(), text  # "... 0.1% family?": the fallback sampling varies the rest

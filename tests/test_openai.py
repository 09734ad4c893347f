"""OpenAI as engine and translator, with the real `openai` client against local fake servers."""
import asyncio

import numpy as np
import pytest
from asgiref.sync import sync_to_async

from transcription.engines.resample import Resampler16to24
from transcription.models import Segment, TranscriptionSession, Translation

from .conftest import loud_frame, quiet_frame, receive_until
from .fakes.openai_servers import ChatServer, RealtimeServer

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def fake_openai(settings):
    """Start a fake OpenAI server and point the settings at it (the client is keyed by base URL)."""
    servers = []

    def make(server_class, **options):
        server = server_class(**options)
        servers.append(server)
        settings.OPENAI_BASE_URL = server.url
        settings.OPENAI_API_KEY = "test-key"
        return server

    yield make
    for server in servers:
        server.close()


@pytest.fixture
def realtime(fake_openai, settings):
    settings.STT_ENGINE = "openai"
    return lambda **options: fake_openai(RealtimeServer, **options)


@pytest.fixture
def chat(fake_openai, settings):
    settings.STT_ENGINE, settings.STT_TRANSLATOR = "scripted", "openai"
    return lambda **options: fake_openai(ChatServer, **options)


SPEECH = [loud_frame()] * 5 + [quiet_frame()] * 4 + [loud_frame()] * 3 + [quiet_frame()] * 4


async def run_session(connect, user, frames, lang="ko-KR", **start):
    c = await connect(user=user)
    await c.connect()
    await c.send_json_to({"type": "start", "lang": lang, **start})
    started = await c.receive_json_from(timeout=10)
    assert started.get("event") == "started", started
    for frame in frames:
        await c.send_to(bytes_data=frame)
        await asyncio.sleep(0.01)
    await c.send_json_to({"type": "end"})
    events = await receive_until(c, lambda e: e.get("event") == "ended", timeout=30)
    await c.disconnect()
    return started, events


async def test_realtime_transcription_interims_finals_and_audio_format(connect, make_user, realtime):
    server = realtime()
    started, events = await run_session(connect, await sync_to_async(make_user)(), SPEECH)
    finals = [e for e in events if e["type"] == "final"]
    assert [f["text"] for f in finals] == ["phrase 1", "phrase 2"]
    # Interims arrive in a burst here, so the session may shed all but the newest: only check them.
    assert {e["text"] for e in events if e["type"] == "interim"} <= {"phrase", "phrase 1", "phrase 2"}
    assert finals[0]["start_ms"] == 0 and finals[1]["start_ms"] == 900 and finals[0]["end_ms"] < finals[1]["start_ms"]
    stored = [s.text async for s in Segment.objects.filter(session_id=started["session"]).order_by("index")]
    assert stored == ["phrase 1", "phrase 2"]
    session = server.sessions[0]
    assert session["type"] == "transcription"
    assert session["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert session["audio"]["input"]["transcription"] == {"model": "gpt-live-transcribe", "language": "ko"}
    assert session["audio"]["input"]["turn_detection"]["type"] == "server_vad"
    assert server.samples == len(SPEECH) * 1600 * 3 // 2  # 16 kHz in, 24 kHz upstream
    assert server.problems == []


async def test_the_vocabulary_goes_as_the_transcription_prompt(connect, make_user, realtime):
    server = realtime()
    await run_session(connect, await sync_to_async(make_user)(), SPEECH[:6], vocabulary=["Kubernetes", "지호"])
    assert server.sessions[0]["audio"]["input"]["transcription"]["prompt"] == "Kubernetes, 지호"


def test_deltas_become_interims_and_completions_finals(realtime):
    from transcription.engines import StreamConfig, get_engine

    realtime()
    results = list(get_engine("openai").stream(iter(SPEECH), StreamConfig(language="en-US")))
    assert [(r.text, r.is_final) for r in results] == [
        ("phrase", False), ("phrase 1", False), ("phrase 1", True),
        ("phrase", False), ("phrase 2", False), ("phrase 2", True),
    ]
    # The session asks for the tokens' log-probabilities: a final's confidence is their mean's exp.
    import math

    assert [r.confidence for r in results if r.is_final] == [round(math.exp(-0.15), 3)] * 2


async def test_finalize_and_end_commit_the_phrase_in_progress(connect, make_user, realtime):
    realtime()
    user = await sync_to_async(make_user)()
    c = await connect(user=user)
    await c.connect()
    await c.send_json_to({"type": "start", "lang": "en-US"})
    await c.receive_json_from(timeout=10)
    for frame in [loud_frame()] * 4:
        await c.send_to(bytes_data=frame)
    await asyncio.sleep(0.3)
    await c.send_json_to({"type": "finalize"})
    events = await receive_until(c, lambda e: e["type"] == "final", timeout=10)
    assert events[-1]["text"] == "phrase 1"
    for frame in [loud_frame()] * 3:
        await c.send_to(bytes_data=frame)
    await c.send_json_to({"type": "end"})
    events = await receive_until(c, lambda e: e.get("event") == "ended", timeout=20)
    assert [e["text"] for e in events if e["type"] == "final"] == ["phrase 2"]
    await c.disconnect()


async def test_upstream_session_expiry_rolls_over_transparently(connect, make_user, realtime):
    server = realtime(expire_after_ms=600)  # mid-phrase-1 (speech 0-500 ms, its end detected at 800)
    frames = [loud_frame()] * 5 + [quiet_frame()] * 4 + [loud_frame()] * 3 + [quiet_frame()] * 4
    started, events = await run_session(connect, await sync_to_async(make_user)(), frames)
    assert not [e for e in events if e["type"] == "error"], events
    assert server.connections == 2 and len(server.sessions) == 2
    finals = [e for e in events if e["type"] == "final"]
    assert [f["text"] for f in finals] == ["phrase 1", "phrase 2"]  # none lost at the rollover, none twice
    assert [f["start_ms"] for f in finals] == [0, 900]  # times continue across connections
    assert all(f["end_ms"] <= 1600 for f in finals)


@pytest.mark.slow
async def test_upstream_failing_twice_ends_the_session_with_an_error_and_keeps_finals(connect, make_user, realtime):
    server = realtime(drop_after_ms=1200)
    frames = [loud_frame()] * 5 + [quiet_frame()] * 4 + [loud_frame()] * 40
    c = await connect(user=await sync_to_async(make_user)())
    await c.connect()
    await c.send_json_to({"type": "start", "lang": "ko-KR"})
    started = await c.receive_json_from(timeout=10)
    for frame in frames:
        await c.send_to(bytes_data=frame)
        await asyncio.sleep(0.01)
    events = await receive_until(c, lambda e: e.get("event") == "ended", timeout=30)
    await c.disconnect()
    assert [e["code"] for e in events if e["type"] == "error"] == ["engine_unavailable"]
    assert events[-1]["reason"] == "error" and server.connections == 2
    finals = [e["text"] for e in events if e["type"] == "final"]
    assert finals == ["phrase 1"]
    assert await Segment.objects.filter(session_id=started["session"]).acount() == 1


# ---- service errors: never silent (before, during and after the last audio) ----

SERVER_ERROR = {"type": "server_error", "code": None, "message": "The server had an error while processing your request."}
INVALID = {"type": "invalid_request_error", "code": "invalid_value", "message": "Invalid value: 'gpt-nope'."}
PHRASE_THEN_OPEN = [loud_frame()] * 5 + [quiet_frame()] * 4 + [loud_frame()] * 3  # the 2nd phrase needs the end's commit


def codes(events):
    return [e["code"] for e in events if e["type"] == "error" and e["code"] != "not_started"]


async def stored_texts(session_id):
    return [s.text async for s in Segment.objects.filter(session_id=session_id).order_by("index")]


async def test_a_bad_key_is_refused_at_once_with_engine_rejected(connect, make_user, realtime):
    realtime(handshake_status=401)
    started, events = await run_session(connect, await sync_to_async(make_user)(), SPEECH)
    assert codes(events) == ["engine_rejected"] and "HTTP 401" in events[[e["type"] for e in events].index("error")]["message"]
    assert events[-1]["reason"] == "error"
    assert (await TranscriptionSession.objects.aget(pk=started["session"])).status == "failed"


async def test_an_invalid_request_before_any_audio_is_engine_rejected(connect, make_user, realtime):
    server = realtime(errors=[{"on": "session.update", "error": INVALID}])
    _, events = await run_session(connect, await sync_to_async(make_user)(), SPEECH)
    assert codes(events) == ["engine_rejected"] and "gpt-nope" in next(e for e in events if e["type"] == "error")["message"]
    assert server.connections == 1  # a refusal is not retried
    assert not [e for e in events if e["type"] == "final"]


async def test_a_refusal_during_the_session_keeps_the_finals_before_it(connect, make_user, realtime):
    server = realtime(errors=[{"on": "audio", "at_ms": 1300, "error": INVALID}])
    started, events = await run_session(connect, await sync_to_async(make_user)(), SPEECH)
    assert [e["text"] for e in events if e["type"] == "final"] == ["phrase 1"]
    assert codes(events) == ["engine_rejected"] and server.connections == 1
    assert await stored_texts(started["session"]) == ["phrase 1"]


async def test_a_server_error_during_the_session_is_retried_and_nothing_is_lost(connect, make_user, realtime):
    server = realtime(errors=[{"on": "audio", "at_ms": 1000, "error": SERVER_ERROR}])  # mid-phrase 2
    started, events = await run_session(connect, await sync_to_async(make_user)(), SPEECH)
    assert codes(events) == [] and server.connections == 2
    assert [e["text"] for e in events if e["type"] == "final"] == ["phrase 1", "phrase 2"]
    assert await stored_texts(started["session"]) == ["phrase 1", "phrase 2"]


async def test_a_server_error_after_the_last_audio_is_retried_and_the_last_phrase_arrives(connect, make_user, realtime):
    server = realtime(errors=[{"on": "commit", "error": SERVER_ERROR}])  # the end's commit, first connection
    started, events = await run_session(connect, await sync_to_async(make_user)(), PHRASE_THEN_OPEN)
    assert codes(events) == [] and server.errors_sent == ["server_error"] and server.connections == 2
    assert [e["text"] for e in events if e["type"] == "final"] == ["phrase 1", "phrase 2"]
    assert events[-1]["reason"] == "end"
    assert await stored_texts(started["session"]) == ["phrase 1", "phrase 2"]


async def test_a_service_failing_after_the_last_audio_ends_with_engine_unavailable_not_silence(connect, make_user,
                                                                                             realtime):
    server = realtime(errors=[{"on": "commit", "connection": None, "error": SERVER_ERROR}])  # every time
    started, events = await run_session(connect, await sync_to_async(make_user)(), PHRASE_THEN_OPEN)
    assert [e["text"] for e in events if e["type"] == "final"] == ["phrase 1"]
    assert codes(events) == ["engine_unavailable"] and server.connections == 2
    assert events[-1]["reason"] == "error"
    assert await stored_texts(started["session"]) == ["phrase 1"]  # what was final stays stored
    assert (await TranscriptionSession.objects.aget(pk=started["session"])).status == "failed"


def test_resampler_keeps_the_tone_and_the_length():
    t = np.arange(16000) / 16000
    pcm = (0.5 * np.sin(2 * np.pi * 1000 * t) * 32767).astype("<i2").tobytes()
    resampler = Resampler16to24()
    out = np.frombuffer(b"".join(resampler.process(pcm[i : i + 3200]) for i in range(0, len(pcm), 3200)), "<i2")
    assert len(out) == 24000
    spectrum = np.abs(np.fft.rfft(out[2400:21600].astype(float)))
    assert abs(np.argmax(spectrum) * 24000 / 19200 - 1000) < 5
    assert 0.95 < out[2400:21600].std() / (0.5 * 32767 / np.sqrt(2)) < 1.05


async def test_openai_translation_streams_with_context(connect, make_user, chat):
    server = chat()
    frames = [loud_frame(), loud_frame(), quiet_frame(), loud_frame(), loud_frame(), loud_frame(), quiet_frame()]
    started, events = await run_session(connect, await sync_to_async(make_user)(), frames, translate_to="fr")
    dones = [e for e in events if e["type"] == "translation" and e["done"]]
    assert [d["text"] for d in dones] == ["EN: W1", "EN: W1 W2"]
    deltas = [e["text"] for e in events if e["type"] == "translation" and not e["done"]]
    assert "".join(deltas) == "EN: W1EN: W1 W2"
    stored = {t.text async for t in Translation.objects.filter(segment__session_id=started["session"], language="fr")}
    assert stored == {"EN: W1", "EN: W1 W2"}
    first, second = server.requests
    assert first["auth"] == "Bearer test-key" and first["body"]["model"] == "gpt-4o-mini"
    assert "into fr" in first["body"]["messages"][0]["content"]
    assert "w1" in second["body"]["messages"][1]["content"]  # the earlier final, as context


async def test_openai_translation_failure_is_retried_then_reported(connect, make_user, chat):
    chat(fail_times=1)
    _, events = await run_session(connect, await sync_to_async(make_user)(), [loud_frame(), quiet_frame()], translate_to="fr")
    assert [e["text"] for e in events if e["type"] == "translation" and e["done"]] == ["EN: W1"]
    assert not [e for e in events if e["type"] == "error"]
    chat(fail_times=10)
    _, events = await run_session(connect, await sync_to_async(make_user)("bob"), [loud_frame(), quiet_frame()],
                                  translate_to="fr")
    assert [e["code"] for e in events if e["type"] == "error"] == ["translation_failed"]
    assert [e["text"] for e in events if e["type"] == "final"] == ["w1"]

"""Google Speech v2 engine with the real client against a local fake gRPC server."""
import os

import pytest
from asgiref.sync import sync_to_async

from transcription import engines
from transcription.engines import StreamConfig, get_engine
from transcription.models import Segment

from .conftest import receive_until
from .fakes.google_speech import BLOCK, FakeSpeech, phrase_frames

os.environ.setdefault("NO_GCE_CHECK", "true")


@pytest.fixture
def fake_google(settings):
    servers = []

    def make(**options):
        engines._cache.clear()
        server = FakeSpeech(**options)
        servers.append(server)
        settings.STT_ENGINE = "google"
        settings.GOOGLE_CLOUD_PROJECT = "test-project"
        settings.GOOGLE_SPEECH_ENDPOINT = server.endpoint
        settings.GOOGLE_SPEECH_INSECURE = True
        return server

    yield make
    engines._cache.clear()
    for server in servers:
        server.close()


def run(frames, lang="en-US"):
    return list(get_engine("google").stream(iter(frames), StreamConfig(language=lang)))


def finals(results):
    return [r for r in results if r.is_final]


def test_config_request_audio_and_results(fake_google):
    server = fake_google()
    frames = phrase_frames(1) + phrase_frames(2)
    results = run(frames)
    assert [(r.text, r.start_ms, r.end_ms) for r in finals(results)] == [("phrase 1", 0, 500), ("phrase 2", 500, 1400)]
    assert [(r.text, round(r.stability, 2)) for r in results if not r.is_final][:2] == [("phrase 1", 0.8), ("phrase 1", 0.8)]
    (stream,) = server.streams
    assert stream["recognizer"] == "projects/test-project/locations/global/recognizers/_"
    config = stream["config"].config
    assert config.explicit_decoding_config.sample_rate_hertz == 16000
    assert config.explicit_decoding_config.audio_channel_count == 1
    assert config.explicit_decoding_config.encoding.name == "LINEAR16"
    assert list(config.language_codes) == ["en-US"] and config.model == "long"
    assert stream["config"].streaming_features.interim_results
    assert not stream["first_has_audio"]
    assert stream["bytes"] == len(frames) * BLOCK and stream["max_request"] <= 15_000


def test_the_vocabulary_goes_as_an_inline_phrase_set_with_a_boost(fake_google, settings):
    server = fake_google()
    list(get_engine("google").stream(iter(phrase_frames(1)), StreamConfig(language="ko-KR",
                                                                           vocabulary=("친애하는 판사님께", "지호"))))
    (stream,) = server.streams
    (phrase_set,) = stream["config"].config.adaptation.phrase_sets
    assert [p.value for p in phrase_set.inline_phrase_set.phrases] == ["친애하는 판사님께", "지호"]
    assert phrase_set.inline_phrase_set.boost == settings.GOOGLE_SPEECH_BOOST == 10
    run(phrase_frames(1))  # without a vocabulary: no adaptation at all
    assert not server.streams[-1]["config"].config.adaptation.phrase_sets


def test_a_twelve_minute_session_rotates_streams_without_losing_or_repeating(fake_google, settings):
    settings.STT_GOOGLE_STREAM_SECONDS = 50  # rotate well before the fake's 60 s cap
    server = fake_google(limit_ms=60_000)
    frames = []
    for n in range(80):  # 80 phrases x 0.9 s, with long silences: 12 minutes
        frames += phrase_frames(n % 50 + 1, speech_blocks=5, silence_blocks=4)
        frames += [bytes(BLOCK)] * 81
    results = finals(run(frames))
    assert [r.text for r in results] == [f"phrase {n % 50 + 1}" for n in range(80)]
    starts = [r.start_ms for r in results]
    ends = [r.end_ms for r in results]
    assert all(a < b for a, b in zip(ends, ends[1:])) and all(s <= e for s, e in zip(starts, ends))
    assert ends[-1] <= len(frames) * 100 and ends[5] == 5 * 9000 + 500  # continuous session times
    assert len(server.streams) >= 14  # 720 s / 50 s
    assert set(server.ended_by()) == {"half_close"}  # every stream was rotated by us, none hit the cap


def test_a_silent_session_rotates_on_the_clock(fake_google, settings):
    """No audio at all for 4 s (a client sending keepalives only): the stream is still replaced
    before the service's cap, which counts time, not audio."""
    import time

    settings.STT_GOOGLE_STREAM_SECONDS = 1.0
    server = fake_google(limit_ms=2_000)

    def frames():
        yield from phrase_frames(1)
        time.sleep(4.0)  # nothing arrives: keepalives carry no audio
        yield from phrase_frames(2)

    results = finals(list(get_engine("google").stream(frames(), StreamConfig(language="en-US"))))
    assert [r.text for r in results] == ["phrase 1", "phrase 2"]
    assert len(server.streams) >= 4 and "limit" not in server.ended_by(), server.ended_by()


def test_long_silence_never_makes_streams_run_away(fake_google, settings):
    """The fake, like the service, answers nothing during silence, so the unfinalised audio that is
    replayed into the next stream grows; it stays below the rotation length: a 99 s session opens a
    handful of streams and sends little more audio than it has, silence included."""
    settings.STT_GOOGLE_STREAM_SECONDS = 12
    server = fake_google(limit_ms=15_000, max_streams=100)
    frames = []
    for n in range(1, 4):
        frames += phrase_frames(n) + [bytes(BLOCK)] * 20
    frames += [bytes(BLOCK)] * 300  # 30 s of silence
    for n in range(4, 25):
        frames += phrase_frames(n) + [bytes(BLOCK)] * 20
    session_ms = len(frames) * 100
    results = finals(run(frames))
    assert [r.text for r in results] == [f"phrase {n}" for n in range(1, 25)]
    assert 95_000 <= session_ms <= 100_000
    assert len(server.streams) <= session_ms / 1000 / 8 + 2, len(server.streams)  # >= 8 s of new audio each
    assert server.audio_sent_ms() <= 1.5 * session_ms, (server.audio_sent_ms(), session_ms)
    assert "limit" not in server.ended_by()


def test_an_abort_mid_phrase_replays_the_unfinalised_audio(fake_google, settings):
    settings.STT_GOOGLE_STREAM_SECONDS = 1000
    server = fake_google(abort_after_ms=1_200)  # every stream dies after 1.2 s of audio
    frames = phrase_frames(1) + phrase_frames(2, speech_blocks=3, silence_blocks=4)  # 0.9 s + 0.7 s
    results = finals(run(frames))
    assert [(r.text, r.start_ms) for r in results] == [("phrase 1", 0), ("phrase 2", 500)]
    assert len(server.streams) >= 2


def test_unavailable_once_is_recovered(fake_google):
    server = fake_google(unavailable_after_ms=700)
    frames = phrase_frames(1) + phrase_frames(2)
    assert [r.text for r in finals(run(frames))] == ["phrase 1", "phrase 2"]
    assert len(server.streams) == 2


@pytest.mark.django_db(transaction=True)
async def test_permission_denied_ends_the_session_with_a_clear_error(connect, make_user, fake_google):
    fake_google(deny=True)
    c = await connect(user=await sync_to_async(make_user)())
    await c.connect()
    await c.send_json_to({"type": "start", "lang": "en-US"})
    await c.receive_json_from(timeout=10)
    for frame in phrase_frames(1):
        await c.send_to(bytes_data=frame)
    events = await receive_until(c, lambda e: e.get("event") == "ended", timeout=20)
    codes = [e["code"] for e in events if e["type"] == "error"]
    assert codes[0] == "engine_rejected"  # frames still arriving after the end get `not_started`
    assert set(codes) <= {"engine_rejected", "not_started"}
    assert events[-1]["reason"] == "error"
    await c.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_through_the_socket_finals_are_stored(connect, make_user, fake_google):
    fake_google()
    c = await connect(user=await sync_to_async(make_user)())
    await c.connect()
    await c.send_json_to({"type": "start", "lang": "en-US"})
    started = await c.receive_json_from(timeout=10)
    for frame in phrase_frames(1) + phrase_frames(2):
        await c.send_to(bytes_data=frame)
    await c.send_json_to({"type": "end"})
    events = await receive_until(c, lambda e: e.get("event") == "ended", timeout=20)
    await c.disconnect()
    assert [e["text"] for e in events if e["type"] == "final"] == ["phrase 1", "phrase 2"]
    texts = [s.text async for s in Segment.objects.filter(session_id=started["session"]).order_by("index")]
    assert texts == ["phrase 1", "phrase 2"]


def test_no_credentials_is_a_clear_engine_unavailable(settings, monkeypatch):
    from transcription.engines import EngineError

    engines._cache.clear()
    settings.STT_ENGINE = "google"
    settings.GOOGLE_SPEECH_ENDPOINT = ""
    monkeypatch.setenv("NO_GCE_CHECK", "true")
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("HOME", "/nonexistent")  # no gcloud ADC file either
    with pytest.raises(EngineError) as info:
        run(phrase_frames(1))
    assert info.value.kind == "unavailable"
    engines._cache.clear()

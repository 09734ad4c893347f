"""The Deepgram and OpenAI sockets on the ASGI application itself (scripted engine, no model): audio
sent faster than real time gets each vendor's own error, and what was accepted is still stored."""
import base64
import json

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from knox.models import AuthToken

from transcription.models import Segment

from .conftest import loud_frame, quiet_frame


def token_for(user) -> str:
    return AuthToken.objects.create(user, expiry=None)[1]


async def socket_of(make_user, settings, path: str, scheme: str) -> WebsocketCommunicator:
    """A program's socket on the ASGI application (scripted engine, 2x real time, a 1 s burst)."""
    from sttproject.asgi import application

    settings.STT_ENGINE = "scripted"
    settings.STT_MAX_AUDIO_RATE = 2.0
    settings.STT_AUDIO_BURST_SECONDS = 1.0
    token = await sync_to_async(token_for)(await sync_to_async(make_user)())
    return WebsocketCommunicator(application, path, headers=[(b"authorization", f"{scheme} {token}".encode())])


async def messages_until(socket, done, limit: int = 100) -> list[dict]:
    seen = []
    for _ in range(limit):
        seen.append(json.loads(await socket.receive_from(timeout=5)))
        if done(seen[-1]):
            return seen
    raise AssertionError(seen)


@pytest.mark.django_db(transaction=True)
async def test_deepgram_audio_too_fast_gets_a_deepgram_error_and_what_was_accepted_is_stored(make_user, settings):
    socket = await socket_of(make_user, settings, "/v1/listen?encoding=linear16&sample_rate=16000&language=ko", "Token")
    assert (await socket.connect())[0]
    for frame in [loud_frame()] * 3 + [quiet_frame()] + [loud_frame()] * 30:  # 3.4 s at once
        await socket.send_to(bytes_data=frame)
    seen = await messages_until(socket, lambda m: m["type"] == "Error")
    assert seen[-1]["variant"] == "rate" and "real time" in seen[-1]["description"]
    await socket.send_to(text_data=json.dumps({"type": "CloseStream"}))
    seen += await messages_until(socket, lambda m: m["type"] == "Metadata")
    finals = [m["channel"]["alternatives"][0]["transcript"] for m in seen if m["type"] == "Results" and m["is_final"]]
    assert finals[0] == "w1 w2" and len(finals) == 2  # the phrase before, and what was accepted after it
    stored = [s.text async for s in Segment.objects.filter(session_id=seen[-1]["request_id"]).order_by("index")]
    assert stored == finals
    await socket.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_openai_audio_too_fast_gets_rate_limit_exceeded_in_openais_error_shape(make_user, settings):
    socket = await socket_of(make_user, settings, "/v1/realtime?intent=transcription", "Bearer")
    assert (await socket.connect())[0]
    assert json.loads(await socket.receive_from(timeout=5))["type"] == "session.created"
    second = bytes(48000)  # 1 s of 24 kHz PCM16
    for n in range(4):
        await socket.send_to(text_data=json.dumps({"type": "input_audio_buffer.append", "event_id": f"e{n}",
                                                   "audio": base64.b64encode(second).decode()}))
    error = (await messages_until(socket, lambda m: m["type"] == "error"))[-1]
    assert error["error"]["type"] == "invalid_request_error" and error["error"]["code"] == "rate_limit_exceeded"
    assert error["error"]["event_id"] in {"e1", "e2", "e3"}
    await socket.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_deepgram_diarize_waits_briefly_for_a_late_speaker_label_and_keeps_the_order(make_user, settings,
                                                                                          monkeypatch):
    """A busy box labels late: with diarize=true the final waits for its label (Deepgram's words always
    carry a speaker), and what came after it follows it, in order."""
    import time

    from sttproject.asgi import application
    from transcription.speakers import SpeakerLabeller

    monkeypatch.setattr(SpeakerLabeller, "label", lambda self, pcm: time.sleep(0.8) or "S2")
    settings.STT_ENGINE = "scripted"
    settings.STT_SPEAKERS = True
    token = await sync_to_async(token_for)(await sync_to_async(make_user)())
    socket = WebsocketCommunicator(application, "/v1/listen?sample_rate=16000&diarize=true&interim_results=true",
                                   headers=[(b"authorization", f"Token {token}".encode())])
    assert (await socket.connect())[0]
    for frame in [loud_frame()] * 5 + [quiet_frame()] + [loud_frame()] * 2:  # a phrase, then the next begins
        await socket.send_to(bytes_data=frame)
    seen = await messages_until(socket, lambda m: m["type"] == "Results" and m["is_final"])
    final = seen[-1]
    assert {w["speaker"] for w in final["channel"]["alternatives"][0]["words"]} == {1}  # S2
    after = json.loads(await socket.receive_from(timeout=5))  # the next phrase's interim, queued behind it
    assert after["type"] == "Results" and not after["is_final"] and after["start"] >= final["start"] + final["duration"]
    await socket.send_to(text_data=json.dumps({"type": "CloseStream"}))
    await messages_until(socket, lambda m: m["type"] == "Metadata")
    await socket.disconnect()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path, scheme", [("/v1/listen?encoding=linear16&sample_rate=16000&language=ko", "Token"),
                                          ("/v1/realtime?intent=transcription", "Bearer")])
async def test_a_vendor_socket_closed_by_its_client_ends_the_session_and_a_dropped_one_is_interrupted(
        make_user, settings, path, scheme):
    """Neither protocol needs an end message: a client that closes its socket (1000) has ended its
    session, which is `ended` with its phrase in progress stored; a connection lost (1006) is `interrupted`."""
    import asyncio

    from sttproject.asgi import application
    from transcription.models import TranscriptionSession

    settings.STT_ENGINE = "scripted"
    token = await sync_to_async(token_for)(await sync_to_async(make_user)())
    outcomes = []
    for code in (1000, 1006):
        socket = WebsocketCommunicator(application, path, headers=[(b"authorization", f"{scheme} {token}".encode())])
        assert (await socket.connect())[0]
        for frame in [loud_frame()] * 5:  # a phrase still in progress when the socket closes
            if path.startswith("/v1/listen"):
                await socket.send_to(bytes_data=frame)
            else:
                pcm24 = b"".join(frame[i:i + 2] * 3 for i in range(0, len(frame), 4))  # 16 -> 24 kHz, roughly
                await socket.send_to(text_data=json.dumps({"type": "input_audio_buffer.append",
                                                           "audio": base64.b64encode(pcm24).decode()}))
        await asyncio.sleep(0.5)  # (the engine has the audio)
        await socket.disconnect(code=code, timeout=10)
        session = await TranscriptionSession.objects.order_by("-started_at").afirst()
        for _ in range(50):
            if session.status != "active":
                break
            await asyncio.sleep(0.1)
            await session.arefresh_from_db()
        outcomes.append((session.status, [s.text async for s in Segment.objects.filter(session=session)]))
    (clean, clean_texts), (dropped, dropped_texts) = outcomes
    assert (clean, dropped) == ("ended", "interrupted")
    assert clean_texts and dropped_texts  # the phrase in progress stored either way

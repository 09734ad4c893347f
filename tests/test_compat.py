"""Drop-in sockets for other vendors' clients (issue 24), each driven by the vendor's official SDK
against a real daphne running Whisper, with Korean streamed at real time: Deepgram's `/v1/listen`
(deepgram-sdk) and OpenAI's realtime transcription (the `openai` client). Every session is a real
one: what the client received is what was stored."""
import asyncio
import json
import time
import urllib.request
import wave

import pytest

from .servers import ServerProcess

pytestmark = [pytest.mark.server, pytest.mark.model]

KO = "tests/data/ko"


def pcm_of(name: str) -> bytes:
    with wave.open(f"{KO}/{name}.wav") as w:
        return w.readframes(w.getnframes())


def stored_session(server: ServerProcess, token: str, session_id: str) -> dict:
    request = urllib.request.Request(f"{server.url}/api/sessions/{session_id}/",
                                     headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = ServerProcess(tmp_path_factory.mktemp("compat"), env={"STT_ENGINE": "whisper", "STT_SPEAKERS": "1"})
    server.create_user("alice")
    server.token = server.create_token("alice")
    server.start()
    yield server
    server.stop()


async def stream(send, pcm: bytes, *, seconds_of_silence: float = 0.0) -> None:
    """PCM16 16 kHz at real time, 100 ms at a time."""
    pcm += bytes(int(seconds_of_silence * 16000) * 2)
    for at in range(0, len(pcm), 3200):
        await send(pcm[at:at + 3200])
        await asyncio.sleep(0.1)


# ---- Deepgram ----

def deepgram(server: ServerProcess, token: str):
    from deepgram import AsyncDeepgramClient
    from deepgram.environment import DeepgramClientEnvironment

    environment = DeepgramClientEnvironment(base=server.url, production=server.ws_url, agent=server.ws_url,
                                            agent_rest=server.url)
    return AsyncDeepgramClient(api_key=token, environment=environment)


async def test_deepgram_sdk_streams_korean_and_gets_interims_finals_words_and_metadata(server):
    from deepgram.listen.v1.types import ListenV1Metadata, ListenV1Results, ListenV1SpeechStarted, ListenV1UtteranceEnd

    client = deepgram(server, server.token)
    messages = []
    async with client.listen.v1.connect(model="nova-3", language="ko", encoding="linear16", sample_rate=16000,
                                        channels=1, interim_results="true", punctuate="true", vad_events="true",
                                        utterance_end_ms="1000", diarize="true", keyterm="판사님") as socket:
        async def receive():
            async for message in socket:
                messages.append((time.monotonic(), message))

        receiver = asyncio.create_task(receive())
        await stream(socket.send_media, pcm_of("kspon_005"), seconds_of_silence=1.5)  # an endpoint: speech_final
        await socket.send_keep_alive()
        await asyncio.sleep(1.0)
        await stream(socket.send_media, pcm_of("kspon_006"))
        await socket.send_finalize()  # no pause after it: the phrase is finalised by Finalize
        await asyncio.sleep(3.0)
        await socket.send_close_stream()
        await asyncio.wait_for(receiver, 30)

    parsed = [m for _, m in messages]
    results = [m for m in parsed if isinstance(m, ListenV1Results)]
    finals = [r for r in results if r.is_final]
    interims = [r for r in results if not r.is_final]
    assert interims and all(r.channel.alternatives[0].transcript for r in interims)
    assert any(isinstance(m, ListenV1SpeechStarted) for m in parsed)
    assert any(isinstance(m, ListenV1UtteranceEnd) for m in parsed)
    assert len(finals) == 2, [r.channel.alternatives[0].transcript for r in finals]
    first, second = finals
    assert first.speech_final and not first.from_finalize
    assert second.from_finalize and not second.speech_final
    for final in finals:
        alternative = final.channel.alternatives[0]
        assert alternative.transcript and 0 < alternative.confidence <= 1
        assert alternative.words
        for word in alternative.words:
            assert final.start - 0.05 <= word.start <= word.end <= final.start + final.duration + 0.05
            assert 0 <= word.confidence <= 1
        assert len({word.speaker for word in alternative.words}) == 1  # diarize: each word its speaker
    assert finals[0].channel.alternatives[0].words[0].speaker == 0
    assert "판사" in second.channel.alternatives[0].transcript
    assert second.start >= first.start + first.duration
    metadata = parsed[-1]
    assert isinstance(metadata, ListenV1Metadata) and metadata.request_id == first.metadata.request_id
    assert 9 < metadata.duration < 12

    stored = stored_session(server, server.token, metadata.request_id)
    assert stored["status"] == "ended"
    assert [s["text"] for s in stored["segments"]] == [f.channel.alternatives[0].transcript for f in finals]
    assert [len(s["words"]) for s in stored["segments"]] == [len(f.channel.alternatives[0].words) for f in finals]


async def test_deepgram_sdk_is_told_401_for_a_wrong_token_and_400_for_a_bad_parameter(server):
    from deepgram.core.api_error import ApiError

    with pytest.raises(ApiError) as refused:
        async with deepgram(server, "wrong-token").listen.v1.connect(model="nova-3", language="ko"):
            pass
    assert refused.value.status_code == 401
    for bad in ({"encoding": "mp3"}, {"sample_rate": "fast"}, {"interim_results": "perhaps"}):
        with pytest.raises(ApiError) as refused:
            async with deepgram(server, server.token).listen.v1.connect(model="nova-3", language="ko", **bad):
                pass
        assert refused.value.status_code == 400, bad


# ---- OpenAI realtime transcription ----

def openai_client(server: ServerProcess, token: str):
    from openai import AsyncOpenAI

    return AsyncOpenAI(api_key=token, base_url=f"{server.url}/v1", max_retries=0)


def pcm24_base64(pcm16k: bytes) -> list[str]:
    """100 ms appends of 24 kHz PCM16, as a realtime client sends them."""
    import base64

    from transcription.engines.resample import Resampler16to24

    resampler = Resampler16to24()
    return [base64.b64encode(resampler.process(pcm16k[at:at + 3200])).decode() for at in range(0, len(pcm16k), 3200)]


def latest_session(server: ServerProcess, token: str) -> dict:
    request = urllib.request.Request(f"{server.url}/api/sessions/", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        newest = json.loads(response.read())["results"][0]
    return stored_session(server, token, newest["id"])


async def test_openai_client_transcribes_korean_with_server_vad_commit_and_logprobs(server):
    events = []
    async with openai_client(server, server.token).realtime.connect(extra_query={"intent": "transcription"}) as conn:
        async def receive():
            async for event in conn:
                events.append(event)

        receiver = asyncio.create_task(receive())
        await conn.session.update(session={
            "type": "transcription",
            "audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000},
                                "transcription": {"model": "gpt-4o-transcribe", "language": "ko", "prompt": "판사님"},
                                "turn_detection": {"type": "server_vad", "silence_duration_ms": 500}}},
            "include": ["item.input_audio_transcription.logprobs"]})
        for chunk in pcm24_base64(pcm_of("kspon_005") + bytes(48000)):  # then 1.5 s of silence: server VAD
            await conn.input_audio_buffer.append(audio=chunk)
            await asyncio.sleep(0.1)
        for chunk in pcm24_base64(pcm_of("kspon_006")):
            await conn.input_audio_buffer.append(audio=chunk)
            await asyncio.sleep(0.1)
        await conn.input_audio_buffer.commit()  # no pause: the client commits the phrase itself
        for _ in range(100):
            if sum(e.type == "conversation.item.input_audio_transcription.completed" for e in events) >= 2:
                break
            await asyncio.sleep(0.1)
        await conn.input_audio_buffer.commit()  # nothing since: an empty buffer
        await asyncio.sleep(1.0)
        receiver.cancel()

    kinds = [e.type for e in events]
    assert kinds[0] == "session.created" and "session.updated" in kinds
    completed = [e for e in events if e.type == "conversation.item.input_audio_transcription.completed"]
    assert len(completed) == 2, kinds
    first, second = completed
    by_item = lambda item, kind: [e for e in events if e.type == kind and getattr(e, "item_id", None) == item]  # noqa: E731
    assert by_item(first.item_id, "input_audio_buffer.speech_started")
    assert by_item(first.item_id, "input_audio_buffer.speech_stopped")
    assert by_item(first.item_id, "input_audio_buffer.committed")
    assert not by_item(second.item_id, "input_audio_buffer.speech_stopped")  # committed by the client
    for done in completed:
        deltas = by_item(done.item_id, "conversation.item.input_audio_transcription.delta")
        assert done.transcript and "".join(d.delta for d in deltas) == done.transcript
        assert done.logprobs and all(p.logprob <= 0 for p in done.logprobs)
    assert "판사" in second.transcript
    errors = [e for e in events if e.type == "error"]
    assert [e.error.code for e in errors] == ["input_audio_buffer_commit_empty"]
    assert errors[0].error.type == "invalid_request_error"

    stored = latest_session(server, server.token)
    assert [s["text"] for s in stored["segments"]] == [done.transcript for done in completed]
    for _ in range(50):  # the client closed its connection: the normal end of this protocol
        if stored["status"] != "active":
            break
        await asyncio.sleep(0.2)
        stored = latest_session(server, server.token)
    assert stored["status"] == "ended"


async def test_openai_client_gets_openai_errors_for_a_wrong_key_and_a_bad_format(server):
    with pytest.raises(Exception) as refused:
        async with openai_client(server, "wrong-key").realtime.connect(extra_query={"intent": "transcription"}):
            pass
    assert "401" in str(refused.value)
    async with openai_client(server, server.token).realtime.connect(extra_query={"intent": "transcription"}) as conn:
        await conn.session.update(session={"type": "transcription",
                                           "audio": {"input": {"format": {"type": "audio/pcmu"}}}})
        await conn.send({"type": "input_audio_buffer.append", "audio": "not base64!"})
        errors = []

        async def two_errors():
            async for event in conn:
                if event.type == "error":
                    errors.append(event.error)
                    if len(errors) == 2:
                        return
        try:
            await asyncio.wait_for(two_errors(), 15)
        except asyncio.TimeoutError:
            pass
    assert [(e.type, e.code, e.param) for e in errors] == [
        ("invalid_request_error", "invalid_value", "session.audio.input.format"),
        ("invalid_request_error", "invalid_value", "audio")]


def test_our_own_openai_engine_transcribes_through_a_second_server(server, tmp_path):
    """A node with no model (STT_ENGINE=openai) pointed at this one by OPENAI_BASE_URL: a Korean phrase
    streamed to it in our own protocol comes back as the final the decoding node stored."""
    import websockets

    relay = ServerProcess(tmp_path / "relay", env={"STT_ENGINE": "openai", "STT_SPEAKERS": "0",
                                                   "OPENAI_BASE_URL": f"{server.url}/v1",
                                                   "OPENAI_API_KEY": server.token})
    relay.create_user("bob")
    token = relay.create_token("bob")
    relay.start()
    try:
        async def run():
            finals = []
            async with websockets.connect(f"{relay.ws_url}/ws/transcribe/",
                                          additional_headers={"Authorization": f"Bearer {token}"}) as ws:
                await ws.send(json.dumps({"type": "start", "lang": "ko-KR"}))
                pcm = pcm_of("kspon_005") + bytes(32000)
                for at in range(0, len(pcm), 3200):
                    await ws.send(pcm[at:at + 3200])
                    await asyncio.sleep(0.1)
                await ws.send(json.dumps({"type": "end"}))
                async for raw in ws:
                    event = json.loads(raw)
                    if event["type"] == "final":
                        finals.append(event["text"])
                        assert 0 < event["confidence"] <= 1  # from the decoding node's logprobs
                    if event.get("event") == "ended" or event["type"] == "error":
                        assert event["type"] != "error", event
                        break
            return finals

        finals = asyncio.run(run())
    finally:
        relay.stop()
    assert len(finals) == 1 and finals[0], finals
    decoded = latest_session(server, server.token)
    assert [s["text"] for s in decoded["segments"]] == finals

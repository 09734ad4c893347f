"""Uploaded recordings (issue 16): REST, the OpenAI-compatible endpoints with the real `openai` client,
the live viewer of an upload, and every bad input refused with nothing stored."""
import io
import time
import wave
from pathlib import Path

import jiwer
import numpy as np
import pytest
from asgiref.sync import sync_to_async
from django.core.files.uploadedfile import SimpleUploadedFile
from knox.models import AuthToken
from rest_framework.test import APIClient

from transcription.models import Job, TranscriptionSession

from .conftest import DATA, normalise_ko, read_wav, receive_until, session_cookie, viewer_socket
from .servers import ServerProcess


def wav_bytes(pcm: bytes) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
        w.writeframes(pcm)
    return out.getvalue()


def encoded(pcm: bytes, container: str, codec: str, rate: int, *, bit_rate: int | None = None,
            seekable: bool = True) -> bytes:
    """The audio (16 kHz PCM16) in another format, made with PyAV (what the server decodes with).
    Not `seekable`: the muxer cannot go back to write the duration, as a browser's MediaRecorder
    writing WebM as it records."""
    import av

    class Unseekable(io.RawIOBase):
        def __init__(self) -> None:
            self.buffer = io.BytesIO()

        def writable(self) -> bool:
            return True

        def write(self, data) -> int:
            return self.buffer.write(data)

    target = io.BytesIO() if seekable else Unseekable()
    with av.open(target, "w", format=container) as muxer:
        stream = muxer.add_stream(codec, rate=rate, layout="mono")
        if bit_rate:
            stream.bit_rate = bit_rate
        samples = np.frombuffer(pcm, dtype="<i2").reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = 16000
        resampler = av.AudioResampler(format=stream.codec_context.format.name, layout="mono", rate=rate)
        for piece in resampler.resample(frame) + resampler.resample(None):
            for packet in stream.encode(piece):
                muxer.mux(packet)
        for packet in stream.encode(None):
            muxer.mux(packet)
    return target.getvalue() if seekable else target.buffer.getvalue()


def scripted_speech(phrases: int) -> bytes:
    """For the scripted engine: `phrases` times (0.5 s loud, 0.3 s quiet) = one final each."""
    loud = (np.ones(8000, dtype="<i2") * 5000).tobytes()
    return (loud + bytes(9600)) * phrases


@pytest.fixture
def api(make_user):
    user = make_user("alice")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {AuthToken.objects.create(user)[1]}")
    return user, client


def wait_ended(client, session_id, timeout=120) -> dict:
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        detail = client.get(f"/api/sessions/{session_id}/").json()
        seen.append((detail["status"], detail["progress"]))
        if detail["status"] != "processing":
            return {**detail, "seen": seen}
        time.sleep(0.1)
    raise AssertionError(f"still processing: {seen[-3:]}")


# ---- REST ----

@pytest.mark.model
@pytest.mark.django_db(transaction=True)
def test_an_uploaded_mp3_becomes_a_session_with_timed_phrases_kept_audio_and_exports(api, settings):
    """Whisper's whole-file decode of an mp3 (two Korean utterances with a pause), in the background."""
    settings.STT_ENGINE = "whisper"
    user, client = api
    pcm = read_wav(DATA / "ko/kspon_006.wav") + bytes(32000) + read_wav(DATA / "ko/kspon_016.wav")
    mp3 = encoded(pcm, "mp3", "mp3", 44100)
    answer = client.post("/api/sessions/", {"file": SimpleUploadedFile("meeting.mp3", mp3), "language": "ko-KR"},
                         format="multipart")
    assert answer.status_code == 202, answer.content
    assert answer.json()["status"] == "processing" and answer.json()["progress"] == 0.0
    detail = wait_ended(client, answer.json()["id"])
    assert detail["status"] == "ended" and detail["progress"] == 1.0 and detail["source"] == "upload"
    assert detail["title"] == "meeting" and abs(detail["audio_ms"] - len(pcm) // 32) < 200
    texts = [s["text"] for s in detail["segments"]]
    reference = (DATA / "ko/kspon_006.txt").read_text() + (DATA / "ko/kspon_016.txt").read_text()
    assert jiwer.cer(normalise_ko(reference), normalise_ko("".join(texts))) < 0.3, texts
    assert len(texts) >= 2  # cut at the pause
    first, last = detail["segments"][0], detail["segments"][-1]
    assert first["start_ms"] < 1000 and last["end_ms"] > len(pcm) // 32 - 2500 and last["start_ms"] > 3000
    for segment in detail["segments"]:  # words with times and probabilities, spelling the text
        assert "".join(w["word"] for w in segment["words"]) == segment["text"].replace(" ", "")  # (spaces aside)
        assert all(w["probability"] is not None for w in segment["words"]) and 0 < segment["confidence"] <= 1
    audio = client.get(f"/sessions/{detail['id']}/audio.wav")  # (the page's link; the API client is logged out)
    client.force_login(user)
    audio = client.get(f"/sessions/{detail['id']}/audio.wav")
    assert audio.status_code == 200
    srt = client.get(f"/api/sessions/{detail['id']}/export/srt/").content.decode()
    assert texts[0] in srt and "00:00:0" in srt


@pytest.mark.django_db(transaction=True)
def test_bad_uploads_are_refused_with_a_code_and_nothing_is_stored(api, settings, scripted):
    user, client = api
    good = wav_bytes(scripted_speech(2))

    def post(data: bytes, name="talk.wav", **fields):
        return client.post("/api/sessions/", {"file": SimpleUploadedFile(name, data), "language": "ko-KR", **fields},
                           format="multipart")

    refused = {
        "not_audio": post(b"this is a text file, not a recording " * 50, "notes.wav"),
        "empty": post(b""),
    }
    settings.STT_ENGINE = "whisper"  # (the scripted engine takes any language; whisper knows its own)
    refused["unsupported_language"] = post(good, language="xx-XX")
    settings.STT_ENGINE = "scripted"
    settings.STT_MAX_UPLOAD_MB = 0.01
    refused["too_large"] = post(good)
    settings.STT_MAX_UPLOAD_MB = 500
    settings.STT_MAX_UPLOAD_SECONDS = 1
    refused["too_long"] = post(good)
    for code, answer in refused.items():
        assert answer.status_code == 400 and answer.json()["code"] == code, (code, answer.content)
    assert not TranscriptionSession.objects.exists() and not Job.objects.exists()
    uploads = Path(settings.MEDIA_ROOT) / "uploads"
    assert not uploads.exists() or not any(uploads.iterdir())


@pytest.mark.django_db(transaction=True)
def test_an_upload_beyond_the_users_limit_gets_too_many_sessions(api, settings, scripted):
    user, client = api
    settings.STT_MAX_SESSIONS_PER_USER = 1
    TranscriptionSession.objects.create(owner=user, language="ko-KR", engine="scripted",
                                        status=TranscriptionSession.Status.PROCESSING, source="upload")
    answer = client.post("/api/sessions/", {"file": SimpleUploadedFile("a.wav", wav_bytes(scripted_speech(1))),
                                            "language": "ko-KR"}, format="multipart")
    assert answer.status_code == 400 and answer.json()["code"] == "too_many_sessions"
    assert TranscriptionSession.objects.count() == 1


# ---- the live viewer of an upload (any engine but whisper: the file streamed through it) ----

@pytest.mark.django_db(transaction=True)
async def test_a_viewer_of_an_upload_sees_progress_and_each_phrase_as_it_is_stored(api, scripted, settings):
    settings.STT_SCRIPTED_CHUNK_DELAY = 0.01  # slow enough to be watched
    user, client = api
    answer = await sync_to_async(client.post)(
        "/api/sessions/", {"file": SimpleUploadedFile("talk.wav", wav_bytes(scripted_speech(6))), "language": "ko-KR"},
        format="multipart")
    assert answer.status_code == 202
    session_id = answer.json()["id"]
    viewer = viewer_socket(session_id, cookie=await sync_to_async(session_cookie)(user))
    assert (await viewer.connect())[0]
    events = await receive_until(viewer, lambda e: e.get("event") == "ended", timeout=30)
    snapshot = events[0]
    assert snapshot["type"] == "snapshot" and snapshot["status"] == "processing" and 0 <= snapshot["progress"] < 1
    finals = snapshot["finals"] + [e for e in events if e["type"] == "final"]
    assert [f["text"] for f in finals] == ["w1 w2 w3"] * 6
    assert [f["seq"] for f in finals] == list(range(1, 7))
    progress = [e["progress"] for e in events if e.get("event") == "progress"]
    assert progress and progress == sorted(progress) and progress[-1] == 1.0
    assert events[-1]["reason"] == "end"
    session = await TranscriptionSession.objects.aget(pk=session_id)
    assert session.status == "ended" and await session.segments.acount() == 6  # stored before shown
    await viewer.disconnect()


# ---- OpenAI-compatible, with the real openai client against a real server ----

@pytest.mark.model
def test_the_openai_client_transcribes_and_translates_a_file(tmp_path):
    import openai

    server = ServerProcess(tmp_path / "server", env={"STT_ENGINE": "whisper"})
    server.create_user("program")
    token = server.create_token("program")
    server.start()
    try:
        client = openai.OpenAI(base_url=server.url + "/v1", api_key=token, max_retries=0, timeout=120)
        with open(DATA / "ko/kspon_006.wav", "rb") as f:
            result = client.audio.transcriptions.create(file=f, model="whisper-1", language="ko")
        reference = (DATA / "ko/kspon_006.txt").read_text()
        assert jiwer.cer(normalise_ko(reference), normalise_ko(result.text)) < 0.3, result.text

        with open(DATA / "en/jfk.wav", "rb") as f:
            verbose = client.audio.transcriptions.create(file=f, model="whisper-1", response_format="verbose_json",
                                                         timestamp_granularities=["segment", "word"])
        assert "ask not what your country can do for you" in verbose.text.lower()
        assert verbose.segments and verbose.segments[-1].end > 9 and verbose.duration == pytest.approx(11.0, abs=0.1)
        assert any(w.word.strip(" ,.").lower() == "country" for w in verbose.words)
        with open(DATA / "en/jfk.wav", "rb") as f:
            srt = client.audio.transcriptions.create(file=f, model="whisper-1", response_format="srt")
        assert "00:00:0" in srt and "-->" in srt

        with open(DATA / "ko/kspon_006.wav", "rb") as f:
            english = client.audio.translations.create(file=f, model="whisper-1")
        assert english.text and not any("\uac00" <= ch <= "\ud7a3" for ch in english.text), english.text

        with pytest.raises(openai.BadRequestError) as bad:
            client.audio.transcriptions.create(file=("notes.wav", b"not audio at all" * 100), model="whisper-1")
        assert bad.value.body["code"] == "not_audio"
        with pytest.raises(openai.BadRequestError) as bad:
            with open(DATA / "en/jfk.wav", "rb") as f:
                client.audio.transcriptions.create(file=f, model="whisper-1", response_format="xml")
        assert bad.value.body["code"] == "bad_response_format"
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=server.url + "/v1", api_key="stt_wrong", max_retries=0).audio.transcriptions.create(
                file=open(DATA / "en/jfk.wav", "rb"), model="whisper-1")

        sessions = server.manage("shell", "-c", "from transcription.models import TranscriptionSession as S; "
                                                "print([(s.source, s.status, s.owner.username) for s in S.objects.all()])")
        listed = sessions.stdout.strip().splitlines()[-1]
        assert listed.count("('upload', 'ended', 'program')") == 4, listed  # each in the user's history
    finally:
        server.stop()

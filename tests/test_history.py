"""History and review: kept audio, playback with Range, exports, search, rename, delete."""
import json
import re
import wave

import pytest
from django.urls import reverse

from transcription.models import Segment, TranscriptionSession, Translation

from .conftest import loud_frame, quiet_frame, receive_until

ALL_SESSION_ROUTES = ["session_detail", "session_audio", "session_rename", "session_delete"]


@pytest.fixture
def recorded(scripted, make_user, connect):
    """A real session over the socket (scripted engine): 2 phrases, audio kept."""
    import asyncio

    user = make_user("alice")

    async def record():
        communicator = await connect(user=user)
        await communicator.connect()
        await communicator.send_json_to({"type": "start", "lang": "en-US"})
        started = await communicator.receive_json_from(timeout=5)
        for frame in [quiet_frame(), loud_frame(), loud_frame(), quiet_frame(), quiet_frame(),
                      loud_frame(), loud_frame(), loud_frame(), loud_frame(), quiet_frame()]:
            await communicator.send_to(bytes_data=frame)
        await communicator.send_json_to({"type": "end"})
        await receive_until(communicator, lambda e: e.get("event") == "ended")
        await communicator.disconnect()
        return started["session"]

    session_id = asyncio.run(record())
    session = TranscriptionSession.objects.get(pk=session_id)
    Translation.objects.create(segment=session.segments.get(index=0), language="ko", text="더블유 원", engine="test")
    return user, session


pytestmark = pytest.mark.django_db(transaction=True)


def test_session_audio_is_kept_as_a_wav_of_everything_received(recorded, settings):
    _, session = recorded
    assert session.audio.name == f"audio/{session.pk}.wav"
    with wave.open(session.audio.path) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2)
        assert w.getnframes() == 10 * 1600  # ten 100 ms frames
    assert session.audio_ms == 1000


def test_no_audio_is_kept_when_retention_is_off(scripted, make_user, connect, settings):
    import asyncio

    settings.STT_KEEP_AUDIO = False
    user = make_user("bob")

    async def record():
        c = await connect(user=user)
        await c.connect()
        await c.send_json_to({"type": "start", "lang": "en-US"})
        started = await c.receive_json_from(timeout=5)
        await c.send_to(bytes_data=loud_frame())
        await c.send_json_to({"type": "end"})
        await receive_until(c, lambda e: e.get("event") == "ended")
        await c.disconnect()
        return started["session"]

    session = TranscriptionSession.objects.get(pk=asyncio.run(record()))
    assert not session.audio
    assert not (settings.MEDIA_ROOT / "audio").exists() or not list((settings.MEDIA_ROOT / "audio").iterdir())


def test_audio_is_served_with_ranges_to_its_owner_only(client, recorded, make_user):
    user, session = recorded
    url = reverse("transcription:session_audio", args=[session.pk])
    client.force_login(user)
    whole = client.get(url)
    assert whole.status_code == 200 and whole["Accept-Ranges"] == "bytes"
    body = b"".join(whole.streaming_content)
    assert body[:4] == b"RIFF" and len(body) == 44 + 32000
    part = client.get(url, HTTP_RANGE="bytes=44-1043")
    assert part.status_code == 206 and part["Content-Range"] == f"bytes 44-1043/{len(body)}"
    assert part.content == body[44:1044]
    assert client.get(url, HTTP_RANGE="bytes=999999-").status_code == 416
    client.force_login(make_user("mallory"))
    assert client.get(url).status_code == 404


def test_exports_have_correct_times_and_translations(client, recorded):
    user, session = recorded
    client.force_login(user)
    get = lambda fmt: client.get(reverse("transcription:session_export", args=[session.pk, fmt]))  # noqa: E731

    srt = get("srt")
    assert srt["Content-Disposition"].startswith("attachment;") and srt["Content-Type"].startswith("application/x-subrip")
    text = srt.content.decode("utf-8")
    assert text.startswith("1\n00:00:00,100 --> 00:00:00,300\nw1\n더블유 원\n\n2\n00:00:00,500 --> 00:00:00,900\nw1 w2\n")
    vtt = get("vtt").content.decode()
    assert vtt.startswith("WEBVTT\n\n00:00:00.100 --> 00:00:00.300\nw1\n더블유 원\n")
    data = json.loads(get("json").content)
    assert [s["text"] for s in data["segments"]] == ["w1", "w1 w2"]
    assert data["segments"][0]["translations"] == {"ko": "더블유 원"}
    assert data["segments"][1]["start_ms"] == 500 and data["segments"][1]["end_ms"] == 900
    txt = get("txt").content.decode()
    assert "[00:00:00] w1\n    (ko) 더블유 원\n[00:00:00] w1 w2\n" == txt
    assert get("exe").status_code == 404
    for cue in re.findall(r"(\d\d:\d\d:\d\d,\d\d\d) --> (\d\d:\d\d:\d\d,\d\d\d)", text):
        assert cue[0] < cue[1]


def test_search_finds_own_transcripts_only(client, recorded, make_user):
    user, session = recorded
    other = make_user("mallory")
    theirs = TranscriptionSession.objects.create(owner=other, language="en-US", engine="x")
    Segment.objects.create(session=theirs, index=0, text="w1 secret plans", start_ms=0, end_ms=1)
    client.force_login(user)
    found = client.get(reverse("transcription:session_list"), {"q": "w1 w2"})
    assert str(session.pk) in found.content.decode() and "secret" not in found.content.decode()
    assert "No session of yours" in client.get(reverse("transcription:session_list"), {"q": "secret"}).content.decode()


def test_rename_and_delete_with_the_audio_file(client, recorded, make_user):
    user, session = recorded
    path = session.audio.path
    client.force_login(make_user("mallory"))
    assert client.post(reverse("transcription:session_rename", args=[session.pk]), {"title": "x"}).status_code == 404
    client.force_login(user)
    client.post(reverse("transcription:session_rename", args=[session.pk]), {"title": "  Standup notes "})
    session.refresh_from_db()
    assert session.title == "Standup notes"
    detail = client.get(reverse("transcription:session_detail", args=[session.pk])).content.decode()
    assert "Standup notes" in detail and '<audio id="player"' in detail and 'data-start="500"' in detail
    client.post(reverse("transcription:session_delete", args=[session.pk]))
    assert not TranscriptionSession.objects.filter(pk=session.pk).exists()
    import os

    assert not os.path.exists(path)


def test_every_session_route_is_404_for_another_user(client, recorded, make_user):
    from django.urls import get_resolver

    from transcription.models import ShareLink

    _, session = recorded
    link = ShareLink.objects.create(session=session)
    values = {"session_id": session.pk, "fmt": "srt", "share_id": link.pk}
    routes = [p for p in get_resolver("transcription.urls").url_patterns if "session_id" in str(p.pattern)]
    assert {p.name for p in routes} >= {"session_detail", "session_audio", "session_rename", "session_delete",
                                        "session_export", "session_translate", "live_own", "share_create", "share_revoke"}
    client.force_login(make_user("mallory"))
    for route in routes:
        url = reverse(f"transcription:{route.name}", kwargs={k: values[k] for k in route.pattern.converters})
        assert client.get(url).status_code in (404, 405), route.name
        assert client.post(url).status_code == 404, route.name
    assert TranscriptionSession.objects.filter(pk=session.pk).exists()
    link.refresh_from_db()
    assert link.is_active()


def test_admin_plays_and_exports_any_session_for_staff_only(client, admin_client, recorded):
    user, session = recorded
    change = admin_client.get(reverse("admin:transcription_transcriptionsession_change", args=[session.pk])).content.decode()
    audio_url = reverse("admin:transcription_session_audio", args=[session.pk])
    assert f'src="{audio_url}"' in change
    assert admin_client.get(audio_url).status_code == 200
    srt = admin_client.get(reverse("admin:transcription_session_export", args=[session.pk, "srt"]))
    assert srt.status_code == 200 and b"w1 w2" in srt.content
    action = admin_client.post(reverse("admin:transcription_transcriptionsession_changelist"),
                               {"action": "export_json", "_selected_action": [str(session.pk)]})
    assert json.loads(action.content)[0]["segments"][1]["text"] == "w1 w2"
    client.force_login(user)  # not staff
    assert client.get(audio_url).status_code == 302  # to the admin login


def test_translate_a_finished_session_after_the_fact(client, recorded, settings):
    settings.STT_TRANSLATOR = "scripted"
    user, session = recorded
    client.force_login(user)
    detail = client.get(reverse("transcription:session_detail", args=[session.pk])).content.decode()
    assert 'name="target"' in detail
    client.post(reverse("transcription:session_translate", args=[session.pk]), {"target": "ja"})
    texts = dict(Translation.objects.filter(segment__session=session, language="ja").values_list("segment__index", "text"))
    assert texts == {0: "ja: W1", 1: "ja: W1 W2"}
    detail = client.get(reverse("transcription:session_detail", args=[session.pk])).content.decode()
    assert "side-by-side" in detail and "ja: W1 W2" in detail
    client.post(reverse("transcription:session_translate", args=[session.pk]), {"target": "xx"})  # unsupported
    assert not Translation.objects.filter(language="xx").exists()


def test_whisper_translation_is_offered_into_english_only(client, make_user, settings):
    settings.STT_TRANSLATOR = "whisper"
    client.force_login(make_user("zoe"))
    page = client.get(reverse("transcription:recorder")).content.decode()
    select = page[page.index('id="translate-to"'):page.index("</select>", page.index('id="translate-to"'))]
    assert 'value="en"' in select and 'value="fr"' not in select

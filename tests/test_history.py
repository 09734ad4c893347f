"""History and review: kept audio, playback with Range, exports, search, rename, delete."""
import json
import re
import time
import wave

import pytest
from django.urls import reverse

from transcription.jobs import wait_idle
from transcription.models import Job, Segment, TranscriptionSession, Translation

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


def test_audio_is_served_with_ranges_to_its_owner_only(client, recorded, make_user, monkeypatch):
    user, session = recorded
    url = reverse("transcription:session_audio", args=[session.pk])
    client.force_login(user)
    whole = client.get(url)
    assert whole.status_code == 200 and whole["Accept-Ranges"] == "bytes"
    with pytest.warns(Warning, match="asynchronous iterators"):  # (an async stream, as served to ASGI)
        body = b"".join(whole)
    assert body[:4] == b"RIFF" and len(body) == 44 + 32000
    part = client.get(url, HTTP_RANGE="bytes=44-1043")
    assert part.status_code == 206 and part["Content-Range"] == f"bytes 44-1043/{len(body)}"
    assert part.content == body[44:1044]
    assert client.get(url, HTTP_RANGE="bytes=999999-").status_code == 416
    from transcription import media
    monkeypatch.setattr(media, "MAX_RANGE_BYTES", 1000)  # a long recording's "bytes=0-" is answered in part
    first = client.get(url, HTTP_RANGE="bytes=0-")
    assert first.status_code == 206 and first["Content-Range"] == f"bytes 0-999/{len(body)}" and len(first.content) == 1000
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


def test_exports_escape_markup_and_cue_arrows_and_parse_back_with_real_parsers(client, recorded):
    """A phrase containing "<b>", "A & B" and "-->": WebVTT escapes it, SRT keeps no timing-like
    line, and both parse back (webvtt-py, srt) to the same cues and text."""
    import html

    import srt as srt_parser
    import webvtt

    user, session = recorded
    tricky = "<b>bold</b> A & B --> C"
    Segment.objects.filter(session=session, index=1).update(text=tricky)
    client.force_login(user)
    get = lambda fmt: client.get(reverse("transcription:session_export", args=[session.pk, fmt]))  # noqa: E731

    vtt = get("vtt").content.decode()
    assert "&lt;b&gt;bold&lt;/b&gt; A &amp; B --&gt; C" in vtt
    assert vtt.count("-->") == 2  # only the two timing lines
    cues = list(webvtt.from_string(vtt))
    assert [html.unescape(c.text) for c in cues] == ["w1\n더블유 원", tricky]
    assert [(c.start, c.end) for c in cues] == [("00:00:00.100", "00:00:00.300"), ("00:00:00.500", "00:00:00.900")]

    subtitles = list(srt_parser.parse(get("srt").content.decode()))
    assert [s.content for s in subtitles] == ["w1\n더블유 원", "<b>bold</b> A & B -> C"]
    assert [s.index for s in subtitles] == [1, 2]
    assert subtitles[1].start.total_seconds() == 0.5 and subtitles[1].end.total_seconds() == 0.9


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


@pytest.mark.django_db
def test_a_long_phrase_is_cut_into_caption_cues_at_its_word_boundaries(client, make_user):
    """A 12 s phrase of 30 timed words becomes two or more SRT/VTT cues of at most two caption lines, each
    starting and ending on a word's own time; the words, in order, are the phrase. A corrected
    phrase (its words no longer spell it) stays one cue."""
    import srt as srt_parser
    import webvtt

    alice = make_user("alice")
    session = TranscriptionSession.objects.create(owner=alice, language="ko-KR", engine="whisper", status="ended")
    words = [{"word": f" 단어{i:02d}", "start_ms": 1000 + 400 * i, "end_ms": 1300 + 400 * i, "probability": 0.9}
             for i in range(30)]
    text = " ".join(w["word"].strip() for w in words)
    Segment.objects.create(session=session, index=0, text=text, original_text=text, start_ms=1000, end_ms=13100,
                           words=words)
    client.force_login(alice)
    get = lambda fmt: client.get(reverse("transcription:session_export", args=[session.pk, fmt])).content.decode()  # noqa: E731
    subtitles = list(srt_parser.parse(get("srt")))
    cues = list(webvtt.from_string(get("vtt")))
    assert len(subtitles) == len(cues) >= 2
    assert " ".join(s.content for s in subtitles) == text == " ".join(c.text for c in cues)
    starts = {w["start_ms"] for w in words} | {1000}
    ends = {w["end_ms"] for w in words} | {13100}
    for cue in subtitles:
        assert len(cue.content) <= 84 and (cue.end - cue.start).total_seconds() <= 7.0
        assert round(cue.start.total_seconds() * 1000) in starts and round(cue.end.total_seconds() * 1000) in ends
    Segment.objects.filter(session=session).update(text=text.replace("단어05", "낱말"))
    assert len(list(srt_parser.parse(get("srt")))) == 1


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
    assert wait_idle()
    texts = dict(Translation.objects.filter(segment__session=session, language="ja").values_list("segment__index", "text"))
    assert texts == {0: "ja: W1", 1: "ja: W1 W2"}
    detail = client.get(reverse("transcription:session_detail", args=[session.pk])).content.decode()
    assert "side-by-side" in detail and "ja: W1 W2" in detail
    client.post(reverse("transcription:session_translate", args=[session.pk]), {"target": "xx"})  # unsupported
    assert not Translation.objects.filter(language="xx").exists()


def test_translating_after_the_fact_runs_in_the_background_once_with_progress(client, recorded, settings):
    """The request returns at once; the page and the API show the job's progress; a second request
    while it runs does not start another; the translations are made once each."""
    from transcription.translation import get_translator

    settings.STT_TRANSLATOR = "scripted"
    settings.STT_SCRIPTED_TRANSLATION_DELAY = 0.3  # seconds per word: about 1.5 s in all
    get_translator().attempts.clear()
    user, session = recorded
    client.force_login(user)
    url = reverse("transcription:session_translate", args=[session.pk])
    began = time.monotonic()
    client.post(url, {"target": "ja"})
    again = client.post(url, {"target": "ja"}, follow=True)
    assert time.monotonic() - began < 1.0  # not done inside the requests
    assert "already running" in again.content.decode()
    page = client.get(reverse("transcription:session_detail", args=[session.pk])).content.decode()
    assert 'id="jobs"' in page and "<progress" in page
    job = Job.objects.get(session=session)
    assert job.kind == "translate" and job.language == "ja" and job.status in ("queued", "running")
    detail = client.get(f"/api/sessions/{session.pk}/").json()
    assert detail["jobs"][0]["status"] in ("queued", "running") and 0 <= detail["jobs"][0]["progress"] < 1
    assert wait_idle()
    assert Job.objects.filter(session=session).count() == 1
    detail = client.get(f"/api/sessions/{session.pk}/").json()
    assert detail["jobs"][0]["status"] == "done" and detail["jobs"][0]["progress"] == 1.0
    assert [t["text"] for s in detail["segments"] for t in s["translations"] if t["language"] == "ja"] == [
        "ja: W1", "ja: W1 W2"]
    assert sorted(get_translator().attempts.values()) == [1, 1]  # each phrase translated once


async def test_a_translation_after_the_fact_never_delays_a_live_sessions_finals(recorded, connect, make_user,
                                                                              settings):
    import asyncio

    from asgiref.sync import sync_to_async
    from django.test import AsyncClient

    from .conftest import started

    settings.STT_TRANSLATOR = "scripted"
    settings.STT_SCRIPTED_TRANSLATION_DELAY = 0.6  # seconds per word: about 3 s in all
    user, session = recorded
    browser = AsyncClient()
    await browser.aforce_login(user)
    speaker = await connect(user=await sync_to_async(make_user)("bob"))
    await speaker.connect()
    await started(speaker)
    request = asyncio.create_task(browser.post(reverse("transcription:session_translate", args=[session.pk]),
                                               {"target": "ja"}))
    await asyncio.sleep(0.1)
    began = asyncio.get_running_loop().time()
    for frame in [loud_frame(), loud_frame(), quiet_frame()]:
        await speaker.send_to(bytes_data=frame)
    await receive_until(speaker, lambda e: e["type"] == "final", timeout=10)
    assert asyncio.get_running_loop().time() - began < 1.0  # stored and sent while the translation runs
    assert (await request).status_code == 302
    await speaker.disconnect()
    assert await sync_to_async(wait_idle)()


def test_the_api_starts_a_translation_and_refuses_an_unsupported_language(client, recorded, settings):
    settings.STT_TRANSLATOR = "scripted"
    user, session = recorded
    client.force_login(user)
    answer = client.post(f"/api/sessions/{session.pk}/translate/", {"target": "de"}, content_type="application/json")
    assert answer.status_code == 202 and answer.json()["kind"] == "translate" and answer.json()["language"] == "de"
    assert wait_idle()
    assert Translation.objects.filter(segment__session=session, language="de").count() == 2
    refused = client.post(f"/api/sessions/{session.pk}/translate/", {"target": "xx"}, content_type="application/json")
    assert refused.status_code == 400 and refused.json()["code"] == "translation_unsupported"


def test_whisper_translation_is_offered_into_english_only(client, make_user, settings):
    settings.STT_TRANSLATOR = "whisper"
    client.force_login(make_user("zoe"))
    page = client.get(reverse("transcription:recorder")).content.decode()
    select = page[page.index('id="translate-to"'):page.index("</select>", page.index('id="translate-to"'))]
    assert 'value="en"' in select and 'value="fr"' not in select

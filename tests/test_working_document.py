"""The transcript as a working document: vocabulary, corrections, the second pass, captions in each
viewer's language (the scripted engine and translator; real-model proofs are marked `model`)."""
import asyncio
import json

import pytest
from django.core.files.base import ContentFile
from asgiref.sync import sync_to_async
from django.test import Client
from django.urls import reverse

from transcription.engines.offline import TimedWord, align
from transcription.engines.offline import phrase as words_phrase
from transcription.jobs import wait_idle
from transcription.models import GlossaryTerm, Segment, SegmentEdit, TranscriptionSession, Translation

from .conftest import loud_frame, quiet_frame, receive_until, session_cookie, started, viewer_socket

pytestmark = pytest.mark.django_db(transaction=True)


def phrase(units):
    return [loud_frame()] * units + [quiet_frame()]


async def speak(ws, *units):
    for n in units:
        for frame in phrase(n):
            await ws.send_to(bytes_data=frame)


# ---- vocabulary ----

@pytest.mark.parametrize("vocabulary", [
    "not a list", [f"t{i}" for i in range(101)], ["x" * 51], [""], [3],
])
async def test_a_vocabulary_out_of_bounds_is_a_bad_request(connect, make_user, scripted, vocabulary):
    ws = await connect(user=await sync_to_async(make_user)())
    await ws.connect()
    await ws.send_json_to({"type": "start", "lang": "ko-KR", "vocabulary": vocabulary})
    answer = await ws.receive_json_from(timeout=5)
    assert answer["type"] == "error" and answer["code"] == "bad_request"
    await started(ws)  # the socket goes on
    await ws.disconnect()


def test_the_glossary_page_keeps_one_term_per_line_per_language(client, make_user):
    user = make_user()
    client.force_login(user)
    page = client.get(reverse("transcription:glossary"))
    assert page.status_code == 200 and "Glossary" in page.content.decode()
    client.post(reverse("transcription:glossary"), {"terms": "Kubernetes\nko: 지호\n\nko-KR: 친애하는 판사님께\nKubernetes"})
    assert sorted(GlossaryTerm.objects.filter(owner=user).values_list("language", "term")) == [
        ("", "Kubernetes"), ("ko", "지호"), ("ko", "친애하는 판사님께")]
    shown = client.get(reverse("transcription:glossary")).content.decode()
    assert "ko: 지호" in shown
    refused = client.post(reverse("transcription:glossary"), {"terms": "x" * 51})
    assert "at most 50 characters" in refused.content.decode()
    assert GlossaryTerm.objects.filter(owner=user).count() == 3  # unchanged


async def test_a_sessions_terms_merge_with_the_glossary_of_its_language(connect, make_user, scripted):
    user = await sync_to_async(make_user)()
    for term, language in [("Kubernetes", ""), ("지호", "ko"), ("Zürich", "de")]:
        await GlossaryTerm.objects.acreate(owner=user, term=term, language=language)
    ws = await connect(user=user)
    await ws.connect()
    await ws.send_json_to({"type": "start", "lang": "ko-KR", "vocabulary": ["민수", "지호"]})
    ko = await ws.receive_json_from(timeout=5)
    record = await TranscriptionSession.objects.aget(pk=ko["session"])
    assert record.vocabulary == ["민수", "지호", "Kubernetes"]  # the session's first, each once
    await ws.send_json_to({"type": "start", "lang": "en-US"})
    en = await receive_until(ws, lambda e: e.get("event") == "started")
    assert (await TranscriptionSession.objects.aget(pk=en[-1]["session"])).vocabulary == ["Kubernetes"]
    await ws.disconnect()


def test_the_vocabulary_reaches_whisper_as_its_prompt(settings):
    from transcription.engines.whisper_decoding import vocabulary_options

    settings.STT_WHISPER_VOCABULARY = "prompt"
    assert vocabulary_options(("친애하는 판사님께", "지호")) == {"initial_prompt": "친애하는 판사님께, 지호."}
    settings.STT_WHISPER_VOCABULARY = "hotwords"
    assert vocabulary_options(("지호",)) == {"hotwords": "지호"}
    assert vocabulary_options(()) == {}


# ---- corrections ----

@pytest.fixture
def live_pair(connect, make_user, scripted):
    """A running session of alice with two finals, its socket, a viewer; and alice's browser client."""
    async def make():
        alice = await sync_to_async(make_user)("alice")
        ws = await connect(user=alice)
        await ws.connect()
        session_id = (await started(ws, "en-US"))["session"]
        await speak(ws, 2, 4)
        finals = [e for e in await receive_until(ws, lambda e: e["type"] == "final" and e["phrase"] == 1)
                  if e["type"] == "final"]
        return alice, ws, session_id, finals
    return make


async def test_a_correction_is_stored_with_its_history_and_reaches_speaker_and_viewers(live_pair):
    alice, ws, session_id, finals = await live_pair()
    viewer = viewer_socket(session_id, await sync_to_async(session_cookie)(alice))
    await viewer.connect()
    assert (await viewer.receive_json_from(timeout=5))["type"] == "snapshot"
    browser = Client(enforce_csrf_checks=False)
    await sync_to_async(browser.force_login)(alice)
    url = f"/api/sessions/{session_id}/segments/{finals[0]['segment']}/"
    answer = await sync_to_async(browser.patch)(url, {"text": "Kubernetes  rocks"}, content_type="application/json")
    assert answer.status_code == 200 and answer.json()["text"] == "Kubernetes rocks"
    assert answer.json()["original_text"] == "w1" and answer.json()["corrected"] is True
    said = await receive_until(ws, lambda e: e["type"] == "correction", timeout=5)
    seen = await receive_until(viewer, lambda e: e["type"] == "correction", timeout=5)
    assert said[-1] == seen[-1] and said[-1]["segment"] == finals[0]["segment"] and said[-1]["text"] == "Kubernetes rocks"
    assert said[-1]["seq"] > finals[-1]["seq"]
    edit = await SegmentEdit.objects.aget(segment_id=finals[0]["segment"])
    assert (edit.text_before, edit.text_after, edit.editor_id) == ("w1", "Kubernetes rocks", alice.pk)
    late = viewer_socket(session_id, await sync_to_async(session_cookie)(alice))  # a late viewer sees it
    await late.connect()
    snapshot = await late.receive_json_from(timeout=5)
    assert snapshot["finals"][0]["text"] == "Kubernetes rocks" and snapshot["finals"][0]["corrected"] is True
    for socket in (ws, viewer, late):
        await socket.disconnect()


async def test_corrections_are_used_by_exports_search_and_the_detail_json(live_pair):
    alice, ws, session_id, finals = await live_pair()
    await ws.send_json_to({"type": "end"})
    await receive_until(ws, lambda e: e.get("event") == "ended")
    await ws.disconnect()
    browser = Client()
    await sync_to_async(browser.force_login)(alice)
    segment = finals[1]["segment"]
    await sync_to_async(browser.patch)(f"/api/sessions/{session_id}/segments/{segment}/", {"text": "fail better"},
                                       content_type="application/json")
    detail = (await sync_to_async(browser.get)(f"/api/sessions/{session_id}/")).json()
    assert [(s["text"], s["original_text"]) for s in detail["segments"]] == [("w1", "w1"), ("fail better", "w1 w2")]
    srt = (await sync_to_async(browser.get)(reverse("transcription:session_export", args=[session_id, "srt"]))).content
    assert b"fail better" in srt and b"w1 w2" not in srt
    found = await sync_to_async(browser.get)(reverse("transcription:session_list") + "?q=better")
    assert session_id in found.content.decode()
    page = (await sync_to_async(browser.get)(reverse("transcription:session_detail", args=[session_id]))).content.decode()
    assert "<del>w1 w2</del> <ins>fail better</ins>" in page and 'id="show-live"' in page


async def test_only_the_owner_corrects_with_csrf_or_a_token(live_pair, make_user):
    alice, ws, session_id, finals = await live_pair()
    url = f"/api/sessions/{session_id}/segments/{finals[0]['segment']}/"
    mallory = Client()
    await sync_to_async(mallory.force_login)(await sync_to_async(make_user)("mallory"))
    assert (await sync_to_async(mallory.patch)(url, {"text": "x"}, content_type="application/json")).status_code == 404
    strict = Client(enforce_csrf_checks=True)
    await sync_to_async(strict.force_login)(alice)
    assert (await sync_to_async(strict.patch)(url, {"text": "x"}, content_type="application/json")).status_code == 403
    from knox.models import AuthToken

    _, token = await sync_to_async(AuthToken.objects.create)(alice)
    program = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert (await sync_to_async(program.patch)(url, {"text": "by program"}, content_type="application/json")).status_code == 200
    assert (await sync_to_async(program.patch)(url, {"text": "  "}, content_type="application/json")).status_code == 400
    assert (await Segment.objects.aget(pk=finals[0]["segment"])).text == "by program"
    await ws.disconnect()


def test_a_correction_keeps_the_words_in_step_with_the_text(make_user):
    """Words the owner kept keep their times and probabilities; words they wrote take the time of what
    they replaced, so a caption cut at words and a word's time still match the corrected text."""
    from transcription import services

    session = TranscriptionSession.objects.create(owner=make_user(), language="en-US", engine="scripted")
    words = [{"word": w, "start_ms": 400 * i, "end_ms": 400 * i + 300, "probability": p}
             for i, (w, p) in enumerate([("the", 0.9), ("quik", 0.2), ("brown", 0.8), ("fox", 0.95)])]
    segment = Segment.objects.create(session=session, index=0, text="the quik brown fox", original_text="the quik brown fox",
                                     start_ms=0, end_ms=1500, words=words)
    services.segment_correct(segment=segment, text="the quick red brown fox jumps", editor=None)
    segment.refresh_from_db()
    assert " ".join(w["word"] for w in segment.words) == segment.text
    by_word = {w["word"]: w for w in segment.words}
    assert by_word["the"] == words[0] and by_word["fox"] == words[3]  # kept as they were
    assert (by_word["quick"]["start_ms"], by_word["red"]["end_ms"]) == (400, 700)  # the time of "quik"
    assert by_word["quick"]["probability"] is None  # written by a person
    assert by_word["jumps"]["start_ms"] == by_word["jumps"]["end_ms"] == 1500  # after the last word, in the phrase
    assert segment.live_words == words  # the live words are kept


def test_the_admin_shows_a_segments_history(admin_client, make_user):
    from transcription import services

    session = TranscriptionSession.objects.create(owner=make_user(), language="en-US", engine="scripted")
    segment = Segment.objects.create(session=session, index=0, text="helo", original_text="helo", start_ms=0, end_ms=500)
    services.segment_correct(segment=segment, text="hello", editor=None)
    page = admin_client.get(reverse("admin:transcription_segment_change", args=[segment.pk])).content.decode()
    assert "helo" in page and "hello" in page and "Segment edits" in page


# ---- the second pass ----

def test_words_are_aligned_to_the_live_phrases_by_their_middle():
    words = [TimedWord(" 안녕", 0, 400), TimedWord("하세요", 400, 900), TimedWord(" 오늘", 2100, 2500),
             TimedWord(" 날씨", 2500, 2900), TimedWord(" 좋네요", 3300, 3600), TimedWord(" 끝", 9000, 9100)]
    assert align(words, [(0, 1000), (2000, 3000), (3400, 4000)]) == ["안녕하세요", "오늘 날씨", "좋네요 끝"]
    assert align(words, []) == []


@pytest.mark.django_db
def test_a_pulled_stream_is_refined_like_a_live_session_and_an_upload_is_not(make_user, settings,
                                                                            django_capture_on_commit_callbacks):
    """The second pass is queued when any live session with kept audio ends, a stream pulled by URL too
    (it refined only sockets' sessions); an upload was decoded as a whole file already."""
    from transcription.models import Job
    from transcription.refine import refine_after

    settings.STT_REFINE = "auto"
    user = make_user()
    queued = {}
    for source in ("live", "stream", "upload"):
        session = TranscriptionSession.objects.create(owner=user, language="ko-KR", engine="whisper", source=source)
        Segment.objects.create(session=session, index=0, text="하나", start_ms=0, end_ms=900)
        session.audio.save(f"{session.pk}.wav", ContentFile(b"RIFF"))
        with django_capture_on_commit_callbacks(execute=False):  # (the job is queued, not run)
            refine_after(None, session_id=session.pk)  # (what session_finished sets off)
        session.refresh_from_db()
        queued[source] = (Job.objects.filter(session=session, kind=Job.Kind.REFINE).exists(), session.refinement)
    assert queued == {"live": (True, "pending"), "stream": (True, "pending"), "upload": (False, "off")}


async def test_the_second_pass_keeps_corrections_and_is_reported(make_user, settings):
    from transcription import services

    user = await sync_to_async(make_user)()
    session = await TranscriptionSession.objects.acreate(owner=user, language="ko-KR", engine="whisper",
                                                         refinement="pending")
    kept = await Segment.objects.acreate(session=session, index=0, text="고친 말", original_text="원래 말",
                                         corrected=True, start_ms=0, end_ms=900)
    live_words = [{"word": "라이브", "start_ms": 1000, "end_ms": 1900, "probability": 0.2}]
    plain = await Segment.objects.acreate(session=session, index=1, text="라이브", original_text="라이브",
                                          start_ms=1000, end_ms=1900, words=live_words)
    quiet = await Segment.objects.acreate(session=session, index=2, text="그대로", original_text="그대로",
                                          start_ms=2000, end_ms=2900)
    second = words_phrase([TimedWord(" 두", 1000, 1300, 0.9), TimedWord(" 번째", 1300, 1500, 0.8),
                     TimedWord(" 텍스트", 1500, 1900, 0.3)])
    changed = await sync_to_async(services.session_refine)(session=session, refined={
        kept.pk: words_phrase([TimedWord(" 두 번째 패스", 0, 900, 0.9)]), plain.pk: second, quiet.pk: words_phrase([])})
    assert changed == 1
    texts = {s.index: (s.text, s.refined_text) async for s in Segment.objects.filter(session=session)}
    assert texts == {0: ("고친 말", "두 번째 패스"), 1: ("두 번째 텍스트", "두 번째 텍스트"), 2: ("그대로", "")}
    refined = await Segment.objects.aget(pk=plain.pk)  # its words and confidence are the second pass's
    assert [(w["word"], w["start_ms"], w["probability"]) for w in refined.words] == [
        ("두", 1000, 0.9), ("번째", 1300, 0.8), ("텍스트", 1500, 0.3)]
    assert refined.live_words == live_words and refined.confidence == round((0.9 * 0.8 * 0.3) ** (1 / 3), 3)
    assert (await Segment.objects.aget(pk=kept.pk)).live_words is None  # a correction keeps its own words
    assert (await TranscriptionSession.objects.aget(pk=session.pk)).refinement == "done"


# ---- captions in each viewer's language ----

async def test_each_viewer_gets_captions_in_its_language_translated_once(connect, make_user, settings):
    from transcription.translation import get_translator

    settings.STT_ENGINE, settings.STT_TRANSLATOR = "scripted", "scripted"
    get_translator().attempts.clear()
    alice = await sync_to_async(make_user)("alice")
    cookie = await sync_to_async(session_cookie)(alice)
    ws = await connect(user=alice)
    await ws.connect()
    session_id = (await started(ws, "en-US"))["session"]
    await speak(ws, 2)  # said before anyone asked for French
    await receive_until(ws, lambda e: e["type"] == "final")
    french = [viewer_socket(session_id, cookie, query="translate_to=fr") for _ in range(2)]
    snapshots = []
    for viewer in french:
        await viewer.connect()
        snapshots.append(await viewer.receive_json_from(timeout=5))
        assert snapshots[-1]["type"] == "snapshot" and snapshots[-1]["translate_to"] == "fr"
    plain = viewer_socket(session_id, cookie)
    await plain.connect()
    await plain.receive_json_from(timeout=5)
    await speak(ws, 4)
    for viewer, snapshot in zip(french, snapshots):  # the earlier final (backfilled) and the new one, in French
        events = await receive_until(viewer, lambda e: e["type"] == "translation" and e["done"] and e["text"] == "fr: W1 W2")
        dones = {e["text"] for e in snapshot["translations"] + events if e["type"] == "translation" and e["done"]}
        assert dones == {"fr: W1", "fr: W1 W2"} and all(e["lang"] == "fr" for e in events if e["type"] == "translation")
    await ws.send_json_to({"type": "end"})
    spoken = await receive_until(ws, lambda e: e.get("event") == "ended")
    assert not [e for e in spoken if e["type"] == "translation"]  # the speaker asked for none
    watched = await receive_until(plain, lambda e: e.get("event") == "ended")
    assert not [e for e in watched if e["type"] == "translation"]
    stored = [t.text async for t in Translation.objects.filter(segment__session_id=session_id, language="fr")]
    assert sorted(stored) == ["fr: W1", "fr: W1 W2"]
    assert sorted(get_translator().attempts.values()) == [1, 1]  # once each, for two viewers
    late = viewer_socket(session_id, cookie, query="translate_to=fr")
    await late.connect()
    snapshot = await late.receive_json_from(timeout=5)
    assert sorted(t["text"] for t in snapshot["translations"]) == ["fr: W1", "fr: W1 W2"]
    for socket in [ws, plain, late, *french]:
        await socket.disconnect()


async def test_a_language_the_translator_cannot_produce_is_refused_to_that_viewer(connect, make_user, settings):
    settings.STT_ENGINE, settings.STT_TRANSLATOR = "scripted", "whisper"  # offline: English only
    alice = await sync_to_async(make_user)("alice")
    ws = await connect(user=alice)
    await ws.connect()
    session_id = (await started(ws, "ko-KR"))["session"]
    viewer = viewer_socket(session_id, await sync_to_async(session_cookie)(alice), query="translate_to=fr")
    await viewer.connect()
    assert (await viewer.receive_json_from(timeout=5))["type"] == "snapshot"
    refused = await viewer.receive_json_from(timeout=5)
    assert refused["type"] == "error" and refused["code"] == "translation_unsupported"
    await speak(ws, 2)
    assert (await receive_until(viewer, lambda e: e["type"] == "final"))[-1]["text"] == "w1"  # captions go on
    await ws.disconnect()
    await viewer.disconnect()


def test_only_a_phrase_that_sounds_like_a_term_is_tried_again_with_it():
    from transcription.engines import vocabulary

    terms = ("친애하는 판사님께", "Kubernetes", "김민수", "지")
    assert vocabulary.terms_to_try("그 친해안은 펜사님께라는 법, 법관련 드라마 알고 있어", terms) == ["친애하는 판사님께"]
    assert vocabulary.terms_to_try("we deploy on cubernetis now", terms) == ["Kubernetes"]
    assert vocabulary.terms_to_try("그 친애하는 판사님께라는 드라마", terms) == []  # already right
    assert vocabulary.terms_to_try("아 내일 다 알바구나", terms) == []  # nothing near ("지" is too short to judge)
    assert vocabulary.keep_second("그 친해안은 펜사님께라는 법", "그 친애하는 판사님께라는 법", ["친애하는 판사님께"])
    assert not vocabulary.keep_second("그래?", "친애하는 판사님께", ["친애하는 판사님께"])  # derailed: not kept
    assert not vocabulary.keep_second("그 친해안은 펜사님께라는 법", "그 친해안은 펜사님께라는 법", ["친애하는 판사님께"])

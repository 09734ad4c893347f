"""Pages and admin: login required, one user never sees another's sessions."""
import pytest
from django.urls import reverse

from transcription import services
from transcription.engines.offline import TimedWord
from transcription.engines.offline import phrase as words_phrase
from transcription.models import Segment, TranscriptionSession

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice_session(make_user):
    alice = make_user("alice")
    session = TranscriptionSession.objects.create(owner=alice, language="en-US", engine="whisper", status="ended")
    Segment.objects.create(session=session, index=0, text="ask not what your country can do", start_ms=0, end_ms=2500)
    return alice, session


@pytest.mark.parametrize("name", ["transcription:recorder", "transcription:session_list"])
def test_pages_require_login(client, name):
    response = client.get(reverse(name))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_signup_creates_an_account_and_logs_in(client):
    response = client.post(
        reverse("transcription:signup"),
        {"username": "newbie", "password1": "correct-horse-battery", "password2": "correct-horse-battery"},
    )
    assert response.status_code == 302
    page = client.get(reverse("transcription:recorder"))
    assert page.status_code == 200
    assert b'<option value="ko-KR" selected>' in page.content  # Korean is the default language
    for code in ["en-US", "ja-JP", "zh-CN", "es-ES", "fr-FR", "de-DE"]:
        assert f'value="{code}"'.encode() in page.content


def test_signup_can_be_switched_off(client, settings):
    settings.ALLOW_SIGNUP = False
    assert client.get(reverse("transcription:signup")).status_code == 404


def test_owner_sees_list_and_detail(client, alice_session):
    alice, session = alice_session
    client.force_login(alice)
    listing = client.get(reverse("transcription:session_list"))
    assert b"ask not what your country" in listing.content
    detail = client.get(reverse("transcription:session_detail", args=[session.pk]))
    assert detail.status_code == 200 and b"ask not what your country can do" in detail.content
    assert b"0:00" in detail.content


def test_the_session_page_marks_the_words_the_recogniser_was_unsure_of(client, alice_session):
    """A reviewer goes straight to the doubtful words: low-confidence ones are marked, others not; a
    corrected phrase shows its correction instead."""
    alice, session = alice_session
    words = [("ask", 0.98), ("knot", 0.21), ("what", 0.95), ("<your>", 0.4)]
    Segment.objects.create(session=session, index=1, text="ask knot what <your>", original_text="ask knot what <your>",
                           start_ms=3000, end_ms=5000,
                           words=[{"word": f" {w}", "start_ms": 3000 + 400 * i, "end_ms": 3300 + 400 * i, "probability": p}
                                  for i, (w, p) in enumerate(words)])
    client.force_login(alice)
    page = client.get(reverse("transcription:session_detail", args=[session.pk])).content.decode()
    assert 'ask <mark class="unsure" title="confidence 21%">knot</mark> what' in page
    assert '<mark class="unsure" title="confidence 40%">&lt;your&gt;</mark>' in page  # escaped
    assert 'title="confidence 98%"' not in page and "unsure of are" in page
    segment = Segment.objects.get(session=session, index=1)  # the second pass: its own words, marked too
    refined = [TimedWord(f" {w}", 3000 + 400 * i, 3300 + 400 * i, p)
               for i, (w, p) in enumerate([("ask", 0.97), ("not", 0.9), ("what", 0.3), ("your", 0.9)])]
    services.session_refine(session=session, refined={segment.pk: words_phrase(refined)})
    page = client.get(reverse("transcription:session_detail", args=[session.pk])).content.decode()
    text, live = page.split('class="text')[2].split('class="live-text">')
    assert "ask <del>knot</del> <ins>not</ins>" in text and '<mark class="unsure" title="confidence 30%">what</mark>' in text
    assert '<mark class="unsure" title="confidence 21%">knot</mark>' in live  # "Show the live transcript"


def test_other_users_get_404_and_see_nothing(client, alice_session, make_user):
    _, session = alice_session
    client.force_login(make_user("mallory"))
    assert client.get(reverse("transcription:session_detail", args=[session.pk])).status_code == 404
    assert client.post(reverse("transcription:session_delete", args=[session.pk])).status_code == 404
    assert b"ask not what" not in client.get(reverse("transcription:session_list")).content
    assert TranscriptionSession.objects.filter(pk=session.pk).exists()


def test_owner_can_delete(client, alice_session):
    alice, session = alice_session
    client.force_login(alice)
    response = client.post(reverse("transcription:session_delete", args=[session.pk]))
    assert response.status_code == 302
    assert not TranscriptionSession.objects.filter(pk=session.pk).exists()
    assert not Segment.objects.exists()


def test_admin_changelist_filters_and_search(admin_client, alice_session):
    _, session = alice_session
    url = reverse("admin:transcription_transcriptionsession_changelist")
    assert admin_client.get(url).status_code == 200
    found = admin_client.get(url, {"q": "country"})
    assert found.status_code == 200 and str(session.pk).encode() in found.content
    missing = admin_client.get(url, {"q": "zebra"})
    assert str(session.pk).encode() not in missing.content
    for params in ({"status__exact": "ended"}, {"language": "en-US"}, {"engine": "whisper"}):
        assert admin_client.get(url, params).status_code == 200
    change = admin_client.get(reverse("admin:transcription_transcriptionsession_change", args=[session.pk]))
    assert change.status_code == 200 and b"ask not what your country can do" in change.content
    assert admin_client.get(reverse("admin:transcription_segment_changelist"), {"q": "country"}).status_code == 200


def test_the_admin_reads_as_a_reviewer_expects_and_names_speakers_in_fields(admin_client, alice_session):
    """Times as m:ss, confidences as percentages, a ▶ per phrase, speaker names as fields (stored as the
    owner's naming stores them), no Add where rows are made by recognition, and a text corrected in the
    admin keeps its words and history."""
    _, session = alice_session
    Segment.objects.filter(session=session).update(speaker="S1", confidence=0.32314722490615655)
    Segment.objects.create(session=session, index=5, text="and so", original_text="and so", start_ms=61_250,
                           end_ms=63_900, speaker="S2", confidence=0.9,
                           words=[{"word": "and", "start_ms": 61_250, "end_ms": 61_600, "probability": 0.9},
                                  {"word": "so", "start_ms": 61_600, "end_ms": 63_900, "probability": 0.3}])
    TranscriptionSession.objects.filter(pk=session.pk).update(audio="audio/x.wav", audio_ms=64_000)
    url = reverse("admin:transcription_transcriptionsession_change", args=[session.pk])
    page = admin_client.get(url).content.decode()
    assert "32%" in page and "0.323" not in page and "1:01.2–1:03.9" in page and "1:04" in page
    assert 'class="stt-play" data-start="61250" data-end="63900"' in page and 'preload="metadata"' in page
    assert '<script src="/static/transcription/admin_session.js" type="module">' in page
    assert 'name="speaker_S1"' in page and 'name="speaker_S2"' in page and 'name="speaker_names"' not in page
    answer = admin_client.post(url, {"title": "Reviewed", "speaker_S1": "민수", "speaker_S2": "",
                                     "segments-TOTAL_FORMS": "0", "segments-INITIAL_FORMS": "0"})
    assert answer.status_code == 302, answer.content.decode()[-3000:]
    session.refresh_from_db()
    assert session.title == "Reviewed" and session.speaker_names == {"S1": "민수"}
    for model in ("transcriptionsession", "segment", "translation", "job"):
        assert admin_client.get(reverse(f"admin:transcription_{model}_add")).status_code == 403
        assert f"/admin/transcription/{model}/add/" not in admin_client.get(
            reverse(f"admin:transcription_{model}_changelist")).content.decode()
    segment = Segment.objects.get(session=session, index=5)
    edit = reverse("admin:transcription_segment_change", args=[segment.pk])
    assert "so" in admin_client.get(edit).content.decode()
    admin_client.post(edit, {"text": "and so on", "speaker": "S2", "edits-TOTAL_FORMS": "0", "edits-INITIAL_FORMS": "0",
                             "translations-TOTAL_FORMS": "0", "translations-INITIAL_FORMS": "0"})
    segment.refresh_from_db()
    assert segment.text == "and so on" and [w["word"] for w in segment.words] == ["and", "so", "on"]
    assert segment.edits.get().text_before == "and so"



def test_a_doubtful_final_is_marked_for_the_reader_and_says_so_to_programs(client, alice_session):
    """A final not in its session's language even after decoding it again is kept, marked: the page
    underlines it with the reason, the socket's final and REST say `doubtful`."""
    from transcription.engines import Result
    from transcription.protocol import event_final_from_segment

    alice, session = alice_session
    segment = services.segment_create(session_id=session.pk, index=9, seq=9, result=Result(
        "And so my fellow Americans", True, 20000, 22000, language="ko", doubtful=True))
    assert event_final_from_segment(segment)["doubtful"] is True
    client.force_login(alice)
    page = client.get(reverse("transcription:session_detail", args=[session.pk])).content.decode()
    assert 'class="text doubtful"' in page and "may have translated it" in page
    detail = client.get(f"/api/sessions/{session.pk}/").json()
    assert [s["doubtful"] for s in detail["segments"] if s["index"] == 9] == [True]

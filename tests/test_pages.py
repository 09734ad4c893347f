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

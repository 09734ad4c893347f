"""The captions overlay for broadcast software (issue 26): a share link plus `overlay/`, set by URL
parameters, for anyone holding the link, refused once it is revoked. (The page in a browser:
tests/test_browser.py.)"""
import pytest
from django.test import Client
from django.utils import timezone

from transcription.models import ShareLink, TranscriptionSession


@pytest.mark.django_db
def test_the_overlay_takes_its_settings_from_the_url_and_falls_back_on_bad_ones(make_user):
    session = TranscriptionSession.objects.create(owner=make_user(), language="ko-KR", engine="whisper")
    link = ShareLink.objects.create(session=session)
    page = Client().get(f"/live/{link.token}/overlay/?lines=4&size=64&position=top&lang=en")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-lines="4"' in html and "--caption-size: 64px" in html and 'class="overlay top"' in html
    assert f'data-ws-path="/ws/sessions/{session.pk}/live/"' in html and 'data-lang="en"' in html
    html = Client().get(f"/live/{link.token}/overlay/?lines=999&size=abc&position=<b>&lang=xx").content.decode()
    assert 'data-lines="2"' in html and "--caption-size: 42px" in html and 'class="overlay bottom"' in html
    assert 'data-lang=""' in html and "<b>" not in html
    link.revoked_at = timezone.now()
    link.save()
    assert Client().get(f"/live/{link.token}/overlay/").status_code == 404

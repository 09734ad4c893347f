"""The captions overlay for broadcast software (issue 26): a share link plus `overlay/`, set by URL
parameters, for anyone holding the link, refused once it is revoked. (The page in a browser:
tests/test_browser.py.)"""
import io
import time

import av
import pytest
from django.test import Client
from django.utils import timezone

from transcription import views
from transcription.models import Segment, ShareLink, TranscriptionSession, Translation


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


@pytest.mark.django_db
def test_the_session_page_gives_the_overlay_url_beside_each_share_link_and_an_audio_download(make_user):
    owner = make_user()
    session = TranscriptionSession.objects.create(owner=owner, language="ko-KR", engine="whisper", audio="audio/x.wav")
    link = ShareLink.objects.create(session=session)
    client = Client()
    client.force_login(owner)
    html = client.get(f"/sessions/{session.pk}/").content.decode()
    assert f'value="http://testserver/live/{link.token}/overlay/?lines=2&amp;size=48"' in html and "OBS" in html
    assert f'href="/sessions/{session.pk}/audio.wav" download' in html


@pytest.mark.django_db
def test_a_running_sessions_captions_file_grows_with_each_final_and_has_its_translations(make_user):
    session = TranscriptionSession.objects.create(owner=make_user(), language="ko-KR", engine="whisper")
    link = ShareLink.objects.create(session=session)
    first = Segment.objects.create(session=session, index=0, text="안녕하세요", start_ms=0, end_ms=1500)
    Translation.objects.create(segment=first, language="en", text="Hello", engine="whisper")
    url = f"/live/{link.token}/captions.vtt"
    answer = Client().get(url)
    assert answer["Content-Type"].startswith("text/vtt") and "no-store" in answer["Cache-Control"]
    assert answer["Access-Control-Allow-Origin"] == "*"
    body = answer.content.decode()
    assert body.startswith("WEBVTT") and "00:00:00.000 --> 00:00:01.500" in body and "안녕하세요" in body
    Segment.objects.create(session=session, index=1, text="반갑습니다 <b>", start_ms=2000, end_ms=3200)
    assert Client().get(url).content.decode() == body  # built at most once a second, whoever polls
    time.sleep(views.CAPTIONS_FRESH_SECONDS)
    body = Client().get(url).content.decode()
    assert body.count("-->") == 2 and "반갑습니다 &lt;b&gt;" in body  # grew by the new final, escaped
    with av.open(io.BytesIO(body.encode()), format="webvtt") as player:  # FFmpeg's WebVTT reader, as players
        stream = player.streams.subtitles[0]
        cues = [(int(packet.pts * stream.time_base * 1000), bytes(packet).decode())
                for packet in player.demux(stream) if packet.size]
    assert cues == [(0, "안녕하세요\nHello"), (2000, "반갑습니다 &lt;b&gt;")]  # (with its translation, as exports)
    english = Client().get(url + "?lang=en").content.decode()
    assert "Hello" in english and english.count("-->") == 1  # the phrase not yet translated is left out
    link.revoked_at = timezone.now()
    link.save()
    assert Client().get(url).status_code == 404


@pytest.mark.django_db
def test_a_sessions_captions_as_hls_subtitles_grow_segment_by_segment_and_end_with_it(make_user):
    """`captions.m3u8`: 6 s WebVTT segments, listed once nothing more can arrive for them (the last
    stored final has passed them), ENDLIST when the session is over; each segment maps the session's
    0 to the pulled stream's first timestamp. FFmpeg reads them in tests/test_streams.py."""
    session = TranscriptionSession.objects.create(owner=make_user(), language="en-US", engine="whisper",
                                                  stream_start_ms=1400)
    link = ShareLink.objects.create(session=session)
    Segment.objects.create(session=session, index=0, text="first", start_ms=1000, end_ms=4000)
    Segment.objects.create(session=session, index=1, text="across", start_ms=5000, end_ms=7000)
    playlist = Client().get(f"/live/{link.token}/captions.m3u8")
    assert playlist["Content-Type"] == "application/vnd.apple.mpegurl" and "no-store" in playlist["Cache-Control"]
    body = playlist.content.decode()
    assert body.count("#EXTINF") == 1 and "captions/0.vtt" in body and "#EXT-X-ENDLIST" not in body
    assert Client().get(f"/live/{link.token}/captions/1.vtt").status_code == 404  # not complete yet
    first = Client().get(f"/live/{link.token}/captions/0.vtt").content.decode()
    assert first.startswith("WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:126000,LOCAL:00:00:00.000\n")  # 1.4 s at 90 kHz
    assert "first" in first and "across" in first  # 5-7 s overlaps 0-6 s
    Segment.objects.create(session=session, index=2, text="later", start_ms=12500, end_ms=13000)
    body = Client().get(f"/live/{link.token}/captions.m3u8?lang=en").content.decode()
    assert body.count("#EXTINF") == 2 and "captions/1.vtt?lang=en" in body
    second = Client().get(f"/live/{link.token}/captions/1.vtt").content.decode()
    assert "across" in second and "first" not in second and "later" not in second
    session.status, session.audio_ms = TranscriptionSession.Status.ENDED, 14000
    session.save()
    body = Client().get(f"/live/{link.token}/captions.m3u8").content.decode()
    assert body.count("#EXTINF") == 3 and body.rstrip().endswith("#EXT-X-ENDLIST")
    assert "later" in Client().get(f"/live/{link.token}/captions/2.vtt").content.decode()
    link.revoked_at = timezone.now()
    link.save()
    assert Client().get(f"/live/{link.token}/captions.m3u8").status_code == 404
    assert Client().get(f"/live/{link.token}/captions/0.vtt").status_code == 404

"""Programs: API tokens (hashed, revocable), the socket with a Bearer token, the REST API."""
import datetime
import json

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.urls import reverse
from django.utils import timezone
from knox.models import AuthToken
from rest_framework.test import APIClient

from transcription.models import Segment, TranscriptionSession, Translation

from .conftest import loud_frame, quiet_frame, receive_until


@pytest.fixture
def alice(make_user):
    return make_user("alice")


def bearer(token: str) -> tuple[bytes, bytes]:
    return (b"authorization", f"Bearer {token}".encode())


def program_socket(*headers):
    from sttproject.asgi import application

    return WebsocketCommunicator(application, "/ws/transcribe/", headers=list(headers))


# ---- tokens page ----

@pytest.mark.django_db
def test_a_token_is_shown_once_and_stored_only_as_a_hash(client, alice):
    client.force_login(alice)
    page = client.post(reverse("transcription:api_tokens"), {"expires_days": "30"}).content.decode()
    token = page.split('id="new-token">')[1].split("<")[0]
    assert token.startswith("stt_") and len(token) > 40
    stored = AuthToken.objects.get(user=alice)
    assert stored.token_key == token[:15] and token not in stored.digest  # only a prefix and a SHA-512 digest
    assert stored.expiry - timezone.now() > datetime.timedelta(days=29)
    again = client.get(reverse("transcription:api_tokens")).content.decode()
    assert token not in again and stored.token_key in again  # listed by its prefix, never shown again
    client.post(reverse("transcription:api_token_revoke"), {"digest": stored.digest})
    assert not AuthToken.objects.filter(user=alice).exists()


@pytest.mark.django_db
def test_a_token_has_the_name_its_owner_gave_and_the_page_says_where_it_works(client, alice):
    client.force_login(alice)
    client.post(reverse("transcription:api_tokens"), {"expires_days": "", "name": "  OBS   box "})
    page = client.get(reverse("transcription:api_tokens")).content.decode()
    assert "<td>OBS box</td>" in page and AuthToken.objects.get(user=alice).label.name == "OBS box"
    for where in ("ws://testserver/ws/transcribe/", "/v1/audio/transcriptions", "/v1/realtime?intent=transcription",
                  "/v1/listen", "Authorization: Token &lt;token&gt;", "base URL <code>http://testserver/v1</code>"):
        assert where in page, where


@pytest.mark.django_db
def test_one_user_cannot_revoke_anothers_token(client, alice, make_user):
    AuthToken.objects.create(alice)
    client.force_login(make_user("mallory"))
    client.post(reverse("transcription:api_token_revoke"), {"digest": AuthToken.objects.get().digest})
    assert AuthToken.objects.filter(user=alice).exists()


# ---- the socket with a token ----

@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("scripted")
async def test_a_program_streams_with_a_bearer_token_and_no_origin(alice):
    _, token = await sync_to_async(AuthToken.objects.create)(alice)
    ws = program_socket(bearer(token))
    assert (await ws.connect())[0]
    await ws.send_json_to({"type": "start", "lang": "en-US"})
    started = await ws.receive_json_from(timeout=5)
    assert started["event"] == "started"
    for frame in [loud_frame()] * 3 + [quiet_frame()]:
        await ws.send_to(bytes_data=frame)
    events = await receive_until(ws, lambda e: e["type"] == "final", timeout=5)
    assert events[-1]["text"] == "w1 w2"
    session = await TranscriptionSession.objects.aget(pk=started["session"])
    assert session.owner_id == alice.pk
    await ws.disconnect()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("header", [bearer("stt_wrong"), (b"authorization", b"Bearer"), (b"authorization", b"Basic x")])
async def test_a_wrong_token_is_refused(header, alice):
    ws = program_socket(header)
    await ws.connect()
    assert await ws.receive_output(timeout=5) == {"type": "websocket.close", "code": 4401}
    await ws.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_no_token_and_no_origin_is_refused(alice):
    ws = program_socket()
    connected, _ = await ws.connect()
    assert not connected
    await ws.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_a_token_in_the_query_string_is_not_accepted(alice):
    _, token = await sync_to_async(AuthToken.objects.create)(alice)
    from sttproject.asgi import application

    ws = WebsocketCommunicator(application, f"/ws/transcribe/?token={token}", headers=[(b"origin", b"http://localhost")])
    await ws.connect()
    assert await ws.receive_output(timeout=5) == {"type": "websocket.close", "code": 4401}
    await ws.disconnect()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("scripted")
async def test_a_revoked_token_stops_working_at_the_next_start(alice):
    instance, token = await sync_to_async(AuthToken.objects.create)(alice)
    ws = program_socket(bearer(token))
    await ws.connect()
    await ws.send_json_to({"type": "start", "lang": "en-US"})
    assert (await ws.receive_json_from(timeout=5))["event"] == "started"
    await ws.send_json_to({"type": "end"})
    await receive_until(ws, lambda e: e.get("event") == "ended", timeout=5)
    await instance.adelete()
    await ws.send_json_to({"type": "start", "lang": "en-US"})
    assert (await ws.receive_json_from(timeout=5))["code"] == "unauthenticated"
    assert await ws.receive_output(timeout=5) == {"type": "websocket.close", "code": 4401}
    await ws.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_an_expired_token_is_refused(alice):
    _, token = await sync_to_async(AuthToken.objects.create)(alice, expiry=datetime.timedelta(seconds=-1))
    ws = program_socket(bearer(token))
    await ws.connect()
    assert await ws.receive_output(timeout=5) == {"type": "websocket.close", "code": 4401}
    await ws.disconnect()


# ---- REST ----

def make_session(owner, *, language="ko-KR", texts=("안녕하세요",), days_ago=0, translated=None):
    session = TranscriptionSession.objects.create(owner=owner, language=language, engine="whisper:base", status="ended")
    if days_ago:
        TranscriptionSession.objects.filter(pk=session.pk).update(
            started_at=timezone.now() - datetime.timedelta(days=days_ago))
    for i, text in enumerate(texts):
        segment = Segment.objects.create(session=session, index=i, text=text, start_ms=i * 1000, end_ms=i * 1000 + 900)
        if translated:
            Translation.objects.create(segment=segment, language=translated, text=f"[{translated}] {text}", engine="x")
    return session


@pytest.fixture
def api(alice):
    _, token = AuthToken.objects.create(alice)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@pytest.mark.django_db
def test_rest_lists_only_own_sessions_filtered_and_paginated(api, alice, make_user):
    make_session(make_user("bob"), texts=("bob's secret",))
    old = make_session(alice, language="en-US", texts=("hello there",), days_ago=10)
    for _ in range(21):
        make_session(alice)
    first = api.get("/api/sessions/").json()
    assert first["count"] == 22 and len(first["results"]) == 20 and first["next"]
    assert len(api.get(first["next"]).json()["results"]) == 2
    english = api.get("/api/sessions/", {"language": "en-US"}).json()
    assert [s["id"] for s in english["results"]] == [str(old.pk)]
    until = (timezone.now() - datetime.timedelta(days=5)).date().isoformat()
    assert [s["id"] for s in api.get("/api/sessions/", {"until": until}).json()["results"]] == [str(old.pk)]
    assert api.get("/api/sessions/", {"since": until}).json()["count"] == 21
    assert api.get("/api/sessions/", {"q": "secret"}).json()["count"] == 0
    assert api.get("/api/sessions/", {"since": "yesterday"}).status_code == 400


@pytest.mark.django_db
def test_rest_detail_export_and_delete_are_owner_only(api, alice, make_user):
    mine = make_session(alice, texts=("하나", "둘"), translated="en")
    theirs = make_session(make_user("bob"))
    detail = api.get(f"/api/sessions/{mine.pk}/").json()
    assert [s["text"] for s in detail["segments"]] == ["하나", "둘"]
    assert detail["segments"][1]["translations"] == [{"language": "en", "text": "[en] 둘", "engine": "x"}]
    srt = api.get(f"/api/sessions/{mine.pk}/export/srt/")
    assert srt.status_code == 200 and "00:00:01,000 --> 00:00:01,900" in srt.content.decode()
    assert api.get(f"/api/sessions/{mine.pk}/export/doc/").status_code == 404
    for url in (f"/api/sessions/{theirs.pk}/", f"/api/sessions/{theirs.pk}/export/txt/"):
        assert api.get(url).status_code == 404
    assert api.delete(f"/api/sessions/{theirs.pk}/").status_code == 404
    assert TranscriptionSession.objects.filter(pk=theirs.pk).exists()
    assert api.delete(f"/api/sessions/{mine.pk}/").status_code == 204
    assert not TranscriptionSession.objects.filter(pk=mine.pk).exists()


@pytest.mark.django_db
def test_rest_needs_authentication_and_csrf_for_browser_sessions(alice):
    session = make_session(alice)
    assert APIClient().get("/api/sessions/").status_code in (401, 403)
    browser = APIClient(enforce_csrf_checks=True)
    browser.force_login(alice)
    assert browser.get("/api/sessions/").json()["count"] == 1
    assert browser.delete(f"/api/sessions/{session.pk}/").status_code == 403  # no CSRF token
    assert TranscriptionSession.objects.filter(pk=session.pk).exists()


@pytest.mark.django_db
def test_openapi_schema_describes_the_api(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    schema = json.loads(response.content)
    assert {"/api/sessions/", "/api/sessions/{id}/", "/api/sessions/{id}/export/{fmt}/"} <= set(schema["paths"])
    parameters = {p["name"] for p in schema["paths"]["/api/sessions/"]["get"]["parameters"]}
    assert {"language", "since", "until", "page"} <= parameters


@pytest.mark.django_db(transaction=True)
def test_one_language_form_whichever_way_a_session_came(api, alice, settings):
    """'ko' from an OpenAI client's upload and 'ko-KR' from the page are the same language: stored, listed
    and filtered as the page names it."""
    import numpy as np
    from django.core.files.uploadedfile import SimpleUploadedFile

    from transcription import services
    from transcription.languages import language_tag

    from .test_uploads import wav_bytes

    settings.STT_ENGINE = "scripted"
    assert [language_tag(c) for c in ("ko", "KO_kr", "en", "pt-br", "sr-latn-RS", "auto", "xx")] == [
        "ko-KR", "ko-KR", "en-US", "pt-BR", "sr-Latn-RS", "auto", "xx"]
    page = services.session_start(owner=alice, language="ko-KR", engine="scripted")
    loud = (np.ones(8000, dtype="<i2") * 5000).tobytes() + bytes(9600)
    answer = api.post("/v1/audio/transcriptions", {"file": SimpleUploadedFile("a.wav", wav_bytes(loud)), "model": "whisper-1",
                                                   "language": "ko"}, format="multipart")
    assert answer.status_code == 200, answer.content
    listed = api.get("/api/sessions/", {"language": "ko"}).json()["results"]
    assert {s["language"] for s in listed} == {"ko-KR"} and len(listed) == 2 and str(page.pk) in {s["id"] for s in listed}

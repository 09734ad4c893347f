"""Access control, enumerated from the URL conf so that a new route cannot be forgotten.

Every HTTP route is classified below; an unclassified one fails the test. For each: an anonymous
visitor is sent to log in (pages) or refused (API), and another user gets 404 for someone else's
session (pages and REST); admin routes are for staff only. Sockets: every WebSocket route refuses
anonymous and foreign-origin handshakes.
"""
import os
import subprocess
import sys

import pytest
from channels.testing import WebsocketCommunicator
from django.test import Client
from django.urls import URLResolver, get_resolver, reverse

from transcription.models import Segment, ShareLink, TranscriptionSession

from .servers import ROOT

PUBLIC = {  # reachable without logging in
    "login", "logout", "password_reset", "password_reset_done", "password_reset_confirm", "password_reset_complete",
    "transcription:signup", "transcription:live_shared", "transcription:overlay_shared",
    "transcription:captions_shared", "transcription:captions_hls_shared", "transcription:caption_segment_shared",
    "api:schema",
}
OWN = {  # login required; only the user's own things, no session id in the URL
    "password_change", "password_change_done", "transcription:recorder", "transcription:session_list",
    "transcription:api_tokens", "transcription:api_token_revoke", "api:api-root", "api:session-list",
    "transcription:glossary", "transcription:upload", "transcription:voices", "transcription:voice_delete",
    "transcription:stream_start",
    "api:voice-list", "api:voice-detail",
}
TOKEN = {  # a Bearer token (API token, or the metrics token) or staff: 401 without, never a login page
    "metrics", "openai_transcriptions", "openai_translations",
}
SESSION = {  # about one session: 404 for anyone but its owner
    "transcription:session_detail", "transcription:session_delete", "transcription:session_rename",
    "transcription:session_translate", "transcription:session_audio", "transcription:session_export",
    "transcription:live_own", "transcription:share_create", "transcription:share_revoke",
    "api:session-detail", "api:session-export", "api:session-translate", "api:session-segment",
    "api:session-speakers", "transcription:session_speakers", "api:session-voices", "transcription:session_voice",
    "api:session-stop", "transcription:session_stop",
}


def routes(patterns=None, namespace=None):
    """(full name, names of its URL arguments) for every route, recursively."""
    for p in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(p, URLResolver):
            yield from routes(p.url_patterns, p.namespace or namespace)
        elif p.name:
            args = set(getattr(p.pattern, "converters", {})) | set(p.pattern.regex.groupindex)
            yield (f"{namespace}:{p.name}" if namespace else p.name), frozenset(args)


@pytest.fixture
def world(make_user):
    alice, mallory = make_user("alice"), make_user("mallory")
    session = TranscriptionSession.objects.create(owner=alice, language="ko-KR", engine="whisper:base", status="ended")
    segment = Segment.objects.create(session=session, index=0, text="비밀", start_ms=0, end_ms=900)
    link = ShareLink.objects.create(session=session)
    values = {"session_id": session.pk, "pk": session.pk, "fmt": "txt", "share_id": link.pk, "token": "not-a-token",
              "format": "json", "uidb64": "x", "object_id": session.pk, "segment_id": segment.pk,
              "voice_id": 1}
    return alice, mallory, session, link, values


def url(name, args, values):
    return reverse(name, kwargs={a: values[a] for a in args})


@pytest.mark.django_db
def test_every_route_is_classified(world):
    names = {name for name, _ in routes() if not name.startswith("admin:")}
    assert names - PUBLIC - OWN - SESSION - TOKEN == set(), "classify the new route(s) in tests/test_access.py"


@pytest.mark.django_db
def test_anonymous_visitors_are_sent_to_log_in_or_refused(world):
    *_, values = world
    client = Client()
    for name, args in routes():
        if name in PUBLIC or name.startswith("admin:"):
            continue
        target = url(name, args, values)
        for method in (client.get, client.post):
            response = method(target)
            if name.startswith("api:"):
                assert response.status_code in (401, 403), (name, target)
            elif name in TOKEN:
                assert response.status_code == 401, (name, target)
            else:
                assert response.status_code == 302 and response["Location"].startswith("/accounts/login/"), (name, target)


@pytest.mark.django_db
def test_another_user_gets_404_for_every_session_route(world):
    _, mallory, session, link, values = world
    client = Client()
    client.force_login(mallory)
    for name, args in routes():
        if name not in SESSION:
            continue
        target = url(name, args, values)
        assert client.get(target).status_code in (404, 405), (name, target)
        assert client.post(target).status_code in (404, 405), (name, target)
        assert client.delete(target).status_code in (404, 405), (name, target)
        assert client.patch(target, {"text": "x"}, content_type="application/json").status_code in (404, 405), (name, target)
    assert TranscriptionSession.objects.filter(pk=session.pk).exists()
    link.refresh_from_db()
    assert link.is_active() and session.segments.count() == 1


@pytest.mark.django_db
def test_admin_is_for_staff_only(world, admin_client):
    alice, _, session, _, values = world
    admin_names = [(name, args) for name, args in routes() if name.startswith("admin:")]
    custom = [(n, a) for n, a in admin_names if n.startswith("admin:transcription_session_")]
    assert custom  # the admin's own views (audio, export) are among them
    user = Client()
    user.force_login(alice)  # logged in, not staff
    checked = 0
    for name, args in admin_names:
        if name in {"admin:login", "admin:logout"} or not args <= {"object_id", "session_id", "fmt"}:
            continue  # generic admin routes with app/model arguments are covered by admin_view like these
        target = url(name, args, values)
        response = user.get(target)
        assert response.status_code == 302 and "/admin/login/" in response["Location"], (name, target)
        checked += 1
    assert checked >= 5
    assert admin_client.get(reverse("admin:transcription_transcriptionsession_change", args=[session.pk])).status_code == 200


@pytest.mark.django_db
def test_csrf_is_enforced_on_pages(world):
    alice, _, session, _, _ = world
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    assert client.post(reverse("transcription:session_delete", args=[session.pk])).status_code == 403
    assert client.post(reverse("transcription:api_tokens"), {"expires_days": "30"}).status_code == 403
    assert TranscriptionSession.objects.filter(pk=session.pk).exists()


@pytest.mark.django_db
def test_security_headers(world):
    alice, *_ = world
    client = Client()
    client.force_login(alice)
    response = client.get(reverse("transcription:recorder"))
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"


def test_check_deploy_is_clean_in_production_settings():
    env = dict(os.environ, DJANGO_HTTPS="true", DJANGO_DEBUG="false", DJANGO_SECRET_KEY="k" * 20 + os.urandom(24).hex())
    env.pop("DJANGO_SETTINGS_MODULE", None)
    done = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], cwd=ROOT,
                          env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.django_db(transaction=True)
async def test_every_socket_route_refuses_anonymous_and_foreign_origins(world):
    from sttproject.asgi import application
    from transcription.realtime.routing import websocket_urlpatterns

    *_, session, _, _ = world
    paths = {"ws/transcribe/": "/ws/transcribe/", "ws/sessions/<uuid:session_id>/live/": f"/ws/sessions/{session.pk}/live/"}
    assert {str(p.pattern) for p in websocket_urlpatterns} == set(paths) | {"v1/listen", "v1/realtime"}
    for path in paths.values():
        anonymous = WebsocketCommunicator(application, path, headers=[(b"origin", b"http://localhost")])
        await anonymous.connect()
        assert (await anonymous.receive_output(timeout=5))["code"] in (4401, 4403), path
        await anonymous.disconnect()
        foreign = WebsocketCommunicator(application, path, headers=[(b"origin", b"http://evil.example")])
        assert not (await foreign.connect())[0], path
        await foreign.disconnect()
    # Deepgram's and OpenAI's sockets (programs: a token, no cookie) refuse anyone without one at the
    # handshake, with HTTP 401 where the server can send a status (ours), else daphne's 403.
    for path in ("/v1/listen", "/v1/realtime?intent=transcription"):
        anonymous = WebsocketCommunicator(application, path)
        assert not (await anonymous.connect())[0], path
        anonymous = WebsocketCommunicator(application, path, headers=[(b"authorization", b"Token not-a-token")])
        anonymous.scope["extensions"] = {"websocket.http.response": {}}
        await anonymous.send_input({"type": "websocket.connect"})
        answer = await anonymous.receive_output(timeout=5)
        assert answer["type"] == "websocket.http.response.start" and answer["status"] == 401, path

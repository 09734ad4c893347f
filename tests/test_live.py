"""Live captions: the owner or a share-link holder watches a session as it happens, read-only."""
import datetime

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from transcription.models import ShareLink, TranscriptionSession

from .conftest import loud_frame, quiet_frame, receive_until, session_cookie, started, viewer_socket

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("scripted")]


def link_cookie(token: str) -> bytes:
    """An anonymous browser that opened the share link: its session cookie."""
    client = Client()
    assert client.get(reverse("transcription:live_shared", args=[token])).status_code == 200
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}".encode()


async def speak(ws, phrases: int):
    """Each phrase's first interim is awaited (frames sent at once reach the engine as one chunk, and
    interims made stale by a newer result are not sent)."""
    events = []
    for _ in range(phrases):
        await ws.send_to(bytes_data=loud_frame())
        events += await receive_until(ws, lambda e: e["type"] == "interim", timeout=10)
        for frame in [loud_frame()] * 2 + [quiet_frame()]:
            await ws.send_to(bytes_data=frame)
    return events + await receive_until(ws, lambda e: e["type"] == "final" and e["phrase"] == phrases - 1, timeout=10)


async def speaker(connect, user):
    ws = await connect(user=user)
    await ws.connect()
    return ws, (await started(ws, "en-US"))["session"]


async def test_owner_watches_interims_finals_and_the_end_in_order(connect, make_user):
    alice = await sync_to_async(make_user)("alice")
    ws, session_id = await speaker(connect, alice)
    viewer = viewer_socket(session_id, await sync_to_async(session_cookie)(alice))
    assert (await viewer.connect())[0]
    snapshot = await viewer.receive_json_from(timeout=5)
    assert snapshot["type"] == "snapshot" and snapshot["finals"] == [] and snapshot["status"] == "active"
    spoken = await speak(ws, 3)
    await ws.send_json_to({"type": "end"})
    await receive_until(ws, lambda e: e.get("event") == "ended", timeout=10)
    seen = await receive_until(viewer, lambda e: e.get("event") == "ended", timeout=10)
    finals = [e for e in seen if e["type"] == "final"]
    assert [(e["phrase"], e["text"], e["seq"]) for e in finals] == [
        (e["phrase"], e["text"], e["seq"]) for e in spoken if e["type"] == "final"]
    assert any(e["type"] == "interim" for e in seen)
    assert [e["seq"] for e in seen] == sorted(e["seq"] for e in seen)
    assert (await viewer.receive_output(timeout=5))["type"] == "websocket.close"  # normal close: nothing more to see
    await ws.disconnect()


async def test_a_late_viewer_with_a_link_gets_the_transcript_so_far_then_live(connect, make_user):
    alice = await sync_to_async(make_user)("alice")
    ws, session_id = await speaker(connect, alice)
    await speak(ws, 2)
    link = await ShareLink.objects.acreate(session_id=session_id)
    viewer = viewer_socket(session_id, await sync_to_async(link_cookie)(link.token))  # not logged in
    assert (await viewer.connect())[0]
    snapshot = await viewer.receive_json_from(timeout=5)
    assert [f["text"] for f in snapshot["finals"]] == ["w1 w2", "w1 w2"]
    for frame in [loud_frame()] * 5 + [quiet_frame()]:
        await ws.send_to(bytes_data=frame)
    live = await receive_until(viewer, lambda e: e["type"] == "final", timeout=5)
    assert live[-1]["text"] == "w1 w2 w3" and live[-1]["phrase"] == 2
    assert all(e["seq"] > snapshot["seq"] for e in live)
    await viewer.send_to(bytes_data=loud_frame())  # viewers never send audio
    assert (await viewer.receive_json_from(timeout=5))["code"] == "read_only"
    await viewer.disconnect()
    await ws.disconnect()


async def test_a_revoked_link_disconnects_its_viewers_and_is_refused_after(connect, make_user):
    alice = await sync_to_async(make_user)("alice")
    ws, session_id = await speaker(connect, alice)
    link = await ShareLink.objects.acreate(session_id=session_id)
    cookie = await sync_to_async(link_cookie)(link.token)
    viewer = viewer_socket(session_id, cookie)
    await viewer.connect()
    await viewer.receive_json_from(timeout=5)
    owner = Client()
    await sync_to_async(owner.force_login)(alice)
    await sync_to_async(owner.post)(reverse("transcription:share_revoke", args=[session_id, link.pk]))
    assert await viewer.receive_output(timeout=5) == {"type": "websocket.close", "code": 4403}
    again = viewer_socket(session_id, cookie)
    await again.connect()
    assert await again.receive_output(timeout=5) == {"type": "websocket.close", "code": 4403}
    assert (await sync_to_async(Client().get)(reverse("transcription:live_shared", args=[link.token]))).status_code == 404
    await ws.disconnect()


async def test_strangers_expired_links_and_links_to_other_sessions_are_refused(connect, make_user):
    alice = await sync_to_async(make_user)("alice")
    mallory = await sync_to_async(make_user)("mallory")
    ws, session_id = await speaker(connect, alice)
    other = await TranscriptionSession.objects.acreate(owner=mallory, language="en-US", engine="x")
    expired = await ShareLink.objects.acreate(session_id=session_id, expires_at=timezone.now() - datetime.timedelta(seconds=1))
    foreign = await ShareLink.objects.acreate(session=other)
    cookies = [
        None,  # anonymous
        await sync_to_async(session_cookie)(mallory),  # logged in, not the owner
        await sync_to_async(link_cookie)(foreign.token),  # a valid link, to another session
    ]
    assert (await sync_to_async(Client().get)(reverse("transcription:live_shared", args=[expired.token]))).status_code == 404
    for cookie in cookies:
        viewer = viewer_socket(session_id, cookie)
        await viewer.connect()
        assert await viewer.receive_output(timeout=5) == {"type": "websocket.close", "code": 4403}, cookie
        await viewer.disconnect()
    unknown = viewer_socket("00000000-0000-0000-0000-000000000000", await sync_to_async(session_cookie)(alice))
    await unknown.connect()
    assert await unknown.receive_output(timeout=5) == {"type": "websocket.close", "code": 4403}
    await ws.disconnect()


async def test_the_owner_creates_and_lists_share_links_on_the_session_page(connect, make_user):
    alice = await sync_to_async(make_user)("alice")
    ws, session_id = await speaker(connect, alice)
    owner = Client()
    await sync_to_async(owner.force_login)(alice)
    await sync_to_async(owner.post)(reverse("transcription:share_create", args=[session_id]), {"expires_hours": "24"})
    link = await ShareLink.objects.aget(session_id=session_id)
    assert datetime.timedelta(hours=23) < link.expires_at - timezone.now() <= datetime.timedelta(hours=24)
    page = (await sync_to_async(owner.get)(reverse("transcription:session_detail", args=[session_id]))).content.decode()
    assert f"/live/{link.token}/" in page
    shared = (await sync_to_async(Client().get)(f"/live/{link.token}/")).content.decode()
    assert f'data-ws-path="/ws/sessions/{session_id}/live/"' in shared and "read-only" in shared
    await ws.disconnect()

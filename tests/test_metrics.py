"""Metrics for operators (issue 15): /metrics in Prometheus format, protected, and the admin's Load page."""
import pytest
from asgiref.sync import sync_to_async
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from .conftest import loud_frame, quiet_frame, receive_until, started, viewer_socket, session_cookie

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("scripted")]


def scrape(client: Client, **headers) -> dict[tuple, float]:
    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.content
    values = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def value(values, name, **labels) -> float:
    return values.get((name, tuple(sorted(labels.items()))), 0.0)


def staff_client(django_user_model) -> Client:
    staff = django_user_model.objects.create_user("operator", password="a-long-test-password", is_staff=True,
                                                 is_superuser=True)
    client = Client()
    client.force_login(staff)
    return client


def test_metrics_need_staff_or_the_token(settings, django_user_model, make_user):
    settings.STT_METRICS_TOKEN = "scrape-secret"
    assert Client().get("/metrics").status_code == 401
    user = Client()
    user.force_login(make_user("bob"))
    assert user.get("/metrics").status_code == 403  # logged in is not enough
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    assert "stt_sessions_active" in Client().get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-secret").content.decode()
    settings.STT_METRICS_TOKEN = ""  # no token configured: a bearer header never opens it
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 403
    assert staff_client(django_user_model).get("/metrics").status_code == 200


async def test_a_session_shows_in_the_metrics_and_the_load_page(connect, make_user, django_user_model, settings):
    settings.STT_MAX_SESSIONS = 1
    operator = await sync_to_async(staff_client)(django_user_model)
    before = await sync_to_async(scrape)(operator)
    alice, bob = await sync_to_async(make_user)("alice"), await sync_to_async(make_user)("bob")

    speaker = await connect(user=alice)
    assert (await speaker.connect())[0]
    start = await started(speaker)
    viewer = viewer_socket(start["session"], cookie=await sync_to_async(session_cookie)(alice))
    assert (await viewer.connect())[0]
    await viewer.receive_json_from(timeout=5)  # the snapshot
    other = await connect(user=bob)  # the server is full: refused with busy, and counted
    assert (await other.connect())[0]
    await other.send_json_to({"type": "start", "lang": "ko-KR"})
    assert (await other.receive_json_from(timeout=5))["code"] == "busy"

    for _ in range(2):  # two phrases
        await speaker.send_to(bytes_data=loud_frame())
        await speaker.send_to(bytes_data=quiet_frame())
        await receive_until(speaker, lambda e: e["type"] == "final")
    during = await sync_to_async(scrape)(operator)
    assert value(during, "stt_sessions_active") == 1
    assert value(during, "stt_live_viewers") == value(before, "stt_live_viewers") + 1
    assert value(during, "stt_sessions_refused_total", reason="busy") == \
        value(before, "stt_sessions_refused_total", reason="busy") + 1
    assert value(during, "stt_finals_total", engine="scripted") == value(before, "stt_finals_total", engine="scripted") + 2
    delays = value(during, "stt_final_delay_seconds_count", engine="scripted") - \
        value(before, "stt_final_delay_seconds_count", engine="scripted")
    assert delays == 2 and value(during, "stt_final_delay_seconds_sum", engine="scripted") < 60

    page = await sync_to_async(operator.get)("/admin/transcription/transcriptionsession/load/")
    html = page.content.decode()
    assert page.status_code == 200 and "stt_sessions_active" in html and "stt_finals_total" in html
    assert "Load" in (await sync_to_async(operator.get)("/admin/transcription/transcriptionsession/")).content.decode()

    await speaker.send_json_to({"type": "end"})
    await receive_until(speaker, lambda e: e.get("event") == "ended")
    await viewer.disconnect()
    await speaker.disconnect()
    await other.disconnect()
    after = await sync_to_async(scrape)(operator)
    assert value(after, "stt_sessions_active") == 0
    assert value(after, "stt_live_viewers") == value(before, "stt_live_viewers")


def test_jobs_are_counted_by_state_across_processes(django_user_model, make_user):
    """`stt_jobs_in_state` is read from the database when scraped: jobs of every worker, by state."""
    from transcription.models import Job, TranscriptionSession

    owner = make_user("owner")
    session = TranscriptionSession.objects.create(owner=owner, language="ko-KR", engine="whisper", status="ended")
    Job.objects.create(session=session, kind=Job.Kind.REFINE, status=Job.Status.FAILED)
    Job.objects.create(session=session, kind=Job.Kind.TRANSLATE, language="en", status=Job.Status.DONE)
    Job.objects.create(session=session, kind=Job.Kind.TRANSLATE, language="fr", status=Job.Status.DONE)
    values = scrape(staff_client(django_user_model))
    assert value(values, "stt_jobs_in_state", kind="refine", status="failed") == 1
    assert value(values, "stt_jobs_in_state", kind="translate", status="done") == 2

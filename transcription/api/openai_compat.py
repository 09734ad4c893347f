"""OpenAI-compatible file transcription: POST /v1/audio/transcriptions and /v1/audio/translations.

The request and response shapes are OpenAI's, so its client libraries and the apps built on them work
unchanged (`base_url` = this server's /v1, `api_key` = an API token from the tokens page). Each
request becomes an uploaded session (transcription/sources/uploads.py) that the user sees in their history;
the answer waits for it. The views are async: a long file waits on the event loop, not on the one
thread Django runs synchronous views and database calls on.
"""
from __future__ import annotations

import asyncio

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from ..sources import uploads
from ..exports import srt_of, vtt_of
from ..jobs import TooManyJobs, job_start
from ..models import Job, TranscriptionSession
from ..auth import user_for_token

RESPONSE_FORMATS = ("json", "text", "srt", "vtt", "verbose_json")
POLL_SECONDS = 0.25


def error(message: str, *, code: str, status: int = 400, param: str | None = None) -> JsonResponse:
    """OpenAI's error shape (the client raises BadRequestError, AuthenticationError, ... from it)."""
    kind = "invalid_request_error" if status < 500 else "server_error"
    return JsonResponse({"error": {"message": message, "type": kind, "param": param, "code": code}}, status=status)


@csrf_exempt
async def transcriptions(request):
    return await handle(request, translate=False)


@csrf_exempt
async def translations(request):
    return await handle(request, translate=True)


async def handle(request, *, translate: bool):
    header = request.headers.get("Authorization", "").split()
    user = None
    if len(header) == 2 and header[0].lower() == "bearer":
        user, _ = await user_for_token(header[1])
    if user is None or not user.is_authenticated:
        return error("a valid API token is required (Authorization: Bearer ...)", code="invalid_api_key", status=401)
    if request.method != "POST":
        return error("use POST", code="method_not_allowed", status=405)

    # The multipart body (a file sttproject/server.py spooled) is parsed in a thread of its own: not on
    # the event loop, and not on the one thread every synchronous view shares.
    form, files = await sync_to_async(lambda: (request.POST, request.FILES), thread_sensitive=False)()
    file = files.get("file")
    if file is None:
        return error("the request has no `file`", code="bad_request", param="file")
    response_format = form.get("response_format") or "json"
    if response_format not in RESPONSE_FORMATS:
        return error(f"response_format must be one of {', '.join(RESPONSE_FORMATS)}", code="bad_response_format",
                     param="response_format")
    try:
        fields = uploads.upload_fields(language=form.get("language") or "auto",
                                       translate_to="en" if translate else "", vocabulary=form.get("prompt") or "")
        session = await database_sync_to_async(uploads.accept_file, thread_sensitive=False)(
            user=user, file=file, fields=fields)
    except uploads.UploadError as exc:
        return error(str(exc), code=exc.code, param="prompt" if exc.param == "vocabulary" else exc.param)

    waited = await wait_for(session.pk, timeout=settings.STT_V1_WAIT_SECONDS)
    if waited is None:  # (a queue behind other work: the client is not held for ever, the work goes on)
        return error(f"the recording is still being transcribed after {settings.STT_V1_WAIT_SECONDS:g} s; it goes "
                     f"on as session {session.pk} (GET /api/sessions/{session.pk}/)", code="timeout", status=504)
    session = waited
    if session.status != TranscriptionSession.Status.ENDED:
        if session.failure_code in uploads.REFUSED_WHEN_DECODED:  # the file, not the server, is at fault
            return error(session.failure_message, code=session.failure_code, param="file")
        return error("the recording could not be transcribed", code="transcription_failed", status=500)
    if translate:
        job = await database_sync_to_async(lambda: session.jobs.filter(kind=Job.Kind.TRANSLATE).first())()
        if job is None:  # (an upload with nothing to translate queues no job)
            try:
                job, _ = await database_sync_to_async(job_start)(session=session, kind=Job.Kind.TRANSLATE,
                                                                 language="en")
            except TooManyJobs as exc:
                return error(exc.message, code=exc.code, status=429)
        if not await wait_for_job(job.pk, timeout=settings.STT_V1_WAIT_SECONDS):
            return error(f"the translation is still running after {settings.STT_V1_WAIT_SECONDS:g} s",
                         code="timeout", status=504)
    words = "word" in form.getlist("timestamp_granularities[]")
    body = await database_sync_to_async(response_body, thread_sensitive=False)(
        session, response_format, translate=translate, words=words)  # (a long transcript: not on the shared thread)
    if isinstance(body, dict):
        return JsonResponse(body, json_dumps_params={"ensure_ascii": False})
    return HttpResponse(body, content_type="text/plain; charset=utf-8")


async def wait_for(session_id, *, timeout: float) -> TranscriptionSession | None:
    """The upload's session once it is no longer processing; None after `timeout` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        session = await TranscriptionSession.objects.aget(pk=session_id)
        if session.status != TranscriptionSession.Status.PROCESSING:
            return session
        await asyncio.sleep(POLL_SECONDS)
    return None


async def wait_for_job(job_id, *, timeout: float) -> bool:
    deadline = asyncio.get_running_loop().time() + timeout
    while (await Job.objects.aget(pk=job_id)).status in Job.ACTIVE:
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(POLL_SECONDS)
    return True


def response_body(session: TranscriptionSession, response_format: str, *, translate: bool, words: bool):
    segments = list(session.segments.order_by("index").prefetch_related("translations"))
    cues = []
    for s in segments:
        text = s.text
        if translate:
            text = next((t.text for t in s.translations.all() if t.language == "en"), "")
        cues.append((s.start_ms, s.end_ms, text.strip()))
    text = " ".join(t for _, _, t in cues if t)
    if response_format == "json":
        return {"text": text}
    if response_format == "text":
        return text + "\n"
    if response_format == "srt":
        return srt_of(cues)
    if response_format == "vtt":
        return vtt_of(cues)
    body = {
        "task": "translate" if translate else "transcribe",
        "language": "en" if translate else (segments[0].language if segments else session.language),
        "duration": session.audio_ms / 1000,
        "text": text,
        "segments": [
            {"id": n, "seek": 0, "start": start / 1000, "end": end / 1000, "text": t, "tokens": [],
             "temperature": 0.0, "avg_logprob": 0.0, "compression_ratio": 0.0, "no_speech_prob": 0.0}
            for n, (start, end, t) in enumerate(cues)
        ],
    }
    if words and not translate:
        body["words"] = [{"word": w["word"], "start": w["start_ms"] / 1000, "end": w["end_ms"] / 1000}
                         for s in segments for w in s.words]
    return body

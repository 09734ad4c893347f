"""Serving a session's audio with HTTP Range support, so the player can seek to a phrase."""
from __future__ import annotations

import functools
import re

from asgiref.sync import sync_to_async
from django.http import Http404, HttpResponse, StreamingHttpResponse

from .models import TranscriptionSession

RANGE = re.compile(r"bytes=(\d*)-(\d*)$")
CHUNK_BYTES = 256 * 1024
MAX_RANGE_BYTES = 4 * 1024 * 1024  # a longer range is answered in part (players ask again): "bytes=0-" of a 4 h
# recording would otherwise be read whole into memory


def audio_response(request, session: TranscriptionSession) -> HttpResponse:
    if not session.audio or not session.audio.storage.exists(session.audio.name):
        raise Http404("No audio was kept for this session")
    size = session.audio.size
    match = RANGE.match(request.headers.get("Range", ""))
    if match and (match.group(1) or match.group(2)):
        first, last = match.group(1), match.group(2)
        if first:
            start = int(first)
            end = min(int(last) if last else size - 1, size - 1, start + MAX_RANGE_BYTES - 1)
        else:  # "bytes=-N": the last N bytes
            start, end = max(0, size - min(int(last), MAX_RANGE_BYTES)), size - 1
        if start > end or start >= size:
            response = HttpResponse(status=416)
            response["Content-Range"] = f"bytes */{size}"
            return response
        with session.audio.open("rb") as f:
            f.seek(start)
            body = f.read(end - start + 1)
        response = HttpResponse(body, status=206, content_type="audio/wav")
        response["Content-Range"] = f"bytes {start}-{end}/{size}"
    else:
        response = StreamingHttpResponse(_chunks(session), content_type="audio/wav")
        response["Content-Length"] = str(size)
    response["Accept-Ranges"] = "bytes"
    return response


async def _chunks(session: TranscriptionSession):
    """The whole recording, read a chunk at a time in a thread of its own: Django's ASGI handler would
    read a synchronous file into memory whole before sending it (a 4 h recording is 460 MB)."""
    read_thread = functools.partial(sync_to_async, thread_sensitive=False)
    audio = await read_thread(session.audio.open)("rb")
    try:
        while chunk := await read_thread(audio.read)(CHUNK_BYTES):
            yield chunk
    finally:
        await read_thread(audio.close)()

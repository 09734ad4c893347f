"""Heavy requests on a small pool of their own: they wait their turn instead of all running at once.

Django's ASGI handler gives each request a thread of its own for its synchronous code. Twenty clients
asking at once for a long session's export, a search, voice enrolment, an upload's copy or a stream's
opening are then twenty threads of Python competing for the CPU and the GIL with the event loop that
carries every live session. These views run instead on STT_HEAVY_THREADS threads; the rest wait. What one
client may have running or waiting is bounded (STT_HEAVY_PER_CLIENT, beyond it 429), and so is the whole
queue (STT_HEAVY_QUEUE, beyond it 503): a flood is refused at once instead of piling up. (The captions
files are cheap instead: built at most once a second, views.captions_shared.)

A client is its user (browser session), else the API token it presents, else its address.
"""
from __future__ import annotations

import functools
import os
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import markcoroutinefunction, sync_to_async
from django.conf import settings
from django.db import close_old_connections
from django.http import HttpResponse, JsonResponse

_lock = threading.Lock()
_running: Counter = Counter()  # requests in the pool (running or waiting) per client
_pool: ThreadPoolExecutor | None = None


def pool() -> ThreadPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=settings.STT_HEAVY_THREADS, thread_name_prefix="stt-heavy")
        return _pool


HEAVY_NICENESS = 10  # the pool's threads take the CPU the live sessions and the pages leave (Linux)
_lowered = threading.local()


def lower_priority() -> None:
    if not getattr(_lowered, "done", False):
        _lowered.done = True
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), HEAVY_NICENESS)
        except (AttributeError, OSError):
            pass


def client_of(request, user) -> str:
    if user is not None and user.is_authenticated:
        return f"user:{user.pk}"
    header = request.headers.get("Authorization", "").split()
    if len(header) == 2:
        return f"token:{header[1][:24]}"  # (a token's prefix: checked by the view, counted here)
    return f"address:{request.META.get('REMOTE_ADDR', '')}"


def refusal(request, status: int, message: str) -> HttpResponse:
    if request.path.startswith(("/api/", "/v1/")):
        response = JsonResponse({"code": "too_many_requests" if status == 429 else "busy", "detail": message},
                                status=status)
    else:
        response = HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")
    response["Retry-After"] = "2"
    return response


def off_the_shared_thread(view):
    """`view` (a synchronous view) runs on the heavy pool, within the client's and the pool's bounds."""

    def in_pool(request, *args, **kwargs):
        lower_priority()
        close_old_connections()  # (the pool's threads keep their connections between requests)
        try:
            return view(request, *args, **kwargs)
        finally:
            close_old_connections()

    run_shared = sync_to_async(view)  # STT_HEAVY_THREADS=0: as any synchronous view (tests whose data
    # lives in the test thread's open transaction; tests/conftest.py)

    @functools.wraps(view)
    async def heavy(request, *args, **kwargs):
        client = client_of(request, await request.auser())
        with _lock:
            if _running[client] >= settings.STT_HEAVY_PER_CLIENT:
                return refusal(request, 429, "too many requests at once from you; try again in a moment")
            if sum(_running.values()) >= settings.STT_HEAVY_QUEUE:
                return refusal(request, 503, "the server is busy; try again in a moment")
            _running[client] += 1
        try:
            if not settings.STT_HEAVY_THREADS:
                return await run_shared(request, *args, **kwargs)
            return await sync_to_async(in_pool, thread_sensitive=False, executor=pool())(request, *args, **kwargs)
        finally:
            with _lock:
                _running[client] -= 1
                if not _running[client]:
                    del _running[client]

    return markcoroutinefunction(heavy)

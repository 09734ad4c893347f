"""The live path's database calls, on threads of their own.

channels' `database_sync_to_async` runs on the one thread Django gives every synchronous view: a final
would be stored, and so sent, only after whatever slow page is ahead of it there (an export of a long
session, a search). The live path (a session's opening, its finals, labels and translations, its end)
uses these threads instead, so no page can hold a caption back (bench/hostile.py --pages measures it).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from channels.db import database_sync_to_async

LIVE_DB_THREADS = 2  # writes are short; SQLite takes one writer at a time anyway, PostgreSQL more

_pool = ThreadPoolExecutor(max_workers=LIVE_DB_THREADS, thread_name_prefix="stt-live-db")


def live_db(func):
    """`func` (a database call) as a coroutine function run on the live path's threads, closing stale
    connections before and after, as database_sync_to_async does."""
    return database_sync_to_async(func, thread_sensitive=False, executor=_pool)

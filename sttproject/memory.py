"""glibc's malloc arenas: at most STT_MALLOC_ARENAS (default 2) per server process.

glibc gives threads arenas of their own, up to 8 per core, and hands little of them back. Every live
session runs a thread, so a server's RSS kept climbing under churn: bench/soak.py, 3 minutes, the
scripted server grew 88 MB (+20 MB in the last 90 s); with 2 arenas it grew 40 MB, flat after 90 s,
in the same run. MALLOC_ARENA_MAX does the same from outside; this sets it at startup with mallopt,
before the server's threads allocate, so no launcher has to. Nothing happens off glibc.
"""
from __future__ import annotations

import ctypes
import os

M_ARENA_MAX = -8  # glibc's malloc.h


def limit_malloc_arenas() -> bool:
    """True if glibc took the limit (STT_MALLOC_ARENAS; 0 leaves glibc's default)."""
    count = int(os.environ.get("STT_MALLOC_ARENAS", "2") or 0)
    if count <= 0 or "MALLOC_ARENA_MAX" in os.environ:  # (set from outside: that one holds)
        return False
    try:
        return bool(ctypes.CDLL("libc.so.6").mallopt(M_ARENA_MAX, count))
    except (OSError, AttributeError):  # not glibc
        return False

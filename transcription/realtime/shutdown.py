"""Graceful shutdown under daphne: on SIGTERM, sessions finish their phrase, store it, say `ended`.

daphne runs on Twisted's asyncio reactor, whose SIGTERM handler stops the reactor and cancels every
connection's application at once. Once the reactor runs, this module takes SIGTERM over: it ends
every running session first (within STT_SHUTDOWN_SECONDS), then stops the reactor the usual way.
Meanwhile new sockets are closed with 4012 and new sessions refused with `busy`, so clients go
elsewhere. A second SIGTERM (or SIGINT) stops at once.
"""
from __future__ import annotations

import asyncio
import logging
import signal
import sys

from django.conf import settings

from .. import protocol
from .limits import connections
from .registry import sessions

logger = logging.getLogger(__name__)
_draining = False


def draining() -> bool:
    return _draining


async def drain(timeout: float) -> int:
    """End every running session of this process, then close its sockets; returns how many."""
    global _draining
    _draining = True
    running = sessions.running()
    logger.info("shutting down: ending %d session(s) within %.0f s", len(running), timeout)
    sinks = [s.sink for s in running if s.sink is not None]
    results = await asyncio.gather(*(s.end(reason=protocol.REASON_SHUTDOWN, timeout=timeout) for s in running),
                                   return_exceptions=True)
    for result in results:
        if isinstance(result, Exception):
            logger.error("a session did not end cleanly at shutdown: %r", result)
    for sink in sinks:
        try:
            await sink.close(code=protocol.CLOSE_SHUTTING_DOWN)
        except Exception:
            pass  # already gone
    # Let the sockets' handlers finish before the reactor stops: tasks cut off mid-way at exit can
    # crash the interpreter's final garbage collection (seen on CPython 3.11).
    for _ in range(30):  # (a server-side close takes up to ~1 s: Autobahn waits for the client's TCP close)
        if not connections.open:
            break
        await asyncio.sleep(0.05)
    return len(running)


def install() -> None:
    """Under daphne (Twisted's reactor runs this process), drain on SIGTERM before stopping."""
    if "twisted.internet.reactor" not in sys.modules:
        return
    from twisted.internet import reactor

    def on_sigterm(signum, frame) -> None:
        if _draining:  # asked twice: stop now
            reactor.callFromThread(reactor.stop)
            return
        reactor.callFromThread(start_drain)

    def start_drain() -> None:
        task = asyncio.ensure_future(drain(settings.STT_SHUTDOWN_SECONDS))
        task.add_done_callback(lambda _: reactor.stop())

    # After Twisted has installed its own handlers (they are installed before "startup" triggers).
    reactor.callWhenRunning(signal.signal, signal.SIGTERM, on_sigterm)

"""The HTTP server: daphne, with a request class that decides on a body before reading it.

    python -m sttproject.server -b 127.0.0.1 -p 8000 sttproject.asgi:application   (daphne's arguments)

Plain daphne (Twisted underneath) reads a request's whole body before the application runs, parses a
form body in memory on the reactor thread that also carries every live socket, and then queues the
body to the application whole. One anonymous 200 MB upload froze every session for 12 s and kept
444 MB. GuardedRequest changes three things and nothing else:
- once the headers are in, `transcription.intake.admit` decides whether the body may be read at all
  (its declared size against the route's limit; for an upload route, the sender's login). Reading
  waits for the answer; a refusal is sent at once and the body is never read;
- Twisted's own form parsing is off (Django parses forms, in a worker thread, from a file);
- the body is spooled to disk as it arrives (Twisted's temporary file above 100 kB), counted against
  the limit when no length was declared, and handed to the application as a file in the scope
  (sttproject/request_body.py reads it as the application asks), never queued whole in memory.

We chose this over a server that streams bodies (uvicorn) because daphne is the project's server
(the channels consumers, the SIGTERM drain of transcription/realtime/shutdown.py and every test run
on it), and over a proxy limit alone because `make run` has no proxy (docs/operations.md).
"""
from __future__ import annotations

import asyncio
import io
from http import HTTPStatus
import logging
import sys

from daphne import server as daphne_server
from daphne.cli import CommandLineInterface
from autobahn.websocket.types import ConnectionDeny
from daphne.http_protocol import HTTPFactory, WebRequest
from daphne.ws_protocol import WebSocketFactory, WebSocketProtocol
from twisted.internet import defer, reactor

from .request_body import BODY_FILE

logger = logging.getLogger(__name__)

LINGER_SECONDS = 2.0  # after a refusal, what the client still sends is read and dropped this long, so
# that it reads our answer instead of a reset; then the connection is closed whatever it sends


class GuardedRequest(WebRequest):
    def __init__(self, *args, **kwargs) -> None:
        # Twisted's form parser reads the whole body into memory and parses it on the reactor thread.
        super().__init__(*args, parsePOSTFormSubmission=False, **kwargs)
        self.route = None
        self.received = 0
        self.refused = False
        self.admission: defer.Deferred | None = None  # the pending check: reading waits for it
        self.body_file = None

    # -- headers in, body not yet read --
    def gotLength(self, length):
        super().gotLength(length)
        from transcription import intake

        # Twisted keeps the request line on the channel until the body is in (then on the request).
        method = self.channel._command.decode("latin-1").upper()
        self.route = intake.route_for(method, self.channel._path)
        headers = {name.lower(): values[0] for name, values in self.requestHeaders.getAllRawHeaders()}
        if length is not None and length > self.route.max_body:
            self.refuse(intake.too_large(self.route))
            return
        if not self.route.needs_login:
            return
        # Hold the body (no `100 Continue`, no reading from the socket) until the sender is known.
        expects_continue = b"100-continue" in headers.get(b"expect", b"").lower()
        self.requestHeaders.removeHeader(b"expect")
        self.channel._networkProducer.pauseProducing()
        self.admission = defer.Deferred.fromFuture(asyncio.ensure_future(intake.admit(self.route, headers, length)))
        self.admission.addCallback(self._admitted, expects_continue)
        self.admission.addErrback(self._admission_failed)

    def _admitted(self, refusal, expects_continue: bool) -> bool:
        self.admission = None
        if refusal is not None:
            self.refuse(refusal)
            return False
        if self.channel is not None and self.channel.transport is not None:
            if expects_continue:
                self.channel.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            self.channel._networkProducer.resumeProducing()
        return True

    def _admission_failed(self, failure) -> bool:
        logger.error("checking a request before its body failed: %s", failure.getTraceback())
        from transcription import intake

        self.refuse(intake.Refusal(503, b"the server could not check this request; try again\n", "text/plain"))
        return False

    def handleContentChunk(self, data: bytes) -> None:
        if self.refused:
            return  # dropped while lingering
        self.received += len(data)
        if self.route is not None and self.received > self.route.max_body:  # no length was declared
            from transcription import intake

            self.refuse(intake.too_large(self.route))
            return
        super().handleContentChunk(data)

    def refuse(self, refusal) -> None:
        """Answer now and never read the body: drop what arrives for a moment, then close."""
        if self.refused or self.channel is None or self.channel.transport is None:
            return
        self.refused = True
        transport = self.channel.transport
        self.content.close()  # (a temporary file: its disk space goes back now)
        self.content = io.BytesIO()
        transport.write(refusal.http_response())
        self.channel._networkProducer.resumeProducing()
        reactor.callLater(LINGER_SECONDS, transport.abortConnection)
        logger.info("refused %s before reading its body (%s)", self.channel._path[:200], refusal.status)

    # -- the whole body is in --
    def process(self):
        if self.refused:
            self.channel.transport.loseConnection()  # everything was read and dropped: close now
            return None
        if self.admission is not None:  # the body came with the headers: wait for the check
            self.admission.addCallback(lambda admitted: self._process() if admitted else None)
            return None
        return self._process()

    def _process(self):
        if self.received:  # the application reads the body from the file (request_body.py)
            self.body_file, self.content = self.content, io.BytesIO()
            self.body_file.seek(0)
        return super().process()

    def connectionLost(self, reason):
        if self.body_file is not None:
            self.body_file.close()
        super().connectionLost(reason)


class GuardedHTTPFactory(HTTPFactory):
    guards_bodies = True  # (transcription/checks.py warns when the application is served without it)

    def buildProtocol(self, addr):
        protocol = super().buildProtocol(addr)
        protocol.requestFactory = GuardedRequest
        return protocol


MAX_QUEUED_MESSAGES = 256  # a socket's messages waiting for the application; beyond it the socket is not read


class DenyingWebSocketProtocol(WebSocketProtocol):
    """Two things daphne's WebSocket protocol lacks.

    ASGI's WebSocket denial response: an application may answer a handshake with an HTTP status
    instead of accepting it (daphne sends 403 for every refusal). Deepgram's and OpenAI's clients tell
    a wrong key (401) from a bad parameter (400) by it. Autobahn writes the status line and its own
    short body; the application's body is not sent.

    Flow control: daphne queues every message for the application, unbounded. A client sending 2-byte
    frames as fast as it could grew the server by 800 MB and held another session's finals back by 19 s
    (bench/hostile.py --only floods). Once MAX_QUEUED_MESSAGES wait, the socket is not read until half
    of them are taken: the sender waits (TCP), not the server."""

    paused = False

    def onMessage(self, payload, isBinary):
        super().onMessage(payload, isBinary)
        queue = getattr(self, "application_queue", None)
        if queue is not None and not self.paused and queue.qsize() >= MAX_QUEUED_MESSAGES:
            self.paused = True
            self.transport.pauseProducing()
            reactor.callLater(0.01, self._resume_when_drained)

    def _resume_when_drained(self):
        if self.application_queue.qsize() > MAX_QUEUED_MESSAGES // 2 and self.transport.connected:
            reactor.callLater(0.01, self._resume_when_drained)
            return
        self.paused = False
        self.transport.resumeProducing()

    def handle_reply(self, message):
        if message.get("type") == "websocket.http.response.start" and self.state == self.STATE_CONNECTING:
            self.denial_status = int(message.get("status", 403))
            return
        if message.get("type") == "websocket.http.response.body" and hasattr(self, "handshake_deferred"):
            if message.get("more_body"):
                return
            status = getattr(self, "denial_status", 403)
            self.handshake_deferred.errback(ConnectionDeny(code=status, reason=HTTPStatus(status).phrase))
            del self.handshake_deferred
            self.server.protocol_disconnected(self)
            return
        super().handle_reply(message)


class GuardedServer(daphne_server.Server):
    def create_application(self, protocol, scope):
        body = getattr(protocol, "body_file", None)
        if body is not None:
            scope["extensions"] = {**scope.get("extensions", {}), BODY_FILE: body}
        if scope.get("type") == "websocket":
            scope["extensions"] = {**scope.get("extensions", {}), "websocket.http.response": {}}
        return super().create_application(protocol, scope)


class GuardedCommandLineInterface(CommandLineInterface):
    server_class = GuardedServer


# A thread waiting for the GIL (the event loop after a socket read, a live final's store) gets it within
# 1 ms of asking instead of Python's 5 ms: twenty clients hammering exports on the heavy pool raised a live
# final's delay p95 by 0.36 s at 5 ms and by 0.25 s at 1 ms (bench/hostile.py --only pages, docs/benchmarks.md).
GIL_SWITCH_SECONDS = 0.001


def main(argv: list[str] | None = None) -> None:
    sys.setswitchinterval(GIL_SWITCH_SECONDS)
    # daphne builds its HTTPFactory inside Server.run and offers no setting for the request class.
    daphne_server.HTTPFactory = GuardedHTTPFactory
    WebSocketFactory.protocol = DenyingWebSocketProtocol
    GuardedCommandLineInterface().run(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    main()

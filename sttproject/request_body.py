"""The application's side of sttproject/server.py: a request body handed over as a file.

The server spools a body to disk and puts the file in `scope["extensions"][BODY_FILE]`, queueing no
body of its own. Django's ASGI handler would copy it into a second temporary file, chunk by chunk on
the event loop; this handler gives Django the spooled file itself. Without that extension (another
server, the test client) it is Django's handler unchanged.
"""
from __future__ import annotations

import django
from django.core.handlers.asgi import ASGIHandler

BODY_FILE = "sttproject.body_file"


class SpooledBody:
    """`receive` of a request whose body is a file: the server's own (empty) body message is
    skipped, anything else it sends (a disconnect) passes."""

    def __init__(self, file, receive) -> None:
        self.file = file
        self.receive = receive

    async def __call__(self) -> dict:
        while True:
            message = await self.receive()
            if message["type"] != "http.request":
                return message


class SpooledBodyASGIHandler(ASGIHandler):
    async def handle(self, scope, receive, send):
        file = scope.get("extensions", {}).get(BODY_FILE)
        if file is not None:
            receive = SpooledBody(file, receive)
        return await super().handle(scope, receive, send)

    async def read_body(self, receive):
        if isinstance(receive, SpooledBody):
            receive.file.seek(0)
            return receive.file  # (Django closes it when the response is sent)
        return await super().read_body(receive)


def get_asgi_application() -> SpooledBodyASGIHandler:
    """django.core.asgi.get_asgi_application, with the handler above."""
    django.setup(set_prefix=False)
    return SpooledBodyASGIHandler()

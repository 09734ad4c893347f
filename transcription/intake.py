"""What a request body must satisfy before the server reads a byte of it.

The HTTP server (sttproject/server.py) asks `admit` once a request's headers are in, before its body:
- every route has a body limit: uploads STT_MAX_UPLOAD_MB (plus room for the form's other fields),
  everything else Django's DATA_UPLOAD_MAX_MEMORY_SIZE; a larger declared length is refused with 413
  at once, and a body without a declared length is cut off when it passes the limit;
- an upload route reads a body only from someone logged in (an API token, or a browser's session
  where the route takes one): anyone else gets the route's own 401 (or the login page), and the
  server never reads what they send. Refusing costs one database lookup, whatever the body's size.
Each refusal is in the route's own shape: OpenAI's error object on /v1, the REST API's
{"code", "detail"}, a redirect to the login page for the upload form.
"""
from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import quote, unquote, urlsplit

from channels.db import database_sync_to_async
from django.conf import settings

FORM_FIELDS_BYTES = 64 * 1024  # an upload's form fields and multipart boundaries, beside the file
TOO_LARGE = "too_large"


class Shape(enum.Enum):
    """How a route answers a refusal."""

    OPENAI = "openai"  # /v1: {"error": {"message", "type", "param", "code"}}, Bearer tokens only
    REST = "rest"  # /api: {"code", "detail"}, Bearer tokens or the browser's session
    PAGE = "page"  # the upload form: the browser's session; anonymous visitors go to the login page
    PLAIN = "plain"  # everything else: text


@dataclass(frozen=True)
class Route:
    shape: Shape
    max_body: int  # bytes
    needs_login: bool = False  # an upload: the body is read only from someone logged in

    @property
    def takes_cookie(self) -> bool:
        return self.shape in (Shape.REST, Shape.PAGE)


@dataclass(frozen=True)
class Refusal:
    """An answer given instead of reading the body."""

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = field(default=())

    def http_response(self) -> bytes:
        """The whole HTTP/1.1 response; the connection closes after it (its body is never read)."""
        reason = HTTPStatus(self.status).phrase
        lines = [f"HTTP/1.1 {self.status} {reason}", f"Content-Type: {self.content_type}",
                 f"Content-Length: {len(self.body)}", "Connection: close",
                 *(f"{name}: {value}" for name, value in self.headers)]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + self.body


def upload_limit() -> int:
    return int(settings.STT_MAX_UPLOAD_MB * 1024 * 1024) + FORM_FIELDS_BYTES


def route_for(method: str, target: bytes) -> Route:
    """The route a request line names (`target` as sent: a path, perhaps with a query)."""
    path = unquote(urlsplit(target.decode("latin-1")).path)
    if method == "POST":
        if path in ("/v1/audio/transcriptions", "/v1/audio/translations"):
            return Route(Shape.OPENAI, upload_limit(), needs_login=True)
        if path == "/api/sessions/":
            return Route(Shape.REST, upload_limit(), needs_login=True)
        if path == "/upload/":
            return Route(Shape.PAGE, upload_limit(), needs_login=True)
    return Route(Shape.PLAIN, settings.DATA_UPLOAD_MAX_MEMORY_SIZE or upload_limit())


def too_large(route: Route) -> Refusal:
    limit_mb = route.max_body / (1024 * 1024)
    message = (f"the file is larger than {settings.STT_MAX_UPLOAD_MB:g} MB" if route.needs_login
               else f"request bodies are limited to {limit_mb:.1f} MB here")
    return _refusal(route, HTTPStatus.REQUEST_ENTITY_TOO_LARGE, TOO_LARGE, message)


def unauthenticated(route: Route) -> Refusal:
    if route.shape is Shape.PAGE:
        from django.shortcuts import resolve_url

        login = f"{resolve_url(settings.LOGIN_URL)}?next={quote('/')}"
        return Refusal(HTTPStatus.FOUND, b"", "text/plain", (("Location", login),))
    if route.shape is Shape.OPENAI:
        return _refusal(route, HTTPStatus.UNAUTHORIZED, "invalid_api_key",
                        "a valid API token is required (Authorization: Bearer ...)")
    return Refusal(HTTPStatus.UNAUTHORIZED, json.dumps({
        "code": "unauthenticated", "detail": "Authentication credentials were not provided."}).encode(),
        headers=(("WWW-Authenticate", "Bearer"),))


def _refusal(route: Route, status: int, code: str, message: str) -> Refusal:
    if route.shape is Shape.OPENAI:
        body = {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}
    elif route.shape is Shape.REST:
        body = {"code": code, "detail": message}
    else:
        return Refusal(status, message.encode("utf-8") + b"\n", "text/plain; charset=utf-8")
    return Refusal(status, json.dumps(body).encode())


async def admit(route: Route, headers: dict[bytes, bytes], length: int | None) -> Refusal | None:
    """None when the body may be read; else the answer to give instead. `headers` lower-cased."""
    if length is not None and length > route.max_body:
        return too_large(route)
    if route.needs_login and not await logged_in(route, headers):
        return unauthenticated(route)
    return None


async def logged_in(route: Route, headers: dict[bytes, bytes]) -> bool:
    from .auth import user_for_token

    authorization = headers.get(b"authorization", b"").split()
    if len(authorization) == 2 and authorization[0].lower() == b"bearer":
        user, _ = await user_for_token(authorization[1].decode("latin-1"))
        return user.is_authenticated
    if route.takes_cookie:
        key = _cookie(headers.get(b"cookie", b""), settings.SESSION_COOKIE_NAME)
        return bool(key) and await _session_user_active(key)
    return False


def _cookie(header: bytes, name: str) -> str:
    from http.cookies import SimpleCookie

    cookies = SimpleCookie()
    try:
        cookies.load(header.decode("latin-1"))
    except Exception:  # a malformed Cookie header is no login
        return ""
    morsel = cookies.get(name)
    return morsel.value if morsel is not None else ""


@database_sync_to_async
def _session_user_active(session_key: str) -> bool:
    """As Django's login check does it: the session's user exists, is active, and the session's
    password hash still matches (a password change logs other browsers out)."""
    from importlib import import_module
    from types import SimpleNamespace

    from django.contrib.auth import get_user

    store = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    return get_user(SimpleNamespace(session=store)).is_authenticated

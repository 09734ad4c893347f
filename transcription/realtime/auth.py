"""WebSocket authentication: the browser's session cookie, or a program's API token.

Programs send `Authorization: Bearer <token>` on the handshake, or `Token <token>` as Deepgram's
clients do (a `?token=` query is not read: URLs end up in logs). Tokens are knox tokens: only their SHA-512 digest is stored.

The Origin check guards cookie-authenticated sockets against cross-site use. A browser cannot put an
Authorization header on a WebSocket, so a handshake that carries one is a program's and is not
subject to it; a wrong token is refused like no login at all (close 4401).
"""
from __future__ import annotations

from channels.auth import AuthMiddlewareStack
from channels.security.websocket import AllowedHostsOriginValidator
from django.contrib.auth.models import AnonymousUser

from ..auth import user_for_token

SCHEMES = {b"bearer", b"token"}


def bearer_token(scope) -> str | None:
    """The token of an `Authorization: Bearer|Token ...` header, '' for a malformed one, None without one."""
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            parts = value.split()
            if len(parts) == 2 and parts[0].lower() in SCHEMES:
                return parts[1].decode("latin-1")
            return ""
    return None


class TokenAuthMiddleware:
    """A handshake with a Bearer token: scope["user"] (and scope["auth_token"], the digest) from the
    token alone. The browser's cookie session is not read at all (no `session` in the scope): a
    program's socket never acts as, or with the share links of, whoever's cookie came along."""

    def __init__(self, inner) -> None:
        self.inner = inner

    async def __call__(self, scope, receive, send):
        token = bearer_token(scope)
        user, digest = await user_for_token(token) if token else (AnonymousUser(), None)
        scope = {key: value for key, value in scope.items() if key != "session"}
        return await self.inner(dict(scope, user=user, auth_token=digest), receive, send)


class TokenOrCookie:
    """Token handshakes go to TokenAuthMiddleware; the others are a browser's: the Origin check
    (against cross-site use of its cookie), then the cookie session."""

    def __init__(self, inner) -> None:
        self.token = TokenAuthMiddleware(inner)
        self.cookie = AllowedHostsOriginValidator(AuthMiddlewareStack(inner))

    async def __call__(self, scope, receive, send):
        if bearer_token(scope) is not None:
            return await self.token(scope, receive, send)
        return await self.cookie(scope, receive, send)


def websocket_auth(inner):
    """The stack every WebSocket route sits behind."""
    return TokenOrCookie(inner)

"""API tokens (django-rest-knox: only a SHA-512 digest of each is stored), for every route that takes
one: the sockets, the upload routes' check before a body is read, the OpenAI-compatible views."""
from __future__ import annotations

from channels.db import database_sync_to_async
from django.contrib.auth.models import AnonymousUser
from django.db.models import Q
from django.utils import timezone
from knox.auth import TokenAuthentication
from knox.models import AuthToken
from rest_framework import exceptions


@database_sync_to_async
def user_for_token(token: str):
    """(user, digest) for a valid, unexpired token of an active user, else (AnonymousUser, None)."""
    try:
        user, auth_token = TokenAuthentication().authenticate_credentials(token.encode())
    except exceptions.AuthenticationFailed:
        return AnonymousUser(), None
    return user, auth_token.digest


@database_sync_to_async
def token_is_valid(digest: str) -> bool:
    """Still there (not revoked) and not expired: checked again at each `start` on an open socket."""
    return AuthToken.objects.filter(Q(expiry__isnull=True) | Q(expiry__gt=timezone.now()), digest=digest).exists()

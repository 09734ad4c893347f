"""Reads. Every query is scoped to its owner: one user never sees another's data."""
from __future__ import annotations

from django.db.models import Count, Prefetch, Q, QuerySet
from django.shortcuts import get_object_or_404

from .models import Segment, TranscriptionSession, Translation


def session_list_for_user(*, user, search: str = "") -> QuerySet[TranscriptionSession]:
    first = Segment.objects.filter(index=0)
    sessions = TranscriptionSession.objects.filter(owner=user)
    if search:  # sessions whose title or transcript contains the words, owner's only
        matching = Segment.objects.filter(session__owner=user, text__icontains=search).values("session_id")
        sessions = sessions.filter(Q(pk__in=matching) | Q(title__icontains=search))
    return (
        sessions
        .annotate(segment_count=Count("segments"))
        .prefetch_related(Prefetch("segments", queryset=first, to_attr="first_segments"))
        .order_by("-started_at")
    )


def session_get_for_user(*, user, session_id) -> TranscriptionSession:
    """404 (not 403) for someone else's session: its existence is not revealed."""
    return get_object_or_404(TranscriptionSession, pk=session_id, owner=user)


def segments_for_session(*, session: TranscriptionSession) -> QuerySet[Segment]:
    return session.segments.prefetch_related("translations").order_by("index")


def segments_after_seq(*, session_id, last_seq: int) -> list[Segment]:
    """The finals a resuming client missed."""
    return list(Segment.objects.filter(session_id=session_id, seq__gt=last_seq).order_by("seq"))


def translations_after_seq(*, session_id, last_seq: int) -> list[Translation]:
    return list(Translation.objects.filter(segment__session_id=session_id, seq__gt=last_seq).order_by("seq"))

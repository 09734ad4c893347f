"""Reads. Every query is scoped to its owner: one user never sees another's data."""
from __future__ import annotations

from datetime import date

from django.db.models import Count, Prefetch, Q, QuerySet
from django.shortcuts import get_object_or_404
from knox.models import AuthToken

from .languages import language_tag
from .models import GlossaryTerm, Job, Segment, ShareLink, TranscriptionSession, Translation


def session_list_for_user(*, user, search: str = "", language: str | None = None, since: date | None = None,
                          until: date | None = None) -> QuerySet[TranscriptionSession]:
    """The user's sessions, newest first; `search` in titles and transcripts, dates inclusive."""
    first = Segment.objects.filter(index=0)
    sessions = TranscriptionSession.objects.filter(owner=user)
    if search:  # sessions whose title or transcript contains the words, owner's only
        matching = Segment.objects.filter(session__owner=user, text__icontains=search).values("session_id")
        sessions = sessions.filter(Q(pk__in=matching) | Q(title__icontains=search))
    if language:
        sessions = sessions.filter(language=language_tag(language))
    if since:
        sessions = sessions.filter(started_at__date__gte=since)
    if until:
        sessions = sessions.filter(started_at__date__lte=until)
    return (
        sessions
        .annotate(segment_count=Count("segments"))
        .prefetch_related(Prefetch("segments", queryset=first, to_attr="first_segments"))
        .order_by("-started_at")
    )


def session_get_for_user(*, user, session_id) -> TranscriptionSession:
    """404 (not 403) for someone else's session: its existence is not revealed."""
    return get_object_or_404(TranscriptionSession, pk=session_id, owner=user)


def sessions_with_transcript_for_user(*, user) -> QuerySet[TranscriptionSession]:
    """The user's sessions with their segments (in order) and translations, for detail views."""
    return (TranscriptionSession.objects.filter(owner=user).annotate(segment_count=Count("segments"))
            .prefetch_related(Prefetch("segments", queryset=Segment.objects.order_by("index")
                                       .prefetch_related("translations")), "jobs"))


def api_tokens_for_user(*, user) -> QuerySet[AuthToken]:
    return AuthToken.objects.filter(user=user).select_related("label").order_by("-created")


def jobs_for_session(*, session: TranscriptionSession) -> list:
    """Background work on the session worth showing: what runs, and what failed last."""
    return list(session.jobs.filter(status__in=[*Job.ACTIVE, Job.Status.FAILED])[:5])


def segments_for_session(*, session: TranscriptionSession) -> QuerySet[Segment]:
    return session.segments.prefetch_related("translations").order_by("index")


def transcript_after_seq(*, session_id, last_seq: int) -> tuple[list[Segment], list[Translation]]:
    """The finals and translations a resuming client missed, in seq order."""
    return (list(Segment.objects.filter(session_id=session_id, seq__gt=last_seq).order_by("seq")),
            list(Translation.objects.filter(segment__session_id=session_id, seq__gt=last_seq).order_by("seq")))


SHARES_SESSION_KEY = "live_shares"  # ids of the share links this browser opened (set by the live page)


def share_links_for_session(*, session: TranscriptionSession) -> list[ShareLink]:
    """The links still usable, newest first (revoked and expired ones are not listed)."""
    return [link for link in session.share_links.all() if link.is_active()]


def share_get_active(*, token: str) -> ShareLink | None:
    link = ShareLink.objects.select_related("session").filter(token=token).first()
    return link if link is not None and link.is_active() else None


def viewer_access(*, user, session_id, share_ids):
    """Who may watch a session live: its owner (True), or the holder of an active link to it (that
    ShareLink); anyone else gets False. Unknown sessions give False too: existence is not revealed."""
    if user is not None and user.is_authenticated and TranscriptionSession.objects.filter(pk=session_id, owner=user).exists():
        return True
    for link in ShareLink.objects.filter(session_id=session_id, pk__in=list(share_ids)):
        if link.is_active():
            return link
    return False


def share_link_active(*, link: ShareLink) -> bool:
    """The link as stored now (revoked or expired since a viewer came in by it?)."""
    current = ShareLink.objects.filter(pk=link.pk).first()
    return current is not None and current.is_active()


def transcript_of_session(*, session_id) -> tuple[TranscriptionSession, list[Segment]]:
    """A session and its stored segments (with translations), in order: a late viewer's snapshot."""
    session = TranscriptionSession.objects.get(pk=session_id)
    return session, list(session.segments.prefetch_related("translations").order_by("index"))


def glossary_for_user(*, user) -> QuerySet[GlossaryTerm]:
    return GlossaryTerm.objects.filter(owner=user)


def glossary_terms_for(*, user, language: str) -> list[str]:
    """The user's terms for a session in `language` ('ko-KR' matches 'ko' terms; 'auto' all of them),
    and those for every language."""
    terms = GlossaryTerm.objects.filter(owner=user)
    if language != "auto":
        terms = terms.filter(language__in=["", language.split("-")[0].lower()])
    return list(terms.order_by("language", "created_at").values_list("term", flat=True))


def segments_without_translation(*, session_id, language: str) -> list[Segment]:
    """A session's stored finals not yet translated into `language`, in order."""
    return list(Segment.objects.filter(session_id=session_id).exclude(translations__language=language)
                .order_by("index"))


def segment_get_for_user(*, user, session_id, segment_id) -> Segment:
    """404 unless the segment belongs to a session of `user`."""
    return get_object_or_404(Segment.objects.select_related("session"), pk=segment_id, session_id=session_id,
                             session__owner=user)


def upload_progress(*, session: TranscriptionSession) -> float:
    """How far an uploaded recording's transcription has got, 0-1 (its `transcribe` job)."""
    job = session.jobs.filter(kind=Job.Kind.TRANSCRIBE).order_by("-created_at").first()
    return job.progress if job is not None else 0.0


def upload_state(*, session_id, last_seq: int) -> tuple[str, list[Segment], float]:
    """An upload being transcribed: its status, the phrases stored after `last_seq`, its progress."""
    session = TranscriptionSession.objects.get(pk=session_id)
    segments = list(Segment.objects.filter(session_id=session_id, seq__gt=last_seq).order_by("seq"))
    done = session.status != TranscriptionSession.Status.PROCESSING
    return session.status, segments, 1.0 if done else upload_progress(session=session)

"""Speakers after the fact: a finished session's labels revised with every phrase at once (a background
job, speakers/clustering.py), and a user's enrolled voices, learnt from a labelled speaker's phrases in a
kept recording."""
from __future__ import annotations

import threading

from django.dispatch import receiver

from . import services, speakers
from .jobs import JobRun, TooManyJobs, job_start
from .models import Job, Segment, TranscriptionSession, Voice
from .recording import WavReader, local_copy
from .signals import session_finished
from .speakers.clustering import recluster

SAMPLES_PER_MS = 16
MAX_ENROL_PHRASES = 30  # the longest phrases of the speaker: a voice in about 2 s of embedding


class NoVoice(ValueError):
    """What a voice cannot be learnt from (a documented reason for the user)."""


class EnrolmentBusy(NoVoice):
    """Another voice is being learnt in this process: try again in a moment."""


ENROLMENTS_AT_ONCE = 1  # each embeds up to MAX_ENROL_PHRASES phrases (about 1.5 s of a core): one at a time
_enrolling = threading.BoundedSemaphore(ENROLMENTS_AT_ONCE)


def embeddings_of(session: TranscriptionSession, segments: list[Segment]) -> list:
    with local_copy(session.audio.name) as path:
        reader = WavReader(path)
        return [speakers.phrase_embedding(reader.pcm(s.start_ms * SAMPLES_PER_MS, s.end_ms * SAMPLES_PER_MS))
                for s in segments]


def relabel_wanted(session: TranscriptionSession) -> bool:
    return bool(session.audio) and speakers.available() and session.segments.exclude(speaker="").exists()


@receiver(session_finished)
def relabel_after(sender, *, session_id, **kwargs) -> bool:
    """A session (live or an upload) with kept audio and speaker labels ended: queue the revision of its
    labels."""
    session = TranscriptionSession.objects.get(pk=session_id)
    if not relabel_wanted(session):
        return False
    try:
        return job_start(session=session, kind=Job.Kind.SPEAKERS)[1]
    except TooManyJobs:  # its live labels stay
        return False


def relabel_session(job: Job, run: JobRun) -> None:
    session = job.session
    segments = list(session.segments.order_by("index"))
    revised = revised_labels(session, segments)
    services.session_relabel(session=session, labels={s.pk: label for s, label in zip(segments, revised)})


def revised_labels(session: TranscriptionSession, segments: list[Segment]) -> list[str]:
    """Every phrase's label from clustering them all; the owner's named labels are kept first."""
    live = [s.live_speaker or s.speaker for s in segments]
    return recluster(embeddings_of(session, segments), live, [(s.end_ms - s.start_ms) / 1000 for s in segments],
                     prefer=set(session.speaker_names or {}))


def enrol(session: TranscriptionSession, label: str, name: str) -> Voice:
    """Save the voice of `label` in `session` as the owner's voice `name` (replacing one of that name),
    and name the label so."""
    name = " ".join(str(name).split())[:Voice.MAX_NAME_LENGTH]
    if not name:
        raise NoVoice("a voice needs a name")
    if not session.audio:
        raise NoVoice("this session kept no audio to learn the voice from")
    segments = sorted(session.segments.filter(speaker=label), key=lambda s: s.start_ms - s.end_ms)  # longest first
    if not segments:
        raise NoVoice(f"this session has no speaker {label!r}")
    if not _enrolling.acquire(blocking=False):
        raise EnrolmentBusy("another voice is being learnt on this server; try again in a moment")
    try:
        found = [e for e in embeddings_of(session, segments[:MAX_ENROL_PHRASES]) if e is not None]
    finally:
        _enrolling.release()
    if not found:
        raise NoVoice("this speaker's phrases are too short to learn a voice from")
    voice, _ = Voice.objects.update_or_create(owner=session.owner, name=name, defaults={
        "embedding": speakers.voice_of(found).tobytes(), "phrases": len(found)})
    services.session_name_speakers(session=session, names={label: name})
    return voice


def enrolled(owner_id: int) -> list[tuple[str, object]]:
    """(name, embedding) of a user's voices, for a session's labeller."""
    return [(v.name, v.vector()) for v in Voice.objects.filter(owner_id=owner_id)]

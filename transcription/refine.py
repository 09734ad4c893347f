"""Work on a finished session, as background jobs (transcription/jobs.py): the second pass over its
kept recording, and translating it after the fact. Both resume from what an interrupted attempt
stored.
"""
from __future__ import annotations

import logging

from django.conf import settings
from django.dispatch import receiver

from . import services
from .engines import get_engine
from .engines.offline import TimedWord, Window, align_words, decode_windows, phrase, plan_windows
from .jobs import JobRun, TooManyJobs, job_start
from .models import Job, TranscriptionSession
from .recording import WavReader, local_copy
from .signals import session_finished
from .translation import get_translator

logger = logging.getLogger(__name__)


def refine_wanted(engine: str) -> bool:
    """STT_REFINE: "auto" (the default) refines whisper sessions; "1" every session; "0" none."""
    mode = str(settings.STT_REFINE).lower()
    return mode in ("1", "true", "yes", "on") or (mode == "auto" and engine == "whisper")


REFINED_SOURCES = (TranscriptionSession.Source.LIVE, TranscriptionSession.Source.STREAM)


@receiver(session_finished)
def refine_after(sender, *, session_id, **kwargs) -> bool:
    """A live session (a socket's or a pulled stream's) with kept audio ended: queue its second pass (if
    wanted). True if queued. (An upload was decoded as a whole file already.)"""
    session = TranscriptionSession.objects.get(pk=session_id)
    if (session.source not in REFINED_SOURCES or not refine_wanted(session.engine)
            or not session.audio or not session.segments.exists()):
        return False
    try:
        _, started = job_start(session=session, kind=Job.Kind.REFINE)
    except TooManyJobs:
        logger.warning("session %s is not refined: its owner has too many jobs queued", session_id)
        return False
    if started:
        TranscriptionSession.objects.filter(pk=session_id).update(refinement=TranscriptionSession.Refinement.PENDING)
    return started


def refine_session(job: Job, run: JobRun) -> None:
    """The second pass: the whole kept recording decoded in windows of joined speech, batched
    (engines/offline.py), its words aligned to the live phrases' times and
    stored as their refined text, with their times and probabilities. The words of each decoded window are kept in the job's state: an
    attempt after a crash decodes only the windows after them."""
    session = job.session
    model = get_engine("whisper").model_for(session.language)
    with local_copy(session.audio.name) as path:
        reader = WavReader(path)
        windows = [Window.from_json(chunks)
                   for chunks in run.planned(lambda: [w.to_json() for w in plan_windows(reader)])]
        words = [TimedWord.from_json(item) for item in run.state.get("words", [])]

        def stored(number: int, decoded: list[TimedWord]) -> None:
            words.extend(decoded)
            run.save(done=number, state={"words": [w.to_json() for w in words]})

        decode_windows(model, reader, windows, language=session.language, vocabulary=session.vocabulary,
                       start=run.done, on_window=stored)
    segments = list(session.segments.order_by("index"))
    aligned = align_words(words, [(s.start_ms, s.end_ms) for s in segments])
    services.session_refine(session=session, refined={s.pk: phrase(found, language=s.language)
                                                      for s, found in zip(segments, aligned)})


def translate_session(job: Job, run: JobRun) -> None:
    """Each phrase not yet translated into the job's language (an interrupted attempt's are kept)."""
    services.session_translate(session=job.session, target=job.language, translator=get_translator(),
                               progress=run.progress)

"""Writes. Keyword-only, named <entity>_<action>, atomic."""
from __future__ import annotations

import logging
from datetime import timedelta
from typing import Callable

from django.db import transaction
from django.db.models import Max
from django.utils import timezone
from knox.models import AuthToken

from .engines import Result
from .languages import language_tag
from .protocol import SERVER_LOST
from .models import ApiTokenName, GlossaryTerm, Segment, SegmentEdit, ShareLink, TranscriptionSession, Translation
from .recording import audio_name, read_span, recording_publish
from .signals import session_finished

logger = logging.getLogger(__name__)


@transaction.atomic
def session_start(*, owner, language: str, engine: str, translate_to: str = "",
                  vocabulary: list[str] | None = None, source_url: str = "") -> TranscriptionSession:
    source = TranscriptionSession.Source.STREAM if source_url else TranscriptionSession.Source.LIVE
    return TranscriptionSession.objects.create(owner=owner, language=language_tag(language), engine=engine,
                                               translate_to=translate_to,
                                               vocabulary=vocabulary or [], source=source, source_url=source_url,
                                               stream_alive_at=timezone.now() if source_url else None)


@transaction.atomic
def segment_create(*, session_id, index: int, seq: int, result: Result) -> Segment:
    return Segment.objects.create(
        session_id=session_id,
        index=index,
        seq=seq,
        text=result.text,
        original_text=result.text,
        start_ms=result.start_ms,
        end_ms=max(result.end_ms, result.start_ms),
        confidence=result.confidence,
        words=words_json(result.words),
        language=language_tag(result.language),
        doubtful=result.doubtful,
        speaker=result.speaker or "",
    )


def words_json(words) -> list[dict]:
    """Engine words (engines.Word) as a segment stores them."""
    return [{"word": w.word, "start_ms": w.start_ms, "end_ms": w.end_ms, "probability": w.probability} for w in words]


def segment_label(*, segment_id: int, speaker: str) -> int:
    """A final's speaker label that came after the final was stored."""
    return Segment.objects.filter(pk=segment_id).update(speaker=speaker)


@transaction.atomic
def session_finish(*, session_id, status: str, audio_ms: int, audio_kept: bool = False) -> None:
    """A session is over: its status and length, and its recording kept in storage (STORAGES) where
    any worker and any server can read it. Then `session_finished` (the second pass listens)."""
    if audio_kept:
        recording_publish(session_id)
    TranscriptionSession.objects.filter(pk=session_id).update(
        status=status, ended_at=timezone.now(), audio_ms=audio_ms, audio=audio_name(session_id) if audio_kept else ""
    )
    session_finished.send(sender=TranscriptionSession, session_id=session_id, status=status)


def session_stream_started(*, session_id, start_ms: int) -> None:
    """A pulled stream's timestamp at the session's 0 (its first decoded audio)."""
    TranscriptionSession.objects.filter(pk=session_id).update(stream_start_ms=start_ms)


def session_stream_alive(*, session_id) -> None:
    TranscriptionSession.objects.filter(pk=session_id).update(stream_alive_at=timezone.now())


def sessions_end_orphaned_streams(*, stale_seconds: float) -> list:
    """Pulled streams whose process died (killed, its machine lost): no sign of life for
    `stale_seconds`. They end `interrupted` with `server_lost`, keeping every final stored; the
    recording stayed on the dead process's disk. Returns their ids."""
    stale = timezone.now() - timedelta(seconds=stale_seconds)
    orphans = TranscriptionSession.objects.filter(source=TranscriptionSession.Source.STREAM,
                                                  status=TranscriptionSession.Status.ACTIVE, stream_alive_at__lt=stale)
    ended = []
    for session_id in orphans.values_list("pk", flat=True):
        heard = Segment.objects.filter(session_id=session_id).aggregate(last=Max("end_ms"))["last"] or 0
        if orphans.filter(pk=session_id).update(  # (one watchdog wins when several run)
                status=TranscriptionSession.Status.INTERRUPTED, ended_at=timezone.now(), audio_ms=heard,
                failure_code=SERVER_LOST, failure_message="the server pulling this stream stopped; start it again"):
            ended.append(session_id)
    return ended


def session_note_failure(*, session_id, code: str, message: str) -> None:
    """Why a session ended early (a pulled stream that was lost), kept beside its transcript."""
    TranscriptionSession.objects.filter(pk=session_id).update(failure_code=code[:32], failure_message=message[:500])


def session_fail(*, session_id, code: str, message: str) -> None:
    """A session that could not be finished (an upload that could not be transcribed): why, kept."""
    TranscriptionSession.objects.filter(pk=session_id).update(
        status=TranscriptionSession.Status.FAILED, ended_at=timezone.now(), audio="", failure_code=code[:32],
        failure_message=message[:500])


@transaction.atomic
def session_claim_viewer_language(*, session_id, language: str, limit: int) -> bool:
    """A live viewer wants captions in `language`: True if the session already makes them or may
    make one more language (at most `limit` for its viewers; each costs a translation of every
    phrase, on the owner's account)."""
    session = TranscriptionSession.objects.select_for_update().get(pk=session_id)
    if language in session.viewer_languages:
        return True
    if len(session.viewer_languages) >= limit:
        return False
    session.viewer_languages = [*session.viewer_languages, language]
    session.save(update_fields=["viewer_languages"])
    return True


@transaction.atomic
def session_delete(*, session: TranscriptionSession) -> None:
    """Delete the session, its transcript and, once that is committed, its audio file."""
    audio = session.audio
    session.delete()
    if audio:
        transaction.on_commit(lambda: audio.storage.delete(audio.name))


@transaction.atomic
def session_rename(*, session: TranscriptionSession, title: str) -> None:
    session.title = title.strip()[:200]
    session.save(update_fields=["title"])


@transaction.atomic
def translation_create(*, segment_id: int, language: str, text: str, engine: str, seq: int | None = None) -> Translation:
    translation, _ = Translation.objects.update_or_create(
        segment_id=segment_id, language=language, defaults={"text": text, "engine": engine, "seq": seq}
    )
    return translation


def session_translate(*, session: TranscriptionSession, target: str, translator,
                      progress: Callable[[int, int], None] = lambda done, total: None) -> int:
    """Translate a finished session's phrases into `target` (those not yet translated); returns how
    many. Each translation is stored as it is made; `progress(done, total)` follows every phrase."""
    segments = list(session.segments.order_by("index"))
    made = 0
    context: list[str] = []
    progress(0, len(segments))
    for number, segment in enumerate(segments, start=1):
        if not segment.translations.filter(language=target).exists():
            audio = read_span(session, segment.start_ms, segment.end_ms)
            text = "".join(
                translator.translate(segment.text, source=segment.language or session.language, target=target,
                                     audio=audio, context=context[-3:])
            ).strip()
            translation_create(segment_id=segment.pk, language=target, text=text, engine=translator.name)
            made += 1
        context.append(segment.text)
        progress(number, len(segments))
    return made


@transaction.atomic
def share_create(*, session: TranscriptionSession, expires_in=None) -> ShareLink:
    """A new read-only live link; `expires_in` a timedelta, or None for one that lasts until revoked."""
    expires_at = timezone.now() + expires_in if expires_in else None
    return ShareLink.objects.create(session=session, expires_at=expires_at)


def share_revoke(*, session: TranscriptionSession, share_id: int) -> bool:
    """Revoke a link (from now on it opens nothing); False if it was not an active link of `session`."""
    updated = ShareLink.objects.filter(pk=share_id, session=session, revoked_at__isnull=True).update(
        revoked_at=timezone.now())
    return bool(updated)


@transaction.atomic
def api_token_create(*, user, expires_in=None, name: str = "") -> str:
    """A new API token for `user` (None: no expiry), with an optional name. Returned once; only its digest
    is stored."""
    row, token = AuthToken.objects.create(user, expiry=expires_in)
    name = " ".join(name.split())[:ApiTokenName.MAX_LENGTH]
    if name:
        ApiTokenName.objects.create(token=row, name=name)
    return token


def api_token_revoke(*, user, digest: str) -> bool:
    deleted, _ = AuthToken.objects.filter(user=user, digest=digest).delete()
    return bool(deleted)


@transaction.atomic
def glossary_replace(*, user, terms: list[tuple[str, str]]) -> int:
    """The user's glossary becomes `terms` ((term, language) pairs; language '' for all); returns the count."""
    GlossaryTerm.objects.filter(owner=user).delete()
    GlossaryTerm.objects.bulk_create(GlossaryTerm(owner=user, term=term, language=language) for term, language in terms)
    return len(terms)


MAX_SEGMENT_CHARS = 5000


@transaction.atomic
def segment_correct(*, segment: Segment, text: str, editor) -> Segment:
    """The owner's correction: it becomes the segment's text (exports, search, viewers) and wins
    over the second pass; the text it replaces is kept in the segment's history."""
    text = " ".join(text.split())
    if not text or len(text) > MAX_SEGMENT_CHARS:
        raise ValueError(f"a phrase's text must have 1-{MAX_SEGMENT_CHARS} characters")
    if text != segment.text:
        SegmentEdit.objects.create(segment=segment, text_before=segment.text, text_after=text, editor=editor)
        if segment.live_words is None:
            segment.live_words = segment.words
        segment.words = words_corrected(segment.words, text, start_ms=segment.start_ms, end_ms=segment.end_ms)
        segment.text = text
    segment.corrected = True
    segment.save(update_fields=["text", "corrected", "words", "live_words"])
    return segment


def words_corrected(words: list[dict], text: str, *, start_ms: int, end_ms: int) -> list[dict]:
    """The words of a corrected text: a word the owner kept keeps its times and probability; words
    they wrote share the time of the words they replaced (or of the gap they were put in), with no
    probability (a person wrote them). So `words` still spell `text`, and captions still cut at words."""
    import difflib

    old = [w for w in words or [] if str(w.get("word", "")).strip()]
    new = text.split()
    out: list[dict] = []
    matcher = difflib.SequenceMatcher(a=[w["word"].strip() for w in old], b=new, autojunk=False)
    for op, a1, a2, b1, b2 in matcher.get_opcodes():
        if op == "equal":
            out += [dict(w) for w in old[a1:a2]]
            continue
        if b2 == b1:
            continue
        begin = old[a1]["start_ms"] if a2 > a1 else (out[-1]["end_ms"] if out else start_ms)
        finish = old[a2 - 1]["end_ms"] if a2 > a1 else (old[a1]["start_ms"] if a1 < len(old) else end_ms)
        finish = max(finish, begin)
        step = (finish - begin) / (b2 - b1)
        out += [{"word": word, "start_ms": round(begin + i * step), "end_ms": round(begin + (i + 1) * step),
                 "probability": None} for i, word in enumerate(new[b1:b2])]
    return out


@transaction.atomic
def session_refine(*, session: TranscriptionSession, refined: dict[int, Result]) -> int:
    """Store the second pass: each segment's refined text, which becomes its text, with its words
    (times and probabilities) and confidence, unless the owner corrected it (a correction always wins)
    or the pass heard nothing there. The live words are kept in `live_words`. Returns how many changed."""
    changed = 0
    for segment in session.segments.select_for_update():
        result = refined.get(segment.pk)
        segment.refined_text = text = result.text if result is not None else ""
        if text and not segment.corrected:
            changed += text != segment.text
            if segment.live_words is None:
                segment.live_words = segment.words
            segment.text, segment.words, segment.confidence = text, words_json(result.words), result.confidence
        segment.save(update_fields=["refined_text", "text", "words", "live_words", "confidence"])
    TranscriptionSession.objects.filter(pk=session.pk).update(refinement=TranscriptionSession.Refinement.DONE)
    return changed


SPEAKER_NAME_CHARS = 40


@transaction.atomic
def session_voice_named(*, session_id, label: str, name: str) -> dict[str, str]:
    """A live label recognised as one of the owner's enrolled voices; a name the owner gave wins."""
    session = TranscriptionSession.objects.select_for_update().get(pk=session_id)
    names = dict(session.speaker_names or {})
    if label not in names:
        names[label] = name
        session.speaker_names = names
        session.save(update_fields=["speaker_names"])
    return names


@transaction.atomic
def session_relabel(*, session: TranscriptionSession, labels: dict[int, str]) -> int:
    """Speaker labels revised after the session (segment id -> label); each segment's live label is kept
    in `live_speaker` the first time. Names follow their labels. Returns the segments changed."""
    changed = 0
    for segment in session.segments.filter(pk__in=labels).select_for_update():
        label = labels[segment.pk]
        if label == segment.speaker:
            continue
        segment.live_speaker = segment.live_speaker or segment.speaker
        segment.speaker = label
        segment.save(update_fields=["speaker", "live_speaker"])
        changed += 1
    still = set(session.segments.exclude(speaker="").values_list("speaker", flat=True))
    names = {label: name for label, name in (session.speaker_names or {}).items() if label in still}
    if names != (session.speaker_names or {}):
        session.speaker_names = names
        session.save(update_fields=["speaker_names"])
    return changed


@transaction.atomic
def session_name_speakers(*, session: TranscriptionSession, names: dict[str, str]) -> dict[str, str]:
    """The owner names speaker labels ("S1" -> "민수"); an empty name gives the label back. Only labels
    the session has can be named. Returns every name now set."""
    labels = set(session.segments.exclude(speaker="").values_list("speaker", flat=True))
    current = dict(session.speaker_names or {})
    for label, name in names.items():
        if label not in labels:
            raise ValueError(f"this session has no speaker {label!r}")
        name = " ".join(str(name).split())[:SPEAKER_NAME_CHARS]
        if name and name != label:
            current[label] = name
        else:
            current.pop(label, None)
    session.speaker_names = current
    session.save(update_fields=["speaker_names"])
    return current

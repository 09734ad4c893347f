"""Uploaded recordings: a file becomes a session like a live one, transcribed in the background.

`accept` runs on the request: it checks what can be checked at once (size, language, the user's
limit, that PyAV finds an audio track, its length), stores the file and queues a `transcribe` job;
a refused upload leaves nothing behind. The job (`transcribe_upload`) decodes the file to 16 kHz
mono, keeps it as the session's audio, and recognises it:
- whisper: the whole-file decode of the second pass (engines/offline.py: faster-whisper's batched
  pipeline on windows of joined speech), at background priority on the decode scheduler, so a live
  session's finals go first; each window's words become phrases at their pauses;
- any other engine (google, openai): the audio streamed through the engine's own streaming
  recognizer as fast as it takes it.
Each phrase is stored as it is made, with the job's progress; the live page's viewer socket follows
them in the database (realtime/consumers.py), from whichever process.
"""
from __future__ import annotations

import dataclasses
import logging
import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import close_old_connections, transaction

from .. import admission, protocol, services, speakers
from ..audio import SAMPLE_RATE
from ..engines import Result, StreamConfig, get_engine
from ..engines.offline import Window, decode_windows, phrase, plan_windows
from ..languages import language_tag
from ..jobs import JobRun, JobTakenOver, TooManyJobs, job_start
from ..models import Job, TranscriptionSession
from ..realtime.registry import sessions
from ..recording import WavReader, WavRecorder, audio_name, local_copy, local_target, store
from ..speakers import SpeakerLabeller
from ..voices import enrolled
from .decoding import DecodeError, pcm16_chunks

logger = logging.getLogger(__name__)

NOT_AUDIO = "not_audio"
EMPTY = "empty"
TOO_LARGE = "too_large"
TOO_LONG = "too_long"
REFUSED_WHEN_DECODED = (NOT_AUDIO, TOO_LONG, EMPTY)  # what decoding the whole file may still find
PHRASE_GAP_MS = 800  # a pause this long between words starts a new phrase
PHRASE_MAX_MS = 12_000  # a phrase longer than this ends at its next sentence end, or here
STREAM_CHUNK = 3200  # 100 ms of PCM16, what a live client sends


class UploadError(protocol.ProtocolError):
    """A refused upload: a documented `code`, a message for the user (HTTP 400), and the form field
    it is about (`param`, as OpenAI's errors name it)."""

    def __init__(self, code: str, message: str, *, param: str = "file") -> None:
        super().__init__(code, message)
        self.param = param


@dataclass(frozen=True)
class UploadFields:
    """What comes with an upload's file, checked as the socket's `start` checks its fields."""

    language: str
    translate_to: str = ""
    vocabulary: tuple[str, ...] = ()


def upload_fields(*, language: str, translate_to: str = "", vocabulary: str = "") -> UploadFields:
    """The form's fields (`vocabulary` comma-separated terms, OpenAI's `prompt`), or UploadError
    `bad_request` naming the field: the same limits as a `start` (docs/protocol.md) on every route."""
    language, translate_to = (language or "").strip(), (translate_to or "").strip()
    if not 2 <= len(language) <= 16:
        raise UploadError(protocol.BAD_REQUEST, "'language' must be a language code such as 'ko-KR', or 'auto'",
                          param="language")
    if translate_to and not 2 <= len(translate_to) <= 16:
        raise UploadError(protocol.BAD_REQUEST, "'translate_to' must be a language code such as 'en'",
                          param="translate_to")
    terms = [term.strip() for term in (vocabulary or "").split(",") if term.strip()]
    try:
        return UploadFields(language, translate_to, protocol.parse_vocabulary(terms))
    except protocol.ProtocolError as exc:
        raise UploadError(protocol.BAD_REQUEST, f"{exc.message} (comma-separated)", param="vocabulary") from exc


@dataclass(frozen=True)
class Probe:
    seconds: float | None  # None when the container does not say


def probe(path: Path) -> Probe:
    """What PyAV finds in the file: an audio track and its length. Raises UploadError."""
    import av

    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            if not container.streams.audio:
                raise UploadError(NOT_AUDIO, "the file has no audio track")
            stream = container.streams.audio[0]
            if container.duration:
                return Probe(container.duration / 1_000_000)
            if stream.duration and stream.time_base:
                return Probe(float(stream.duration * stream.time_base))
            return Probe(None)
    except UploadError:
        raise
    except Exception as exc:  # av.error.InvalidDataError and its kin: not something PyAV reads
        raise UploadError(NOT_AUDIO, "the file is not audio that can be decoded (wav, mp3, m4a, ogg, "
                                     "webm, flac or a video's audio track)") from exc


def check_request(*, user, language: str, translate_to: str = "", size: int) -> None:
    """The checks that need no file: its size, then the rules of every session (admission.py), the
    user's running sessions counted as a live start counts them."""
    if size <= 0:
        raise UploadError(EMPTY, "the file is empty")
    if size > settings.STT_MAX_UPLOAD_MB * 1024 * 1024:
        raise UploadError(TOO_LARGE, f"the file is larger than {settings.STT_MAX_UPLOAD_MB} MB")
    try:
        admission.check_language(language=language, translate_to=translate_to)
        admission.check_per_user(running=sessions.count(owner_id=user.pk) + admission.uploads_processing(user=user))
    except protocol.ProtocolError as exc:
        raise UploadError(exc.code, exc.message, param=FIELD_OF.get(exc.code, "file")) from None


FIELD_OF = {protocol.UNSUPPORTED_LANGUAGE: "language", protocol.TRANSLATION_UNSUPPORTED: "translate_to"}


def accept_file(*, user, file, fields: UploadFields) -> TranscriptionSession:
    """`accept` for a Django UploadedFile (in memory or a temporary file)."""
    if hasattr(file, "temporary_file_path"):
        return accept(user=user, path=Path(file.temporary_file_path()), filename=file.name or "upload",
                      size=file.size or 0, fields=fields)
    with tempfile.NamedTemporaryFile(prefix="stt-upload-") as copy:  # (a small file, held in memory)
        for chunk in file.chunks():
            copy.write(chunk)
        copy.flush()
        return accept(user=user, path=Path(copy.name), filename=file.name or "upload", size=file.size or 0,
                      fields=fields)


def accept(*, user, path: Path, filename: str, size: int, fields: UploadFields) -> TranscriptionSession:
    """Check an uploaded file (at `path`, a temporary copy) and queue its transcription. A length
    its header declares is checked here; the real one is counted as it is decoded (the job)."""
    language, translate_to = fields.language, fields.translate_to
    check_request(user=user, language=language, translate_to=translate_to, size=size)
    found = probe(path)
    limit = settings.STT_MAX_UPLOAD_SECONDS
    if found.seconds is not None and found.seconds > limit:
        raise UploadError(TOO_LONG, f"the recording is longer than {limit / 3600:g} h")
    vocabulary = admission.vocabulary_for(user=user, language=language, terms=fields.vocabulary)
    with transaction.atomic():
        session = TranscriptionSession.objects.create(
            owner=user, language=language_tag(language), engine=get_engine().name, translate_to=translate_to,
            vocabulary=vocabulary, status=TranscriptionSession.Status.PROCESSING,
            source=TranscriptionSession.Source.UPLOAD, filename=filename[:255],
            title=Path(filename).stem[:200])
        try:  # into the storage, where the worker that takes the job reads it (on any machine)
            store(path, upload_name(session))
        except BaseException:
            default_storage.delete(upload_name(session))  # a refused upload leaves nothing behind
            raise
        job_start(session=session, kind=Job.Kind.TRANSCRIBE)  # (queued once this commits)
    return session


def upload_name(session) -> str:
    """The file as it was uploaded, in the storage, until the job has decoded it."""
    return f"uploads/{session.pk}"


def decode_to_wav(source: Path, kept: Path) -> int:
    """The file's first audio track, decoded as a stream into the session's kept WAV (16 kHz mono):
    its length counted on the decoded samples (too_long past STT_MAX_UPLOAD_SECONDS, whatever the
    header said). Memory stays that of one packet. Returns the number of samples."""
    recorder = WavRecorder.open(kept)
    if recorder is None:
        raise OSError(f"the recording could not be written to {kept}")
    frames = 0
    try:
        for chunk in pcm16_chunks(source, max_seconds=settings.STT_MAX_UPLOAD_SECONDS):
            recorder.write(chunk)
            frames += len(chunk) // 2
    except DecodeError as exc:
        raise UploadError(exc.code, str(exc)) from exc
    finally:
        recorder.close()
    return frames


# ---- the job ----

def transcribe_upload(job: Job, run: JobRun) -> None:
    """Decode the upload into the session's kept WAV (stored), then recognise it, storing each part's
    phrases with the job's progress in one transaction: an attempt after a crash decodes no part
    whose phrases are stored, and stores none twice."""
    session = job.session
    try:
        if "frames" not in run.state:
            with local_copy(upload_name(session)) as source, local_target(audio_name(session.pk)) as kept:
                frames = decode_to_wav(source, kept)
            if frames < SAMPLE_RATE // 10:
                raise UploadError(EMPTY, "the file holds no audio")
            run.save(state={"frames": frames})
            default_storage.delete(upload_name(session))
        with local_copy(audio_name(session.pk)) as kept:
            recording = WavReader(kept)
            recognise(session, recording, run)
    except JobTakenOver:
        raise
    except Exception:  # failed for good (jobs.fail says why): nothing of the file is kept
        default_storage.delete(upload_name(session))
        default_storage.delete(audio_name(session.pk))
        raise
    services.session_finish(session_id=session.pk, status=TranscriptionSession.Status.ENDED,
                            audio_ms=run.state["frames"] * 1000 // SAMPLE_RATE, audio_kept=True)
    if session.translate_to:  # translated as a session page's "Translate" does, in the background
        try:
            job_start(session=session, kind=Job.Kind.TRANSLATE, language=session.translate_to)
        except TooManyJobs:  # (the page's Translate does it later)
            logger.warning("upload %s is not translated: its owner has too many jobs queued", session.pk)


class PhraseWriter:
    """Stores each phrase as the session's next segment, with its speaker (as a live session labels
    its finals: STT_SPEAKERS; a speaker whose voice the owner enrolled is named); the n-th phrase has
    seq n (what viewers follow). An attempt that
    resumes a job goes on after the phrases stored before."""

    def __init__(self, session, recording: WavReader) -> None:
        self.session = session
        self.index = session.segments.count()
        self.recording = recording
        self.labeller = None
        if settings.STT_SPEAKERS and speakers.available():  # the owner's enrolled voices name speakers, as live
            self.labeller = SpeakerLabeller(enrolled(session.owner_id), on_named=self.named)

    def named(self, label: str, name: str) -> None:
        services.session_voice_named(session_id=self.session.pk, label=label, name=name)

    def write(self, result: Result) -> None:
        if self.labeller is not None:
            pcm = self.recording.pcm(result.start_ms * SAMPLE_RATE // 1000, result.end_ms * SAMPLE_RATE // 1000)
            result = dataclasses.replace(result, speaker=self.labeller.label(pcm))
        services.segment_create(session_id=self.session.pk, index=self.index, seq=self.index + 1, result=result)
        self.index += 1


def recognise(session, recording: WavReader, run: JobRun) -> None:
    """Each phrase of the recording stored as soon as it is recognised, from where `run` resumes."""
    writer = PhraseWriter(session, recording)
    engine = get_engine(session.engine)
    if engine.name != "whisper":
        recognise_streamed(engine, session, recording, run, writer)
        return
    windows = [Window.from_json(chunks)
               for chunks in run.planned(lambda: [w.to_json() for w in plan_windows(recording)])]

    def store(number: int, words) -> None:
        try:
            with transaction.atomic():  # the window's phrases and the progress past it, or neither
                for found in phrases(words, session.language):
                    writer.write(found)
                run.save(done=number)
        finally:
            close_old_connections()

    # Windows are labelled and stored by a thread of their own while the next batch decodes (in
    # order; a failed store stops the decoding at the next window): labels cost ~4 s of a 7-minute
    # file (bench/upload.py --parts compare).
    with ThreadPoolExecutor(1, thread_name_prefix="stt-upload-store") as storing:
        pending: list[Future] = []

        def stored(number: int, words) -> None:
            for future in [f for f in pending if f.done()]:
                future.result()  # (raises what a store raised)
                pending.remove(future)
            pending.append(storing.submit(store, number, words))

        decode_windows(engine.model_for(session.language), recording, windows, language=session.language,
                       vocabulary=session.vocabulary, start=run.done, on_window=stored)
        for future in pending:
            future.result()


def phrases(words, language: str) -> list[Result]:
    """Timed words as phrases: cut at pauses, and at a sentence's end once a phrase is long."""
    out, current = [], []
    for word in words:
        if current and (word.start_ms - current[-1].end_ms >= PHRASE_GAP_MS
                        or word.start_ms - current[0].start_ms >= PHRASE_MAX_MS):
            out.append(current)
            current = []
        current.append(word)
        if current[-1].end_ms - current[0].start_ms >= PHRASE_MAX_MS / 2 and word.text.rstrip()[-1:] in ".?!。？！":
            out.append(current)
            current = []
    if current:
        out.append(current)
    return [phrase(p, language=language) for p in out if "".join(w.text for w in p).strip()]


def recognise_streamed(engine, session, recording: WavReader, run: JobRun, writer: PhraseWriter) -> None:
    """Any engine but whisper: the recording streamed through its streaming recognizer as fast as it
    takes it, from the end of the last phrase stored (an attempt after a crash)."""
    samples = STREAM_CHUNK // 2
    last = session.segments.order_by("-index").first()
    offset_ms = last.end_ms if last is not None else 0
    first = offset_ms * SAMPLE_RATE // 1000
    total = max(1, -(-recording.frames // samples))
    sent = [first // samples]

    def chunks():
        for start in range(first, recording.frames, samples):
            yield recording.pcm(start, start + samples)
            sent[0] += 1
            if sent[0] % 50 == 0:
                run.progress(sent[0], total)

    config = StreamConfig(language=session.language, interim_results=False, vocabulary=tuple(session.vocabulary))
    for result in engine.stream(chunks(), config):
        if result.is_final and result.text.strip():
            result = dataclasses.replace(result, start_ms=result.start_ms + offset_ms, end_ms=result.end_ms + offset_ms,
                                         words=tuple(dataclasses.replace(w, start_ms=w.start_ms + offset_ms,
                                                                         end_ms=w.end_ms + offset_ms)
                                                     for w in result.words or ()))
            with transaction.atomic():
                writer.write(result)
                run.save(done=sent[0], total=total)
    run.progress(total, total)

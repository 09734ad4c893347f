import secrets
import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone


class TranscriptionSession(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        PROCESSING = "processing", "Processing (an uploaded recording)"
        ENDED = "ended", "Ended"
        INTERRUPTED = "interrupted", "Interrupted (client disconnected, or the stream pulled was lost)"
        FAILED = "failed", "Failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="transcription_sessions")
    title = models.CharField(max_length=200, blank=True)
    language = models.CharField(max_length=16)
    translate_to = models.CharField(max_length=16, blank=True, help_text="Live translation target, if any")
    engine = models.CharField(max_length=100)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    started_at = models.DateTimeField(auto_now_add=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    audio_ms = models.PositiveBigIntegerField(default=0, help_text="Audio received, in milliseconds")
    audio = models.FileField(upload_to="audio/", blank=True, help_text="The session's audio (STT_KEEP_AUDIO)")
    vocabulary = models.JSONField(default=list, blank=True, help_text="Terms the recognizer was given")

    class Source(models.TextChoices):
        LIVE = "live", "Live (microphone or socket)"
        UPLOAD = "upload", "Uploaded recording"
        STREAM = "stream", "Stream pulled by URL"

    source = models.CharField(max_length=16, choices=Source.choices, default=Source.LIVE)
    speaker_names = models.JSONField(default=dict, blank=True,
                                     help_text='Names the owner gave the speaker labels, e.g. {"S1": "민수"}')
    filename = models.CharField(max_length=255, blank=True, help_text="The uploaded file's name")
    source_url = models.CharField(max_length=2000, blank=True, help_text="The stream pulled (password removed)")
    stream_alive_at = models.DateTimeField(null=True, blank=True, help_text="A pulled stream's last sign of life "
                                           "from the process pulling it (STT_STREAM_STALE_SECONDS)")
    stream_start_ms = models.BigIntegerField(null=True, blank=True, help_text="The pulled stream's timestamp at the "
                                             "session's 0 (its HLS captions map to it)")

    class Refinement(models.TextChoices):
        OFF = "off", "Off"
        PENDING = "pending", "Pending"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    refinement = models.CharField(max_length=16, choices=Refinement.choices, default=Refinement.OFF,
                                  help_text="The second pass over the kept audio (STT_REFINE)")
    failure_code = models.CharField(max_length=32, blank=True, help_text="Why it failed: a documented code")
    failure_message = models.CharField(max_length=500, blank=True, help_text="Why it failed, for people")
    viewer_languages = models.JSONField(default=list, blank=True, help_text="Languages live viewers asked for "
                                        "captions in (STT_MAX_VIEWER_LANGUAGES at most)")

    class Meta:
        ordering = ["-started_at"]
        indexes = [
            models.Index(fields=["owner", "-started_at"]),
            models.Index(fields=["status"]),
            models.Index(fields=["language"]),
        ]

    def __str__(self) -> str:
        return f"{self.owner} {self.started_at:%Y-%m-%d %H:%M} ({self.language})"

    @property
    def duration_seconds(self) -> float | None:
        if self.audio_ms:
            return self.audio_ms / 1000
        if self.ended_at:
            return (self.ended_at - self.started_at).total_seconds()
        return None


class Segment(models.Model):
    """One final phrase. `text` is the current text, what exports and search use: the owner's
    correction if there is one, else the second pass's, else the live final (`original_text`).
    `words` always spell `text`; the live final's words are kept in `live_words` once replaced."""

    session = models.ForeignKey(TranscriptionSession, on_delete=models.CASCADE, related_name="segments")
    index = models.PositiveIntegerField()
    text = models.TextField()
    original_text = models.TextField(blank=True, help_text="The live final, as it was first sent")
    refined_text = models.TextField(blank=True, help_text="The second pass's text for this phrase's time")
    corrected = models.BooleanField(default=False, help_text="Edited by its owner: the second pass leaves it")
    start_ms = models.PositiveBigIntegerField()
    end_ms = models.PositiveBigIntegerField()
    confidence = models.FloatField(null=True, blank=True)
    words = models.JSONField(default=list, blank=True, help_text="The timed words of `text`: the live final's, the "
                             "second pass's once it replaced the text, re-timed around an owner's correction")
    live_words = models.JSONField(null=True, blank=True, help_text="The live final's words, kept once `words` were "
                                  "replaced (null: `words` are still the live ones)")
    language = models.CharField(max_length=16, blank=True)
    doubtful = models.BooleanField(default=False, help_text="Not in the session's language, even decoded again: "
                                   "the recogniser may have translated it")
    speaker = models.CharField(max_length=16, blank=True, help_text="Speaker label (S1, S2, ...), stable in a session")
    live_speaker = models.CharField(max_length=16, blank=True, help_text="The label given live, kept when the "
                                    "labels were revised after the session (empty: never revised)")
    seq = models.PositiveIntegerField(null=True, blank=True, help_text="Sequence number of its 'final' event")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["session", "index"]
        constraints = [models.UniqueConstraint(fields=["session", "index"], name="segment_unique_index")]

    def __str__(self) -> str:
        return f"#{self.index} {self.text[:60]}"

    @property
    def speaker_name(self) -> str:
        """The speaker as the owner named them, else the label ("" without one)."""
        return (self.session.speaker_names or {}).get(self.speaker, self.speaker) if self.speaker else ""


class SegmentEdit(models.Model):
    """One correction of a segment: the history the admin shows."""

    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="edits")
    text_before = models.TextField()
    text_after = models.TextField()
    editor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["segment", "created_at"]

    def __str__(self) -> str:
        return f"{self.text_before[:30]} → {self.text_after[:30]}"


class GlossaryTerm(models.Model):
    """A name or word the recognizer should expect in one user's sessions."""

    MAX_LENGTH = 50

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="glossary")
    term = models.CharField(max_length=MAX_LENGTH)
    language = models.CharField(max_length=16, blank=True, help_text="Empty: every language; else e.g. 'ko'")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["language", "term"]
        constraints = [models.UniqueConstraint(fields=["owner", "term", "language"], name="glossary_unique_term")]

    def __str__(self) -> str:
        return f"{self.language}: {self.term}" if self.language else self.term


class Translation(models.Model):
    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="translations")
    language = models.CharField(max_length=16)
    text = models.TextField()
    engine = models.CharField(max_length=100)
    seq = models.PositiveIntegerField(null=True, blank=True, help_text="Sequence number of its 'done' event")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["segment", "language"]
        constraints = [models.UniqueConstraint(fields=["segment", "language"], name="translation_unique_language")]

    def __str__(self) -> str:
        return f"{self.language}: {self.text[:60]}"


def new_share_token() -> str:
    return secrets.token_urlsafe(24)  # 192 bits: unguessable


class ShareLink(models.Model):
    """A read-only link to a session's live captions, revocable, optionally expiring."""

    session = models.ForeignKey(TranscriptionSession, on_delete=models.CASCADE, related_name="share_links")
    token = models.CharField(max_length=64, unique=True, default=new_share_token, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Empty: until revoked")
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"share of {self.session_id} ({self.token[:6]}…)"

    def is_active(self, now=None) -> bool:
        now = now or timezone.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


class Job(models.Model):
    """Background work on a session (an upload's transcription, the second pass, translating it after
    the fact), run by the task queue (transcription/jobs.py), with its progress: pages show it, a
    second request for the same work while it runs does not start it again, and a job whose worker
    died is resumed from its `plan`, `done` and `state`."""

    class Kind(models.TextChoices):
        TRANSLATE = "translate", "Translate"
        REFINE = "refine", "Second pass"
        TRANSCRIBE = "transcribe", "Transcribe an upload"
        SPEAKERS = "speakers", "Revise speaker labels"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    ACTIVE = (Status.QUEUED, Status.RUNNING)

    session = models.ForeignKey(TranscriptionSession, on_delete=models.CASCADE, related_name="jobs")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    language = models.CharField(max_length=16, blank=True, help_text="Target language of a translation")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    done = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    attempts = models.PositiveSmallIntegerField(default=0, help_text="Attempts started (a worker that died counts)")
    worker = models.CharField(max_length=100, blank=True, help_text="host:pid of the worker running it")
    heartbeat_at = models.DateTimeField(null=True, blank=True, help_text="Its worker's last sign of life")
    task_id = models.CharField(max_length=64, blank=True, help_text="The task queue's id of its last attempt")
    plan = models.JSONField(null=True, blank=True, help_text="The work's parts (speech windows), fixed once")
    state = models.JSONField(default=dict, blank=True, help_text="What the next attempt resumes from")

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(
            fields=["session", "kind", "language"], condition=models.Q(status__in=["queued", "running"]),
            name="job_one_active_per_work",
        )]
        indexes = [models.Index(fields=["status"]), models.Index(fields=["status", "heartbeat_at"])]

    def __str__(self) -> str:
        return f"{self.kind} {self.language} of {self.session_id} ({self.status})"

    @property
    def progress(self) -> float:
        if self.status == self.Status.DONE:
            return 1.0
        return self.done / self.total if self.total else 0.0

    @property
    def active(self) -> bool:
        return self.status in self.ACTIVE


class Voice(models.Model):
    """A voice a user enrolled from a labelled speaker ("this is 민수"): in that user's later sessions a
    matching speaker is named live. Only the embedding is kept (a mean of CAM++ phrase embeddings),
    never audio; deleting the row deletes all there is of it. Never shared between users."""

    MAX_NAME_LENGTH = 50

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="voices")
    name = models.CharField(max_length=MAX_NAME_LENGTH)
    embedding = models.BinaryField(help_text="float32 speaker embedding")
    phrases = models.PositiveIntegerField(default=0, help_text="Phrases it was learnt from")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["owner", "name"], name="voice_unique_name")]

    def __str__(self) -> str:
        return self.name

    def vector(self):
        import numpy as np
        return np.frombuffer(bytes(self.embedding), dtype=np.float32)


class ApiTokenName(models.Model):
    """The name a user gave an API token ("laptop", "OBS box"), beside django-rest-knox's token row, which
    has none; deleted with it."""

    MAX_LENGTH = 50

    token = models.OneToOneField("knox.AuthToken", on_delete=models.CASCADE, primary_key=True, related_name="label")
    name = models.CharField(max_length=MAX_LENGTH)

    def __str__(self) -> str:
        return self.name

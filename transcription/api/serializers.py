from rest_framework import serializers

from ..models import Job, Segment, TranscriptionSession, Translation, Voice


class TranslationSerializer(serializers.ModelSerializer):
    class Meta:
        model = Translation
        fields = ["language", "text", "engine"]


class SegmentSerializer(serializers.ModelSerializer):
    translations = TranslationSerializer(many=True, read_only=True)
    text = serializers.CharField(read_only=True, help_text="The current text: a correction, else the second "
                                                           "pass's, else the live final")
    original_text = serializers.CharField(read_only=True, help_text="The live final as it was first sent")
    speaker_name = serializers.CharField(read_only=True, help_text="The speaker's name, else the label")
    words = serializers.JSONField(read_only=True, help_text="The timed words of `text` (word, start_ms, end_ms, "
                                  "probability): they always spell it")
    live_words = serializers.JSONField(read_only=True, help_text="The live final's words, once `words` were "
                                       "replaced by the second pass or a correction; else null")

    class Meta:
        model = Segment
        fields = ["id", "index", "speaker", "live_speaker", "speaker_name", "text", "original_text", "refined_text",
                  "corrected",
                  "start_ms", "end_ms",
                  "confidence", "doubtful", "language", "words", "live_words", "translations"]


class CorrectionSerializer(serializers.Serializer):
    text = serializers.CharField(max_length=5000, help_text="The phrase's corrected text")


class SessionSerializer(serializers.ModelSerializer):
    segment_count = serializers.IntegerField(read_only=True)
    url = serializers.HyperlinkedIdentityField(view_name="api:session-detail")

    class Meta:
        model = TranscriptionSession
        fields = ["id", "url", "title", "language", "translate_to", "engine", "status", "started_at", "ended_at",
                  "audio_ms", "segment_count"]


class JobSerializer(serializers.ModelSerializer):
    progress = serializers.FloatField(read_only=True, help_text="0-1")

    class Meta:
        model = Job
        fields = ["id", "kind", "language", "status", "progress", "done", "total", "attempts", "error", "created_at"]


class UploadSerializer(serializers.Serializer):
    """POST /api/sessions/: a recording to transcribe in the background."""

    file = serializers.FileField(help_text="Any format PyAV decodes: wav, mp3, m4a, ogg/opus, webm, flac, video")
    language = serializers.CharField(max_length=16, help_text="BCP-47, e.g. 'ko-KR', or 'auto'")
    translate_to = serializers.CharField(max_length=16, required=False, allow_blank=True, default="")
    vocabulary = serializers.CharField(max_length=5000, required=False, allow_blank=True, default="",
                                       help_text="Comma-separated names and terms to expect")


class StreamSerializer(serializers.Serializer):
    """POST /api/sessions/ (JSON): a live stream to pull by URL and caption as a live session."""

    source_url = serializers.CharField(max_length=2000, help_text="HLS (.m3u8), HTTP audio (Icecast), rtmp://, "
                                       "rtsp:// or srt://, on a host in STT_STREAM_ALLOWED_HOSTS")
    language = serializers.CharField(max_length=16, required=False, help_text="BCP-47, e.g. 'ko-KR', or 'auto'")
    translate_to = serializers.CharField(max_length=16, required=False, allow_blank=True, default="")
    vocabulary = serializers.ListField(child=serializers.CharField(max_length=50), required=False, default=list,
                                       max_length=100, help_text="Names and terms to expect")
    speakers = serializers.BooleanField(required=False, default=True, help_text="Speaker labels on finals")


class SessionDetailSerializer(SessionSerializer):
    refinement = serializers.CharField(read_only=True, help_text="The second pass: pending, done, off or failed")
    progress = serializers.SerializerMethodField(help_text="An upload's transcription, 0-1 (null for a live session)")
    failure = serializers.SerializerMethodField(help_text='Why a failed session failed: {"code", "message"}, else null')

    def get_failure(self, session) -> dict | None:
        if not session.failure_code:
            return None
        return {"code": session.failure_code, "message": session.failure_message}

    def get_progress(self, session) -> float | None:
        if session.source != TranscriptionSession.Source.UPLOAD:
            return None
        if session.status != TranscriptionSession.Status.PROCESSING:
            return 1.0
        from ..selectors import upload_progress

        return upload_progress(session=session)
    segments = SegmentSerializer(many=True, read_only=True)
    jobs = JobSerializer(many=True, read_only=True, help_text="Background work on this session, newest first")

    class Meta(SessionSerializer.Meta):
        fields = SessionSerializer.Meta.fields + ["source", "source_url", "filename", "progress", "failure", "speaker_names",
                                                  "vocabulary",
                                                  "refinement",
                                                  "segments", "jobs"]


class SessionFilterSerializer(serializers.Serializer):
    """Query parameters of the session list (validated: a bad date is a 400, not an empty list)."""

    language = serializers.CharField(required=False, max_length=16)
    since = serializers.DateField(required=False, help_text="Started on or after this date (YYYY-MM-DD)")
    until = serializers.DateField(required=False, help_text="Started on or before this date (YYYY-MM-DD)")
    q = serializers.CharField(required=False, max_length=200, help_text="Words in the title or transcript")


class VoiceSerializer(serializers.ModelSerializer):
    class Meta:
        model = Voice
        fields = ["id", "name", "phrases", "created_at"]


class EnrolSerializer(serializers.Serializer):
    speaker = serializers.CharField(max_length=16, help_text="The session's speaker label, e.g. 'S1'")
    name = serializers.CharField(max_length=Voice.MAX_NAME_LENGTH, help_text="Whose voice it is, e.g. '민수'")

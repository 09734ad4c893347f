from rest_framework import serializers

from ..models import Segment, TranscriptionSession, Translation


class TranslationSerializer(serializers.ModelSerializer):
    class Meta:
        model = Translation
        fields = ["language", "text", "engine"]


class SegmentSerializer(serializers.ModelSerializer):
    translations = TranslationSerializer(many=True, read_only=True)

    class Meta:
        model = Segment
        fields = ["index", "text", "start_ms", "end_ms", "confidence", "language", "words", "translations"]


class SessionSerializer(serializers.ModelSerializer):
    segment_count = serializers.IntegerField(read_only=True)
    url = serializers.HyperlinkedIdentityField(view_name="api:session-detail")

    class Meta:
        model = TranscriptionSession
        fields = ["id", "url", "title", "language", "translate_to", "engine", "status", "started_at", "ended_at",
                  "audio_ms", "segment_count"]


class SessionDetailSerializer(SessionSerializer):
    segments = SegmentSerializer(many=True, read_only=True)

    class Meta(SessionSerializer.Meta):
        fields = SessionSerializer.Meta.fields + ["segments"]


class SessionFilterSerializer(serializers.Serializer):
    """Query parameters of the session list (validated: a bad date is a 400, not an empty list)."""

    language = serializers.CharField(required=False, max_length=16)
    since = serializers.DateField(required=False, help_text="Started on or after this date (YYYY-MM-DD)")
    until = serializers.DateField(required=False, help_text="Started on or before this date (YYYY-MM-DD)")
    q = serializers.CharField(required=False, max_length=200, help_text="Words in the title or transcript")

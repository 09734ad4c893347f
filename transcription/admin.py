import json

from django import forms
from django.contrib import admin
from django.db.models import Count
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from . import metrics, services
from .exports import EXPORT_FORMATS, export_response, export_session
from .media import audio_response
from .models import GlossaryTerm, Job, Segment, SegmentEdit, TranscriptionSession, Translation, Voice
from .services import SPEAKER_NAME_CHARS
from .templatetags.stt import UNSURE_BELOW, mmss

SPEAKER_FIELD = "speaker_"


def percent(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


def clock(milliseconds: int) -> str:
    """m:ss.s, as a reviewer reads a time in a recording."""
    return f"{mmss(milliseconds)}.{int(milliseconds or 0) % 1000 // 100}"


class MadeByRecognition:
    """Rows the recognizer, a job or a user's session makes: staff review and edit them, never add them."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class SegmentInline(MadeByRecognition, admin.TabularInline):
    model = Segment
    fields = ("play", "index", "span", "speaker_name", "live_speaker", "text", "corrected", "confidence_shown")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("session")

    @admin.display(description="")
    def play(self, obj):
        if not obj.session.audio:
            return ""
        return format_html('<button type="button" class="stt-play" data-start="{}" data-end="{}" '
                           'title="Play this phrase">▶</button>', obj.start_ms, obj.end_ms)

    @admin.display(description="Time")
    def span(self, obj):
        return f"{clock(obj.start_ms)}–{clock(obj.end_ms)}"

    @admin.display(description="Confidence")
    def confidence_shown(self, obj):
        return percent(obj.confidence)


class SessionForm(forms.ModelForm):
    """The session's title, and a name field for each speaker label it has (S1 → 민수)."""

    class Meta:
        model = TranscriptionSession
        fields = ["title"]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        names = self.instance.speaker_names or {}
        for label in speaker_labels(self.instance):
            self.fields[SPEAKER_FIELD + label] = forms.CharField(
                label=f"Speaker {label}", required=False, max_length=SPEAKER_NAME_CHARS, initial=names.get(label, ""),
                help_text="" if label != "S1" else "The name shown for this label in exports, pages and viewers")

    def speaker_names(self) -> dict[str, str]:
        return {name.removeprefix(SPEAKER_FIELD): value for name, value in self.cleaned_data.items()
                if name.startswith(SPEAKER_FIELD)}


def speaker_labels(session: TranscriptionSession) -> list[str]:
    if session.pk is None:
        return []
    labels = session.segments.exclude(speaker="").values_list("speaker", flat=True).distinct()
    return sorted(set(labels), key=lambda label: (len(label), label))


@admin.register(TranscriptionSession)
class TranscriptionSessionAdmin(MadeByRecognition, admin.ModelAdmin):
    form = SessionForm
    list_display = ("started_at", "owner", "title", "language", "engine", "source", "status", "length", "segment_total")
    list_filter = ("status", "source", "language", "engine", ("owner", admin.RelatedOnlyFieldListFilter), "started_at")
    search_fields = ("segments__text", "title", "owner__username")
    list_select_related = ("owner",)
    date_hierarchy = "started_at"
    readonly_fields = ("id", "owner", "language", "engine", "source", "filename", "status", "started_at", "ended_at",
                       "length", "vocabulary", "refinement", "audio_player", "exports")
    fields = ("id", "title", "owner", "language", "engine", "source", "filename", "status", "started_at", "ended_at",
              "length", "vocabulary", "refinement", "audio_player", "exports")
    inlines = [SegmentInline]
    actions = ["export_json"]

    class Media:
        js = [forms.Script("transcription/admin_session.js", type="module")]
        css = {"all": ["transcription/admin.css"]}

    def get_fields(self, request, obj=None):
        return [*self.fields[:2], *(SPEAKER_FIELD + label for label in speaker_labels(obj) if obj), *self.fields[2:]]

    def get_form(self, request, obj=None, **kwargs):
        kwargs["fields"] = ["title"]  # (the speaker fields are the form's own)
        return super().get_form(request, obj, **kwargs)

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if form.speaker_names():
            services.session_name_speakers(session=obj, names=form.speaker_names())

    # Staff-only views (admin_view checks is_staff): any session's audio and exports.
    def get_urls(self):
        extra = [
            path("<uuid:session_id>/audio.wav", self.admin_site.admin_view(self.audio_view), name="transcription_session_audio"),
            path("<uuid:session_id>/export.<str:fmt>", self.admin_site.admin_view(self.export_view),
                 name="transcription_session_export"),
            path("load/", self.admin_site.admin_view(self.load_view), name="transcription_load"),
        ]
        return extra + super().get_urls()

    def load_view(self, request):
        """What /metrics exports, for staff, refreshed every 2 s (this process's numbers)."""
        return TemplateResponse(request, "admin/transcription/load.html", {
            **self.admin_site.each_context(request), "title": "Load", "rows": metrics.rows()})

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, {**(extra_context or {}),
                                                 "load_url": reverse("admin:transcription_load")})

    def audio_view(self, request, session_id):
        return audio_response(request, get_object_or_404(TranscriptionSession, pk=session_id))

    def export_view(self, request, session_id, fmt):
        if fmt not in EXPORT_FORMATS:
            raise Http404("Unknown export format")
        return export_response(get_object_or_404(TranscriptionSession, pk=session_id), fmt)

    @admin.display(description="Audio")
    def audio_player(self, obj):
        if not obj.audio:
            return "not kept"
        url = reverse("admin:transcription_session_audio", args=[obj.pk])
        return format_html('<audio id="stt-audio" controls preload="metadata" src="{}"></audio> '
                           '<a href="{}" download>Download</a><br><small>▶ beside a phrase plays it.</small>', url, url)

    @admin.display(description="Export")
    def exports(self, obj):
        return format_html_join(
            " · ", '<a href="{}">{}</a>',
            ((reverse("admin:transcription_session_export", args=[obj.pk, fmt]), fmt.upper()) for fmt in EXPORT_FORMATS),
        )

    @admin.action(description="Export selected sessions as JSON")
    def export_json(self, request, queryset):
        sessions = [json.loads(export_session(session, "json")[0]) for session in queryset]
        response = HttpResponse(json.dumps(sessions, ensure_ascii=False, indent=2), content_type="application/json")
        response["Content-Disposition"] = 'attachment; filename="sessions.json"'
        return response

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_segments=Count("segments", distinct=True))

    @admin.display(description="Length", ordering="audio_ms")
    def length(self, obj):
        return mmss(obj.audio_ms)

    @admin.display(description="Segments", ordering="_segments")
    def segment_total(self, obj):
        return obj._segments


class TranslationInline(MadeByRecognition, admin.TabularInline):
    model = Translation
    fields = ("language", "text", "engine", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False


class SegmentEditInline(MadeByRecognition, admin.TabularInline):
    """The segment's corrections, oldest first: who changed what, when."""

    model = SegmentEdit
    fields = ("created_at", "editor", "text_before", "text_after")
    readonly_fields = fields
    extra = 0
    can_delete = False


@admin.register(Segment)
class SegmentAdmin(MadeByRecognition, admin.ModelAdmin):
    list_display = ("session", "index", "start", "end", "text", "corrected", "confidence_shown")
    list_filter = ("session__language", "language", "corrected")
    search_fields = ("text", "original_text")
    list_select_related = ("session", "session__owner")
    fields = ("session", "index", "start", "end", "text", "original_text", "refined_text", "corrected", "speaker",
              "live_speaker", "confidence_shown", "words_shown", "language", "created_at")
    readonly_fields = ("session", "index", "start", "end", "original_text", "refined_text", "corrected",
                       "live_speaker", "confidence_shown", "words_shown", "language", "created_at")
    inlines = [SegmentEditInline, TranslationInline]

    class Media:
        css = {"all": ["transcription/admin.css"]}

    def save_model(self, request, obj, form, change):
        """A text changed here is a correction like the owner's: kept in the history, words re-timed."""
        corrected = change and "text" in form.changed_data
        text = obj.text
        if corrected:
            obj.text = form.initial["text"]
        super().save_model(request, obj, form, change)
        if corrected:
            services.segment_correct(segment=obj, text=text, editor=request.user)

    @admin.display(description="Start", ordering="start_ms")
    def start(self, obj):
        return clock(obj.start_ms)

    @admin.display(description="End", ordering="end_ms")
    def end(self, obj):
        return clock(obj.end_ms)

    @admin.display(description="Confidence", ordering="confidence")
    def confidence_shown(self, obj):
        return percent(obj.confidence)

    @admin.display(description="Words")
    def words_shown(self, obj):
        """Each word with its time and confidence (the unsure ones marked, as on the session page)."""
        return format_html_join(" ", '<span title="{} · {}" class="{}">{}</span>', (
            (clock(w["start_ms"]), percent(w.get("probability")),
             "unsure" if (w.get("probability") or 1) < UNSURE_BELOW else "", w["word"])
            for w in obj.words or []))


@admin.register(Voice)
class VoiceAdmin(admin.ModelAdmin):
    """Enrolled voices: who saved which name; the voice print itself is not shown."""
    list_display = ("name", "owner", "phrases", "created_at")
    list_filter = (("owner", admin.RelatedOnlyFieldListFilter),)
    search_fields = ("name", "owner__username")
    list_select_related = ("owner",)
    fields = ("owner", "name", "phrases", "created_at")
    readonly_fields = fields

    def has_add_permission(self, request) -> bool:  # learnt from a session's speaker, not typed in
        return False


@admin.register(GlossaryTerm)
class GlossaryTermAdmin(admin.ModelAdmin):
    list_display = ("term", "language", "owner", "created_at")
    list_filter = ("language", ("owner", admin.RelatedOnlyFieldListFilter))
    search_fields = ("term", "owner__username")
    list_select_related = ("owner",)


@admin.register(Job)
class JobAdmin(MadeByRecognition, admin.ModelAdmin):
    list_display = ("session", "kind", "language", "status", "done", "total", "attempts", "worker", "heartbeat_at")
    list_filter = ("kind", "status")
    list_select_related = ("session", "session__owner")
    readonly_fields = ("session", "kind", "language", "status", "done", "total", "error", "attempts", "worker",
                       "heartbeat_at", "task_id", "created_at", "updated_at")
    exclude = ("plan", "state")


@admin.register(Translation)
class TranslationAdmin(MadeByRecognition, admin.ModelAdmin):
    list_display = ("segment", "language", "engine", "text")
    list_filter = ("language", "engine")
    search_fields = ("text", "segment__text")
    list_select_related = ("segment",)
    readonly_fields = ("segment", "language", "engine", "created_at")

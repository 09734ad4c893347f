import json

from django.contrib import admin
from django.db.models import Count
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from . import metrics
from .exports import EXPORT_FORMATS, export_response, export_session
from .media import audio_response

from .models import GlossaryTerm, Job, Segment, SegmentEdit, TranscriptionSession, Translation, Voice


class SegmentInline(admin.TabularInline):
    model = Segment
    fields = ("index", "start_ms", "end_ms", "speaker_name", "live_speaker", "text", "corrected", "confidence")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True


@admin.register(TranscriptionSession)
class TranscriptionSessionAdmin(admin.ModelAdmin):
    list_display = ("started_at", "owner", "language", "engine", "source", "status", "audio_seconds", "segment_total")
    list_filter = ("status", "source", "language", "engine", ("owner", admin.RelatedOnlyFieldListFilter), "started_at")
    search_fields = ("segments__text", "title", "owner__username")
    list_select_related = ("owner",)
    date_hierarchy = "started_at"
    readonly_fields = ("id", "owner", "language", "engine", "source", "filename", "status", "started_at", "ended_at", "audio_ms",
                       "vocabulary", "refinement", "audio_player", "exports")
    fields = ("id", "title", "owner", "language", "engine", "source", "filename", "status", "started_at", "ended_at", "audio_ms",
              "vocabulary", "speaker_names", "refinement", "audio_player", "exports")
    inlines = [SegmentInline]
    actions = ["export_json"]

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
        return format_html('<audio controls preload="none" src="{}"></audio>', url)

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

    @admin.display(description="Audio (s)", ordering="audio_ms")
    def audio_seconds(self, obj):
        return round(obj.audio_ms / 1000, 1)

    @admin.display(description="Segments", ordering="_segments")
    def segment_total(self, obj):
        return obj._segments


class TranslationInline(admin.TabularInline):
    model = Translation
    fields = ("language", "text", "engine", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False


class SegmentEditInline(admin.TabularInline):
    """The segment's corrections, oldest first: who changed what, when."""

    model = SegmentEdit
    fields = ("created_at", "editor", "text_before", "text_after")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Segment)
class SegmentAdmin(admin.ModelAdmin):
    list_display = ("session", "index", "start_ms", "end_ms", "text", "corrected")
    list_filter = ("session__language", "language", "corrected")
    search_fields = ("text", "original_text")
    list_select_related = ("session", "session__owner")
    readonly_fields = ("session", "index", "start_ms", "end_ms", "original_text", "refined_text", "corrected",
                       "live_speaker", "confidence", "words", "language", "created_at")
    inlines = [SegmentEditInline, TranslationInline]


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
class JobAdmin(admin.ModelAdmin):
    list_display = ("session", "kind", "language", "status", "done", "total", "attempts", "worker", "heartbeat_at")
    list_filter = ("kind", "status")
    list_select_related = ("session", "session__owner")
    readonly_fields = ("session", "kind", "language", "status", "done", "total", "error", "attempts", "worker",
                       "heartbeat_at", "task_id", "created_at", "updated_at")
    exclude = ("plan", "state")


@admin.register(Translation)
class TranslationAdmin(admin.ModelAdmin):
    list_display = ("segment", "language", "engine", "text")
    list_filter = ("language", "engine")
    search_fields = ("text", "segment__text")
    list_select_related = ("segment",)
    readonly_fields = ("segment", "language", "engine", "created_at")

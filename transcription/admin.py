from django.contrib import admin
from django.db.models import Count

from .models import Segment, TranscriptionSession, Translation


class SegmentInline(admin.TabularInline):
    model = Segment
    fields = ("index", "start_ms", "end_ms", "text", "confidence")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True


@admin.register(TranscriptionSession)
class TranscriptionSessionAdmin(admin.ModelAdmin):
    list_display = ("started_at", "owner", "language", "engine", "status", "audio_seconds", "segment_total")
    list_filter = ("status", "language", "engine", ("owner", admin.RelatedOnlyFieldListFilter), "started_at")
    search_fields = ("segments__text", "title", "owner__username")
    list_select_related = ("owner",)
    date_hierarchy = "started_at"
    readonly_fields = ("id", "owner", "language", "engine", "status", "started_at", "ended_at", "audio_ms")
    fields = ("id", "title", "owner", "language", "engine", "status", "started_at", "ended_at", "audio_ms")
    inlines = [SegmentInline]

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


@admin.register(Segment)
class SegmentAdmin(admin.ModelAdmin):
    list_display = ("session", "index", "start_ms", "end_ms", "text")
    list_filter = ("session__language", "language")
    search_fields = ("text",)
    list_select_related = ("session", "session__owner")
    readonly_fields = ("session", "index", "start_ms", "end_ms", "confidence", "words", "language", "created_at")
    inlines = [TranslationInline]


@admin.register(Translation)
class TranslationAdmin(admin.ModelAdmin):
    list_display = ("segment", "language", "engine", "text")
    list_filter = ("language", "engine")
    search_fields = ("text", "segment__text")
    list_select_related = ("segment",)
    readonly_fields = ("segment", "language", "engine", "created_at")

from django.contrib import admin
from django.urls import include, path

from transcription.api import openai_compat
from transcription.metrics import metrics_view

urlpatterns = [
    path("admin/", admin.site.urls),
    path("metrics", metrics_view, name="metrics"),
    path("v1/audio/transcriptions", openai_compat.transcriptions, name="openai_transcriptions"),
    path("v1/audio/translations", openai_compat.translations, name="openai_translations"),
    path("api/", include("transcription.api.urls")),
    path("accounts/", include("django.contrib.auth.urls")),
    path("", include("transcription.urls")),
]

from django.contrib import admin
from django.urls import include, path

from transcription.metrics import metrics_view

urlpatterns = [
    path("admin/", admin.site.urls),
    path("metrics", metrics_view, name="metrics"),
    path("api/", include("transcription.api.urls")),
    path("accounts/", include("django.contrib.auth.urls")),
    path("", include("transcription.urls")),
]

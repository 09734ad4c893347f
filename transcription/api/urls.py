from django.urls import path
from drf_spectacular.views import SpectacularAPIView
from rest_framework.routers import DefaultRouter

from .views import SessionViewSet, VoiceViewSet

app_name = "api"

router = DefaultRouter()
router.include_format_suffixes = False  # JSON only: no /sessions.json duplicates of every route
router.register("sessions", SessionViewSet, basename="session")
router.register("voices", VoiceViewSet, basename="voice")

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    *router.urls,
]

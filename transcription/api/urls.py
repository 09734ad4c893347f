from django.urls import URLPattern, path
from drf_spectacular.views import SpectacularAPIView
from rest_framework.routers import DefaultRouter

from ..heavy import off_the_shared_thread as heavy
from .views import SessionViewSet, VoiceViewSet

app_name = "api"

router = DefaultRouter()
router.include_format_suffixes = False  # JSON only: no /sessions.json duplicates of every route
router.register("sessions", SessionViewSet, basename="session")
router.register("voices", VoiceViewSet, basename="voice")

# Every API view runs off the thread the pages share (transcription/heavy.py): programs may ask for the
# heaviest work (a long session's export, a search, an upload, opening a stream) as often as they like.
urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    *(URLPattern(route.pattern, heavy(route.callback), route.default_args, route.name) for route in router.urls),
]

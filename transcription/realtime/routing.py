from django.urls import path

from .consumers import LiveViewerConsumer, TranscriptionConsumer

websocket_urlpatterns = [
    path("ws/transcribe/", TranscriptionConsumer.as_asgi()),
    path("ws/sessions/<uuid:session_id>/live/", LiveViewerConsumer.as_asgi()),
]

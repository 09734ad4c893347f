from django.urls import path

from .consumers import LiveViewerConsumer, TranscriptionConsumer
from .deepgram import DeepgramListenConsumer
from .openai_realtime import OpenAIRealtimeConsumer

websocket_urlpatterns = [
    path("ws/transcribe/", TranscriptionConsumer.as_asgi()),
    path("ws/sessions/<uuid:session_id>/live/", LiveViewerConsumer.as_asgi()),
    path("v1/listen", DeepgramListenConsumer.as_asgi()),  # Deepgram's clients (deepgram.py)
    path("v1/realtime", OpenAIRealtimeConsumer.as_asgi()),  # OpenAI's realtime transcription clients
]

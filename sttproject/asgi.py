import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sttproject.settings")
# Set up Django (apps, settings) before anything imports models.
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from transcription.realtime import shutdown  # noqa: E402
from transcription.realtime.auth import websocket_auth  # noqa: E402
from transcription.realtime.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": websocket_auth(URLRouter(websocket_urlpatterns)),
    }
)

shutdown.install()  # on SIGTERM, running sessions end cleanly before daphne stops

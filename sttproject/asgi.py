import logging
import os

from sttproject.memory import limit_malloc_arenas

limit_malloc_arenas()  # before the server's threads allocate (sttproject/memory.py)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sttproject.settings")

from sttproject.request_body import get_asgi_application  # noqa: E402

# Set up Django (apps, settings) before anything imports models. Its HTTP handler takes a body that
# sttproject/server.py spooled to disk as it is, without a second copy.
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from transcription import checks, workers  # noqa: E402
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
for problem in checks.check_server():  # plain `daphne` guards no request body: said loudly at start-up
    logging.getLogger("sttproject").warning("%s: %s %s", problem.id, problem.msg, problem.hint)
workers.start_in_process()  # background jobs: a worker (by default) and the watchdog that resumes jobs

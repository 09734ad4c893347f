"""System checks: a misconfigured engine is reported at start-up, not at the first session."""
from django.conf import settings
from django.core.checks import Error, Warning, register
from django.utils.module_loading import import_string

from .engines import engine_path
from .translation import translator_path


@register()
def check_engine(app_configs, **kwargs):
    errors = []
    path = engine_path()
    try:
        import_string(path)
    except ImportError as exc:
        errors.append(Error(f"STT_ENGINE={settings.STT_ENGINE!r} cannot be imported: {exc}", id="transcription.E001"))
    try:
        import_string(translator_path())
    except ImportError as exc:
        errors.append(Error(f"STT_TRANSLATOR={settings.STT_TRANSLATOR!r} cannot be imported: {exc}", id="transcription.E003"))
    uses_openai = "openai" in (settings.STT_ENGINE, settings.STT_TRANSLATOR)
    if uses_openai and not (settings.OPENAI_API_KEY or settings.OPENAI_BASE_URL):
        errors.append(Error(
            "STT_ENGINE or STT_TRANSLATOR is 'openai' but neither OPENAI_API_KEY nor OPENAI_BASE_URL is set",
            hint="Set OPENAI_API_KEY, or OPENAI_BASE_URL for an OpenAI-compatible server.",
            id="transcription.E004",
        ))
    if settings.STT_ENGINE == "google":
        import os

        if not settings.GOOGLE_CLOUD_PROJECT:
            errors.append(Warning("STT_ENGINE=google but GOOGLE_CLOUD_PROJECT is not set", id="transcription.W001"))
        has_credentials = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS") or (
            settings.GOOGLE_SPEECH_ENDPOINT and settings.GOOGLE_SPEECH_INSECURE
        ) or os.path.exists(os.path.expanduser("~/.config/gcloud/application_default_credentials.json"))
        if not 5 <= settings.STT_GOOGLE_STREAM_SECONDS <= 295:
            errors.append(Error(
                f"STT_GOOGLE_STREAM_SECONDS={settings.STT_GOOGLE_STREAM_SECONDS:g} must be between 5 and 295: "
                "Google ends a stream at 300 s, and each stream replays up to a third of its length",
                id="transcription.E006",
            ))
        if not has_credentials:
            errors.append(Warning(
                "STT_ENGINE=google but no Google credentials were found",
                hint="Set GOOGLE_APPLICATION_CREDENTIALS or run `gcloud auth application-default login`.",
                id="transcription.W002",
            ))
    errors += check_redis_timeouts()
    process, per_user = settings.STT_MAX_SESSIONS, settings.STT_MAX_SESSIONS_PER_USER
    if process and (not per_user or per_user >= process):
        errors.append(Warning(
            f"STT_MAX_SESSIONS_PER_USER ({per_user}) is not below STT_MAX_SESSIONS ({process}): one user's "
            "sessions (dropped sockets held for resume, too) can lock everyone else out", id="transcription.W003"))
    if settings.STT_DEFAULT_LANGUAGE not in dict(settings.STT_LANGUAGES):
        errors.append(Error("STT_DEFAULT_LANGUAGE is not one of STT_LANGUAGES", id="transcription.E002"))
    return errors


REDIS_PY_DEFAULT_SOCKET_TIMEOUT = 5.0  # redis/_defaults.py (redis-py 8)


def check_redis_timeouts() -> list:
    """A channels-redis host whose socket timeout does not outlast the layer's blocking receive makes
    every quiet live viewer fail after a few seconds (seen with redis-py 8's 5 s default)."""
    errors = []
    for alias, layer in settings.CHANNEL_LAYERS.items():
        if not layer.get("BACKEND", "").startswith("channels_redis."):
            continue
        blocking = import_string(layer["BACKEND"]).brpop_timeout
        for host in layer.get("CONFIG", {}).get("hosts", []):
            timeout = host.get("socket_timeout", REDIS_PY_DEFAULT_SOCKET_TIMEOUT) if isinstance(host, dict) \
                else REDIS_PY_DEFAULT_SOCKET_TIMEOUT
            if timeout is not None and timeout <= blocking + 1:
                errors.append(Error(
                    f"channel layer {alias!r}: socket_timeout {timeout} s does not outlast the layer's blocking "
                    f"receive ({blocking} s): live viewers would fail whenever a session is quiet",
                    hint="Give each host a dict with socket_timeout above it (STT_REDIS_SOCKET_TIMEOUT).",
                    id="transcription.E005",
                ))
    return errors


SERVERS = ("daphne.cli", "uvicorn", "hypercorn", "gunicorn", "granian")  # launchers of an ASGI application


@register("server")
def check_server(app_configs=None, **kwargs) -> list:
    """Served by another launcher than `python -m sttproject.server` (plain `daphne`, the command every
    Channels guide shows), the request bodies are not guarded: an anonymous 200 MB upload is read whole
    before anyone is authenticated (docs/operations.md#request-bodies). Run at start-up by asgi.py."""
    import sys

    daphne_server = sys.modules.get("daphne.server")
    guarded = daphne_server is not None and getattr(daphne_server.HTTPFactory, "guards_bodies", False)
    launcher = next((name.split(".")[0] for name in SERVERS if name in sys.modules), None)
    if launcher is None or guarded:
        return []
    return [Warning(f"served by plain {launcher}: request bodies are read whole before any login or size check",
                    hint="Start the server with `python -m sttproject.server` (what `make run` does), which "
                         "takes daphne's arguments.", id="transcription.W010")]

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
        if not has_credentials:
            errors.append(Warning(
                "STT_ENGINE=google but no Google credentials were found",
                hint="Set GOOGLE_APPLICATION_CREDENTIALS or run `gcloud auth application-default login`.",
                id="transcription.W002",
            ))
    if settings.STT_DEFAULT_LANGUAGE not in dict(settings.STT_LANGUAGES):
        errors.append(Error("STT_DEFAULT_LANGUAGE is not one of STT_LANGUAGES", id="transcription.E002"))
    return errors

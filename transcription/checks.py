"""System checks: a misconfigured engine is reported at start-up, not at the first session."""
from django.conf import settings
from django.core.checks import Error, register
from django.utils.module_loading import import_string

from .engines import engine_path


@register()
def check_engine(app_configs, **kwargs):
    errors = []
    path = engine_path()
    try:
        import_string(path)
    except ImportError as exc:
        errors.append(Error(f"STT_ENGINE={settings.STT_ENGINE!r} cannot be imported: {exc}", id="transcription.E001"))
    if settings.STT_DEFAULT_LANGUAGE not in dict(settings.STT_LANGUAGES):
        errors.append(Error("STT_DEFAULT_LANGUAGE is not one of STT_LANGUAGES", id="transcription.E002"))
    return errors

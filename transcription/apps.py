from django.apps import AppConfig


class TranscriptionConfig(AppConfig):
    name = "transcription"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers system checks)
        from . import refine  # noqa: F401  (the second pass listens for finished sessions)
        from . import voices  # noqa: F401  (so does the revision of speaker labels)

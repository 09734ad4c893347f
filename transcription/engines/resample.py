"""Streaming 16 kHz -> 24 kHz resampling (up 3, down 2) with a windowed-sinc low-pass, in numpy.

OpenAI's realtime API takes only 24 kHz PCM16. Repeating samples would alias; this is a proper
polyphase FIR interpolator that keeps its state across chunks so the joins are seamless.
"""
from __future__ import annotations

import numpy as np

UP, DOWN = 3, 2
TAPS_PER_PHASE = 32


def _design() -> np.ndarray:
    n = UP * TAPS_PER_PHASE
    t = np.arange(n) - (n - 1) / 2
    cutoff = 0.9 / UP  # of the upsampled Nyquist: below the 8 kHz of the source
    h = cutoff * np.sinc(cutoff * t) * np.kaiser(n, 8.0)
    return (h / h.sum() * UP).astype(np.float64)


class Resampler16to24:
    def __init__(self) -> None:
        self.h = _design()
        self.history = np.zeros(len(self.h) - 1)  # tail of the zero-stuffed signal
        self.phase = 0  # index of the next output sample in the zero-stuffed signal

    def process(self, pcm16: bytes) -> bytes:
        x = np.frombuffer(pcm16, dtype="<i2").astype(np.float64)
        up = np.zeros(len(x) * UP)
        up[::UP] = x
        signal = np.concatenate([self.history, up])
        filtered = np.convolve(signal, self.h, mode="valid")  # len(up) outputs, aligned to `up`
        out = filtered[self.phase :: DOWN]
        self.phase = (self.phase - len(filtered)) % DOWN
        self.history = signal[-(len(self.h) - 1) :]
        return np.clip(np.round(out), -32768, 32767).astype("<i2").tobytes()

"""Silero VAD (the model faster-whisper ships), fed as audio arrives."""
from __future__ import annotations

import numpy as np

VAD_WINDOW = 512  # samples (32 ms), what Silero v6 takes


class StreamingVad:
    """faster-whisper's Silero model, fed incrementally: one speech probability per 32 ms window.

    SileroVADModel.__call__ starts every call from a zero state, so calling it on each new chunk
    would make decisions depend on chunk boundaries. This keeps the LSTM state and the 64-sample
    context across calls (the same inputs the library builds for one whole-file call).
    """

    CONTEXT = 64

    def __init__(self, model) -> None:
        self.session = model.session  # one ONNX session per process, shared (run() is thread-safe)
        self.h = np.zeros((1, 1, 128), dtype=np.float32)
        self.c = np.zeros((1, 1, 128), dtype=np.float32)
        self.context = np.zeros(self.CONTEXT, dtype=np.float32)

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        windows = audio.reshape(-1, VAD_WINDOW)
        contexts = np.concatenate([self.context[None, :], windows[:-1, -self.CONTEXT :]])
        batch = np.concatenate([contexts, windows], axis=1)
        out, self.h, self.c = self.session.run(None, {"input": batch, "h": self.h, "c": self.c})
        self.context = windows[-1, -self.CONTEXT :].copy()
        return out.reshape(-1)

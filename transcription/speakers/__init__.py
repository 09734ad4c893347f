"""Who said it: a speaker label on every final, from the phrase's own audio, whatever the engine.

Each final's audio is embedded by 3D-Speaker's CAM++ (speech_campplus_sv_zh_en_16k-common_advanced,
Apache-2.0; exported once to ONNX by tools/export_campplus.py, run here by onnxruntime, which
faster-whisper already brings: no torch at run time). Kaldi fbank features (kaldi-native-fbank),
80 bins, mean-normalised, as 3D-Speaker computes them.

One thread per process (LabelWorker) embeds every session's finals, one at a time, in the order they
came: so a relay box's sessions share at most one core and one model arena for labels, however many
there are. A final waits for its label only briefly, and only when no other phrase is ahead of it; a
later label follows as its own event, and a label that could not be computed within
MAX_LABEL_LAG_SECONDS is skipped (counted in /metrics).

Labels are given online, one phrase at a time, so they are stable: a phrase joins the speaker whose
mean embedding is nearest if the cosine similarity reaches SAME_SPEAKER, else it starts a new speaker
(S1, S2, ...). A phrase too short to embed reliably never starts a speaker: it goes to the nearest
one if it is close enough, else to the previous phrase's. With the whisper engine a phrase rarely
holds two voices: a new voice ends it (changes.py); otherwise it gets the label of whoever dominates
its audio. The thresholds were chosen on the tune part of the evaluation set (bench/speaker_eval.py;
comparing also with a speaker's nearest phrases, and waiting longer before opening a speaker, gained
nothing there).

A user's enrolled voices (Voice rows, given as (name, embedding) pairs) name a speaker live: once a
speaker's mean embedding reaches VOICE_MATCH with a voice, `on_named(label, name)` is called, once.
After the session, `recluster` (clustering.py) revises the labels with every phrase known at once.
"""
from __future__ import annotations

import functools
import logging
import os
import queue
import threading
import time
from concurrent.futures import Future
from pathlib import Path

import numpy as np

from .. import metrics
from ..audio import SAMPLE_RATE, pcm16_to_float

logger = logging.getLogger(__name__)

MODEL = Path(__file__).resolve().parent / "campplus.onnx"
SAME_SPEAKER = 0.4  # cosine similarity to a speaker's mean that joins it (tuned: bench/speaker_eval.py replay)
SHORT_SAME_SPEAKER = 0.4  # what a short phrase needs to join the nearest speaker instead of the previous one
MIN_EMBED_SECONDS = 0.4  # shorter: not embedded, the previous phrase's speaker
MIN_NEW_SPEAKER_SECONDS = 1.0  # shorter: may join a speaker, never start one
MAX_EMBED_SECONDS = 12.0  # the middle of a longer phrase is enough (and bounds the cost)


class SpeakerEmbedder:
    """CAM++ on onnxruntime: 192-dim, L2-normalised embeddings of PCM16 16 kHz mono."""

    def __init__(self, path: Path = MODEL) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1  # beside the decode threads; a 3 s phrase costs ~50 ms
        options.inter_op_num_threads = 1
        # A memory pattern is planned and kept per input shape, and every phrase has its own length:
        # 600 phrases of random lengths grew RSS 161 -> 207 MB with it, flat without, no slower.
        options.enable_mem_pattern = False
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def embed(self, samples: np.ndarray) -> np.ndarray:
        features = fbank(samples)
        embedding = self.session.run(None, {"fbank": features[None]})[0][0]
        return embedding / (np.linalg.norm(embedding) + 1e-9)


def fbank(samples: np.ndarray) -> np.ndarray:
    """80 Kaldi filterbank energies per 10 ms frame (25 ms windows, no dither), minus their mean."""
    import kaldi_native_fbank as knf

    options = knf.FbankOptions()
    options.frame_opts.dither = 0.0
    options.frame_opts.samp_freq = SAMPLE_RATE
    options.mel_opts.num_bins = 80
    computer = knf.OnlineFbank(options)
    computer.accept_waveform(SAMPLE_RATE, samples.astype(np.float32).tolist())
    computer.input_finished()
    frames = np.stack([computer.get_frame(i) for i in range(computer.num_frames_ready)]).astype(np.float32)
    return frames - frames.mean(axis=0, keepdims=True)


@functools.lru_cache(maxsize=1)
def embedder() -> SpeakerEmbedder:
    """One per process, shared by every session (onnxruntime's run is thread-safe)."""
    return SpeakerEmbedder()


def available() -> bool:
    return MODEL.exists()


VOICE_MATCH = 0.6  # cosine similarity of a speaker's mean to an enrolled voice that names it (bench/speaker_eval.py)


def phrase_embedding(pcm: bytes) -> np.ndarray | None:
    """The CAM++ embedding of a phrase's middle MAX_EMBED_SECONDS; None if too short or not finite."""
    samples = pcm16_to_float(pcm)
    if len(samples) < MIN_EMBED_SECONDS * SAMPLE_RATE:
        return None
    if len(samples) > MAX_EMBED_SECONDS * SAMPLE_RATE:
        middle = (len(samples) - int(MAX_EMBED_SECONDS * SAMPLE_RATE)) // 2
        samples = samples[middle:middle + int(MAX_EMBED_SECONDS * SAMPLE_RATE)]
    embedding = embedder().embed(samples)
    return embedding if np.all(np.isfinite(embedding)) else None


def voice_of(embeddings: list[np.ndarray]) -> np.ndarray:
    """An enrolled voice: the normalised mean of a speaker's phrase embeddings."""
    total = np.sum(embeddings, axis=0)
    return (total / (np.linalg.norm(total) + 1e-9)).astype(np.float32)


def closest_voice(embedding: np.ndarray, voices, *, exclude=()) -> str | None:
    """The name of the enrolled voice nearest `embedding` if it reaches VOICE_MATCH."""
    unit = embedding / (np.linalg.norm(embedding) + 1e-9)
    scored = [(float(unit @ voice), name) for name, voice in voices if name not in exclude]
    best = max(scored, default=None)
    return best[1] if best is not None and best[0] >= VOICE_MATCH else None


class SpeakerLabeller:
    """One session's speakers: `label(pcm)` for each final in order; labels never change."""

    def __init__(self, voices=(), on_named=None) -> None:
        label_worker()  # started (and its model loaded) with the first session, not at its first final
        self.sums: list[np.ndarray] = []  # per speaker: the sum of its phrases' embeddings
        self.last: str | None = None
        self.voices = [(name, np.asarray(voice, dtype=np.float32)) for name, voice in voices]
        self.names: dict[str, str] = {}  # label -> the enrolled voice that named it
        self.on_named = on_named
        self._lock = threading.Lock()

    def label(self, pcm: bytes) -> str | None:
        """The speaker of a phrase (PCM16 16 kHz mono); None when it cannot be told (no audio)."""
        seconds = len(pcm) / 2 / SAMPLE_RATE
        try:
            embedding = phrase_embedding(pcm)
        except Exception:  # a boundary: a phrase without a label is better than a lost final
            logger.exception("speaker embedding failed")
            return self.last
        if embedding is None:
            return self.last
        with self._lock:
            return self._assign(embedding, long_enough=seconds >= MIN_NEW_SPEAKER_SECONDS)

    def _assign(self, embedding: np.ndarray, *, long_enough: bool) -> str | None:
        best, similarity = None, -1.0
        for index, total in enumerate(self.sums):
            score = float(embedding @ (total / np.linalg.norm(total)))
            if score > similarity:
                best, similarity = index, score
        if best is not None and similarity >= (SAME_SPEAKER if long_enough else SHORT_SAME_SPEAKER):
            self.sums[best] = self.sums[best] + embedding
        elif long_enough or not self.sums:
            self.sums.append(embedding.copy())
            best = len(self.sums) - 1
        else:
            return self.last  # short and like nobody: most likely still the same voice
        self.last = f"S{best + 1}"
        if self.voices and self.last not in self.names:
            name = closest_voice(self.sums[best], self.voices, exclude=set(self.names.values()))
            if name is not None:
                self.names[self.last] = name
                if self.on_named is not None:
                    self.on_named(self.last, name)
        return self.last


MAX_PENDING_LABELS = 256  # phrases waiting for the labelling thread; beyond it a phrase is not labelled
MAX_LABEL_LAG_SECONDS = 10.0
LABEL_NICENESS = 19  # a phrase waiting longer is skipped: the thread catches up on newer ones


class LabelWorker:
    """The process's labelling thread: `submit` returns a Future of the phrase's label."""

    def __init__(self) -> None:
        self._jobs: queue.Queue = queue.Queue(MAX_PENDING_LABELS)
        self._working = False  # a phrase is being embedded now
        self._thread = threading.Thread(target=self._run, name="speaker-labels", daemon=True)
        self._thread.start()

    def behind(self) -> bool:
        """Another phrase is ahead of a new one: its label will not be quick."""
        return self._working or not self._jobs.empty()

    def submit(self, labeller: SpeakerLabeller, pcm: bytes) -> Future:
        future: Future = Future()
        try:
            self._jobs.put_nowait((time.monotonic(), labeller, pcm, future))
        except queue.Full:
            metrics.speaker_labels_skipped.inc()
            future.set_result(None)
        return future

    def _run(self) -> None:
        try:  # labels take the CPU the sessions leave: the event loop and decodes come first (Linux)
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), LABEL_NICENESS)
        except (AttributeError, OSError):
            pass
        self._load()  # at the first session, not at its first final
        while True:
            submitted, labeller, pcm, future = self._jobs.get()
            if not future.set_running_or_notify_cancel():
                continue
            if time.monotonic() - submitted > MAX_LABEL_LAG_SECONDS:
                metrics.speaker_labels_skipped.inc()
                future.set_result(None)
                continue
            self._working = True
            try:
                future.set_result(labeller.label(pcm))
            except Exception as exc:  # a boundary: the thread outlives any one phrase
                logger.exception("speaker labelling failed")
                future.set_exception(exc)
            finally:
                self._working = False


    @staticmethod
    def _load() -> None:
        try:
            embedder()
        except Exception:  # reported again, per phrase, when labels are asked for
            logger.exception("the speaker model could not be loaded")


@functools.lru_cache(maxsize=1)
def label_worker() -> LabelWorker:
    return LabelWorker()

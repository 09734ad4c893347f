"""Google Cloud Speech-to-Text v2 streaming (STT_ENGINE=google), sessions of any length.

The real `google-cloud-speech` client, called from the session's own thread (the sync call blocks
until the first response and runs our request iterator on a gRPC-owned thread). Audio lives in one
buffer from the last final on; each stream reads it from its own cursor. Before the service's
5-minute limit, and on `finalize`, the request iterator half-closes the stream so the service
flushes its finals, and a new stream starts where the last final ended: the un-finalised audio is
replayed and times are offset, so results are continuous. The limit is checked on a timer, so it
also holds during silence. Retryable failures reconnect with backoff; refusals end the session.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Iterator

from django.conf import settings

from .base import AUTO_LANGUAGE, BYTES_PER_SECOND, FINALIZE, Control, EngineError, Result, StreamConfig, Word

logger = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 12_800  # 400 ms; the v2 proto documents 15 KB per audio request
MAX_RETRIES = 3  # consecutive failed streams before giving up
REPLAY_LIMIT_SECONDS = 30  # un-finalised audio kept for replay into the next stream...
REPLAY_SHARE = 1 / 3  # ...and never more than this share of a stream: the replay counts toward the
# new stream's length, so a replay as long as the rotation would rotate every stream at once, forever


def _ms(duration) -> int:
    """proto-plus gives result offsets as timedelta."""
    return int(duration.total_seconds() * 1000) if duration is not None else 0


class GoogleRecognizer:
    name = "google"

    def __init__(self) -> None:
        self._client = None
        self._lock = threading.Lock()

    def client(self):
        """One client per process (its channel is shared by every session's streams)."""
        with self._lock:
            if self._client is None:
                self._client = self._make_client()
            return self._client

    def _make_client(self):
        import google.auth.exceptions
        from google.cloud.speech_v2 import SpeechClient

        endpoint = settings.GOOGLE_SPEECH_ENDPOINT
        try:
            if endpoint and settings.GOOGLE_SPEECH_INSECURE:
                import grpc
                from google.cloud.speech_v2.services.speech.transports import SpeechGrpcTransport

                # A ready channel makes the transport skip credentials: emulators and tests.
                return SpeechClient(transport=SpeechGrpcTransport(channel=grpc.insecure_channel(endpoint)))
            location = settings.GOOGLE_SPEECH_LOCATION
            if not endpoint and location != "global":
                endpoint = f"{location}-speech.googleapis.com"
            return SpeechClient(client_options={"api_endpoint": endpoint} if endpoint else None)
        except google.auth.exceptions.DefaultCredentialsError as exc:
            raise EngineError("Google credentials are not configured", kind=EngineError.UNAVAILABLE) from exc

    def supports_language(self, language: str) -> bool:
        return language != AUTO_LANGUAGE

    def stream(self, chunks: Iterator[bytes | Control], config: StreamConfig) -> Iterator[Result]:
        yield from EndlessStream(self.client(), config).run(chunks)


class EndlessStream:
    def __init__(self, client, config: StreamConfig) -> None:
        self.client = client
        self.config = config
        self.cond = threading.Condition()
        self.audio = bytearray()  # from byte position `base` (absolute, in the session's audio) on
        self.base = 0
        self.input_done = False
        self.rotate = False  # finalize asked: half-close the current stream
        self.final_end = 0  # absolute byte position where the last final ended
        self._cursor = 0  # absolute byte position the current stream has sent up to
        self.limit = settings.STT_GOOGLE_STREAM_SECONDS
        self.replay_bytes = int(min(REPLAY_LIMIT_SECONDS, self.limit * REPLAY_SHARE) * BYTES_PER_SECOND) // 2 * 2

    # -- feeder thread: session audio -> buffer --
    def feed(self, chunks: Iterator[bytes | Control]) -> None:
        try:
            for chunk in chunks:
                with self.cond:
                    if chunk is FINALIZE:
                        self.rotate = True
                    else:
                        self.audio += chunk
                        self._bound_replay()
                    self.cond.notify_all()
        finally:
            with self.cond:
                self.input_done = True
                self.cond.notify_all()

    def _bound_replay(self) -> None:
        """Sent but unfinalised audio (silence, mostly) is kept for replay up to a limit."""
        excess = min(len(self.audio) - self.replay_bytes, self._cursor - self.base)
        if excess > 0:
            del self.audio[:excess]
            self.base += excess

    # -- request iterator (runs on a gRPC thread) --
    def requests(self, start: int):
        from google.cloud.speech_v2.types import cloud_speech

        project = settings.GOOGLE_CLOUD_PROJECT
        location = settings.GOOGLE_SPEECH_LOCATION
        yield cloud_speech.StreamingRecognizeRequest(
            recognizer=f"projects/{project}/locations/{location}/recognizers/_",
            streaming_config=cloud_speech.StreamingRecognitionConfig(
                config=cloud_speech.RecognitionConfig(
                    explicit_decoding_config=cloud_speech.ExplicitDecodingConfig(
                        encoding=cloud_speech.ExplicitDecodingConfig.AudioEncoding.LINEAR16,
                        sample_rate_hertz=16000,
                        audio_channel_count=1,
                    ),
                    language_codes=[self.config.language],
                    model=settings.GOOGLE_SPEECH_MODEL,
                    features=cloud_speech.RecognitionFeatures(enable_word_time_offsets=True),
                    adaptation=self.adaptation(cloud_speech),
                ),
                streaming_features=cloud_speech.StreamingRecognitionFeatures(interim_results=True),
            ),
        )
        started = time.monotonic()
        position = start
        while True:
            with self.cond:
                while True:
                    available = self.base + len(self.audio) - position
                    elapsed = max(time.monotonic() - started, (position - start) / BYTES_PER_SECOND)
                    if elapsed >= self.limit or self.rotate:
                        self.rotate = False
                        return  # half-close: the service flushes its finals, a new stream follows
                    if available > 0 or self.input_done:
                        break
                    self.cond.wait(timeout=0.1)  # also wakes to check the limit during silence
                if available <= 0:
                    return  # all audio sent and no more will come
                begin = position - self.base
                data = bytes(self.audio[begin : begin + min(available, MAX_REQUEST_BYTES)])
                position += len(data)
                self._cursor = position
            yield cloud_speech.StreamingRecognizeRequest(audio=data)

    def adaptation(self, cloud_speech):
        """The vocabulary as an inline phrase set with a boost (None without one)."""
        if not self.config.vocabulary:
            return None
        phrases = [cloud_speech.PhraseSet.Phrase(value=term) for term in self.config.vocabulary]
        phrase_set = cloud_speech.PhraseSet(phrases=phrases, boost=settings.GOOGLE_SPEECH_BOOST)
        return cloud_speech.SpeechAdaptation(
            phrase_sets=[cloud_speech.SpeechAdaptation.AdaptationPhraseSet(inline_phrase_set=phrase_set)])

    # -- this thread: responses -> results --
    def run(self, chunks: Iterator[bytes | Control]) -> Iterator[Result]:
        from google.api_core import exceptions as gexc

        feeder = threading.Thread(target=self.feed, args=(chunks,), name="stt-google-feed", daemon=True)
        feeder.start()
        failures = 0
        while True:
            with self.cond:
                # From the last final, but never more than the replay bound before where the last
                # stream got to: in a long silence without finals, each stream still moves on.
                start = max(self.final_end, self.base, self._cursor - self.replay_bytes)
                self._cursor = start
            start_ms = start * 1000 // BYTES_PER_SECOND
            progressed = False
            try:
                responses = self.client.streaming_recognize(requests=self.requests(start))
                for response in responses:
                    for result in self.results(response, start_ms):
                        progressed = progressed or result.is_final
                        yield result
                failures = 0
            except (gexc.PermissionDenied, gexc.Unauthenticated, gexc.InvalidArgument, gexc.NotFound) as exc:
                raise EngineError(f"Google Speech refused the request: {exc.message}", kind=EngineError.REJECTED) from exc
            except (gexc.Aborted, gexc.OutOfRange, gexc.ServiceUnavailable, gexc.DeadlineExceeded,
                    gexc.InternalServerError) as exc:
                failures = 0 if progressed else failures + 1
                if failures >= MAX_RETRIES:
                    raise EngineError(f"Google Speech is unavailable: {exc.message}", kind=EngineError.UNAVAILABLE) from exc
                logger.warning("Google stream ended (%s); reconnecting and replaying unfinalised audio", exc)
                time.sleep(min(2.0, 0.25 * 2**failures))
                continue  # replay from the last final, even if all audio had been sent
            except gexc.GoogleAPICallError as exc:
                raise EngineError(f"Google Speech failed: {exc.message}") from exc
            with self.cond:
                if self.input_done and self._cursor >= self.base + len(self.audio):
                    return

    def results(self, response, start_ms: int) -> Iterator[Result]:
        interim, stability = [], []
        for result in response.results:
            if not result.alternatives:
                continue
            best = result.alternatives[0]
            end_ms = start_ms + _ms(result.result_end_offset)
            if result.is_final:
                with self.cond:
                    phrase_start = self.final_end * 1000 // BYTES_PER_SECOND
                    self.final_end = max(self.final_end, end_ms * BYTES_PER_SECOND // 1000 // 2 * 2)
                    self._trim()
                if best.transcript.strip():
                    yield Result(
                        text=best.transcript.strip(),
                        is_final=True,
                        start_ms=phrase_start,
                        end_ms=max(end_ms, phrase_start),
                        confidence=best.confidence or None,
                        words=tuple(
                            Word(w.word, start_ms + _ms(w.start_offset), start_ms + _ms(w.end_offset),
                                 w.confidence or None)
                            for w in best.words
                        ),
                        language=result.language_code or self.config.language,
                    )
            elif best.transcript.strip():
                interim.append(best.transcript.strip())
                stability.append(result.stability)
        if interim:
            yield Result(
                text=" ".join(interim),
                is_final=False,
                start_ms=self.final_end * 1000 // BYTES_PER_SECOND,
                stability=min(stability) if any(stability) else None,
            )

    def _trim(self) -> None:
        """Audio before the last final is never replayed: drop it (caller holds cond)."""
        drop = min(self.final_end, self._cursor) - self.base
        if drop > 0:
            del self.audio[:drop]
            self.base += drop

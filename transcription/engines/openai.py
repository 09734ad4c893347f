"""OpenAI realtime transcription (STT_ENGINE=openai) with the real `openai` client.

One realtime connection per session (`intent=transcription`), server VAD turn detection, audio
resampled to the 24 kHz PCM16 the API requires and appended as it arrives. Deltas become interims,
completed items finals. A session that reaches the service's time limit is replaced by a new
connection transparently (times stay continuous). Failures are never silent: a refusal (bad key,
invalid request) ends the stream with `engine_rejected`; a transient failure (a dropped connection, a
server error, no transcript of the last audio in time) reconnects and replays the audio that has no
final yet, and a second one in a row ends it with `engine_unavailable`. Finals already produced stay.
Tested against a local fake server only.
"""
from __future__ import annotations

import base64
import logging
import math
import threading
import time
from typing import Iterator

from django.conf import settings

from ..backends import openai_client
from .base import AUTO_LANGUAGE, BYTES_PER_SECOND, FINALIZE, Control, EngineError, Result, StreamConfig
from .resample import Resampler16to24

logger = logging.getLogger(__name__)

DRAIN_SECONDS = 10.0  # at the end, how long to wait for the last items' transcripts
RECONNECTABLE = {"session_expired"}  # the service's time limit: roll over, not a failure
TRANSIENT_CODES = {"server_error", "rate_limit_exceeded"}  # (also any error of type server_error)
REFUSED_HTTP = {400, 401, 403, 404}  # a handshake refused for good (key, model, permission)
MAX_FAILURES = 2  # transient failures in a row (without a final between) before giving up


class OpenAIRealtimeRecognizer:
    name = "openai"

    def supports_language(self, language: str) -> bool:
        return True

    def stream(self, chunks: Iterator[bytes | Control], config: StreamConfig) -> Iterator[Result]:
        yield from RealtimeStream(openai_client(), config).run(chunks)


class Items:
    """What the service says about items (its phrases), as results, with their times in the session.
    All its state is read and changed under the stream's lock (`cond`)."""

    def __init__(self, cond: threading.Condition, language: str) -> None:
        self.cond = cond
        self.language = language
        self.offset_ms = 0  # where the current connection's audio starts in the session
        self.sent_ms = 0  # audio sent over all connections
        self.covered_ms = 0  # everything before this has a final
        self.pending: set[str] = set()  # items committed, transcript not yet completed
        self.spans: dict[str, list[int]] = {}  # item -> [start_ms] or [start_ms, end_ms]
        self.partial: dict[str, str] = {}
        # Our own commits (finalize, end) and the service's answers to them: when every one has been
        # answered after the closing commit, the service has processed all the audio we sent.
        self.commits_sent = 0
        self.commits_answered = 0
        # Audio not yet covered by a completed transcript, (start_ms, pcm16 at 16 kHz): replayed
        # into the next connection when the service ends one, so no phrase is lost at a rollover.
        self.kept: list[tuple[int, bytes]] = []

    def restart(self) -> list[tuple[int, bytes]]:
        """A new connection: what it must replay; item state starts afresh (caller holds cond)."""
        replay = list(self.kept)
        self.offset_ms = replay[0][0] if replay else self.sent_ms
        self.spans.clear()
        self.pending.clear()
        self.partial.clear()
        self.commits_sent = self.commits_answered = 0
        return replay

    def sent(self, chunk: bytes) -> None:
        """Audio appended upstream, kept until a final covers it (caller holds cond)."""
        self.kept.append((self.sent_ms, chunk))
        self.sent_ms += len(chunk) * 1000 // BYTES_PER_SECOND
        self._trim_kept()

    def drained(self) -> bool:
        """The service answered every commit and transcribed every item (caller holds cond)."""
        return (self.commits_answered >= self.commits_sent and not self.pending
                and not any(len(s) == 1 for s in self.spans.values()))

    def _trim_kept(self) -> None:
        """Keep audio from the last final's end, or from the open phrase's start (caller holds cond)."""
        open_starts = [span[0] for span in self.spans.values()]
        keep_from = min(open_starts) if open_starts else max(self.covered_ms, self.sent_ms - 1000)
        keep_from = max(keep_from - 300, 0) if open_starts else keep_from
        while self.kept and self.kept[0][0] + len(self.kept[0][1]) * 1000 // BYTES_PER_SECOND <= keep_from:
            self.kept.pop(0)

    def handle(self, event) -> Result | None:
        kind = event.type
        logger.debug("upstream event %s", kind)
        if kind == "input_audio_buffer.speech_started":
            with self.cond:
                self.spans[event.item_id] = [self.offset_ms + event.audio_start_ms]
        elif kind == "input_audio_buffer.speech_stopped":
            with self.cond:
                self.spans.setdefault(event.item_id, [self.offset_ms]).append(self.offset_ms + event.audio_end_ms)
        elif kind == "input_audio_buffer.committed":
            with self.cond:
                self.pending.add(event.item_id)
                span = self.spans.setdefault(event.item_id, [self.offset_ms])
                if len(span) == 1:  # no speech_stopped: committed by us (finalize or end), not by the VAD
                    span.append(self.sent_ms)
                    self.commits_answered += 1
        elif kind == "conversation.item.input_audio_transcription.delta":
            text = self.partial.get(event.item_id, "") + (event.delta or "")
            self.partial[event.item_id] = text
            start = self.spans.get(event.item_id, [self.offset_ms])[0]
            return Result(text=text.strip(), is_final=False, start_ms=start)
        elif kind == "conversation.item.input_audio_transcription.completed":
            return self._final(event.item_id, event.transcript, getattr(event, "logprobs", None))
        elif kind == "conversation.item.input_audio_transcription.failed":
            logger.warning("OpenAI could not transcribe item %s: %s", event.item_id, getattr(event, "error", None))
            self._done(event.item_id)
        elif kind == "error":  # not raised by the client while iterating: checked here
            self._error(event.error)
        return None

    def _error(self, error) -> None:
        code = getattr(error, "code", None)
        if code in RECONNECTABLE:
            raise _Reconnect()
        if code == "input_audio_buffer_commit_empty":  # a finalize or end with nothing said
            with self.cond:
                self.commits_answered += 1
                self.cond.notify_all()
            return
        message = getattr(error, "message", None) or str(error)
        if getattr(error, "type", None) == "server_error" or code in TRANSIENT_CODES:
            raise _Transient(message)
        raise EngineError(f"OpenAI refused the request: {message}", kind=EngineError.REJECTED)

    def _done(self, item_id: str) -> list[int]:
        with self.cond:
            self.pending.discard(item_id)
            span = self.spans.pop(item_id, [self.offset_ms, self.sent_ms])
            self.partial.pop(item_id, None)
            if len(span) > 1:
                self.covered_ms = max(self.covered_ms, span[1])
            self._trim_kept()
            self.cond.notify_all()
        return span

    def _final(self, item_id: str, transcript: str, logprobs=None) -> Result | None:
        span = self._done(item_id)
        if not transcript.strip():
            return None
        start = span[0]
        end = span[1] if len(span) > 1 else self.sent_ms
        # The service's token log-probabilities (asked for in the session): the final's confidence.
        scores = [p.logprob for p in logprobs or () if getattr(p, "logprob", None) is not None]
        confidence = round(math.exp(sum(scores) / len(scores)), 3) if scores else None
        return Result(text=transcript.strip(), is_final=True, start_ms=start, end_ms=max(start, end),
                      confidence=confidence,
                      language=self.language if self.language != AUTO_LANGUAGE else None)


class RealtimeStream:
    """One session upstream: its connection (renewed when needed), a sender thread, and the items."""

    def __init__(self, client, config: StreamConfig) -> None:
        self.client = client
        self.config = config
        self.resampler = Resampler16to24()
        self.cond = threading.Condition()
        self.items = Items(self.cond, config.language)
        self.connection = None
        self.sending_done = False
        self.failure: Exception | None = None  # set when the stream is over: the sender stops
        self.finished = False  # every commit answered and every item transcribed: we closed it
        self.drain_timed_out = False
        self.connected_at = time.monotonic()

    def session_config(self) -> dict:
        transcription = {"model": settings.OPENAI_TRANSCRIBE_MODEL}
        if self.config.language != AUTO_LANGUAGE:
            transcription["language"] = self.config.language.split("-")[0].lower()
        if self.config.vocabulary:  # the transcription prompt: a list of the terms to expect
            transcription["prompt"] = ", ".join(self.config.vocabulary)
        return {
            "type": "transcription",
            "include": ["item.input_audio_transcription.logprobs"],
            "audio": {
                "input": {
                    "format": {"type": "audio/pcm", "rate": 24000},
                    "transcription": transcription,
                    "turn_detection": {"type": "server_vad", "silence_duration_ms": settings.STT_ENDPOINT_SILENCE_MS},
                }
            },
        }

    def connect(self) -> None:
        """Open a connection (again), replaying the audio that has no final yet."""
        self._disconnect()
        connection = self.client.realtime.connect(extra_query={"intent": "transcription"}).enter()
        try:
            self._prepare(connection)
        except BaseException:
            connection.close()
            raise

    def _prepare(self, connection) -> None:
        connection.session.update(session=self.session_config())
        with self.cond:
            replay = self.items.restart()
        resampler = Resampler16to24()
        for _, pcm in replay:
            connection.input_audio_buffer.append(audio=base64.b64encode(resampler.process(pcm)).decode("ascii"))
        with self.cond:
            # Commits sent to the old connection will never be answered; if the audio is all sent,
            # the closing commit is repeated here.
            if self.sending_done:
                self.items.commits_sent = 1
                connection.input_audio_buffer.commit()
            self.resampler = resampler
            self.connection = connection
            self.connected_at = time.monotonic()
            self.cond.notify_all()

    # -- sender thread: client audio -> upstream --
    def _current_connection(self):
        with self.cond:
            while self.connection is None and self.failure is None:
                self.cond.wait()
            return None if self.failure is not None else self.connection

    def send_audio(self, chunks: Iterator[bytes | Control]) -> None:
        for chunk in chunks:
            while True:
                connection = self._current_connection()
                if connection is None:  # the stream is over
                    return
                try:
                    if chunk is FINALIZE:
                        with self.cond:
                            self.items.commits_sent += 1
                        connection.input_audio_buffer.commit()
                    else:
                        with self.cond:
                            if self.connection is not connection:
                                continue  # reconnected meanwhile: resample for the new one
                            audio = base64.b64encode(self.resampler.process(chunk)).decode("ascii")
                            self.items.sent(chunk)
                        chunk = None  # kept: a reconnection replays it if this send fails
                        connection.input_audio_buffer.append(audio=audio)
                    break
                except Exception as exc:  # wait for the receiver to reconnect, then go on
                    logger.info("sending audio upstream failed: %s", exc)
                    with self.cond:
                        while self.connection is connection and self.failure is None:
                            self.cond.wait(timeout=1.0)
                    if chunk is None:
                        break
        with self.cond:
            self.items.commits_sent += 1
        connection = self._current_connection()
        if connection is not None:
            try:  # the phrase in progress is transcribed too ("commit_empty" if there is none)
                connection.input_audio_buffer.commit()
            except Exception:
                pass
        with self.cond:
            self.sending_done = True
            self.cond.notify_all()
        self._close_when_drained()

    def _close_when_drained(self) -> None:
        """Close once the service has answered the closing commit and every item has its transcript.

        A reconnection meanwhile (the service failed before answering) restarts the wait: the new
        connection replays the audio with no final and repeats the closing commit.
        """
        with self.cond:
            while self.failure is None and not self.items.drained():
                if time.monotonic() >= self.connected_at + DRAIN_SECONDS:
                    logger.warning("OpenAI realtime: no transcript of the last audio within %.0f s (commits %d/%d "
                                   "answered, %d pending)", DRAIN_SECONDS, self.items.commits_answered,
                                   self.items.commits_sent, len(self.items.pending))
                    self.drain_timed_out = True
                    break
                self.cond.wait(timeout=0.1)
            self.finished = self.items.drained()
            connection = self.connection
        if connection is not None:
            connection.close()

    # -- this thread: upstream events -> results --
    def run(self, chunks: Iterator[bytes | Control]) -> Iterator[Result]:
        sender = threading.Thread(target=self.send_audio, args=(chunks,), name="stt-openai-send", daemon=True)
        failures = 0
        try:
            while True:
                try:
                    if self.connection is None:
                        self.connect()
                        if sender.ident is None:
                            sender.start()
                    for event in self.connection:
                        result = self.items.handle(event)
                        if result is not None:
                            if result.is_final:  # progress: the failures before it are forgiven
                                failures = 0
                            yield result
                except _Reconnect:  # the service's session time limit: expected, roll over
                    logger.info("OpenAI realtime session expired: continuing on a new connection")
                    self._disconnect()
                    continue
                except EngineError:
                    raise
                except Exception as exc:  # dropped, refused or failed: refusals end here, the rest retry
                    self._raise_if_refused(exc)
                    problem = f"{exc.__class__.__name__}: {exc}"
                else:  # the connection closed: by us once all was transcribed, or by the service
                    if self.finished:
                        return
                    if self.drain_timed_out:
                        raise EngineError(f"the OpenAI realtime service did not transcribe the last audio within "
                                          f"{DRAIN_SECONDS:.0f} s", kind=EngineError.UNAVAILABLE)
                    problem = "the service closed the connection"
                failures += 1
                if failures >= MAX_FAILURES:
                    raise EngineError(f"the OpenAI realtime service failed {failures} times in a row: {problem}",
                                      kind=EngineError.UNAVAILABLE)
                logger.warning("OpenAI realtime failed (%s): reconnecting, replaying audio with no final", problem)
                self._disconnect()
                time.sleep(0.5)
        finally:
            with self.cond:
                if self.failure is None:
                    self.failure = EngineError("stream over")
                self.cond.notify_all()
            if self.connection is not None:
                self.connection.close()
            if sender.ident is not None:
                sender.join(timeout=DRAIN_SECONDS + 1)

    def _disconnect(self) -> None:
        """Drop the current connection; the sender waits until the next one is open."""
        with self.cond:
            old, self.connection = self.connection, None
        if old is not None:
            try:
                old.close()
            except Exception:
                pass

    @staticmethod
    def _raise_if_refused(exc: Exception) -> None:
        from websockets.exceptions import InvalidStatus

        if isinstance(exc, InvalidStatus) and exc.response.status_code in REFUSED_HTTP:
            raise EngineError(f"OpenAI refused the connection (HTTP {exc.response.status_code}); check "
                              "OPENAI_API_KEY and OPENAI_TRANSCRIBE_MODEL", kind=EngineError.REJECTED) from exc


class _Reconnect(Exception):
    """The upstream session ended by design (time limit): continue on a new connection."""


class _Transient(Exception):
    """The service failed in a way a new connection may fix (its server error, a rate limit)."""

"""A fake Google Cloud Speech-to-Text v2 gRPC server for the real client (no network, no credentials).

Recognition by amplitude over 100 ms blocks: a phrase is a run of loud blocks whose peak encodes its
number (peak = 2000 + 100 * n, see `phrase_frames`), ended by 300 ms of silence or by the client
half-closing. So a phrase recognised twice, or lost, shows in the transcripts.
"""
from __future__ import annotations

import threading
import time
from concurrent import futures
from datetime import timedelta

import grpc
import numpy as np
from google.cloud.speech_v2.types import cloud_speech

BLOCK = 3200  # 100 ms of 16 kHz PCM16


def phrase_frames(n: int, speech_blocks: int = 5, silence_blocks: int = 4) -> list[bytes]:
    loud = (np.ones(1600, dtype="<i2") * (2000 + 100 * n)).tobytes()
    return [loud] * speech_blocks + [bytes(BLOCK)] * silence_blocks


class FakeSpeech:
    """Each stream's record says why it ended: "half_close" (the client ended it: a rotation or the
    end), "limit" (the service's own cap, `limit_ms` of stream time, wall clock or audio, like the
    real 5-minute cap), "abort"/"unavailable" (injected faults), "denied", "quota" (beyond
    `max_streams` for one test: a runaway client)."""

    def __init__(self, *, abort_after_ms: int | None = None, unavailable_after_ms: int | None = None,
                 deny: bool = False, limit_ms: int | None = None, max_streams: int = 500) -> None:
        self.abort_after_ms = abort_after_ms
        self.unavailable_after_ms = unavailable_after_ms  # once, on the first stream
        self.deny = deny
        self.limit_ms = limit_ms
        self.max_streams = max_streams
        self.streams: list[dict] = []
        self.lock = threading.Lock()
        handler = grpc.method_handlers_generic_handler("google.cloud.speech.v2.Speech", {
            "StreamingRecognize": grpc.stream_stream_rpc_method_handler(
                self.streaming_recognize,
                request_deserializer=cloud_speech.StreamingRecognizeRequest.deserialize,
                response_serializer=cloud_speech.StreamingRecognizeResponse.serialize,
            )
        })
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        self.server.add_generic_rpc_handlers((handler,))
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()
        self.endpoint = f"127.0.0.1:{self.port}"

    def close(self) -> None:
        self.server.stop(grace=None)

    def ended_by(self) -> list[str]:
        return [stream.get("ended", "?") for stream in self.streams]

    def audio_sent_ms(self) -> int:
        return sum(stream["bytes"] for stream in self.streams) * 1000 // 32000

    def streaming_recognize(self, requests, context):
        first = next(requests)
        record = {"recognizer": first.recognizer, "config": first.streaming_config, "bytes": 0, "max_request": 0,
                  "first_has_audio": bool(first.audio), "opened": time.monotonic()}
        with self.lock:
            self.streams.append(record)
            number = len(self.streams)

        def abort(reason: str, code, message: str):
            record["ended"] = reason
            context.abort(code, message)

        if self.deny:
            abort("denied", grpc.StatusCode.PERMISSION_DENIED, "Permission 'speech.recognizers.recognize' denied")
        if number > self.max_streams:
            abort("quota", grpc.StatusCode.RESOURCE_EXHAUSTED, "Quota exceeded: too many streams")
        if self.limit_ms:  # the service's cap holds in silence too: a timer, not only on audio
            def cap() -> None:
                if "ended" not in record:
                    abort("limit", grpc.StatusCode.ABORTED, "Max duration reached for stream.")

            timer = threading.Timer(self.limit_ms / 1000, cap)
            timer.daemon = True
            timer.start()
            context.add_callback(timer.cancel)
        pending = b""
        phrase, silent, speech_end = None, 0, 0
        position = 0  # ms of this stream's audio

        def result(text: str, end_ms: int, final: bool):
            alt = cloud_speech.SpeechRecognitionAlternative(transcript=text, confidence=0.9 if final else 0.0)
            return cloud_speech.StreamingRecognizeResponse(results=[cloud_speech.StreamingRecognitionResult(
                alternatives=[alt], is_final=final, stability=0.0 if final else 0.8,
                result_end_offset=timedelta(milliseconds=end_ms), language_code="en-us")])

        for request in requests:
            record["bytes"] += len(request.audio)
            record["max_request"] = max(record["max_request"], len(request.audio))
            pending += request.audio
            while len(pending) >= BLOCK:
                block, pending = np.frombuffer(pending[:BLOCK], "<i2"), pending[BLOCK:]
                position += 100
                peak = int(np.abs(block.astype(np.int32)).max())
                if peak > 1000:
                    phrase, silent, speech_end = round((peak - 2000) / 100), 0, position
                    yield result(f"phrase {phrase}", position, False)
                elif phrase is not None:
                    silent += 1
                    if silent >= 3:
                        yield result(f"phrase {phrase}", speech_end, True)
                        phrase = None
                if self.limit_ms and position >= self.limit_ms:
                    abort("limit", grpc.StatusCode.ABORTED, "Max duration reached for stream.")
                if self.abort_after_ms and position >= self.abort_after_ms:
                    abort("abort", grpc.StatusCode.ABORTED, "Max duration of 5 minutes reached for stream.")
                if self.unavailable_after_ms and number == 1 and position >= self.unavailable_after_ms:
                    abort("unavailable", grpc.StatusCode.UNAVAILABLE, "The service is currently unavailable.")
        record.setdefault("ended", "half_close")
        if phrase is not None:  # half-close flushes the phrase in progress
            yield result(f"phrase {phrase}", speech_end, True)

"""Local fake OpenAI servers that speak the real protocols, for the real `openai` client.

- ChatServer: HTTP, POST /v1/chat/completions with stream=true -> SSE chunks.
- RealtimeServer: WebSocket /v1/realtime?intent=transcription, the transcription events.
Both record what they received so tests can check it.
"""
from __future__ import annotations

import base64
import json
import socket
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np


class ChatServer:
    """Translates by upper-casing the last user message; `fail_times` first requests get HTTP 500."""

    def __init__(self, fail_times: int = 0) -> None:
        self.requests: list[dict] = []
        self.fail_times = fail_times
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
                if self.path != "/v1/chat/completions" or not body.get("stream"):
                    self.send_error(404)
                    return
                if outer.fail_times > 0:
                    outer.fail_times -= 1
                    self.send_response(500)
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    self.wfile.write(b'{"error": {"message": "boom", "type": "server_error"}}')
                    return
                text = "EN: " + body["messages"][-1]["content"].upper()
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                for i, word in enumerate(text.split(" ")):
                    chunk = {"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": body["model"],
                             "choices": [{"index": 0, "delta": {"content": (" " if i else "") + word}, "finish_reason": None}]}
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    self.wfile.flush()
                self.wfile.write(b"data: [DONE]\n\n")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class RealtimeServer:
    """Server VAD by amplitude over 100 ms of 24 kHz audio; an item's transcript is 'phrase N'.

    `expire_after_ms`: on the first connection, once that much audio arrived, send the
    `session_expired` error (as the service does after ~60 min) and close, ignoring the rest; `drop_after_ms`: close abruptly instead,
    on every connection, once it received that much audio.
    `handshake_status`: refuse every connection with this HTTP status (401: a bad key).
    `errors`: service `error` events to send instead of handling a client event, each a dict
    {"on": "session.update" | "commit", "nth": n (that event's count on the connection, 1 by default),
    or "on": "audio", "at_ms": t (once the connection received t ms of audio; the append is dropped),
    "connection": k (1 by default; None for every connection), "error": {...}}.
    """

    def __init__(self, expire_after_ms: int | None = None, drop_after_ms: int | None = None,
                 handshake_status: int | None = None, errors: list[dict] | None = None) -> None:
        from websockets.sync.server import serve

        self.sessions: list[dict] = []
        self.samples = 0
        self.connections = 0
        self.items = 0
        self.expire_after_ms = expire_after_ms
        self.drop_after_ms = drop_after_ms
        self.handshake_status = handshake_status
        self.errors = errors or []
        self.errors_sent: list[str] = []
        self.problems: list[str] = []
        self.server = serve(self.handle, "127.0.0.1", 0, process_request=self.check_handshake)
        self.url = f"http://127.0.0.1:{self.server.socket.getsockname()[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()

    def check_handshake(self, connection, request):
        if self.handshake_status is not None:
            return connection.respond(self.handshake_status, "Incorrect API key provided.\n")
        return None

    def planned_error(self, kind: str, nth: int, connection: int, audio_ms: int) -> dict | None:
        for plan in self.errors:
            if plan.get("connection", 1) not in (None, connection) or plan.get("done", {}).get(connection):
                continue
            if (plan["on"] == kind and plan.get("nth", 1) == nth) or (
                    plan["on"] == "audio" and kind == "append" and audio_ms >= plan["at_ms"]):
                plan.setdefault("done", {})[connection] = True
                self.errors_sent.append(plan["error"].get("code") or plan["error"]["type"])
                return plan["error"]
        return None

    def handle(self, ws) -> None:
        self.connections += 1
        number = self.connections
        counts = {"session.update": 0, "append": 0, "commit": 0}
        if "intent=transcription" not in ws.request.path:
            self.problems.append(f"path {ws.request.path}")
        send = lambda event: ws.send(json.dumps({"event_id": uuid.uuid4().hex, **event}))  # noqa: E731
        appends = 0
        conn_samples = 0
        pending = np.zeros(0)
        item, start_ms, silent = None, 0, 0

        def finish(end_ms: int):
            nonlocal item
            self.items += 1
            send({"type": "input_audio_buffer.committed", "item_id": item, "previous_item_id": None})
            text = f"phrase {self.items}"
            for word in text.split(" "):
                send({"type": "conversation.item.input_audio_transcription.delta", "item_id": item,
                      "content_index": 0, "delta": word + " "})
            completed = {"type": "conversation.item.input_audio_transcription.completed", "item_id": item,
                         "content_index": 0, "transcript": text, "usage": {"type": "duration", "seconds": 1.0}}
            if "item.input_audio_transcription.logprobs" in (self.sessions[-1] if self.sessions else {}).get("include", []):
                completed["logprobs"] = [{"token": word, "logprob": -0.1 * (n + 1), "bytes": list(word.encode())}
                                         for n, word in enumerate(text.split(" "))]
            send(completed)
            item = None

        for message in ws:
            event = json.loads(message)
            kind = event.get("type")
            short = {"input_audio_buffer.append": "append", "input_audio_buffer.commit": "commit"}.get(kind, kind)
            if short in counts:
                counts[short] += 1
                error = self.planned_error(short, counts[short], number, conn_samples * 1000 // 24000)
                if error is not None:
                    send({"type": "error", "error": error})
                    continue
            if kind == "session.update":
                self.sessions.append(event["session"])
                send({"type": "session.updated", "session": event["session"]})
            elif kind == "input_audio_buffer.append":
                appends += 1
                raw = base64.b64decode(event["audio"])
                if len(raw) % 2:
                    self.problems.append("odd PCM16 length")
                audio = np.frombuffer(raw, dtype="<i2").astype(np.float64)
                self.samples += len(audio)
                pending = np.concatenate([pending, audio])
                while len(pending) >= 2400:  # 100 ms at 24 kHz
                    block, pending = pending[:2400], pending[2400:]
                    block_ms = conn_samples * 1000 // 24000
                    if self.expire_after_ms is not None and self.connections == 1 and block_ms >= self.expire_after_ms:
                        send({"type": "error", "error": {"type": "invalid_request_error", "code": "session_expired",
                                                         "message": "Your session hit the maximum duration of 60 minutes."}})
                        ws.close()
                        return
                    conn_samples += 2400
                    if np.abs(block).max() > 1000:
                        silent = 0
                        if item is None:
                            item, start_ms = uuid.uuid4().hex[:8], block_ms
                            send({"type": "input_audio_buffer.speech_started", "item_id": item, "audio_start_ms": block_ms})
                    elif item is not None:
                        silent += 1
                        if silent >= 3:
                            send({"type": "input_audio_buffer.speech_stopped", "item_id": item,
                                  "audio_end_ms": block_ms - 200})
                            finish(block_ms)
                if self.drop_after_ms is not None and conn_samples * 1000 // 24000 >= self.drop_after_ms:
                    ws.socket.shutdown(socket.SHUT_RDWR)  # abrupt: no close frame (FIN now, whatever reads it)
                    ws.socket.close()
                    return
            elif kind == "input_audio_buffer.commit":
                if item is None:
                    send({"type": "error", "error": {"type": "invalid_request_error",
                                                     "code": "input_audio_buffer_commit_empty", "message": "empty"}})
                else:
                    finish(conn_samples * 1000 // 24000)
            else:
                self.problems.append(f"unexpected event {kind}")

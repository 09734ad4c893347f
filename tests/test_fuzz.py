"""Fuzzing the socket protocol: whatever a client sends, the server answers with a documented event
or close code, never crashes, and leaves no thread behind."""
import asyncio
import json
import threading
import uuid

import pytest

pytestmark = pytest.mark.slow
from asgiref.sync import sync_to_async
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from transcription import protocol

from .conftest import loud_frame, quiet_frame

DOCUMENTED_CODES = {
    protocol.BAD_JSON, protocol.UNKNOWN_TYPE, protocol.BAD_REQUEST, protocol.UNSUPPORTED_LANGUAGE,
    protocol.TEXT_TOO_LARGE, protocol.NOT_STARTED, protocol.BAD_AUDIO, protocol.FRAME_TOO_LARGE, protocol.BUSY, protocol.RATE,
    protocol.SESSION_EXPIRED, protocol.TOO_MANY_SESSIONS, protocol.TRANSLATION_UNSUPPORTED,
}
EVENT_TYPES = {"system", "interim", "final", "error", "translation"}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=10,
)
messages = st.one_of(
    st.fixed_dictionaries({"type": st.sampled_from(["start", "end", "finalize", "keepalive", "resume", "dance", ""])},
                          optional={"lang": json_values | st.sampled_from(["en-US", "ko-KR", "auto"]),
                                    "translate_to": json_values, "session": json_values, "last_seq": json_values})
    .map(lambda m: ("text", json.dumps(m))),
    json_values.map(lambda v: ("text", json.dumps(v))),
    st.text(max_size=60).map(lambda t: ("text", t)),
    st.binary(max_size=4000).map(lambda b: ("bytes", b)),
    st.sampled_from([("bytes", loud_frame()), ("bytes", quiet_frame()), ("bytes", bytes(64 * 1024 + 2)),
                     ("text", "x" * 17000)]),
)


@pytest.mark.django_db(transaction=True)
@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frames=st.lists(messages, min_size=1, max_size=12))
def test_random_frames_get_documented_answers(connect, make_user, scripted, frames):
    before = {t.name for t in threading.enumerate()}

    async def exchange():
        user = await sync_to_async(make_user)(f"fuzz-{uuid.uuid4().hex[:12]}")  # the database is not reset per example
        communicator = await connect(user=user)
        assert (await communicator.connect())[0]
        for kind, payload in frames:  # raw ASGI messages: empty frames too
            await communicator.send_input({"type": "websocket.receive", kind: payload})
        await communicator.send_json_to({"type": "end"})
        answers = []
        while not await communicator.receive_nothing(timeout=0.3):
            output = await communicator.receive_output(timeout=1)
            assert output["type"] == "websocket.send", output  # the server never closed on us
            answers.append(json.loads(output["text"]))
        await communicator.disconnect()
        return answers

    answers = asyncio.run(exchange())
    for event in answers:
        assert event["type"] in EVENT_TYPES, event
        if event["type"] == "error":
            assert event["code"] in DOCUMENTED_CODES, event
    leaked = [t.name for t in threading.enumerate() if t.name not in before and t.name.startswith("stt")]
    assert leaked == []

"""`manage.py stream`: a program streams a file with a token and gets the transcript printed."""
import subprocess
import sys

import jiwer
import numpy as np
import pytest

from .conftest import DATA, normalise_en, read_wav
from .servers import ROOT, ServerProcess

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = ServerProcess(tmp_path_factory.mktemp("stream"), env={"STT_WHISPER_MODEL_EN": ""})
    server.create_user("program")
    server.token = server.create_token("program")
    server.start()
    yield server
    server.stop()


def stereo_flac_44k(tmp_path):
    """jfk.wav re-encoded as a 44.1 kHz stereo FLAC: the command must decode and resample it."""
    import av

    mono = np.frombuffer(read_wav(DATA / "en" / "jfk.wav"), dtype="<i2")
    upsampled = np.interp(np.arange(0, len(mono), 16000 / 44100), np.arange(len(mono)), mono).astype("<i2")
    path = tmp_path / "jfk.flac"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("flac", rate=44100, layout="stereo")
        frame = av.AudioFrame.from_ndarray(np.stack([upsampled, upsampled], axis=1).reshape(1, -1), format="s16", layout="stereo")
        frame.sample_rate = 44100
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def stream(server, *args, token=None):
    return subprocess.run(
        [sys.executable, "manage.py", "stream", *args, "--url", f"{server.ws_url}/ws/transcribe/",
         "--token", server.token if token is None else token],
        cwd=ROOT, env=server.env, capture_output=True, text=True, timeout=300,
    )


def test_stream_prints_the_transcript_of_any_audio_file(server, tmp_path):
    done = stream(server, str(stereo_flac_44k(tmp_path)), "--lang", "en-US", "--speed", "3")
    assert done.returncode == 0, done.stderr
    finals = [line.split("] ", 1)[1] for line in done.stdout.splitlines() if line.startswith("[")]
    reference = normalise_en((DATA / "en" / "jfk.txt").read_text())
    assert jiwer.wer(reference, normalise_en(" ".join(finals))) <= 0.05, done.stdout
    assert "session " in done.stderr and "final(s)" in done.stderr


def test_stream_fails_loudly_on_a_bad_token_or_file(server, tmp_path):
    refused = stream(server, str(DATA / "en" / "jfk.wav"), "--lang", "en-US", token="stt_not-a-token")
    assert refused.returncode != 0 and "not authenticated" in refused.stderr
    (tmp_path / "noise.mp3").write_bytes(b"this is not audio")
    broken = stream(server, str(tmp_path / "noise.mp3"))
    assert broken.returncode != 0 and "cannot decode" in broken.stderr

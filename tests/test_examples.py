"""The examples in the README and docs/ are complete programs: each is taken from the page as written and
run against a real server (daphne, Whisper) with a Korean recording of two phrases and a pause. A broken or
outdated example fails here, not in a user's hands."""
import re
import subprocess
import sys
import wave
from pathlib import Path

import jiwer
import pytest

from .conftest import DATA, normalise_ko
from .servers import ROOT, ServerProcess

pytestmark = [pytest.mark.server, pytest.mark.model]

EXAMPLE = re.compile(r"```python\n(# (\w+\.py): python \w+\.py .*?)```", re.S)
PHRASES = ("kspon_006", "kspon_010")
EXPECTED = {"socket_client.py": "docs/protocol.md", "openai_file.py": "README.md", "deepgram_live.py": "README.md",
            "openai_realtime.py": "README.md"}


def examples() -> dict[str, str]:
    found = {}
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for code, name in EXAMPLE.findall(page.read_text()):
            found[name] = code
    return found


def test_the_documented_examples_are_all_there():
    assert set(EXPECTED) <= set(examples())


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = ServerProcess(tmp_path_factory.mktemp("examples"))
    server.create_user("reader")
    server.token = server.create_token("reader")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def talk(tmp_path_factory) -> Path:
    """kspon_006 and kspon_010, each followed by 2 s of silence: two phrases with a pause, 16 kHz mono."""
    path = tmp_path_factory.mktemp("audio") / "talk.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1), out.setsampwidth(2), out.setframerate(16000)
        for name in PHRASES:
            with wave.open(str(DATA / f"ko/{name}.wav")) as w:
                out.writeframes(w.readframes(w.getnframes()) + bytes(64000))
    return path


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_an_example_runs_as_written_and_prints_the_transcript(name, server, talk, tmp_path):
    program = tmp_path / name
    program.write_text(examples()[name])
    done = subprocess.run([sys.executable, str(program), str(talk)], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, env={"PATH": "/usr/bin:/bin", "STT_URL": server.url,
                                            "STT_API_TOKEN": server.token, "HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    if name == "openai_file.py":  # its words with times, then the text
        assert all(re.match(r"^\s*[\d.]+ \S", line) for line in lines[:-1]) and len(lines) > 5, done.stdout
        lines = lines[-1:]
    printed = normalise_ko(" ".join(re.sub(r"^\[[\d.]+s\] ", "", line) for line in lines))
    reference = "".join(normalise_ko((DATA / f"ko/{phrase}.txt").read_text()) for phrase in PHRASES)
    assert jiwer.cer(reference, printed) < 0.35, done.stdout

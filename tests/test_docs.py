"""The documentation stays true to the code: every setting the server reads is documented with its
default, and the README's user guide fits on a few screens. (The README's examples are run against a real
server by tests/test_examples.py.)"""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
READS = re.compile(r'(?:environ\.get|env_int|env_bool|env_float)\(\s*"([A-Z][A-Z0-9_]+)"')


def variables_read() -> set[str]:
    return {name for source in ("sttproject/settings.py", "sttproject/memory.py")
            for name in READS.findall((ROOT / source).read_text())}


def test_every_setting_the_server_reads_is_documented_and_in_the_env_example():
    read = variables_read()
    assert {"STT_STREAM_ALLOWED_HOSTS", "STT_ENGINE", "STT_MALLOC_ARENAS", "DATABASE_URL"} <= read
    documented = set(re.findall(r"^\| `([A-Z][A-Z0-9_]+)` \|", (ROOT / "docs/configuration.md").read_text(), re.M))
    example = set(re.findall(r"^([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M))
    assert sorted(read - documented) == [], "settings missing from docs/configuration.md"
    assert sorted(read - example) == [], "settings missing from .env.example"
    assert sorted(documented - read) == [], "documented settings the server never reads"


def test_the_readme_is_a_guide_with_its_two_commands_first():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) < 250
    first_block = readme.split("```")[1]
    assert "make run" in first_block and "make test" in first_block
    for link in re.findall(r"\]\(((?:docs/)[^)#]+)", readme):
        assert (ROOT / link).exists(), link

"""Real server processes for tests and bench/: daphne serving the application on loopback."""
from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REDIS = ("127.0.0.1", 6379)
POSTGRES = ("127.0.0.1", 5432)
PASSWORD = "server-pass-123"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """daphne on loopback with its own data folder (and SQLite file unless DATABASE_URL is given);
    can be killed and restarted."""

    def __init__(self, tmp: Path, *, env: dict | None = None, migrate: bool = True) -> None:
        self.tmp = tmp
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        self.env = dict(os.environ, DATABASE_URL=f"sqlite:///{tmp / 'db.sqlite3'}", STT_ENGINE="whisper",
                        STT_DATA_DIR=str(tmp), STT_MEDIA_ROOT=str(tmp / "media"), STT_RESUME_SECONDS="30", STT_REFINE="0",
                        STT_MODEL_CACHE=os.environ.get("STT_MODEL_CACHE", str(tmp / "models")), NO_GCE_CHECK="true",
                        STT_STREAM_PORTS="*")  # (loopback stream servers listen on any port)
        self.env.pop("DJANGO_SETTINGS_MODULE", None)
        self.env.update(env or {})
        if migrate:
            self.manage("migrate", "-v0")
        self.proc = None

    def manage(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, check=check,
                              capture_output=True, text=True)

    def create_user(self, username: str, password: str = PASSWORD) -> None:
        self.manage("shell", "-c", "from django.contrib.auth.models import User; "
                                   f"User.objects.create_user({username!r}, password={password!r})")

    def login_cookies(self, count: int, prefix: str = "bench", password: str = PASSWORD) -> list[str]:
        """`count` users, each with a logged-in browser session: their Cookie headers (hundreds of
        password logins would cost minutes)."""
        made = self.manage("shell", "-c", "\n".join([
            "import json",
            "from django.contrib.auth.models import User",
            "from django.contrib.auth import SESSION_KEY, BACKEND_SESSION_KEY, HASH_SESSION_KEY",
            "from django.contrib.sessions.backends.db import SessionStore",
            "keys = []",
            f"for i in range({count}):",
            f"    u = User.objects.create_user(f'{prefix}{{i}}', password={password!r})",
            "    s = SessionStore(); s[SESSION_KEY] = str(u.pk)",
            "    s[BACKEND_SESSION_KEY] = 'django.contrib.auth.backends.ModelBackend'",
            "    s[HASH_SESSION_KEY] = u.get_session_auth_hash(); s.create(); keys.append(s.session_key)",
            "print(json.dumps(keys))"]))
        return [f"sessionid={key}" for key in json.loads(made.stdout.strip().splitlines()[-1])]

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def status(self, field: str) -> str:
        """A field of /proc/<pid>/status (VmRSS, VmHWM, Threads)."""
        lines = Path(f"/proc/{self.proc.pid}/status").read_text().splitlines()
        return next(line.split(":", 1)[1].split()[0] for line in lines if line.startswith(field + ":"))

    def rss_mb(self) -> tuple[float, float]:
        return int(self.status("VmRSS")) / 1024, int(self.status("VmHWM")) / 1024

    def create_token(self, username: str) -> str:
        """An API token for the user, made the way the settings page makes it."""
        out = self.manage("shell", "-c", "from django.contrib.auth.models import User; from knox.models import AuthToken; "
                                         f"print(AuthToken.objects.create(User.objects.get(username={username!r}), expiry=None)[1])")
        return out.stdout.strip().splitlines()[-1]

    def start(self) -> None:
        log = open(self.tmp / f"server-{self.port}.log", "a")
        self.proc = subprocess.Popen([sys.executable, "-m", "sttproject.server", "-b", "127.0.0.1", "-p",
                                      str(self.port), "sttproject.asgi:application"],
                                     cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.1)
        raise RuntimeError(f"daphne did not start: see {log.name}")

    def start_worker(self) -> subprocess.Popen:
        """`manage.py stt_worker` with this server's settings: background jobs in a process of their own."""
        log = open(self.tmp / "worker.log", "a")
        return subprocess.Popen([sys.executable, "manage.py", "stt_worker"], cwd=ROOT, env=self.env, stdout=log,
                                stderr=subprocess.STDOUT)

    def log(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in self.tmp.glob("server-*.log"))

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


def reachable(address) -> bool:
    try:
        socket.create_connection(address, timeout=1).close()
        return True
    except OSError:
        return False


def require_services() -> None:
    """Skip the calling test module without the machine's Redis and PostgreSQL (fail in CI, which
    sets STT_REQUIRE_SERVICES=1)."""
    import pytest

    if not (reachable(REDIS) and reachable(POSTGRES)):
        if os.environ.get("STT_REQUIRE_SERVICES") == "1":
            raise RuntimeError("Redis (127.0.0.1:6379) and PostgreSQL (127.0.0.1:5432) are needed by this test")
        pytest.skip("Redis and PostgreSQL are not running on this machine", allow_module_level=True)


@contextlib.contextmanager
def postgres_database():
    """A fresh PostgreSQL database on the machine's server, dropped afterwards: its URL."""
    import uuid

    import psycopg

    name = f"stt_test_{uuid.uuid4().hex[:8]}"
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgres://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

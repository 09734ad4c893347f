"""Settings from the environment with safe defaults (every variable: docs/configuration.md)."""
import os
import secrets
import tempfile
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    return int(value) if value.strip() else default


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name, "")
    return float(value) if value.strip() else default


# Where generated state lives outside the repository (dev secret key, joined model).
DATA_DIR = Path(os.environ.get("STT_DATA_DIR") or Path.home() / ".local" / "share" / "sttproject")


def _dev_secret_key() -> str:
    """A generated key kept outside the repo so sessions survive restarts in development."""
    path = DATA_DIR / "secret_key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(50)
        try:  # created private (0600): never readable by others, not even for a moment
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first
            return path.read_text().strip()
        with os.fdopen(descriptor, "w") as file:
            file.write(key)
        return key


DEBUG = env_bool("DJANGO_DEBUG", False)
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or _dev_secret_key()
ALLOWED_HOSTS = [h for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",") if h]
CSRF_TRUSTED_ORIGINS = [o for o in os.environ.get("DJANGO_CSRF_TRUSTED_ORIGINS", "").split(",") if o]

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "rest_framework",
    "knox",
    "drf_spectacular",
    "django_tasks",
    "django_tasks_db",
    "transcription",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "sttproject.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "transcription.views.site_context",
            ],
        },
    },
]
WSGI_APPLICATION = None
ASGI_APPLICATION = "sttproject.asgi.application"

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 0),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several threads write (finals, translations, background jobs): wait for the lock instead of
    # failing at once, let readers and the writer run together (WAL), and take the write lock at
    # the start of a transaction, so two writers never deadlock upgrading a read lock.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        timeout=20, transaction_mode="IMMEDIATE", init_command="PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;")
    # Connections are kept: opening one (with those pragmas) for every write was most of the database
    # thread's time, and at 300 relay sessions that thread held every final back by seconds.
    DATABASES["default"]["CONN_MAX_AGE"] = env_int("DATABASE_CONN_MAX_AGE", 600)
    # Tests too use a file, not a shared-cache in-memory database, whose table locks fail at once
    # when a second thread touches a table (the job runner, the consumers' database thread).
    DATABASES["default"]["TEST"] = {"NAME": str(Path(tempfile.gettempdir()) / f"sttproject-test-{os.getpid()}.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = os.environ.get("REDIS_URL", "")
# A live viewer waits for events in a blocking BRPOP of 5 s (channels-redis), while redis-py's default
# socket timeout is also 5 s: a quiet session then trips the timeout and kills the viewer. Reads must
# outlast every blocking call (checked at start-up: transcription.E005); a dead server is still noticed.
STT_REDIS_SOCKET_TIMEOUT = env_float("STT_REDIS_SOCKET_TIMEOUT", 20.0)


def redis_channel_layer(url: str, socket_timeout: float = STT_REDIS_SOCKET_TIMEOUT) -> dict:
    host = {"address": url, "socket_timeout": socket_timeout, "socket_connect_timeout": 5}
    return {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [host]}}


if REDIS_URL:
    CHANNEL_LAYERS = {"default": redis_channel_layer(REDIS_URL)}
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "transcription:recorder"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
WHITENOISE_USE_FINDERS = True  # serve from app/static dirs without collectstatic in `make run`

MEDIA_URL = "media/"  # not served publicly: audio goes through login-checked views
MEDIA_ROOT = Path(os.environ.get("STT_MEDIA_ROOT") or DATA_DIR / "media")

# Recordings (kept audio, uploads) go through Django's storage API: the local file system (MEDIA_ROOT)
# by default; STT_STORAGE=s3 for an S3-compatible store shared by every node and worker
# (django-storages; AWS_STORAGE_BUCKET_NAME, AWS_S3_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...: docs/operations.md).
STT_STORAGE = os.environ.get("STT_STORAGE", "local")
STORAGES = {
    "default": {"BACKEND": "storages.backends.s3.S3Storage" if STT_STORAGE == "s3"
                else "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
if STT_STORAGE == "s3":
    STORAGES["default"]["OPTIONS"] = {"file_overwrite": True, "querystring_auth": True,
                                      "default_acl": None}  # (the rest from AWS_* variables)

# Background jobs (uploads, the second pass, translating a finished session) on Django's tasks API
# (django-tasks): "database" (django-tasks-db: SQLite or PostgreSQL, any worker on the same
# database) or "rq" (django-tasks-rq on Redis: workers run
# `manage.py rqworker default --job-class django_tasks_rq.backend.Job`; tests/test_durable_jobs.py).
STT_TASKS_BACKEND = os.environ.get("STT_TASKS_BACKEND", "database")
if STT_TASKS_BACKEND == "rq":
    INSTALLED_APPS.append("django_rq")
    TASKS = {"default": {"BACKEND": "django_tasks_rq.RQBackend", "QUEUES": ["default"]}}
    RQ_QUEUES = {"default": {"URL": os.environ.get("STT_TASKS_REDIS_URL") or REDIS_URL or "redis://127.0.0.1:6379/0",
                             "DEFAULT_TIMEOUT": 24 * 3600}}
else:
    TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
# Run a worker inside each server process (with the database backend): `make run` needs nothing else.
STT_EMBEDDED_WORKER = env_bool("STT_EMBEDDED_WORKER", True)
# A job whose worker has not shown a sign of life for this long is resumed by another (it beats 4x as often).
STT_JOB_STALE_SECONDS = env_float("STT_JOB_STALE_SECONDS", 30.0)
STT_JOB_ATTEMPTS = env_int("STT_JOB_ATTEMPTS", 3)  # attempts before a job whose workers keep dying fails

# Production behind TLS (DJANGO_HTTPS=true): secure cookies, HSTS, http->https redirect. The proxy
# must set X-Forwarded-Proto. `manage.py check --deploy` is clean with it (tests/test_access.py).
HTTPS = env_bool("DJANGO_HTTPS", False)
if HTTPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SSL_REDIRECT", True)
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 365 * 24 * 3600)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", True)

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True

# REST API: browser sessions (CSRF enforced) or API tokens (`Authorization: Bearer <token>`).
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "knox.auth.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 20,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
}
# knox keeps only a SHA-512 digest of each token; the owner sees the token once, when it is made.
REST_KNOX = {
    "AUTH_HEADER_PREFIX": "Bearer",
    "TOKEN_PREFIX": "stt_",  # recognisable by secret scanners
    "TOKEN_TTL": None,  # the expiry is chosen per token on the settings page
}
SPECTACULAR_SETTINGS = {
    "TITLE": "sttproject API",
    "DESCRIPTION": "Sessions, transcripts and translations. Live audio goes over the WebSocket (docs/protocol.md).",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "ENUM_NAME_OVERRIDES": {
        "SessionStatusEnum": "transcription.models.TranscriptionSession.Status",
        "JobStatusEnum": "transcription.models.Job.Status",
    },
}

# --- sttproject ---------------------------------------------------------------------------
ALLOW_SIGNUP = env_bool("ALLOW_SIGNUP", True)
STT_ENGINE = os.environ.get("STT_ENGINE", "whisper")
STT_DEFAULT_LANGUAGE = os.environ.get("STT_DEFAULT_LANGUAGE", "ko-KR")
STT_LANGUAGES = [
    ("ko-KR", "한국어 (Korean)"),
    ("en-US", "English (US)"),
    ("ja-JP", "日本語 (Japanese)"),
    ("zh-CN", "中文 (Chinese, Simplified)"),
    ("es-ES", "Español (Spanish)"),
    ("fr-FR", "Français (French)"),
    ("de-DE", "Deutsch (German)"),
]
# Whisper: a model name faster-whisper knows, a folder, or one of the packaged names "base"/"tiny.en".
STT_WHISPER_MODEL = os.environ.get("STT_WHISPER_MODEL", "base")
# English sessions may use a smaller English-only model; empty = use STT_WHISPER_MODEL.
STT_WHISPER_MODEL_EN = os.environ.get("STT_WHISPER_MODEL_EN", "")
STT_WHISPER_THREADS = env_int("STT_WHISPER_THREADS", 2)
STT_WHISPER_BEAM_SIZE = env_int("STT_WHISPER_BEAM_SIZE", 1)
# A final whose greedy decode loops is decoded once more with this beam (0: never); with
# STT_WHISPER_RETRY_UNSURE also one that is unsure (better text, a longer tail: docs/benchmarks.md, issue 15).
STT_WHISPER_RETRY_BEAM = env_int("STT_WHISPER_RETRY_BEAM", 5)
STT_WHISPER_RETRY_UNSURE = env_bool("STT_WHISPER_RETRY_UNSURE", False)
STT_WHISPER_DEVICE = os.environ.get("STT_WHISPER_DEVICE", "auto")  # auto | cpu | cuda
STT_WHISPER_COMPUTE_TYPE = os.environ.get("STT_WHISPER_COMPUTE_TYPE", "")  # empty: int8 on CPU, float16 on CUDA
STT_WHISPER_BATCH = os.environ.get("STT_WHISPER_BATCH", "auto")  # finals decoded together: auto (CUDA) | 1 | 0
STT_WHISPER_BATCH_SIZE = env_int("STT_WHISPER_BATCH_SIZE", 8)
# The second pass over a session's kept audio when it ends: "auto" (whisper sessions), "1" or "0".
STT_REFINE = os.environ.get("STT_REFINE", "auto")
STT_REFINE_BEAM_SIZE = env_int("STT_REFINE_BEAM_SIZE", 5)  # the pass can afford a beam (bench/accuracy.py --refine)
# Windows of 30 s decoded together per background job while no live session decodes here; while
# one does, a job is at most this much speech (engines/offline.py).
STT_REFINE_BATCH_SIZE = env_int("STT_REFINE_BATCH_SIZE", 8)
STT_REFINE_WINDOW_SECONDS = env_float("STT_REFINE_WINDOW_SECONDS", 10.0)
# How whisper is given a session's vocabulary: "confirm" (a second decode, with the terms, of a phrase
# that sounds like one), "prompt" or "hotwords" (on every decode), "off" (bench/vocabulary.py).
STT_WHISPER_VOCABULARY = os.environ.get("STT_WHISPER_VOCABULARY", "confirm")
STT_MODEL_CACHE = Path(os.environ.get("STT_MODEL_CACHE") or DATA_DIR / "models")
# Endpointing: a phrase ends after this much silence, or is cut at the maximum length.
STT_ENDPOINT_SILENCE_MS = env_int("STT_ENDPOINT_SILENCE_MS", 500)
STT_MAX_PHRASE_SECONDS = env_float("STT_MAX_PHRASE_SECONDS", 15.0)
# Decode a phrase's final as soon as its end is known (TAIL of silence after its last speech),
# while the endpoint's silence runs out; the decode is thrown away if speech resumes.
STT_SPECULATIVE_FINALS = env_bool("STT_SPECULATIVE_FINALS", True)
# Whisper finals carry each word's start, end and probability (faster-whisper's alignment pass).
STT_WORD_TIMES = env_bool("STT_WORD_TIMES", True)
# Interim decodes: at most this often (seconds); the engine stretches it when decodes are slow.
STT_INTERIM_INTERVAL = env_float("STT_INTERIM_INTERVAL", 1.0)
# Above this busy share of the decode workers (last 10 s), interims are not decoded: finals only.
STT_INTERIM_LOAD_MAX = env_float("STT_INTERIM_LOAD_MAX", 0.8)
# Audio accepted but not yet recognised, in seconds; beyond it the client gets `busy`.
STT_MAX_BACKLOG_SECONDS = env_float("STT_MAX_BACKLOG_SECONDS", 30.0)
# How long a disconnect waits for the last phrase to be finalised and stored (< daphne's 10 s).
STT_CLOSE_TIMEOUT = env_float("STT_CLOSE_TIMEOUT", 6.0)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.channels.server": {"level": "INFO"},
                "faster_whisper": {"level": "WARNING"},
                "httpx": {"level": "WARNING"}},  # (a line per HLS segment of a pulled stream otherwise)  # (a line per batch of every upload otherwise)
}
# How long `end` (or a second `start`) waits for the engine to drain its backlog.
STT_END_TIMEOUT = env_float("STT_END_TIMEOUT", 60.0)
# A dropped socket's session keeps running this long, waiting for a `resume` (0 = end at once).
STT_RESUME_SECONDS = env_float("STT_RESUME_SECONDS", 30.0)
# A session with neither audio nor keepalive for this long is ended (reason "idle").
STT_IDLE_SECONDS = env_float("STT_IDLE_SECONDS", 60.0)
# Keep each session's audio (one WAV per session, written as it arrives) for playback.
STT_KEEP_AUDIO = env_bool("STT_KEEP_AUDIO", True)
# Translation of each final: "whisper" (offline, speech to English), "openai", or a dotted path.
STT_TRANSLATOR = os.environ.get("STT_TRANSLATOR", "whisper")
STT_TRANSLATION_CONTEXT = env_int("STT_TRANSLATION_CONTEXT", 3)  # earlier finals given as context
# Languages a text translator (openai) may be asked for, as ISO 639-1 codes ("en", or "en-GB": its "en").
STT_TRANSLATION_LANGUAGES = [code.strip().lower() for code in os.environ.get(
    "STT_TRANSLATION_LANGUAGES", "en,ko,ja,zh,es,fr,de,pt,it,ru,ar,hi,vi,th,id,nl,pl,tr,uk,sv").split(",")
    if code.strip()]
# Languages a session's live viewers may ask captions in, beside the speaker's own translation: each
# costs a translation of every phrase, on the owner's account (share links reach anyone).
STT_MAX_VIEWER_LANGUAGES = env_int("STT_MAX_VIEWER_LANGUAGES", 3)

# OpenAI (and OpenAI-compatible servers): on only when configured.
OPENAI_API_KEY = os.environ.get("OPENAI_API_KEY", "")
OPENAI_BASE_URL = os.environ.get("OPENAI_BASE_URL", "")
OPENAI_TRANSLATE_MODEL = os.environ.get("OPENAI_TRANSLATE_MODEL", "gpt-4o-mini")
# A current realtime transcription model in openai 3.57's types (gpt-4o-*-transcribe and whisper-1
# are marked for shutdown on 2027-02-26; gpt-realtime-whisper takes no server VAD).
OPENAI_TRANSCRIBE_MODEL = os.environ.get("OPENAI_TRANSCRIBE_MODEL", "gpt-live-transcribe")
OPENAI_TIMEOUT = env_float("OPENAI_TIMEOUT", 30.0)

# Google Cloud Speech-to-Text v2 (STT_ENGINE=google). Credentials the standard way (ADC).
GOOGLE_CLOUD_PROJECT = os.environ.get("GOOGLE_CLOUD_PROJECT", "")
GOOGLE_SPEECH_LOCATION = os.environ.get("GOOGLE_SPEECH_LOCATION", "global")
GOOGLE_SPEECH_MODEL = os.environ.get("GOOGLE_SPEECH_MODEL", "long")
GOOGLE_SPEECH_ENDPOINT = os.environ.get("GOOGLE_SPEECH_ENDPOINT", "")  # host:port override
GOOGLE_SPEECH_INSECURE = env_bool("GOOGLE_SPEECH_INSECURE", False)  # plaintext channel (emulators, tests)
# A stream is replaced before the service's 5-minute limit (wall clock or audio sent, whichever first).
STT_GOOGLE_STREAM_SECONDS = env_float("STT_GOOGLE_STREAM_SECONDS", 290.0)
# The boost of the session's vocabulary (an inline phrase set; Google allows 0-20).
GOOGLE_SPEECH_BOOST = env_float("GOOGLE_SPEECH_BOOST", 10.0)
# Decode workers shared by all Whisper sessions of the process (each uses STT_WHISPER_THREADS).
STT_DECODE_WORKERS = env_int("STT_DECODE_WORKERS", 1)
# Recognition sessions per process; beyond it `start` gets `busy` (0 = no limit).
STT_MAX_SESSIONS = env_int("STT_MAX_SESSIONS", 2)  # what whisper base holds on 2 cores (bench/load.py --conversations)
# Sessions one user may run at once, live or uploads being transcribed (0 = no limit). Below the
# process limit by default, so one user's dropped sockets, held for resume, never lock others out.
STT_MAX_SESSIONS_PER_USER = env_int("STT_MAX_SESSIONS_PER_USER", max(1, STT_MAX_SESSIONS - 1))
# A session is ended (reason "max_length") after this much audio; the page starts the next one.
STT_MAX_SESSION_SECONDS = env_float("STT_MAX_SESSION_SECONDS", 4 * 3600)
# Speaker labels on finals (3D-Speaker CAM++, transcription/speakers/); `"speakers": false` per session.
STT_SPEAKERS = env_bool("STT_SPEAKERS", True)
STT_SPEAKER_CHANGES = env_bool("STT_SPEAKER_CHANGES", True)  # end a phrase where another voice takes over
# Background jobs one user may have queued or running (the second pass, speakers, translations; 0 = no
# limit): beyond it a session is not refined, a translation is refused (too_many_jobs).
STT_MAX_JOBS_PER_USER = env_int("STT_MAX_JOBS_PER_USER", 8)
# Uploaded recordings (the upload page, POST /api/sessions/, /v1/audio/transcriptions).
STT_MAX_UPLOAD_MB = env_float("STT_MAX_UPLOAD_MB", 500)
STT_MAX_UPLOAD_SECONDS = env_float("STT_MAX_UPLOAD_SECONDS", 4 * 3600)
# /v1/audio/transcriptions answers when the file is done, or 504 after this long (the work goes on).
STT_V1_WAIT_SECONDS = env_float("STT_V1_WAIT_SECONDS", 1800)
# A client may send audio at most this many times faster than real time, after a burst of
# STT_AUDIO_BURST_SECONDS (reconnect buffers, `stream --speed`); beyond it frames get `rate` (0 = no limit).
STT_MAX_AUDIO_RATE = env_float("STT_MAX_AUDIO_RATE", 3.0)
STT_AUDIO_BURST_SECONDS = env_float("STT_AUDIO_BURST_SECONDS", 10.0)
# Open transcription sockets one user may have in this process; more are closed with 4429 (0 = no limit).
STT_MAX_CONNECTIONS_PER_USER = env_int("STT_MAX_CONNECTIONS_PER_USER", 10)
# An engine that takes no audio for this long while audio waits is declared hung: the session ends.
STT_ENGINE_STALL_SECONDS = env_float("STT_ENGINE_STALL_SECONDS", 45.0)
# On SIGTERM, running sessions get this long to finish their phrase, store it and say `ended`.
STT_SHUTDOWN_SECONDS = env_float("STT_SHUTDOWN_SECONDS", 10.0)
# Heavy requests (exports, captions files, enrolment, search, opening a stream, uploads, the REST API) run
# on a pool of their own, not on the one thread every synchronous view shares (transcription/heavy.py):
# its threads, what one client may have there at once (beyond: 429), and the whole pool (beyond: 503).
STT_HEAVY_THREADS = env_int("STT_HEAVY_THREADS", 1)  # 2 put 2 of 2 cores on it: bench/hostile.py --only pages
STT_HEAVY_PER_CLIENT = env_int("STT_HEAVY_PER_CLIENT", 4)
STT_HEAVY_QUEUE = env_int("STT_HEAVY_QUEUE", 64)
# /metrics (Prometheus): staff, or a scraper sending `Authorization: Bearer <token>` (empty: staff only).
STT_METRICS_TOKEN = os.environ.get("STT_METRICS_TOKEN", "")

# Live streams pulled by URL (POST /api/sessions/ {"source_url": ...}). Off while the list is empty.
# Hosts the server may connect to: names ("radio.example.org"), a domain and its subdomains
# (".example.org"), "*" (any name), or IP addresses and networks ("127.0.0.1", "10.0.0.0/8"). A name
# must resolve to public addresses only, unless the address is itself listed (docs/operations.md).
STT_STREAM_ALLOWED_HOSTS = [h.strip() for h in os.environ.get("STT_STREAM_ALLOWED_HOSTS", "").split(",") if h.strip()]
# rtsp is not on by default: FFmpeg follows an RTSP server's redirects itself, unchecked.
STT_STREAM_SCHEMES = [s.strip().lower() for s in os.environ.get(
    "STT_STREAM_SCHEMES", "https,http,rtmp,rtmps,srt").split(",") if s.strip()]
# Ports a pulled stream may use ("*": any): the schemes' own and the usual alternatives (Icecast's 8000).
STT_STREAM_PORTS = [p.strip() for p in os.environ.get(
    "STT_STREAM_PORTS", "80,443,1935,554,8000,8080,8443,8554,9000").split(",") if p.strip()]
# A stream that stalls this long (no audio) is reconnected; after this many failed tries in a row the
# session ends (reason "source_lost").
STT_STREAM_STALL_SECONDS = env_float("STT_STREAM_STALL_SECONDS", 10.0)
STT_STREAM_RECONNECTS = env_int("STT_STREAM_RECONNECTS", 5)
# A pulled stream whose process gave no sign of life for this long (it was killed) is ended
# `interrupted` (failure `server_lost`) by any process's job watchdog.
STT_STREAM_STALE_SECONDS = env_float("STT_STREAM_STALE_SECONDS", 30.0)

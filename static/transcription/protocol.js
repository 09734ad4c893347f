// The wire protocol's names and codes, as the server's transcription/protocol.py defines
// them (tests/test_protocol.py checks that the two agree). Pages import these; no literals elsewhere.

export const EVENT = {
  SYSTEM: "system", INTERIM: "interim", FINAL: "final", TRANSLATION: "translation", ERROR: "error", SNAPSHOT: "snapshot",
  CORRECTION: "correction", SPEAKER: "speaker",
};
export const SYSTEM = { STARTED: "started", ENDED: "ended", RESUMED: "resumed", LAG: "lag", PROGRESS: "progress", SPEAKERS: "speakers" };

export const REASON = {
  END: "end", RESTART: "restart", IDLE: "idle", MAX_LENGTH: "max_length", ERROR: "error",
  DISCONNECT: "disconnect", SHUTDOWN: "shutdown", SOURCE_ENDED: "source_ended", SOURCE_LOST: "source_lost",
};

export const CODE = {
  BAD_JSON: "bad_json", UNKNOWN_TYPE: "unknown_type", BAD_REQUEST: "bad_request",
  UNSUPPORTED_LANGUAGE: "unsupported_language", TEXT_TOO_LARGE: "text_too_large", NOT_STARTED: "not_started",
  BAD_AUDIO: "bad_audio", FRAME_TOO_LARGE: "frame_too_large", BUSY: "busy", RATE: "rate",
  ENGINE_ERROR: "engine_error", ENGINE_UNAVAILABLE: "engine_unavailable", ENGINE_REJECTED: "engine_rejected",
  STORAGE: "storage", TOO_MANY_SESSIONS: "too_many_sessions", TOO_MANY_JOBS: "too_many_jobs",
  SESSION_EXPIRED: "session_expired",
  TRANSLATION_UNSUPPORTED: "translation_unsupported", UNAUTHENTICATED: "unauthenticated", READ_ONLY: "read_only",
  LIVE_UNAVAILABLE: "live_unavailable", TRANSLATION_FAILED: "translation_failed",
  SOURCE_NOT_ALLOWED: "source_not_allowed", SOURCE_UNREACHABLE: "source_unreachable", SOURCE_LOST: "source_lost",
  SERVER_LOST: "server_lost",
  TOO_MANY_LANGUAGES: "too_many_languages",
};

export const CLOSE = {
  NORMAL: 1000, SHUTTING_DOWN: 4012, TRY_AGAIN: 4013, UNAUTHENTICATED: 4401, FORBIDDEN: 4403, REPLACED: 4409,
  TOO_MANY_CONNECTIONS: 4429,
};

// The one global the pages leave: what the browser tests read (the recorder's socket and session,
// the live page's reconnect count). Nothing in the application reads it.
export function exposeForTests(name, value) {
  window.sttTestHook = Object.assign(window.sttTestHook || {}, { [name]: value });
}

"""Transcript exports: TXT, SRT, WebVTT and JSON, with translations as a second line or field."""
from __future__ import annotations

import html
import json
from datetime import timedelta
from typing import Callable

import srt
import webvtt
from django.db.models import Max
from django.http import HttpResponse

from .models import Segment, TranscriptionSession

EXPORT_FORMATS = {
    "txt": "text/plain; charset=utf-8",
    "srt": "application/x-subrip; charset=utf-8",
    "vtt": "text/vtt; charset=utf-8",
    "json": "application/json; charset=utf-8",
}


def clock(ms: int, separator: str) -> str:
    """3723004 -> '01:02:03,004' (SRT) or '01:02:03.004' (WebVTT)."""
    hours, rest = divmod(int(ms), 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}{separator}{millis:03d}"


def _lines(segment: Segment) -> list[str]:
    return [segment.text] + [t.text for t in segment.translations.all()]


def speakers_shown(session: TranscriptionSession, segments: list[Segment]) -> bool:
    """Exports name speakers when there is more than one, or the owner named one: one unnamed voice
    (dictation) gets no "S1:" on every line."""
    return _speakers_shown(session, {s.speaker for s in segments})


def _speakers_shown(session: TranscriptionSession, labels: set[str]) -> bool:
    return bool(session.speaker_names) or len(labels - {""}) > 1


def _said(segment: Segment, shown: bool) -> str:
    """The phrase with its speaker's name in front ("민수: …"), as TXT and SRT show it."""
    return f"{segment.speaker_name}: {segment.text}" if shown and segment.speaker else segment.text


def export_txt(session: TranscriptionSession, segments: list[Segment]) -> str:
    out, shown = [], speakers_shown(session, segments)
    for s in segments:
        out.append(f"[{clock(s.start_ms, '.')[:-4]}] {_said(s, shown)}")
        out += [f"    ({t.language}) {t.text}" for t in s.translations.all()]
    return "\n".join(out) + "\n"


def _cue_lines(segment: Segment) -> str:
    """The cue text: the phrase, then each translation on its own line, without blank lines."""
    return "\n".join(line.strip() for line in _lines(segment) if line.strip())


MAX_CUE_CHARS = 84  # two caption lines of 42: a longer phrase is cut into cues at word boundaries
MAX_CUE_MS = 7000


def cues_of(segment: Segment) -> list[tuple[int, int, str]]:
    """The phrase's caption cues. A long phrase whose timed words still spell its text (it was not
    corrected) and that has no translation lines is cut at word boundaries, each cue timed by its
    words; any other phrase is one cue."""
    words = [w for w in segment.words or [] if str(w.get("word", "")).strip()]
    text = _cue_lines(segment)
    whole = [(segment.start_ms, segment.end_ms, text)]
    if (len(text) <= MAX_CUE_CHARS and segment.end_ms - segment.start_ms <= MAX_CUE_MS) or not words \
            or text != segment.text.strip() \
            or "".join(w["word"] for w in words).replace(" ", "") != segment.text.replace(" ", ""):
        return whole
    cues, current = [], []
    for word in words:
        joined = " ".join(w["word"].strip() for w in current + [word])
        if current and (len(joined) > MAX_CUE_CHARS or word["end_ms"] - current[0]["start_ms"] > MAX_CUE_MS):
            cues.append(current)
            current = []
        current.append(word)
    cues.append(current)
    out = [(c[0]["start_ms"], c[-1]["end_ms"], " ".join(w["word"].strip() for w in c)) for c in cues]
    out[0] = (segment.start_ms, *out[0][1:])
    out[-1] = (out[-1][0], max(out[-1][1], segment.end_ms), out[-1][2])
    return out


def export_srt(session: TranscriptionSession, segments: list[Segment]) -> str:
    shown = speakers_shown(session, segments)
    return srt_of([(start, end, (f"{s.speaker_name}: " if shown and s.speaker else "") + text)
                   for s in segments for start, end, text in cues_of(s)])


def export_vtt(session: TranscriptionSession, segments: list[Segment]) -> str:
    """A speaker's phrases in WebVTT voice spans: `<v 민수>…`."""
    shown = speakers_shown(session, segments)
    cues = [(cue, s.speaker_name if shown else "") for s in segments for cue in cues_of(s)]
    return vtt_of([cue for cue, _ in cues], voices=[voice for _, voice in cues])


def live_vtt(session: TranscriptionSession, language: str = "") -> str:
    """The captions stored so far (a running session's grow with each final), or their translations
    into `language` (phrases not yet translated are left out), for players that poll a WebVTT file."""
    cues = _live_cues(session, language)
    return vtt_of([cue for cue, _ in cues], voices=[voice for _, voice in cues])


def _live_cues(session: TranscriptionSession, language: str,
               between: tuple[int, int] | None = None) -> list[tuple[tuple[int, int, str], str]]:
    """(cue, voice) for every stored phrase (those overlapping `between`, in ms, if given), or for its
    translation into `language` where there is one."""
    segments = session.segments.prefetch_related("translations").order_by("index")
    if between is not None:  # (a 6 s caption segment of a 4 h session reads its own phrases only)
        segments = segments.filter(start_ms__lt=between[1], end_ms__gt=between[0])
    segments = list(segments)
    if not language:
        if between is None:
            shown = speakers_shown(session, segments)
        else:  # the session's speakers decide, not the window's
            shown = _speakers_shown(session, set(session.segments.order_by().values_list("speaker", flat=True).distinct()))
        return [(cue, s.speaker_name if shown else "") for s in segments for cue in cues_of(s)]
    translated = {s.pk: t.text for s in segments for t in s.translations.all() if t.language == language}
    return [((s.start_ms, s.end_ms, translated[s.pk]), "") for s in segments if translated.get(s.pk)]


HLS_CAPTION_SECONDS = 6  # the length of each WebVTT segment of a session's HLS captions


def hls_captions_count(session: TranscriptionSession) -> int:
    """How many caption segments are complete: those before the last stored final's end while the
    session runs (finals are stored in order, so nothing earlier can still come), all once it is over."""
    last_end = session.segments.aggregate(last=Max("end_ms"))["last"] or 0
    if session.status == TranscriptionSession.Status.ACTIVE:
        return last_end // (HLS_CAPTION_SECONDS * 1000)
    return -(-max(last_end, session.audio_ms) // (HLS_CAPTION_SECONDS * 1000))


def hls_captions_playlist(session: TranscriptionSession, segment_url) -> str:
    """An HLS subtitles playlist (EVENT: it grows while the session runs, ENDLIST once it is over), to
    go beside the stream in a master playlist (`#EXT-X-MEDIA:TYPE=SUBTITLES`)."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", f"#EXT-X-TARGETDURATION:{HLS_CAPTION_SECONDS}",
             "#EXT-X-MEDIA-SEQUENCE:0", "#EXT-X-PLAYLIST-TYPE:EVENT"]
    for number in range(hls_captions_count(session)):
        lines += [f"#EXTINF:{HLS_CAPTION_SECONDS:.3f},", segment_url(number)]
    if session.status != TranscriptionSession.Status.ACTIVE:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def hls_captions_segment(session: TranscriptionSession, number: int, language: str = "") -> str:
    """Caption segment `number`: the cues overlapping its 6 s (one that spans two is in both, as HLS
    allows). X-TIMESTAMP-MAP puts the session's 0 at a pulled stream's first timestamp, so a player
    shows the captions in time with that stream's own segments."""
    start, end = number * HLS_CAPTION_SECONDS * 1000, (number + 1) * HLS_CAPTION_SECONDS * 1000
    cues = [(cue, voice) for cue, voice in _live_cues(session, language, between=(start, end))
            if cue[0] < end and cue[1] > start]
    body = vtt_of([cue for cue, _ in cues], voices=[voice for _, voice in cues]).removeprefix("WEBVTT\n")
    mpegts = (session.stream_start_ms or 0) * 90 % 2 ** 33  # MPEG-TS clock: 90 kHz, 33 bits
    return f"WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:{mpegts},LOCAL:00:00:00.000\n{body}\n"


def srt_of(cues: list[tuple[int, int, str]]) -> str:
    """SubRip, written by the `srt` library. SRT has no escapes: a "-->" in the text would read as
    a timing line to some players, so it becomes "->"."""
    subtitles = [
        srt.Subtitle(n, timedelta(milliseconds=start), timedelta(milliseconds=max(end, start + 1)),
                     text.replace("-->", "->"))
        for n, (start, end, text) in enumerate(cues, start=1)
    ]
    return srt.compose(subtitles, reindex=False)


def vtt_of(cues: list[tuple[int, int, str]], voices: list[str] | None = None) -> str:
    """WebVTT, written by webvtt-py, which refuses a cue containing "-->" or a blank line: the text is
    escaped first (&, < and > as the format requires), which also turns "-->" into "--&gt;". A voice
    (a speaker's name) opens the cue as `<v name>`."""
    def voiced(text: str, voice: str) -> str:
        escaped = html.escape(text, quote=False)
        return f"<v {html.escape(voice, quote=False).replace('>', '')}>{escaped}" if voice else escaped

    captions = [
        webvtt.Caption(clock(start, "."), clock(max(end, start + 1), "."), voiced(text, voice))
        for (start, end, text), voice in zip(cues, voices or [""] * len(cues))
    ]
    return webvtt.WebVTT(captions=captions).content


def export_json(session: TranscriptionSession, segments: list[Segment]) -> str:
    data = {
        "session": str(session.pk),
        "title": session.title,
        "language": session.language,
        "engine": session.engine,
        "started_at": session.started_at.isoformat(),
        "ended_at": session.ended_at.isoformat() if session.ended_at else None,
        "segments": [
            {
                "index": s.index,
                "start_ms": s.start_ms,
                "end_ms": s.end_ms,
                "text": s.text,
                "speaker": s.speaker_name or None,
                "speaker_label": s.speaker or None,
                "language": s.language,
                "confidence": s.confidence,
                "doubtful": s.doubtful,
                "words": s.words,
                "translations": {t.language: t.text for t in s.translations.all()},
            }
            for s in segments
        ],
    }
    return json.dumps(data, ensure_ascii=False, indent=2) + "\n"


EXPORTERS: dict[str, Callable[[TranscriptionSession, list[Segment]], str]] = {
    "txt": export_txt,
    "srt": export_srt,
    "vtt": export_vtt,
    "json": export_json,
}


def export_session(session: TranscriptionSession, fmt: str) -> tuple[str, str, str]:
    """(body, content type, file name) of the session in `fmt`."""
    segments = list(session.segments.prefetch_related("translations").order_by("index"))
    for segment in segments:  # (their session is this one: not 3,000 copies of it from a join)
        Segment.session.field.set_cached_value(segment, session)
    stem = f"session-{session.started_at:%Y%m%d-%H%M}-{str(session.pk)[:8]}"
    return EXPORTERS[fmt](session, segments), EXPORT_FORMATS[fmt], f"{stem}.{fmt}"


def export_response(session: TranscriptionSession, fmt: str) -> HttpResponse:
    """The export as a download (pages, REST API and admin alike); `fmt` must be in EXPORT_FORMATS."""
    body, content_type, filename = export_session(session, fmt)
    response = HttpResponse(body, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response

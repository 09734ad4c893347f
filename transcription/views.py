import logging
from datetime import timedelta
from urllib.parse import quote

from asgiref.sync import async_to_sync

from django.conf import settings
from django.core.cache import cache
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import UserCreationForm
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from . import selectors, services
from .sources import stream_sessions, stream_urls, uploads
from .exports import (EXPORT_FORMATS, export_response, hls_captions_count, hls_captions_playlist, hls_captions_segment,
                      live_vtt)
from .templatetags.stt import UNSURE_BELOW
from .forms import GlossaryForm
from .media import audio_response
from .realtime.broadcast import notify_revoked
from .realtime import control
from .realtime.control import announce_speakers
from .jobs import TooManyJobs, job_start
from .models import Job, Voice
from .translation import get_translator
from .voices import NoVoice, enrol


logger = logging.getLogger(__name__)


def site_context(request):
    return {"allow_signup": settings.ALLOW_SIGNUP}


def signup(request):
    if not settings.ALLOW_SIGNUP:
        raise Http404("Sign-up is closed")
    if request.user.is_authenticated:
        return redirect("transcription:recorder")
    form = UserCreationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user)
        return redirect("transcription:recorder")
    return render(request, "registration/signup.html", {"form": form})


def translate_targets() -> list[tuple[str, str]]:
    """Targets the configured translator can produce (from any supported source language)."""
    translator = get_translator()
    targets = [(code.split("-")[0], label) for code, label in settings.STT_LANGUAGES]
    return [(code, label) for code, label in targets if translator.supports(source="auto", target=code)]


@login_required
def recorder(request, upload_error: str = "", status: int = 200, stream_error: str = "", stream_url: str = ""):
    return render(
        request,
        "transcription/recorder.html",
        {
            "languages": settings.STT_LANGUAGES,
            "default_language": settings.STT_DEFAULT_LANGUAGE,
            "translate_targets": translate_targets(),
            "upload_error": upload_error,
            "stream_error": stream_error,
            "stream_url": stream_url,
            "streams_on": bool(settings.STT_STREAM_ALLOWED_HOSTS),
            "max_upload_mb": settings.STT_MAX_UPLOAD_MB,
            "max_upload_hours": settings.STT_MAX_UPLOAD_SECONDS / 3600,
        },
        status=status,
    )


@login_required
@require_POST
def upload(request):
    """The recorder page's "Upload a recording": queued, then followed on the live page."""
    file = request.FILES.get("file")
    if file is None:
        return recorder(request, upload_error="Choose a file to upload.", status=400)
    try:
        fields = uploads.upload_fields(language=request.POST.get("language", ""),
                                       translate_to=request.POST.get("translate_to", ""))
        session = uploads.accept_file(user=request.user, file=file, fields=fields)
    except uploads.UploadError as exc:
        return recorder(request, upload_error=f"Not uploaded: {exc} ({exc.code}).", status=400)
    return redirect("transcription:live_own", session_id=session.pk)


@login_required
@require_POST
def stream_start(request):
    """The recorder page's "Caption a live stream": pulled by the server, followed on the live page."""
    fields = {"lang": request.POST.get("language", ""), "translate_to": request.POST.get("translate_to", "")}
    url = request.POST.get("source_url", "")[:2000]
    try:
        session_id = stream_sessions.start(user=request.user, url=url, fields=fields)
    except stream_sessions.REFUSALS as exc:
        return recorder(request, stream_error=f"Not started: {exc} ({exc.code}).", status=400,
                        stream_url=stream_urls.redact(url))
    except stream_sessions.NoServerLoop as exc:
        return recorder(request, stream_error=f"Not started: {exc}.", status=503, stream_url=stream_urls.redact(url))
    return redirect("transcription:live_own", session_id=session_id)


@login_required
@require_POST
def session_stop(request, session_id):
    """Stop a running session (a pulled stream's Stop button); it ends with its last phrase stored."""
    session = selectors.session_get_for_user(user=request.user, session_id=session_id)
    control.stop_session(session)
    return redirect("transcription:live_own", session_id=session.pk)


@login_required
def session_list(request):
    query = request.GET.get("q", "").strip()[:200]
    sessions = selectors.session_list_for_user(user=request.user, search=query)
    page = Paginator(sessions, 25).get_page(request.GET.get("page"))
    return render(request, "transcription/session_list.html", {"page": page, "q": query})


@login_required
def session_detail(request, session_id):
    session = selectors.session_get_for_user(user=request.user, session_id=session_id)
    segments = selectors.segments_for_session(session=session)
    languages = sorted({t.language for s in segments for t in s.translations.all()})
    return render(
        request,
        "transcription/session_detail.html",
        {
            "session": session,
            "segments": segments,
            "formats": list(EXPORT_FORMATS),
            "translate_targets": translate_targets(),
            "translated": bool(languages),
            "share_links": selectors.share_links_for_session(session=session),
            "jobs": selectors.jobs_for_session(session=session),
            "changed": any(s.original_text and s.text != s.original_text for s in segments),
            "unsure": any((w.get("probability") or 1.0) < UNSURE_BELOW
                          for s in segments for w in [*(s.words or []), *(s.live_words or [])]),
            "speakers": speaker_rows(session, segments),
            "share_expiry_choices": SHARE_EXPIRY_CHOICES,
        },
    )


def speaker_rows(session, segments) -> list[tuple[str, str, int]]:
    """(label, name, colour number) of each speaker in order of appearance, for the page."""
    labels = list(dict.fromkeys(s.speaker for s in segments if s.speaker))
    names = session.speaker_names or {}
    return [(label, names.get(label, ""), speaker_colour(label)) for label in labels]


def speaker_colour(label: str) -> int:
    return (int(label[1:]) - 1) % 8 + 1 if label[1:].isdigit() else 0


@login_required
@require_POST
def session_translate(request, session_id):
    """Translate a finished session into another language, after the fact."""
    session = selectors.session_get_for_user(user=request.user, session_id=session_id)
    target = request.POST.get("target", "")
    if target not in dict(translate_targets()):
        messages.error(request, f"The translator ({get_translator().name}) cannot translate into {target!r}.")
    else:  # in the background: the page shows its progress and the translations as they come
        try:
            _, started = job_start(session=session, kind=Job.Kind.TRANSLATE, language=target)
        except TooManyJobs as exc:
            messages.error(request, exc.message)
            return redirect("transcription:session_detail", session_id=session.pk)
        if started:
            messages.success(request, f"Translating into {target}: the translations appear below as they are made.")
        else:
            messages.info(request, f"A translation into {target} is already running.")
    return redirect("transcription:session_detail", session_id=session.pk)


@login_required
def session_audio(request, session_id):
    return audio_response(request, selectors.session_get_for_user(user=request.user, session_id=session_id))


@login_required
def session_export(request, session_id, fmt):
    if fmt not in EXPORT_FORMATS:
        raise Http404("Unknown export format")
    return export_response(selectors.session_get_for_user(user=request.user, session_id=session_id), fmt)


@login_required
@require_POST
def session_rename(request, session_id):
    session = selectors.session_get_for_user(user=request.user, session_id=session_id)
    services.session_rename(session=session, title=request.POST.get("title", ""))
    messages.success(request, "Session renamed.")
    return redirect("transcription:session_detail", session_id=session.pk)


@login_required
@require_POST
def session_speakers(request, session_id):
    """Name the session's speakers: the form sends `name_S1`, `name_S2`, ..."""
    session = selectors.session_get_for_user(user=request.user, session_id=session_id)
    names = {key[5:]: value for key, value in request.POST.items() if key.startswith("name_")}
    try:
        services.session_name_speakers(session=session, names=names)
    except ValueError as exc:
        messages.error(request, str(exc))
    else:
        announce_speakers(session)
        messages.success(request, "Speakers named.")
    return redirect("transcription:session_detail", session_id=session.pk)


@login_required
@require_POST
def session_voice(request, session_id):
    """Remember a labelled speaker's voice under a name, for this user's later sessions."""
    session = selectors.session_get_for_user(user=request.user, session_id=session_id)
    try:
        voice = enrol(session, request.POST.get("speaker", ""), request.POST.get("name", ""))
    except NoVoice as exc:
        messages.error(request, str(exc))
    else:
        announce_speakers(session)
        messages.success(request, f"Voice saved as {voice.name}: your next sessions will name it.")
    return redirect("transcription:session_detail", session_id=session.pk)


@login_required
def voices(request):
    return render(request, "transcription/voices.html", {"voices": Voice.objects.filter(owner=request.user)})


@login_required
@require_POST
def voice_delete(request, voice_id):
    deleted, _ = Voice.objects.filter(owner=request.user, pk=voice_id).delete()
    if not deleted:
        raise Http404("no such voice")
    messages.success(request, "Voice deleted.")
    return redirect("transcription:voices")


@login_required
@require_POST
def session_delete(request, session_id):
    session = selectors.session_get_for_user(user=request.user, session_id=session_id)
    control.stop_session(session)  # (a running one stops first, wherever it runs)
    services.session_delete(session=session)
    messages.success(request, "Session deleted.")
    return redirect("transcription:session_list")


# ---- live captions: share links and the read-only live page ----

SHARE_EXPIRY_CHOICES = [("", "never (until revoked)"), ("1", "1 hour"), ("24", "1 day"), ("168", "7 days")]


@login_required
@require_POST
def share_create(request, session_id):
    session = selectors.session_get_for_user(user=request.user, session_id=session_id)
    hours = request.POST.get("expires_hours", "")
    if hours not in dict(SHARE_EXPIRY_CHOICES):
        raise Http404("Unknown expiry")
    link = services.share_create(session=session, expires_in=timedelta(hours=int(hours)) if hours else None)
    url = request.build_absolute_uri(reverse("transcription:live_shared", args=[link.token]))
    messages.success(request, f"Share link created: {url}")
    return redirect("transcription:session_detail", session_id=session.pk)


@login_required
@require_POST
def share_revoke(request, session_id, share_id):
    session = selectors.session_get_for_user(user=request.user, session_id=session_id)
    if services.share_revoke(session=session, share_id=share_id):
        try:  # viewers watching through it are disconnected at once (they are refused at reconnect anyway)
            async_to_sync(notify_revoked)(session.pk, share_id)
        except Exception:  # the channel layer is down: the link is revoked all the same
            logger.warning("viewers of revoked link %s not notified", share_id)
        messages.success(request, "Share link revoked; anyone watching through it was disconnected.")
    return redirect("transcription:session_detail", session_id=session.pk)


def live_shared(request, token):
    """The page a share link opens: no login needed; the link is remembered for the socket."""
    return render(request, "transcription/live.html", {"session": shared_session(request, token), "shared": True,
                                                       "translate_targets": translate_targets()})


def shared_session(request, token):
    """The session of an active share link, which this browser may now watch (the viewer socket reads it)."""
    link = selectors.share_get_active(token=token)
    if link is None:
        raise Http404("This link is invalid, expired or revoked")
    granted = [i for i in request.session.get(selectors.SHARES_SESSION_KEY, []) if i != link.pk][-19:]
    request.session[selectors.SHARES_SESSION_KEY] = granted + [link.pk]
    return link.session


OVERLAY_LINES = range(1, 11)
OVERLAY_SIZES = range(16, 161)


def overlay_shared(request, token):
    """Captions for OBS or vMix (a browser source): a share link plus `overlay/`, set by URL
    parameters: `lines` (1-10, default 2), `lang` (also show a translation), `size` (text height in px,
    16-160, default 42), `position` (`bottom` or `top`). Out-of-range values fall back to the defaults."""
    session = shared_session(request, token)

    def number(name, allowed, default):
        value = request.GET.get(name, "")
        return int(value) if value.isdigit() and int(value) in allowed else default

    lang = request.GET.get("lang", "")
    return render(request, "transcription/overlay.html", {
        "session": session, "lines": number("lines", OVERLAY_LINES, 2), "size": number("size", OVERLAY_SIZES, 42),
        "lang": lang if lang in dict(translate_targets()) else "",
        "position": "top" if request.GET.get("position") == "top" else "bottom"})


CAPTIONS_FRESH_SECONDS = 1.0  # a captions file is built at most this often per session and language


def captions_shared(request, token):
    """A share link's captions as a WebVTT file that grows as finals are stored, for players that poll
    it (`?lang=en`: the stored translations). Not cached by players; readable from any origin, as the
    link is. Built at most once a second whoever polls (the link is still checked every time)."""
    link = selectors.share_get_active(token=token)
    if link is None:
        raise Http404("This link is invalid, expired or revoked")
    language = request.GET.get("lang", "")[:16]
    key = f"stt:captions:{link.session_id}:{language}"
    body = cache.get(key)
    if body is None:
        body = live_vtt(link.session, language)
        cache.set(key, body, CAPTIONS_FRESH_SECONDS)
    return _captions_response(body, EXPORT_FORMATS["vtt"])


def captions_hls_shared(request, token):
    """A share link's captions as HLS subtitles: a playlist of 6 s WebVTT segments that grows as
    finals are stored (`?lang=en`: the translations), to list beside a stream in a master playlist."""
    link = selectors.share_get_active(token=token)
    if link is None:
        raise Http404("This link is invalid, expired or revoked")
    language = request.GET.get("lang", "")[:16]
    query = f"?lang={quote(language)}" if language else ""
    playlist = hls_captions_playlist(link.session, lambda number: f"captions/{number}.vtt{query}")
    return _captions_response(playlist, "application/vnd.apple.mpegurl")


def caption_segment_shared(request, token, number):
    link = selectors.share_get_active(token=token)
    if link is None or number >= hls_captions_count(link.session):
        raise Http404("No such caption segment (yet)")
    segment = hls_captions_segment(link.session, number, request.GET.get("lang", "")[:16])
    return _captions_response(segment, EXPORT_FORMATS["vtt"])


def _captions_response(body: str, content_type: str) -> HttpResponse:
    """Never cached (it grows); readable from any origin, as the link is."""
    response = HttpResponse(body, content_type=content_type)
    response["Cache-Control"] = "no-cache, no-store"
    response["Access-Control-Allow-Origin"] = "*"
    return response


@login_required
def live_own(request, session_id):
    session = selectors.session_get_for_user(user=request.user, session_id=session_id)
    return render(request, "transcription/live.html", {"session": session, "shared": False,
                                                       "translate_targets": translate_targets()})


# ---- API tokens for programs ----

TOKEN_EXPIRY_CHOICES = [("30", "30 days"), ("90", "90 days"), ("365", "1 year"), ("", "never")]


@login_required
def api_tokens(request):
    """List, create (shown once) and revoke the user's API tokens. Only a digest is stored."""
    new_token = None
    if request.method == "POST":
        days = request.POST.get("expires_days", "30")
        if days not in dict(TOKEN_EXPIRY_CHOICES):
            raise Http404("Unknown expiry")
        new_token = services.api_token_create(user=request.user, expires_in=timedelta(days=int(days)) if days else None,
                                              name=request.POST.get("name", ""))
    tokens = selectors.api_tokens_for_user(user=request.user)
    return render(request, "transcription/api_tokens.html", {
        "tokens": tokens, "new_token": new_token, "expiry_choices": TOKEN_EXPIRY_CHOICES,
        "host": request.get_host(), "ws_scheme": "wss" if request.is_secure() else "ws",
        "http_scheme": request.scheme,
    })


@login_required
@require_POST
def api_token_revoke(request):
    if services.api_token_revoke(user=request.user, digest=request.POST.get("digest", "")):
        messages.success(request, "Token revoked: programs using it are refused from now on.")
    return redirect("transcription:api_tokens")


# ---- the glossary: names and jargon the recognizer should expect ----

@login_required
def glossary(request):
    terms = selectors.glossary_for_user(user=request.user)
    form = GlossaryForm(request.POST or None, initial={"terms": GlossaryForm.initial_text(terms)})
    if request.method == "POST" and form.is_valid():
        count = services.glossary_replace(user=request.user, terms=form.cleaned_data["terms"])
        messages.success(request, f"Glossary saved: {count} term(s). New sessions use it.")
        return redirect("transcription:glossary")
    return render(request, "transcription/glossary.html", {"form": form, "count": terms.count()})

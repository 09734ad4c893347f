"""One form for a language everywhere a session or phrase is stored or shown: the BCP-47 tag the page
offers ("ko" from a Deepgram or OpenAI client and "ko-KR" from the page are the same session language)."""
from __future__ import annotations

from django.conf import settings

AUTO = "auto"


def language_tag(code: str | None) -> str:
    """'ko' -> 'ko-KR' (the region the page's list gives the language), 'EN_us' -> 'en-US'; 'auto' and ''
    stay; a language the page does not list keeps its own tag, in BCP-47's case."""
    code = (code or "").strip().replace("_", "-")
    if not code or code.lower() == AUTO:
        return code.lower()
    base, *rest = code.split("-")
    tag = "-".join([base.lower(), *(part.upper() if len(part) == 2 else part.title() if len(part) == 4 else part
                                    for part in rest)])
    if rest:
        return tag
    offered = {offered.split("-")[0].lower(): offered for offered, _ in settings.STT_LANGUAGES}
    return offered.get(tag, tag)

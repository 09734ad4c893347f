from django import template

register = template.Library()


@register.filter
def mmss(milliseconds) -> str:
    """12345 -> '0:12'; 3723000 -> '1:02:03'."""
    seconds = int(milliseconds or 0) // 1000
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


UNSURE_BELOW = 0.5  # a word's probability under this is marked on the session page for review


def spelled(words, text: str) -> list[tuple[str, dict]] | None:
    """Each timed word with the text before it (spaces as `text` has them), if the words spell `text`;
    else None (data from before words were kept in step with the text)."""
    text, at, out = text or "", 0, []
    for word in words or []:
        token = str(word.get("word", "")).strip()
        if not token:
            continue
        found = text.find(token, at)
        if found < 0 or text[at:found].strip():
            return None
        out.append((text[at:found], word))
        at = found + len(token)
    return out if out and not text[at:].strip() else None


def word_html(word: dict) -> str:
    from django.utils.html import escape

    text, probability = escape(word["word"].strip()), word.get("probability")
    if probability is not None and probability < UNSURE_BELOW:
        return f'<mark class="unsure" title="confidence {int(probability * 100)}%">{text}</mark>'
    return text


def marked(words, text: str):
    from django.utils.html import escape
    from django.utils.safestring import mark_safe

    found = spelled(words, text)
    return mark_safe("".join(escape(gap) + word_html(w) for gap, w in found)) if found else escape(text)


@register.filter
def transcript_marked(segment):
    """The phrase as it reads now, its unsure words marked (<mark class="unsure">), and what changed since
    the live final (the second pass, a correction) marked word by word: <del>gone</del> <ins>new</ins>."""
    import difflib

    from django.utils.html import escape
    from django.utils.safestring import mark_safe

    if not segment.original_text or segment.text == segment.original_text:
        return marked(segment.words, segment.text)
    after = spelled(segment.words, segment.text) or [(" ", {"word": w}) for w in segment.text.split()]
    live = spelled(segment.live_words if segment.live_words is not None else segment.words, segment.original_text)
    before = [w["word"].strip() for _, w in live] if live else segment.original_text.split()
    out = []
    matcher = difflib.SequenceMatcher(a=before, b=[w["word"].strip() for _, w in after], autojunk=False)
    for op, a1, a2, b1, b2 in matcher.get_opcodes():
        new = after[b1:b2]
        if op == "equal":
            out += [escape(gap) + word_html(w) for gap, w in new]
            continue
        out.append(escape(new[0][0]) if new else " ")  # the space before the change
        if a2 > a1:
            out.append(f"<del>{escape(' '.join(before[a1:a2]))}</del> ")
        if new:
            out.append("<ins>" + word_html(new[0][1]) + "".join(escape(gap) + word_html(w) for gap, w in new[1:])
                       + "</ins>")
    return mark_safe("".join(out).strip())


@register.filter
def live_marked(segment):
    """The live final as it was sent, its unsure words marked."""
    text = segment.original_text or segment.text
    return marked(segment.live_words if segment.live_words is not None else segment.words, text)

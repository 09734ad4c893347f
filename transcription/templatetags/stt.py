from django import template

register = template.Library()


@register.filter
def mmss(milliseconds) -> str:
    """12345 -> '0:12'; 3723000 -> '1:02:03'."""
    seconds = int(milliseconds or 0) // 1000
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


@register.filter
def changes_from(current: str, original: str):
    """`current` with what changed since `original` marked, word by word: <del>gone</del> <ins>new</ins>."""
    import difflib

    from django.utils.html import escape
    from django.utils.safestring import mark_safe

    before, after = (original or "").split(), (current or "").split()
    out = []
    for op, a1, a2, b1, b2 in difflib.SequenceMatcher(a=before, b=after, autojunk=False).get_opcodes():
        if op == "equal":
            out.append(escape(" ".join(after[b1:b2])))
            continue
        if a2 > a1:
            out.append(f"<del>{escape(' '.join(before[a1:a2]))}</del>")
        if b2 > b1:
            out.append(f"<ins>{escape(' '.join(after[b1:b2]))}</ins>")
    return mark_safe(" ".join(out))


UNSURE_BELOW = 0.5  # a word's probability under this is marked on the session page for review


@register.filter
def unsure_marked(segment):
    """The phrase's words, those the recogniser was unsure of marked (<mark class="unsure">), when its
    timed words spell its text (they do until someone corrects it); else the plain text."""
    from django.utils.html import escape
    from django.utils.safestring import mark_safe

    words = [w for w in segment.words or [] if str(w.get("word", "")).strip()]
    if not words or "".join(w["word"] for w in words).replace(" ", "") != segment.text.replace(" ", ""):
        return segment.text
    out = []
    for word in words:
        text, probability = escape(word["word"].strip()), word.get("probability")
        if probability is not None and probability < UNSURE_BELOW:
            out.append(f'<mark class="unsure" title="confidence {probability:.2f}">{text}</mark>')
        else:
            out.append(text)
    return mark_safe(" ".join(out))

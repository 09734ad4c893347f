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

from django import template

register = template.Library()


@register.filter
def mmss(milliseconds) -> str:
    """12345 -> '0:12'; 3723000 -> '1:02:03'."""
    seconds = int(milliseconds or 0) // 1000
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"

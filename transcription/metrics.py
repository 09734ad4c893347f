"""What an operator watches, for Prometheus (prometheus-client) and the admin's Load page.

Each server process counts its own (Prometheus scrapes every process). Values that are the state
of the moment (sessions running, audio waiting, jobs by state) are read when scraped, by the refreshers
the parts that know them register (`on_refresh`: the realtime package, the jobs); events (refusals,
finals, translations, retries, decodes) are counted as they happen. This module imports nothing of
the project: every layer may count.
"""
from __future__ import annotations

import collections
import time
from typing import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

registry = CollectorRegistry(auto_describe=True)

DELAY_BUCKETS = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0, 13.0)
DECODE_BUCKETS = (0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0)

sessions_active = Gauge("stt_sessions_active", "Recognition sessions running in this process", registry=registry)
sessions_started = Counter("stt_sessions_started", "Sessions started", ["engine"], registry=registry)
sessions_refused = Counter("stt_sessions_refused", "Starts refused", ["reason"], registry=registry)
audio_backlog = Gauge("stt_audio_backlog_seconds", "Audio accepted and not yet recognised, all sessions",
                      registry=registry)
viewers = Gauge("stt_live_viewers", "Live-caption viewers connected to this process", registry=registry)
finals = Counter("stt_finals", "Finals stored and sent", ["engine"], registry=registry)
final_delay = Histogram("stt_final_delay_seconds", "From the arrival of a phrase's last audio to its final being sent",
                        ["engine"], buckets=DELAY_BUCKETS, registry=registry)
decode_seconds = Histogram("stt_decode_seconds", "Whisper decodes by kind (finals, interims, background)",
                           ["kind"], buckets=DECODE_BUCKETS, registry=registry)
translations = Counter("stt_translations", "Translations of finals", ["translator", "outcome"], registry=registry)
speaker_labels_skipped = Counter("stt_speaker_labels_skipped", "Finals left unlabelled: the labelling thread was too far behind",
                                 registry=registry)
wrong_script_finals = Counter("stt_wrong_script_finals", "Whisper finals written in another script than the "
                              "session's language: decoded again into it, or kept marked doubtful", ["outcome"],
                              registry=registry)
storage_retries = Counter("stt_storage_retries", "Writes of finals and translations tried again", registry=registry)
jobs = Counter("stt_jobs", "Background jobs finished", ["kind", "status"], registry=registry)
jobs_in_state = Gauge("stt_jobs_in_state", "Background jobs in the database by state (all processes)",
                      ["kind", "status"], registry=registry)

_refreshers: list[Callable[[], None]] = []


def on_refresh(refresher: Callable[[], None]) -> Callable[[], None]:
    """Register a function that sets gauges of the moment; run before each scrape."""
    _refreshers.append(refresher)
    return refresher


class FinalDelays:
    """A session's finals, counted, and their delay: from the arrival of the audio holding a final's
    end to the final being sent (the same measure as bench/latency.py, taken by the server)."""

    def __init__(self, engine: str) -> None:
        self.engine = engine
        self.arrivals: collections.deque[tuple[int, float]] = collections.deque(maxlen=3000)  # (audio ms, when)

    def arrived(self, audio_ms: int) -> None:
        self.arrivals.append((audio_ms, time.monotonic()))

    def final(self, end_ms: int) -> None:
        finals.labels(engine=self.engine).inc()
        if not self.arrivals or self.arrivals[0][0] > end_ms:
            return  # its audio arrived before what is remembered
        arrived = next((when for ms, when in self.arrivals if ms >= end_ms), None)
        if arrived is not None:
            final_delay.labels(engine=self.engine).observe(time.monotonic() - arrived)


def refresh() -> None:
    """The state of the moment (called before each scrape)."""
    for refresher in _refreshers:
        refresher()


def rows() -> list[tuple[str, str, str]]:
    """(metric, labels, value) for the admin's Load page: counters and gauges as they are, a histogram
    as its count and mean (its buckets are for Prometheus)."""
    refresh()
    out = []
    for metric in registry.collect():
        if metric.type == "histogram":
            series: dict[str, dict] = {}
            for sample in metric.samples:
                labels = ", ".join(f"{k}={v}" for k, v in sorted(sample.labels.items()) if k != "le")
                series.setdefault(labels, {})[sample.name.rsplit("_", 1)[-1]] = sample.value
            for labels, values in series.items():
                count = values.get("count", 0)
                mean = f"{values.get('sum', 0) / count:.2f} s mean" if count else "-"
                out.append((metric.name, labels, f"{count:.0f} ({mean})"))
            continue
        for sample in metric.samples:
            if sample.name.endswith("_created"):
                continue
            labels = ", ".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            out.append((sample.name, labels, f"{sample.value:g}"))
    return out


def metrics_view(request):
    """Prometheus text format. Staff (a logged-in session) or `Authorization: Bearer $STT_METRICS_TOKEN`."""
    import hmac

    from django.conf import settings
    from django.http import HttpResponse
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    token = settings.STT_METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    by_token = bool(token) and hmac.compare_digest(header.encode(), f"Bearer {token}".encode())
    if not by_token and not (request.user.is_authenticated and request.user.is_staff):
        return HttpResponse("staff or the metrics token only\n", status=403 if header or request.user.is_authenticated else 401,
                            content_type="text/plain")
    refresh()
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)

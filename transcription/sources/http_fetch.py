"""HTTP GETs for pulled streams: every hop checked (stream_urls.check), connected to the checked address.

httpx never follows a redirect here: each Location is checked like the first URL, at most
MAX_REDIRECTS times, and only to http or https. The request goes to the address the check resolved
(with the URL's name as Host header and, over TLS, as server name, so certificates are verified
against the name), so the name cannot resolve elsewhere between the check and the connection.
"""
from __future__ import annotations

import time
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

from . import stream_urls

MAX_REDIRECTS = 5
USER_AGENT = "sttproject-stream-puller"


class FetchError(Exception):
    """The source answered with an error or could not be reached; `status` when it answered."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def client(timeout: float) -> httpx.Client:
    return httpx.Client(timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)), follow_redirects=False,
                        trust_env=False, headers={"User-Agent": USER_AGENT})


def get(session: httpx.Client, url: str) -> tuple[httpx.Response, str]:
    """A streamed response to GET `url` after checked redirects, and the URL it finally came from
    (relative URLs inside it are resolved against that). The caller closes the response."""
    for _ in range(MAX_REDIRECTS + 1):
        target = stream_urls.check(url)
        if target.scheme not in ("http", "https"):
            raise stream_urls.SourceNotAllowed(f"a redirect to a {target.scheme} URL is not followed")
        try:
            response = session.send(_pinned_request(session, target), stream=True, auth=_auth(target))
        except httpx.HTTPError as exc:
            raise FetchError(f"{target.redacted} could not be reached ({type(exc).__name__})") from exc
        if response.is_redirect:
            response.close()
            url = urljoin(url, response.headers.get("location", ""))
            continue
        if response.status_code >= 400:
            response.close()
            raise FetchError(f"{target.redacted} answered {response.status_code}", status=response.status_code)
        return response, url
    raise FetchError(f"more than {MAX_REDIRECTS} redirects")


def read_all(session: httpx.Client, url: str, *, limit: int, deadline: float | None = None) -> tuple[bytes, str]:
    """A whole (small) body: a playlist or one segment, at most `limit` bytes, by `deadline` (monotonic)."""
    response, final_url = get(session, url)
    return read_rest(response, final_url, limit=limit, deadline=deadline), final_url


def read_rest(response: httpx.Response, url: str, *, limit: int, head: bytes = b"", parts=None,
              deadline: float | None = None) -> bytes:
    """The rest of a streamed body (after `head`, read from `parts` if given), at most `limit` bytes. Past
    `deadline` it is given up: a server trickling a byte at a time never trips the timeout per read."""
    body = bytearray(head)
    try:
        for part in parts if parts is not None else response.iter_bytes():
            body += part
            if len(body) > limit:
                raise FetchError(f"{stream_urls.redact(url)} is larger than {limit / 1_000_000:g} MB")
            if deadline is not None and time.monotonic() > deadline:
                raise FetchError(f"{stream_urls.redact(url)} was too slow to answer")
    except httpx.HTTPError as exc:
        raise FetchError(f"{stream_urls.redact(url)} was cut off ({type(exc).__name__})") from exc
    finally:
        response.close()
    return bytes(body)


def _pinned_request(session: httpx.Client, target: stream_urls.Target) -> httpx.Request:
    parts = urlsplit(target.url)
    address = f"[{target.address}]" if ":" in target.address else target.address
    url = urlunsplit((target.scheme, f"{address}:{target.port}", parts.path or "/", parts.query, ""))
    default_port = stream_urls.DEFAULT_PORTS[target.scheme]
    host = f"[{target.host}]" if ":" in target.host else target.host
    host_header = host if target.port == default_port else f"{host}:{target.port}"
    extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
    return session.build_request("GET", url, headers={"Host": host_header}, extensions=extensions)


def _auth(target: stream_urls.Target) -> httpx.BasicAuth | None:
    """Credentials written in the URL (user:password@host), as a player would send them."""
    parts = urlsplit(target.url)
    return httpx.BasicAuth(parts.username, parts.password or "") if parts.username else None

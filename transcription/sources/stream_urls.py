"""Which stream URLs the server may connect to: a guard against server-side request forgery.

A URL passes when its scheme is in STT_STREAM_SCHEMES, its host is in STT_STREAM_ALLOWED_HOSTS, and
every address its name resolves to is allowed: a public address, or one the list names itself. So a
listed name that resolves to 127.0.0.1 or 169.254.169.254 is refused unless that address is listed.
The check runs before any connection, and the connection then goes to the address that was checked
(`Target.address`), so a name that resolves differently a moment later (DNS rebinding) changes
nothing. Redirects are checked again, hop by hop, by the caller (sources/streams.py).
"""
from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit, urlunsplit

from django.conf import settings

from ..protocol import SOURCE_NOT_ALLOWED

MAX_URL_CHARS = 2000
DEFAULT_PORTS = {"http": 80, "https": 443, "rtmp": 1935, "rtmps": 443, "rtsp": 554, "srt": 9000}


class SourceNotAllowed(Exception):
    code = SOURCE_NOT_ALLOWED


@dataclass(frozen=True)
class Target:
    """A checked URL and the address to connect to."""

    url: str
    scheme: str
    host: str  # as written in the URL (a name or an address), lower case
    port: int
    address: str  # the checked IP address

    @property
    def pinned_url(self) -> str:
        """The URL with its host replaced by the checked address (for FFmpeg, which resolves names itself)."""
        parts = urlsplit(self.url)
        host = f"[{self.address}]" if ":" in self.address else self.address
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = f"{userinfo + '@' if userinfo else ''}{host}:{self.port}"
        return urlunsplit(parts._replace(netloc=netloc))

    @property
    def redacted(self) -> str:
        """The URL without a password, for storing and showing."""
        return redact(self.url)


def redact(url: str) -> str:
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{hostport}" if ":" in userinfo else f"{user}@{hostport}"))


def check(url: str, *, resolve=None) -> Target:
    """The URL's Target, or SourceNotAllowed with a reason a person can act on. Connects to nothing."""
    allowed = settings.STT_STREAM_ALLOWED_HOSTS
    if not allowed:
        raise SourceNotAllowed("pulling streams by URL is off on this server (STT_STREAM_ALLOWED_HOSTS is empty)")
    if not isinstance(url, str) or len(url) > MAX_URL_CHARS:
        raise SourceNotAllowed(f"the source URL must be text of at most {MAX_URL_CHARS} characters")
    parts = _split(url)
    scheme = parts.scheme.lower()
    if scheme not in settings.STT_STREAM_SCHEMES or scheme not in DEFAULT_PORTS:
        schemes = ", ".join(s for s in settings.STT_STREAM_SCHEMES if s in DEFAULT_PORTS)
        raise SourceNotAllowed(f"'{scheme}' streams are not allowed here (allowed: {schemes})")
    host = (parts.hostname or "").lower().rstrip(".")
    port = parts.port or DEFAULT_PORTS[scheme]
    literal = _address(host)
    rules = [_rule(entry) for entry in allowed]
    networks = [rule for rule in rules if not isinstance(rule, str)]
    if literal is not None:
        if not any(literal in network for network in networks):
            raise SourceNotAllowed(f"the host {host} is not in this server's list of stream sources")
        return Target(url, scheme, host, port, str(literal))
    if not any(_name_matches(host, rule) for rule in rules if isinstance(rule, str)):
        raise SourceNotAllowed(f"the host {host} is not in this server's list of stream sources")
    try:
        found = {info[4][0] for info in (resolve or socket.getaddrinfo)(host, port, type=socket.SOCK_STREAM)}
    except (OSError, UnicodeError) as exc:
        raise SourceNotAllowed(f"the host {host} could not be resolved") from exc
    addresses = sorted(ipaddress.ip_address(a.split("%", 1)[0]) for a in found)
    for address in addresses:
        if not (_public(address) or any(address in network for network in networks)):
            raise SourceNotAllowed(f"the host {host} resolves to {address}, which is not a public address")
    if not addresses:
        raise SourceNotAllowed(f"the host {host} could not be resolved")
    return Target(url, scheme, host, port, str(addresses[0]))


def _split(url: str) -> SplitResult:
    try:
        parts = urlsplit(url.strip())
        parts.port  # raises on a bad port
    except ValueError as exc:
        raise SourceNotAllowed(f"the source URL cannot be read: {exc}") from None
    if not parts.scheme or not parts.hostname:
        raise SourceNotAllowed("the source URL needs a scheme and a host, e.g. https://example.org/live.m3u8")
    return parts


def _rule(entry: str):
    """A name rule (str) or an IP network."""
    entry = entry.strip().lower()
    try:
        return ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return entry.rstrip(".")


def _name_matches(host: str, rule: str) -> bool:
    if rule == "*":
        return True
    if rule.startswith("."):
        return host == rule[1:] or host.endswith(rule)
    return host == rule


def _address(host: str):
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _public(address) -> bool:
    if getattr(address, "ipv4_mapped", None):
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast

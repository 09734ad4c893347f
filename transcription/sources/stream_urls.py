"""Which stream URLs the server may connect to: a guard against server-side request forgery.

A URL passes when its scheme is in STT_STREAM_SCHEMES, its port in STT_STREAM_PORTS, its host is in
STT_STREAM_ALLOWED_HOSTS, and every address its name resolves to is allowed: a public address, or one the list names itself. So a
listed name that resolves to 127.0.0.1 or 169.254.169.254 is refused unless that address is listed.
The check runs before any connection, and the connection then goes to the address that was checked
(`Target.address`), so a name that resolves differently a moment later (DNS rebinding) changes
nothing. Redirects are checked again, hop by hop, by the caller (sources/streams.py).
"""
from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, parse_qsl, unquote, urlsplit, urlunsplit

from django.conf import settings

from ..protocol import SOURCE_NOT_ALLOWED

MAX_URL_CHARS = 2000
DEFAULT_PORTS = {"http": 80, "https": 443, "rtmp": 1935, "rtmps": 443, "rtsp": 554, "srt": 9000}
HIDDEN = "***"
# IPv6 ranges that carry an IPv4 address: decided by the address they reach.
NAT64 = ipaddress.ip_network("64:ff9b::/96")
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
# IPv6 ranges Python calls global that reach no public host: local-use NAT64 (RFC 8215: any IPv4
# behind it, unknowable from here) and the deprecated site-local addresses.
NOT_PUBLIC = (ipaddress.ip_network("64:ff9b:1::/48"), ipaddress.ip_network("fec0::/10"))


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
        """The URL without its secrets, for storing, showing and logging (see `redact`)."""
        return redact(self.url)

    def scrub(self, text: str) -> str:
        """`text` (an error message from httpx or FFmpeg) with this URL's secrets hidden."""
        for secret in sorted(secrets_of(self.url) | {self.url, self.pinned_url}, key=len, reverse=True):
            text = text.replace(secret, HIDDEN)
        return text


def redact(url: str) -> str:
    """The URL without what may be a secret: the password, every query value (signed tokens, SRT's
    passphrase and streamid), an RTMP stream key (the path's last part) and the fragment. A token inside
    a path of another scheme cannot be told from a folder name, and is kept."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return HIDDEN
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{HIDDEN}@{hostport}" if ":" in userinfo else f"{user}@{hostport}"
    query = "&".join(f"{key}={HIDDEN}" for key, _ in parse_qsl(parts.query, keep_blank_values=True))
    path = parts.path
    if parts.scheme.lower() in ("rtmp", "rtmps") and path.strip("/").count("/") >= 1:
        path = path.rstrip("/").rpartition("/")[0] + "/" + HIDDEN
    return urlunsplit((parts.scheme, netloc, path, query, ""))


def secrets_of(url: str) -> set[str]:
    """What `redact` hides, as written and decoded (an error message may quote either)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return set()
    found = {parts.password or "", parts.fragment}
    for raw in parts.query.split("&"):
        value = raw.partition("=")[2]
        found |= {value, unquote(value)}
    if parts.scheme.lower() in ("rtmp", "rtmps") and parts.path.strip("/").count("/") >= 1:
        key = parts.path.rstrip("/").rpartition("/")[2]
        found |= {key, unquote(key)}
    return {secret for secret in found if len(secret) >= 3}


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
    ports = settings.STT_STREAM_PORTS
    if "*" not in ports and str(port) not in ports:
        raise SourceNotAllowed(f"port {port} is not allowed for streams here (allowed: {', '.join(ports)})")
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
    for address in addresses:  # (the address itself is not named: a stranger would learn the network)
        if not (_public(address) or any(address in network for network in networks)):
            raise SourceNotAllowed(f"the host {host} resolves to an address that is not public")
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
    """A public unicast address; an IPv6 address that carries an IPv4 one (mapped, NAT64, 6to4,
    IPv4-compatible) is judged by the IPv4 address it reaches."""
    if address.version == 6:
        if any(address in network for network in NOT_PUBLIC):
            return False
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and (address in NAT64 or address in IPV4_COMPATIBLE):
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            address = embedded
    return address.is_global and not address.is_multicast

"""Outbound HTTP to URLs that users supply (webhook receivers; later web-push endpoints).

This module is the only way the app may request a URL that came from a user, because such a URL
can point anywhere: at the app itself, the database, the cloud metadata service (SSRF). Every
request is checked in layers (DESIGN rule 7):

1. :func:`validate_url`: https only (plain http only with ``allow_http``, a development setting),
   a host and nothing odd (no credentials, no backslashes, a valid port). A literal IP host is
   parsed the way browsers (WHATWG URL Standard) and ``inet_aton`` do, so ``0177.0.0.1``,
   ``0x7f.1``, ``2130706433`` and ``127.1`` are all recognised as 127.0.0.1, checked, and written
   back in canonical form.
2. At connect time (:class:`PinnedBackend`, an httpcore network backend): the host is resolved
   once, *every* address it resolves to is checked with :func:`address_refusal`, and the socket
   is opened to one of those checked addresses — never to a second lookup of the name, so a DNS
   answer that changes between check and connect (DNS rebinding) gains nothing. TLS still uses
   the hostname for SNI and certificate verification.
3. Redirects are followed by hand, at most :data:`MAX_REDIRECTS`, and every hop starts again at
   step 1 with a fresh connection pool, so each hop's addresses are resolved and checked anew.
4. One deadline (at most :data:`MAX_TIMEOUT` seconds) bounds the whole call, redirects included;
   at most :data:`MAX_BODY_BYTES` of a response body are read; no cookies are kept or sent, and
   no proxy or other setting is taken from the environment.

:func:`request` never raises for a bad URL, a refused address or a network failure: the
:class:`OutboundResult` says what happened. It raises only for invalid arguments of the call.
"""

from __future__ import annotations

import asyncio
import codecs
import functools
import ipaddress
import logging
import math
import re
import socket
import ssl
import time
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

import httpcore
import httpx

logger = logging.getLogger("kehu.outbound")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
ErrorKind = Literal[
    "bad_url",
    "refused_address",
    "dns_error",
    "connect_error",
    "tls_error",
    "timeout",
    "too_many_redirects",
    "protocol_error",
    "network_error",
]

#: DESIGN rule 7: the whole call (connect, send, read, every redirect hop) ends within this.
MAX_TIMEOUT = 5.0
#: At most this much of a response body is read; the rest is never received.
MAX_BODY_BYTES = 64 * 1024
#: How much of the body (in bytes, before decoding) the result's ``excerpt`` shows.
MAX_EXCERPT_BYTES = 1024
MAX_REDIRECTS = 3
MAX_URL_LENGTH = 2048
USER_AGENT = "Kehu-Outbound/1.0"

_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_DEFAULT_PORTS = {"http": 80, "https": 443}
_METHOD_RE = re.compile(r"[A-Z]{1,16}")
_HOSTNAME_RE = re.compile(r"[a-z0-9_.-]{1,253}")
_HEX_RE = re.compile(r"[0-9a-fA-F]*")
_OCTAL_RE = re.compile(r"[0-7]+")
_UNSAFE_URL_CHARS = re.compile(r"[\x00-\x20\x7f\\]")

# Cloud metadata services: AWS/GCP/Azure/OCI (IPv4 and AWS's IPv6), Azure's wire server,
# Alibaba. Refused even when private addresses are allowed for development.
_METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "fd00:ec2::254", "168.63.129.16", "100.100.100.200")
)
_SHARED_ADDRESS_SPACE = ipaddress.IPv4Network("100.64.0.0/10")  # RFC 6598 (carrier-grade NAT)
_IETF_PROTOCOL_ASSIGNMENTS = ipaddress.IPv4Network("192.0.0.0/24")  # RFC 6890; OCI metadata
_BROADCAST = ipaddress.IPv4Address("255.255.255.255")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")  # RFC 4291 §2.5.5.1, deprecated
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052 well-known prefix
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")  # RFC 8215, local use


class OutboundError(Exception):
    """A URL or address that may not be requested; :func:`request` turns it into a result."""

    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind: ErrorKind = kind
        self.message = message


@dataclass(frozen=True)
class OutboundResult:
    """What one :func:`request` call came to: a response, or why there was none."""

    status: int | None
    """Status of the final response (after redirects); ``None`` when there was none."""
    elapsed_ms: float
    """Wall time of the whole call."""
    excerpt: str = ""
    """The first ≤ 1 KiB of the response body as text (undecodable bytes replaced)."""
    body_bytes: int = 0
    """How much of the body was read: at most :data:`MAX_BODY_BYTES`."""
    redirects: int = 0
    error_kind: ErrorKind | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """A response with a 2xx status arrived."""
        return self.error_kind is None and self.status is not None and 200 <= self.status < 300


# --- Addresses -----------------------------------------------------------------------------------


def _ipv4_number(part: str) -> int:
    """One part of a WHATWG IPv4 host: ``0x`` hex, leading-zero octal, or decimal."""
    if part[:2] in ("0x", "0X"):
        digits = part[2:]
        if not _HEX_RE.fullmatch(digits):
            raise ValueError(f"invalid hex number {part!r}")
        return int(digits, 16) if digits else 0
    if len(part) > 1 and part[0] == "0":
        if not _OCTAL_RE.fullmatch(part[1:]):
            raise ValueError(f"invalid octal number {part!r}")
        return int(part[1:], 8)
    if not part.isascii() or not part.isdigit():
        raise ValueError(f"invalid number {part!r}")
    return int(part)


def _ends_in_number(parts: list[str]) -> bool:
    last = parts[-1]
    if last.isascii() and last.isdigit():
        return True
    return last[:2] in ("0x", "0X") and bool(_HEX_RE.fullmatch(last[2:]))


def parse_ipv4_literal(host: str) -> ipaddress.IPv4Address | None:
    """The IPv4 address a URL host denotes, as browsers and ``inet_aton`` read it, or ``None``.

    Follows the WHATWG URL Standard's "IPv4 parser": one to four dot-separated parts, each
    decimal, octal (leading ``0``) or hex (``0x``); the last part fills the remaining bytes — so
    ``0177.0.0.1``, ``0x7f.1``, ``127.1`` and ``2130706433`` are all 127.0.0.1. A host whose last
    label is not a number is a domain name (``None``); one whose last label is a number but that
    is not a valid address (``256.0.0.1``, ``1.2.3.4.5``, ``foo.1``) raises ``ValueError``, as
    browsers refuse such URLs.
    """
    parts = host.split(".")
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()  # one trailing dot, as in a fully qualified name
    if not _ends_in_number(parts):
        return None
    if len(parts) > 4 or "" in parts:
        raise ValueError(f"{host!r} is not a valid IPv4 address")
    try:
        numbers = [_ipv4_number(part) for part in parts]
    except ValueError as exc:
        raise ValueError(f"{host!r} is not a valid IPv4 address: {exc}") from exc
    if any(n > 255 for n in numbers[:-1]) or numbers[-1] >= 256 ** (5 - len(numbers)):
        raise ValueError(f"{host!r} is not a valid IPv4 address")
    value = numbers[-1]
    for index, number in enumerate(numbers[:-1]):
        value += number << (8 * (3 - index))
    return ipaddress.IPv4Address(value)


def parse_ip_literal(host: str) -> IPAddress | None:
    """The address a host names literally (IPv6 with or without brackets, IPv4 in any
    notation :func:`parse_ipv4_literal` accepts), or ``None`` for a domain name.

    Raises ``ValueError`` for a host that looks like an address but is not a valid one.
    """
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif host.startswith("[") or host.endswith("]"):
        raise ValueError(f"{host!r} is not a valid IPv6 address")
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host)
        except ValueError as exc:
            raise ValueError(f"{host!r} is not a valid IPv6 address") from exc
    return parse_ipv4_literal(host)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, str] | None:
    """The IPv4 address an IPv6 address carries (and reaches, via the OS or a translator)."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped, "IPv4-mapped"
    if ip.sixtofour is not None:
        return ip.sixtofour, "6to4"
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF), "NAT64"
    if ip in _IPV4_COMPATIBLE and int(ip) > 1:  # not :: or ::1
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF), "IPv4-compatible"
    return None


def _without_scope(ip: IPAddress) -> IPAddress:
    if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id is not None:
        return ipaddress.IPv6Address(int(ip))
    return ip


def is_metadata_address(ip: IPAddress) -> bool:
    """A cloud metadata service address, directly or embedded in an IPv6 address."""
    ip = _without_scope(ip)
    if ip in _METADATA_ADDRESSES:
        return True
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        return embedded is not None and embedded[0] in _METADATA_ADDRESSES
    return False


def _special_purpose(ip: IPAddress) -> str | None:
    """Why an address is not an ordinary public one (no embedded-IPv4 handling here)."""
    if ip.is_unspecified:
        return "unspecified address"
    if ip.is_loopback:
        return "loopback address"
    if ip.is_link_local:
        return "link-local address"
    if ip.is_multicast:
        return "multicast address"
    if isinstance(ip, ipaddress.IPv4Address):
        if ip == _BROADCAST:
            return "broadcast address"
        if ip in _SHARED_ADDRESS_SPACE:
            return "shared address space (RFC 6598)"
        if ip in _IETF_PROTOCOL_ASSIGNMENTS:
            return "special-purpose address (RFC 6890)"
    elif ip.is_site_local:
        return "site-local address"
    elif ip in _NAT64_LOCAL:
        return "local-use NAT64 address (RFC 8215)"
    if ip.is_private:
        return "private or special-purpose address"
    if ip.is_reserved:
        return "reserved address"
    if not ip.is_global:
        return "address that is not globally routable"
    return None


def address_refusal(ip: IPAddress) -> str | None:
    """Why a connection to ``ip`` is refused, or ``None`` when it is an ordinary public address.

    Refused: loopback, private (RFC 1918, fc00::/7), link-local, multicast, unspecified,
    broadcast, reserved, shared address space (100.64/10), other special-purpose ranges and the
    cloud metadata addresses. An IPv6 address that embeds an IPv4 address (IPv4-mapped,
    IPv4-compatible, 6to4, NAT64) is judged by the IPv4 address it reaches.
    """
    ip = _without_scope(ip)
    if ip in _METADATA_ADDRESSES:
        return "cloud metadata address"
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            ipv4, form = embedded
            reason = address_refusal(ipv4)
            if reason is not None:
                return f"{reason} ({form} {ipv4})"
            if form == "IPv4-compatible":
                return "deprecated IPv4-compatible IPv6 address"
            # A translator or the OS delivers it to a public IPv4 address: judged as that.
            return None
    return _special_purpose(ip)


def _check_address(ip: IPAddress, subject: str, *, allow_private: bool) -> None:
    """``OutboundError`` unless a connection to ``ip`` is allowed (``subject`` names it)."""
    reason = address_refusal(ip)
    if reason is None or (allow_private and not is_metadata_address(ip)):
        return
    raise OutboundError("refused_address", f"{subject}: {reason}")


async def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to, in the resolver's order, without blocking the loop.

    Raises ``OSError`` (``socket.gaierror``) when the name does not resolve. Tests replace this
    function to simulate DNS answers.
    """
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    addresses: dict[IPAddress, None] = {}
    for family, _type, _proto, _canonname, sockaddr in infos:
        if family in (socket.AF_INET, socket.AF_INET6):
            addresses[ipaddress.ip_address(sockaddr[0])] = None
    return list(addresses)


async def _checked_addresses(host: str, port: int, *, allow_private: bool) -> list[IPAddress]:
    """The addresses to connect to for ``host``: all of them checked, or ``OutboundError``."""
    try:
        literal = parse_ip_literal(host)
    except ValueError as exc:
        raise OutboundError("bad_url", str(exc)) from exc
    if literal is not None:
        addresses = [literal]
    else:
        try:
            addresses = await resolve(host, port)
        except (OSError, UnicodeError) as exc:
            raise OutboundError("dns_error", f"cannot resolve {host}: {exc}") from exc
        if not addresses:
            raise OutboundError("dns_error", f"{host} has no IPv4 or IPv6 address")
    # Every address, not just the first: otherwise an attacker's name lists a public address
    # first and a private one second, and the private one is used when the first fails.
    for ip in addresses:
        subject = str(ip) if literal is not None else f"{host} resolves to {ip}"
        _check_address(ip, subject, allow_private=allow_private)
    return addresses


# --- Transport -----------------------------------------------------------------------------------


class PinnedBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that connects only to checked addresses.

    httpcore hands :meth:`connect_tcp` the URL's host; this resolves it once, checks every
    address, and opens the socket to a checked address itself (an IP literal, so nothing below
    resolves the name again). httpcore then calls ``start_tls`` on the returned stream with the
    original hostname as ``server_hostname``, so SNI and certificate checks are unchanged.
    """

    def __init__(self, *, allow_private: bool) -> None:
        self._allow_private = allow_private
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await _checked_addresses(host, port, allow_private=self._allow_private)
        failure: httpcore.ConnectError | None = None
        for ip in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(ip),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except httpcore.ConnectError as exc:  # refused or unreachable: try the next one
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise OutboundError("refused_address", "unix sockets are never connected to")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


@functools.cache
def _default_ssl_context() -> ssl.SSLContext:
    # certifi's roots, nothing from the environment; built once (loading the roots is slow).
    return httpx.create_ssl_context(trust_env=False)


class _PinnedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport over a pool that uses :class:`PinnedBackend`.

    httpx 0.28 has no parameter for the network backend, so the pool it builds is replaced by
    an equivalent one (HTTP/1.1, no retries, no keep-alive: each hop gets fresh connections).
    """

    def __init__(self, *, allow_private: bool, ssl_context: ssl.SSLContext) -> None:
        super().__init__(verify=ssl_context, trust_env=False, retries=0)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=1,
            max_keepalive_connections=0,
            http1=True,
            http2=False,
            retries=0,
            network_backend=PinnedBackend(allow_private=allow_private),
        )


# --- URLs ----------------------------------------------------------------------------------------


def validate_url(url: str, *, allow_http: bool = False, allow_private: bool = False) -> httpx.URL:
    """``url`` checked and normalised for an outbound request, or ``OutboundError``.

    The error's ``kind`` is ``bad_url`` (not an https URL with a host, credentials in it, an
    invalid port or host) or ``refused_address`` (a literal IP in any notation, or a
    ``localhost`` name, that :func:`address_refusal` refuses). A literal IPv4 host in an odd
    notation is written back in dotted-quad form; the fragment is dropped. Names are resolved
    and checked only when connecting.
    """
    if len(url) > MAX_URL_LENGTH:
        raise OutboundError("bad_url", f"URL longer than {MAX_URL_LENGTH} characters")
    text = url.strip()
    # Browsers read "\" as "/" in http(s) URLs and drop tabs and newlines; Python's parsers do
    # not. Refusing them means every parser agrees on where the host ends.
    if _UNSAFE_URL_CHARS.search(text):
        raise OutboundError("bad_url", "URL contains whitespace, control characters or '\\'")
    try:
        parts = urlsplit(text)
    except ValueError as exc:
        raise OutboundError("bad_url", f"not a URL: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme == "http" and not allow_http:
        raise OutboundError("bad_url", "only https URLs are allowed")
    if scheme not in _DEFAULT_PORTS:
        allowed = "http or https" if allow_http else "https"
        raise OutboundError("bad_url", f"only {allowed} URLs are allowed")
    if "@" in parts.netloc:
        raise OutboundError("bad_url", "credentials in the URL are not allowed")
    netloc = parts.netloc
    if netloc.startswith("["):
        end = netloc.find("]")
        if end < 0:
            raise OutboundError("bad_url", "unterminated IPv6 address")
        host, rest = netloc[: end + 1], netloc[end + 1 :]
    else:
        host, colon, port_text = netloc.partition(":")
        rest = colon + port_text
    if not host:
        raise OutboundError("bad_url", "URL has no host")
    # WHATWG percent-decodes the host before reading it as an address: %31%32%37.0.0.1 is
    # 127.0.0.1 to a browser, so it is here too.
    decoded = unquote(host).lower()
    try:
        literal = parse_ip_literal(decoded)
    except ValueError as exc:
        raise OutboundError("bad_url", str(exc)) from exc
    if literal is not None:
        if isinstance(literal, ipaddress.IPv6Address) and literal.scope_id is not None:
            raise OutboundError("bad_url", "IPv6 zone identifiers are not allowed")
        _check_address(literal, str(literal), allow_private=allow_private)
        host = f"[{literal}]" if literal.version == 6 else str(literal)
    elif not allow_private:
        name = decoded.rstrip(".")
        # RFC 6761 §6.3: these names are loopback, whatever a resolver says.
        if name == "localhost" or name.endswith(".localhost"):
            raise OutboundError("refused_address", f"{decoded}: loopback name")
    try:
        parsed = httpx.URL(urlunsplit((scheme, host + rest, parts.path, parts.query, "")))
        port = parsed.port
    except (httpx.InvalidURL, ValueError) as exc:
        raise OutboundError("bad_url", f"not a valid URL: {exc}") from exc
    if port is not None and not 0 < port < 65536:
        raise OutboundError("bad_url", f"invalid port {port}")
    if literal is None and not _HOSTNAME_RE.fullmatch(parsed.raw_host.decode("ascii")):
        raise OutboundError("bad_url", f"invalid host name {parsed.host!r}")
    return parsed


def _origin(url: httpx.URL) -> tuple[str, bytes, int | None]:
    return url.scheme, url.raw_host, url.port or _DEFAULT_PORTS.get(url.scheme)


def _without_headers(headers: dict[str, str], *names: str) -> dict[str, str]:
    drop = {name.lower() for name in names}
    return {key: value for key, value in headers.items() if key.lower() not in drop}


# --- Requests ------------------------------------------------------------------------------------


async def read_capped(response: httpx.Response, limit: int) -> bytes:
    """At most ``limit`` bytes of a streamed response body, as sent (not decompressed).

    Stops reading as soon as it has them, so a large or endless body is never received, let
    alone buffered.
    """
    data = bytearray()
    async for chunk in response.aiter_raw():
        data += chunk[: limit - len(data)]
        if len(data) >= limit:
            break
    return bytes(data)


def _excerpt(body: bytes, charset: str | None, *, complete: bool) -> str:
    """The first :data:`MAX_EXCERPT_BYTES` of ``body`` as text, whatever the bytes are."""
    try:
        decoder = codecs.getincrementaldecoder(charset or "utf-8")("replace")
    except LookupError:  # a charset we do not know: UTF-8 is the best guess
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
    head = body[:MAX_EXCERPT_BYTES]
    # Not final when the cut fell inside the body: a character split by the cut is left out
    # rather than shown as a replacement character.
    return decoder.decode(head, final=complete and len(body) <= MAX_EXCERPT_BYTES)


def _cause_chain(exc: BaseException) -> typing.Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _classify(exc: Exception) -> tuple[ErrorKind, str]:
    """The result's error kind and message for a failure of the exchange."""
    tls = next((e for e in _cause_chain(exc) if isinstance(e, ssl.SSLError)), None)
    if tls is not None:
        return "tls_error", _describe(tls)
    if isinstance(exc, httpx.TimeoutException):
        return "timeout", _describe(exc)
    if isinstance(exc, httpx.ConnectError | OSError):
        return "connect_error", _describe(exc)
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return "bad_url", _describe(exc)
    if isinstance(exc, httpx.ProtocolError):
        return "protocol_error", _describe(exc)
    return "network_error", _describe(exc)


def _log_host(url: str) -> str:
    # Webhook URLs often carry a secret in the path or query: log the host only.
    try:
        return urlsplit(url).hostname or "?"
    except ValueError:
        return "?"


async def request(
    method: str,
    url: str,
    *,
    content: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    allow_http: bool = False,
    allow_private: bool = False,
    timeout: float = MAX_TIMEOUT,  # noqa: ASYNC109 - part of the API: clamped, enforced below
    ssl_context: ssl.SSLContext | None = None,
) -> OutboundResult:
    """Make one request to a user-supplied URL, SSRF-safely; never raises for the network.

    ``allow_http`` permits plain http and ``allow_private`` permits private, loopback and other
    non-public addresses (not cloud metadata addresses): both are for development and tests
    only. ``timeout`` bounds the whole call and is clamped to :data:`MAX_TIMEOUT`.
    ``ssl_context`` replaces the default trust roots (certifi), e.g. for a private CA.

    Redirects (301, 302, 303, 307, 308) are followed up to :data:`MAX_REDIRECTS` times, each
    target checked like ``url``; 303, and 301/302 after a POST, continue as GET without the
    body, as browsers do; ``Authorization`` is dropped when the origin changes.

    Raises ``ValueError`` only for invalid arguments of the call itself (method, timeout).
    """
    method = method.upper()
    if not _METHOD_RE.fullmatch(method):
        raise ValueError(f"invalid HTTP method {method!r}")
    if not (timeout > 0 and math.isfinite(timeout)):
        raise ValueError("timeout must be > 0")
    timeout = min(timeout, MAX_TIMEOUT)
    started = time.perf_counter()
    context = ssl_context or _default_ssl_context()
    hop_headers = {"User-Agent": USER_AGENT, **(headers or {})}
    # Identity: the byte cap then limits the real body (no decompression bomb) and the excerpt
    # is text.
    hop_headers["Accept-Encoding"] = "identity"
    redirects = 0

    def finish(
        status: int | None,
        *,
        kind: ErrorKind | None = None,
        error: str | None = None,
        body: bytes = b"",
        charset: str | None = None,
        complete: bool = True,
    ) -> OutboundResult:
        elapsed_ms = (time.perf_counter() - started) * 1000
        logger.log(
            logging.INFO if kind is None else logging.WARNING,
            "outbound %s %s",
            method,
            status if kind is None else kind,
            extra={
                "host": _log_host(url),
                "status": status,
                "error_kind": kind,
                "redirects": redirects,
                "elapsed_ms": round(elapsed_ms, 1),
                "error": error,
            },
        )
        return OutboundResult(
            status=status,
            elapsed_ms=elapsed_ms,
            excerpt=_excerpt(body, charset, complete=complete),
            body_bytes=len(body),
            redirects=redirects,
            error_kind=kind,
            error=error,
        )

    try:
        async with asyncio.timeout(timeout):
            target = validate_url(url, allow_http=allow_http, allow_private=allow_private)
            while True:
                # A fresh pool per hop: every hop resolves and checks its host anew.
                async with _PinnedTransport(
                    allow_private=allow_private, ssl_context=context
                ) as transport:
                    response = await transport.handle_async_request(
                        httpx.Request(
                            method,
                            target,
                            content=content,
                            headers=hop_headers,
                            extensions={"timeout": httpx.Timeout(timeout).as_dict()},
                        )
                    )
                    status = response.status_code
                    try:
                        location = response.headers.get("Location")
                        if status not in _REDIRECT_STATUSES or location is None:
                            body = await read_capped(response, MAX_BODY_BYTES)
                            return finish(
                                status,
                                body=body,
                                charset=response.charset_encoding,
                                complete=len(body) < MAX_BODY_BYTES,
                            )
                    finally:
                        await response.aclose()
                if redirects >= MAX_REDIRECTS:
                    return finish(
                        status,
                        kind="too_many_redirects",
                        error=f"more than {MAX_REDIRECTS} redirects",
                    )
                redirects += 1
                try:
                    next_url = urljoin(str(target), location)
                except ValueError as exc:
                    raise OutboundError("bad_url", f"invalid redirect location: {exc}") from exc
                next_target = validate_url(
                    next_url, allow_http=allow_http, allow_private=allow_private
                )
                if (status == 303 and method != "HEAD") or (
                    status in (301, 302) and method == "POST"
                ):
                    method, content = "GET", None
                    hop_headers = _without_headers(
                        hop_headers, "Content-Type", "Content-Length", "Content-Encoding"
                    )
                if _origin(next_target) != _origin(target):
                    hop_headers = _without_headers(hop_headers, "Authorization")
                target = next_target
    except OutboundError as exc:
        return finish(None, kind=exc.kind, error=exc.message)
    except TimeoutError:
        return finish(None, kind="timeout", error=f"no complete response within {timeout:g} s")
    except (httpx.HTTPError, OSError) as exc:
        kind, message = _classify(exc)
        return finish(None, kind=kind, error=message)

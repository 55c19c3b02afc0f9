"""SSRF-safe outbound HTTP (DESIGN rule 7, issue 7 item 5): every refused form, over real sockets.

The receivers are raw HTTP/1.1 servers on 127.0.0.1 (``asyncio.start_server``) whose replies each
test scripts. Reaching them needs ``allow_private=True``; tests about refusals leave it off and
check that the receiver saw no connection at all. Where a test needs a *public* address to be
allowed, DNS (``outbound.resolve``) and the socket layer (httpcore's ``AnyIOBackend``) are
replaced: the module under test still makes every decision itself, only the wire is simulated.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import httpcore
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from app.services import outbound
from app.services.outbound import (
    MAX_BODY_BYTES,
    MAX_EXCERPT_BYTES,
    MAX_REDIRECTS,
    OutboundError,
    address_refusal,
    parse_ip_literal,
    request,
    validate_url,
)

# --- A scriptable local receiver -----------------------------------------------------------------


@dataclass
class Captured:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes


Respond = Callable[["Receiver", Captured, asyncio.StreamWriter], Awaitable[None]]


def http_response(status: int = 200, body: bytes = b"", headers: Iterable[str] = ()) -> bytes:
    head = [f"HTTP/1.1 {status} X", f"Content-Length: {len(body)}", "Connection: close"]
    head += list(headers)
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


def reply(status: int = 200, body: bytes = b"", headers: Iterable[str] = ()) -> Respond:
    data = http_response(status, body, headers)

    async def respond(receiver: Receiver, req: Captured, writer: asyncio.StreamWriter) -> None:
        writer.write(data)
        await writer.drain()

    return respond


class Receiver:
    """An HTTP/1.1 server on 127.0.0.1 recording connections and requests."""

    def __init__(self, respond: Respond, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self.respond = respond
        self.ssl_context = ssl_context
        self.connections = 0
        self.requests: list[Captured] = []
        self.closing = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def base(self) -> str:
        return f"{'https' if self.ssl_context else 'http'}://127.0.0.1:{self.port}"

    async def __aenter__(self) -> Receiver:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self.ssl_context)
        self.port: int = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.closing.set()
        self.server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            request_line, *lines = head.decode("latin-1").split("\r\n")
            method, target, _version = request_line.split(" ")
            headers: dict[str, str] = {}
            for line in lines:
                if line:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            captured = Captured(method, target, headers, body)
            self.requests.append(captured)
            await self.respond(self, captured, writer)
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fake_dns(answers: dict[str, list[str]], calls: list[str] | None = None):
    async def resolve(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        if calls is not None:
            calls.append(host)
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [ipaddress.ip_address(a) for a in answers[host]]

    return resolve


@pytest.fixture
def dialed(monkeypatch: pytest.MonkeyPatch) -> Callable[[int], list[str]]:
    """Simulate the internet: record the address httpcore's socket layer is asked to dial and
    connect to the local receiver on ``port`` instead."""
    original = httpcore.AnyIOBackend.connect_tcp
    seen: list[str] = []

    def route_to(port: int) -> list[str]:
        async def connect_tcp(self, host, _port, **options):
            seen.append(host)
            return await original(self, "127.0.0.1", port, **options)

        monkeypatch.setattr(httpcore.AnyIOBackend, "connect_tcp", connect_tcp)
        return seen

    return route_to


@pytest.fixture
def no_dns(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Any resolution fails the test: literal hosts must never reach DNS."""
    calls: list[str] = []

    async def resolve(host: str, port: int) -> list[ipaddress.IPv4Address]:
        calls.append(host)
        raise AssertionError(f"resolved {host!r}")

    monkeypatch.setattr(outbound, "resolve", resolve)
    return calls


# --- Literal addresses in every notation ---------------------------------------------------------

LOOPBACK_NOTATIONS = [
    "127.0.0.1",
    "0177.0.0.1",  # octal
    "0x7f.1",  # hex, two parts
    "0x7F.0.0.1",
    "2130706433",  # one decimal number
    "0x7f000001",
    "017700000001",  # one octal number
    "127.1",
    "127.0.1",
    "127.0.0.1.",  # trailing dot
    "%31%32%37.0.0.1",  # percent-encoded
]


@pytest.mark.parametrize("host", LOOPBACK_NOTATIONS)
def test_ipv4_notations_are_read_as_browsers_read_them(host: str) -> None:
    from urllib.parse import unquote

    assert parse_ip_literal(unquote(host)) == ipaddress.IPv4Address("127.0.0.1")


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("0", "0.0.0.0"),  # noqa: S104
        ("0x0", "0.0.0.0"),  # noqa: S104
        ("10.1", "10.0.0.1"),
        ("192.168.257", "192.168.1.1"),
        ("0xa9fea9fe", "169.254.169.254"),
        ("[::1]", "::1"),
        ("[::ffff:127.0.0.1]", "::ffff:7f00:1"),
        ("::ffff:7f00:1", "::ffff:7f00:1"),
    ],
)
def test_literal_addresses_are_parsed(host: str, address: str) -> None:
    assert parse_ip_literal(host) == ipaddress.ip_address(address)


@pytest.mark.parametrize("host", ["example.com", "1.2.3.foo", "hooks.example.test.", "0x7g"])
def test_names_are_not_addresses(host: str) -> None:
    assert parse_ip_literal(host) is None


@pytest.mark.parametrize(
    "host",
    ["foo.1", "256.0.0.1", "1.2.3.4.5", "08.1", "0x7g.1", "1..2", "[::1", "::ffff:0177.0.0.1"],
)
def test_hosts_that_look_numeric_but_are_not_addresses_are_invalid(host: str) -> None:
    with pytest.raises(ValueError, match="not a valid"):
        parse_ip_literal(host)


# --- The address policy --------------------------------------------------------------------------

REFUSED = {
    "127.0.0.1": "loopback",
    "127.255.0.9": "loopback",
    "10.0.0.1": "private",
    "172.16.5.4": "private",
    "192.168.1.1": "private",
    "169.254.1.1": "link-local",
    "169.254.169.254": "metadata",
    "168.63.129.16": "metadata",
    "100.64.0.1": "shared address space",
    "100.100.100.200": "metadata",
    "0.0.0.0": "unspecified",  # noqa: S104
    "0.1.2.3": "private",
    "224.0.0.1": "multicast",
    "239.255.255.250": "multicast",
    "255.255.255.255": "broadcast",
    "240.0.0.1": "private",  # reserved (240/4); Python counts it as private too
    "192.0.0.192": "special-purpose",
    "192.0.2.1": "private",  # documentation
    "198.18.0.1": "private",  # benchmarking
    "::1": "loopback",
    "::": "unspecified",
    "fc00::1": "private",
    "fd12:3456::1": "private",
    "fd00:ec2::254": "metadata",
    "fe80::1": "link-local",
    "fe80::1%eth0": "link-local",
    "fec0::1": "site-local",
    "ff02::1": "multicast",
    "2001:db8::1": "private",
    "::ffff:127.0.0.1": "loopback address (IPv4-mapped 127.0.0.1)",
    "::ffff:10.1.2.3": "private or special-purpose address (IPv4-mapped",
    "::ffff:169.254.169.254": "metadata address (IPv4-mapped",
    "::127.0.0.1": "loopback address (IPv4-compatible",
    "::8.8.8.8": "deprecated IPv4-compatible",
    "2002:7f00:1::": "loopback address (6to4 127.0.0.1)",
    "2002:a9fe:a9fe::1": "metadata address (6to4",
    "2002:c0a8:101::": "private or special-purpose address (6to4 192.168.1.1)",
    "64:ff9b::7f00:1": "loopback address (NAT64 127.0.0.1)",
    "64:ff9b::a9fe:a9fe": "metadata address (NAT64",
    "64:ff9b::a00:1": "(NAT64 10.0.0.1)",
    "64:ff9b:1::1": "NAT64",
}


@pytest.mark.parametrize(("address", "reason"), REFUSED.items())
def test_non_public_addresses_are_refused(address: str, reason: str) -> None:
    refusal = address_refusal(ipaddress.ip_address(address))
    assert refusal is not None
    assert reason in refusal


@pytest.mark.parametrize(
    "address",
    [
        "8.8.8.8",
        "93.184.215.14",
        "1.1.1.1",
        "2606:4700:4700::1111",
        "2a00:1450:4001:80b::200e",
        "::ffff:8.8.8.8",  # IPv4-mapped public: reaches 8.8.8.8
        "64:ff9b::808:808",  # NAT64 of a public address (DNS64 networks)
        "2002:808:808::1",  # 6to4 of a public address
    ],
)
def test_public_addresses_are_allowed(address: str) -> None:
    assert address_refusal(ipaddress.ip_address(address)) is None


# --- URL validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        *(f"https://{host}/hook" for host in LOOPBACK_NOTATIONS),
        "https://[::1]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://[::ffff:7f00:1]:8443/hook",
        "https://[::127.0.0.1]/",
        "https://[64:ff9b::7f00:1]/",
        "https://[2002:7f00:1::]/",
        "https://169.254.169.254/latest/meta-data/",
        "https://0xa9fea9fe/latest/meta-data/",
        "https://[fd00:ec2::254]/latest/meta-data/",
        "https://10.1/",
        "https://0/",
        "https://localhost/hook",
        "https://LOCALHOST./hook",
        "https://api.localhost/hook",
    ],
)
async def test_refused_literal_hosts_never_reach_dns_or_the_network(
    url: str, no_dns: list[str], dialed: Callable[[int], list[str]]
) -> None:
    seen = dialed(free_port())
    with pytest.raises(OutboundError) as raised:
        validate_url(url)
    assert raised.value.kind == "refused_address"

    result = await request("POST", url, content=b"{}")

    assert result.error_kind == "refused_address"
    assert result.status is None and not result.ok
    assert no_dns == [] and seen == []


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/hook",
        "ftp://example.com/hook",
        "file:///etc/passwd",
        "gopher://example.com/",
        "javascript:alert(1)",
        "example.com/hook",
        "https://",
        "https:///hook",
        "https://user:secret@example.com/hook",
        "https://example.com@127.0.0.1/hook",
        "https://example.com\\@127.0.0.1/hook",
        "https://exa mple.com/hook",
        "https://example.com/ho\nok",
        "https://example.com:99999/hook",
        "https://example.com:0/hook",
        "https://example.com:abc/hook",
        "https://256.0.0.1/hook",
        "https://foo.1/hook",
        "https://[fe80::1%25eth0]/hook",
        "https://exa%6dple.com/hook",
        "https://example.com/" + "a" * 3000,
    ],
)
async def test_malformed_or_non_https_urls_are_bad(url: str, no_dns: list[str]) -> None:
    result = await request("POST", url)

    assert result.error_kind == "bad_url", result.error
    assert no_dns == []


async def test_plain_http_is_allowed_only_when_asked() -> None:
    async with Receiver(reply(204)) as receiver:
        refused = await request("GET", receiver.base + "/", allow_private=True)
        allowed = await request("GET", receiver.base + "/", allow_private=True, allow_http=True)

    assert refused.error_kind == "bad_url" and refused.error == "only https URLs are allowed"
    assert allowed.ok and allowed.status == 204
    assert receiver.connections == 1


def test_valid_urls_are_normalised() -> None:
    assert str(validate_url("HTTPS://Hooks.Example.COM/a?b=1#frag")) == (
        "https://hooks.example.com/a?b=1"
    )
    assert str(validate_url("https://0x08080808:8443/x")) == "https://8.8.8.8:8443/x"
    assert str(validate_url("https://bücher.example/x")) == "https://xn--bcher-kva.example/x"


# --- Names that resolve to refused addresses -----------------------------------------------------


async def test_localhost_resolved_by_the_system_is_refused() -> None:
    # validate_url refuses the name itself; the connect-time check refuses what it resolves to.
    result = await request("GET", "http://localhost./", allow_http=True)
    assert result.error_kind == "refused_address"

    addresses = await outbound.resolve("localhost", 443)
    assert addresses and all(address_refusal(ip) for ip in addresses)


@pytest.mark.parametrize(
    "answer",
    [
        ["10.0.0.7"],
        ["127.0.0.1"],
        ["169.254.169.254"],
        ["::ffff:192.168.0.10"],
        ["fd00:ec2::254"],
        ["93.184.215.14", "127.0.0.1"],  # one bad address among good ones is enough
        ["2606:4700:4700::1111", "fe80::1"],
    ],
)
async def test_public_looking_name_resolving_to_a_refused_address_is_refused(
    answer: list[str],
    monkeypatch: pytest.MonkeyPatch,
    dialed: Callable[[int], list[str]],
) -> None:
    calls: list[str] = []
    monkeypatch.setattr(outbound, "resolve", fake_dns({"hooks.example.com": answer}, calls))
    seen = dialed(free_port())

    result = await request("POST", "https://hooks.example.com/hook", content=b"{}")

    assert result.error_kind == "refused_address"
    assert result.error is not None and result.error.startswith("hooks.example.com resolves to")
    assert calls == ["hooks.example.com"]
    assert seen == []  # nothing was dialed


async def test_name_that_does_not_resolve_is_a_dns_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outbound, "resolve", fake_dns({}))

    result = await request("POST", "https://nowhere.example.com/hook")

    assert result.error_kind == "dns_error"
    assert result.error is not None and "nowhere.example.com" in result.error


async def test_metadata_address_is_refused_even_when_private_addresses_are_allowed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(outbound, "resolve", fake_dns({"metadata.example": ["169.254.169.254"]}))

    literal = await request("GET", "http://169.254.169.254/", allow_http=True, allow_private=True)
    mapped = await request("GET", "http://[::ffff:a9fe:a9fe]/", allow_http=True, allow_private=True)
    named = await request("GET", "http://metadata.example/", allow_http=True, allow_private=True)

    assert literal.error_kind == mapped.error_kind == named.error_kind == "refused_address"


# --- Connecting to the checked address (DNS rebinding) -------------------------------------------


async def test_connection_goes_to_the_checked_address_without_a_second_lookup(
    monkeypatch: pytest.MonkeyPatch, dialed: Callable[[int], list[str]]
) -> None:
    # A rebinding resolver: a public address the first time, loopback afterwards.
    answers = iter([["93.184.215.14"], ["127.0.0.1"], ["127.0.0.1"]])
    calls: list[str] = []

    async def rebinding(
        host: str, port: int
    ) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        calls.append(host)
        return [ipaddress.ip_address(a) for a in next(answers)]

    monkeypatch.setattr(outbound, "resolve", rebinding)
    async with Receiver(reply(200, b"thanks")) as receiver:
        seen = dialed(receiver.port)
        result = await request("POST", "http://rebind.example.com/hook", allow_http=True)

    assert result.ok and result.excerpt == "thanks"
    assert calls == ["rebind.example.com"]  # resolved once
    assert seen == ["93.184.215.14"]  # and the socket layer got the checked IP, not the name
    assert receiver.requests[0].headers["host"] == "rebind.example.com"


async def test_every_address_is_tried_in_order_until_one_connects(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    closed = free_port()
    original = httpcore.AnyIOBackend.connect_tcp
    seen: list[str] = []
    async with Receiver(reply(200)) as receiver:

        async def connect_tcp(self, host, _port, **options):
            seen.append(host)
            target = receiver.port if host == "93.184.215.15" else closed
            return await original(self, "127.0.0.1", target, **options)

        monkeypatch.setattr(httpcore.AnyIOBackend, "connect_tcp", connect_tcp)
        monkeypatch.setattr(
            outbound, "resolve", fake_dns({"multi.example.com": ["93.184.215.14", "93.184.215.15"]})
        )
        result = await request("GET", "http://multi.example.com/", allow_http=True)

    assert result.ok
    assert seen == ["93.184.215.14", "93.184.215.15"]


# --- TLS: pinned IP, hostname for SNI and the certificate ----------------------------------------


@dataclass(frozen=True)
class Pki:
    server: ssl.SSLContext
    client: ssl.SSLContext
    names_seen: list[str | None]


def _cert(
    subject: str, issuer_key, public_key, issuer: x509.Name, *, ca: bool, sans=()
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if sans:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in sans]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A test CA and a server certificate for hooks.example.test."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Kehu Test CA")])
    ca = _cert("Kehu Test CA", ca_key, ca_key.public_key(), ca_name, ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = _cert(
        "hooks.example.test",
        ca_key,
        key.public_key(),
        ca_name,
        ca=False,
        sans=["hooks.example.test"],
    )
    folder: Path = tmp_path_factory.mktemp("pki")
    (folder / "leaf.pem").write_bytes(
        leaf.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(serialization.Encoding.PEM)
    )
    (folder / "leaf.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(folder / "leaf.pem", folder / "leaf.key")
    names_seen: list[str | None] = []
    server.sni_callback = lambda _sock, name, _ctx: names_seen.append(name)
    client = ssl.create_default_context(
        cadata=ca.public_bytes(serialization.Encoding.PEM).decode("ascii")
    )
    return Pki(server, client, names_seen)


async def test_tls_uses_the_hostname_while_connecting_to_the_pinned_address(
    pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    # .test names never resolve for real: success proves the checked address was used.
    monkeypatch.setattr(outbound, "resolve", fake_dns({"hooks.example.test": ["127.0.0.1"]}, calls))
    pki.names_seen.clear()
    async with Receiver(reply(202, b"accepted"), ssl_context=pki.server) as receiver:
        result = await request(
            "POST",
            f"https://hooks.example.test:{receiver.port}/hook",
            content=b'{"event":"ping"}',
            headers={"Content-Type": "application/json"},
            allow_private=True,
            ssl_context=pki.client,
        )

    assert result.ok and result.status == 202 and result.excerpt == "accepted", result.error
    assert pki.names_seen == ["hooks.example.test"]  # SNI
    assert calls == ["hooks.example.test"]
    assert receiver.requests[0].body == b'{"event":"ping"}'


async def test_certificate_for_another_name_is_a_tls_error(
    pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outbound, "resolve", fake_dns({"other.example.test": ["127.0.0.1"]}))
    async with Receiver(reply(200), ssl_context=pki.server) as receiver:
        wrong_name = await request(
            "GET",
            f"https://other.example.test:{receiver.port}/",
            allow_private=True,
            ssl_context=pki.client,
        )
        untrusted = await request("GET", f"https://127.0.0.1:{receiver.port}/", allow_private=True)

    assert wrong_name.error_kind == "tls_error", wrong_name.error
    assert untrusted.error_kind == "tls_error", untrusted.error
    assert receiver.requests == []


async def test_redirect_from_https_to_plain_http_is_refused(
    pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outbound, "resolve", fake_dns({"hooks.example.test": ["127.0.0.1"]}))
    async with Receiver(reply(302), ssl_context=pki.server) as receiver:
        receiver.respond = reply(
            302, headers=[f"Location: http://hooks.example.test:{receiver.port}/plain"]
        )
        result = await request(
            "POST",
            f"https://hooks.example.test:{receiver.port}/hook",
            allow_private=True,
            ssl_context=pki.client,
        )

    assert result.error_kind == "bad_url" and result.error == "only https URLs are allowed"
    assert len(receiver.requests) == 1


# --- Redirects -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("location", "dns"),
    [
        ("http://169.254.169.254/latest/meta-data/iam/", {}),
        ("http://0xa9fea9fe/latest/meta-data/", {}),
        ("http://127.0.0.1/admin", {}),
        ("http://0177.0.0.1/admin", {}),
        ("http://[::ffff:10.0.0.1]/", {}),
        ("http://localhost/", {}),
        ("http://internal.example.com/", {"internal.example.com": ["10.0.0.7"]}),
        ("http://rebound.example.com/", {"rebound.example.com": ["93.184.215.20", "::1"]}),
    ],
)
async def test_redirect_to_a_refused_address_is_refused(
    location: str,
    dns: dict[str, list[str]],
    monkeypatch: pytest.MonkeyPatch,
    dialed: Callable[[int], list[str]],
) -> None:
    monkeypatch.setattr(
        outbound, "resolve", fake_dns({"hooks.example.com": ["93.184.215.14"], **dns})
    )
    async with Receiver(reply(307, headers=[f"Location: {location}"])) as receiver:
        seen = dialed(receiver.port)
        result = await request("POST", "http://hooks.example.com/hook", allow_http=True)

    assert result.error_kind == "refused_address", result.error
    assert result.redirects == 1
    assert seen == ["93.184.215.14"]  # the first hop only
    assert len(receiver.requests) == 1


async def test_redirect_to_a_public_address_is_followed_and_checked_again(
    monkeypatch: pytest.MonkeyPatch, dialed: Callable[[int], list[str]]
) -> None:
    calls: list[str] = []
    monkeypatch.setattr(
        outbound,
        "resolve",
        fake_dns({"a.example.com": ["93.184.215.14"], "b.example.com": ["93.184.215.15"]}, calls),
    )

    async def respond(receiver: Receiver, req: Captured, writer: asyncio.StreamWriter) -> None:
        if req.headers["host"] == "a.example.com":
            writer.write(http_response(308, headers=["Location: http://b.example.com/final"]))
        else:
            writer.write(http_response(200, b"final"))

    async with Receiver(respond) as receiver:
        seen = dialed(receiver.port)
        result = await request(
            "POST",
            "http://a.example.com/hook",
            content=b"payload",
            headers={"Authorization": "Bearer secret", "X-Kehu-Signature": "sig"},
            allow_http=True,
        )

    assert result.ok and result.redirects == 1 and result.excerpt == "final"
    assert calls == ["a.example.com", "b.example.com"]
    assert seen == ["93.184.215.14", "93.184.215.15"]
    first, second = receiver.requests
    assert (second.method, second.target, second.body) == ("POST", "/final", b"payload")  # 308
    assert first.headers["authorization"] == "Bearer secret"
    assert "authorization" not in second.headers  # another origin: credentials dropped
    assert second.headers["x-kehu-signature"] == "sig"


async def test_see_other_continues_as_get_without_the_body() -> None:
    async def respond(receiver: Receiver, req: Captured, writer: asyncio.StreamWriter) -> None:
        if req.target == "/hook":
            writer.write(http_response(303, headers=["Location: /status"]))
        else:
            writer.write(http_response(200, b"ok"))

    async with Receiver(respond) as receiver:
        result = await request(
            "POST",
            receiver.base + "/hook",
            content=b"payload",
            headers={"Content-Type": "application/json", "Authorization": "Bearer t"},
            allow_http=True,
            allow_private=True,
        )

    assert result.ok and result.redirects == 1
    first, second = receiver.requests
    assert (first.method, first.body) == ("POST", b"payload")
    assert (second.method, second.target, second.body) == ("GET", "/status", b"")
    assert "content-type" not in second.headers
    assert second.headers["authorization"] == "Bearer t"  # same origin


async def test_more_than_three_redirects_are_not_followed() -> None:
    async with Receiver(reply(302, headers=["Location: /again"])) as receiver:
        result = await request("GET", receiver.base + "/start", allow_http=True, allow_private=True)

    assert result.error_kind == "too_many_redirects"
    assert result.status == 302 and result.redirects == MAX_REDIRECTS
    assert len(receiver.requests) == MAX_REDIRECTS + 1


async def test_three_redirects_are_followed() -> None:
    async def respond(receiver: Receiver, req: Captured, writer: asyncio.StreamWriter) -> None:
        hop = len(receiver.requests)
        if hop <= MAX_REDIRECTS:
            writer.write(http_response(301, headers=[f"Location: /hop{hop}"]))
        else:
            writer.write(http_response(200, b"done"))

    async with Receiver(respond) as receiver:
        result = await request("GET", receiver.base + "/", allow_http=True, allow_private=True)

    assert result.ok and result.redirects == 3 and result.excerpt == "done"
    assert [r.target for r in receiver.requests] == ["/", "/hop1", "/hop2", "/hop3"]


async def test_cookies_are_neither_kept_nor_sent() -> None:
    async def respond(receiver: Receiver, req: Captured, writer: asyncio.StreamWriter) -> None:
        if req.target == "/hook":
            writer.write(
                http_response(302, headers=["Set-Cookie: session=abc; Path=/", "Location: /next"])
            )
        else:
            writer.write(http_response(200))

    async with Receiver(respond) as receiver:
        result = await request("GET", receiver.base + "/hook", allow_http=True, allow_private=True)

    assert result.ok
    assert all("cookie" not in r.headers for r in receiver.requests)


# --- A successful delivery -----------------------------------------------------------------------


async def test_successful_post_reports_status_time_and_excerpt() -> None:
    body = b'{"event":"customer.claimed","id":7}'
    async with Receiver(reply(201, b"created", ["Content-Type: text/plain"])) as receiver:
        result = await request(
            "POST",
            receiver.base + "/hooks/kehu?token=abc",
            content=body,
            headers={"Content-Type": "application/json", "X-Kehu-Event": "customer.claimed"},
            allow_http=True,
            allow_private=True,
        )

    assert result.ok
    assert result.status == 201 and result.error_kind is None and result.error is None
    assert result.excerpt == "created" and result.body_bytes == 7 and result.redirects == 0
    assert 0 < result.elapsed_ms < 5000
    [received] = receiver.requests
    assert received.method == "POST" and received.target == "/hooks/kehu?token=abc"
    assert received.body == body
    assert received.headers["content-type"] == "application/json"
    assert received.headers["x-kehu-event"] == "customer.claimed"
    assert received.headers["user-agent"] == outbound.USER_AGENT
    assert received.headers["accept-encoding"] == "identity"
    assert "cookie" not in received.headers


async def test_error_status_is_a_result_not_an_exception() -> None:
    async with Receiver(reply(500, b"boom")) as receiver:
        result = await request("POST", receiver.base + "/", allow_http=True, allow_private=True)

    assert not result.ok
    assert result.status == 500 and result.error_kind is None and result.excerpt == "boom"


async def test_proxy_settings_in_the_environment_are_ignored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with Receiver(reply(200, b"proxy")) as proxy, Receiver(reply(200, b"direct")) as target:
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
            monkeypatch.setenv(name, proxy.base)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        result = await request("GET", target.base + "/", allow_http=True, allow_private=True)

    assert result.excerpt == "direct"
    assert proxy.connections == 0


# --- Limits: time and size -----------------------------------------------------------------------


async def _stall(receiver: Receiver, req: Captured, writer: asyncio.StreamWriter) -> None:
    await receiver.closing.wait()


async def _trickle(receiver: Receiver, req: Captured, writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
    # A byte every 50 ms: no single read ever times out. Gives up after 3 s, so a client
    # without a total deadline fails the test instead of hanging it.
    for _ in range(60):
        writer.write(b".")
        await writer.drain()
        await asyncio.sleep(0.05)
        if receiver.closing.is_set():
            return


@pytest.mark.parametrize("behaviour", [_stall, _trickle], ids=["silent", "trickling"])
async def test_whole_exchange_is_bounded_by_the_timeout(behaviour: Respond) -> None:
    async with Receiver(behaviour) as receiver:
        started = time.perf_counter()
        result = await request(
            "POST", receiver.base + "/", allow_http=True, allow_private=True, timeout=0.5
        )
        elapsed = time.perf_counter() - started

    assert result.error_kind == "timeout" and result.status is None
    assert 0.45 <= elapsed < 1.5
    assert result.elapsed_ms == pytest.approx(elapsed * 1000, abs=100)


async def test_a_longer_timeout_is_clamped_to_five_seconds() -> None:
    async with Receiver(_stall) as receiver:
        started = time.perf_counter()
        result = await request(
            "GET", receiver.base + "/", allow_http=True, allow_private=True, timeout=60
        )
        elapsed = time.perf_counter() - started

    assert result.error_kind == "timeout"
    assert outbound.MAX_TIMEOUT == 5.0
    assert 4.9 <= elapsed < 6.5


async def test_body_is_read_up_to_64_kib_of_a_1_mib_response() -> None:
    mebibyte = bytes(range(97, 123)) * (1024 * 1024 // 26) + b"z" * (1024 * 1024 % 26)
    assert len(mebibyte) == 1024 * 1024
    async with Receiver(reply(200, mebibyte)) as receiver:
        result = await request("GET", receiver.base + "/", allow_http=True, allow_private=True)

    assert result.ok
    assert result.body_bytes == MAX_BODY_BYTES == 64 * 1024
    assert result.excerpt == mebibyte[:MAX_EXCERPT_BYTES].decode("ascii")


async def test_reading_stops_at_the_cap_instead_of_waiting_for_more() -> None:
    # 64 KiB arrive, then nothing: reading more than the cap would hang until the timeout.
    async def respond(receiver: Receiver, req: Captured, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10000000\r\n\r\n" + b"x" * MAX_BODY_BYTES)
        await writer.drain()
        await receiver.closing.wait()

    async with Receiver(respond) as receiver:
        result = await request(
            "GET", receiver.base + "/", allow_http=True, allow_private=True, timeout=3
        )

    assert result.ok and result.body_bytes == MAX_BODY_BYTES
    assert result.elapsed_ms < 2000


async def test_excerpt_is_at_most_1_kib_and_decoded_leniently() -> None:
    text = "é" * 1000  # 2000 bytes of UTF-8: the 1 KiB cut falls between characters
    async with (
        Receiver(reply(200, text.encode())) as utf8,
        Receiver(
            reply(
                200, b"\xff\xfe broken \xc3", ["Content-Type: text/plain; charset=no-such-charset"]
            )
        ) as broken,
        Receiver(
            reply(200, "Grüße".encode("latin-1"), ["Content-Type: text/plain; charset=ISO-8859-1"])
        ) as latin1,
    ):
        utf8_result = await request("GET", utf8.base, allow_http=True, allow_private=True)
        broken_result = await request("GET", broken.base, allow_http=True, allow_private=True)
        latin1_result = await request("GET", latin1.base, allow_http=True, allow_private=True)

    assert utf8_result.excerpt == "é" * (MAX_EXCERPT_BYTES // 2)
    assert utf8_result.body_bytes == 2000
    assert broken_result.excerpt == "\ufffd\ufffd broken \ufffd"
    assert latin1_result.excerpt == "Grüße"


# --- Network failures are results ----------------------------------------------------------------


async def test_closed_port_is_a_connect_error() -> None:
    result = await request(
        "GET", f"http://127.0.0.1:{free_port()}/", allow_http=True, allow_private=True
    )

    assert result.error_kind == "connect_error" and result.status is None
    assert result.error


async def test_connection_closed_without_a_response_is_a_protocol_error() -> None:
    async def hang_up(receiver: Receiver, req: Captured, writer: asyncio.StreamWriter) -> None:
        return None

    async with Receiver(hang_up) as receiver:
        result = await request("GET", receiver.base + "/", allow_http=True, allow_private=True)

    assert result.error_kind == "protocol_error", result.error


async def test_invalid_arguments_are_programming_errors() -> None:
    with pytest.raises(ValueError, match="timeout"):
        await request("GET", "https://example.com/", timeout=0)
    with pytest.raises(ValueError, match="method"):
        await request("GET /x HTTP/1.1\r\n", "https://example.com/")

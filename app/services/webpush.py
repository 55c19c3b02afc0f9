"""Web Push sender: RFC 8030 delivery, RFC 8291 message encryption, RFC 8292 VAPID.

One call to :func:`send` is one delivery attempt to one subscription. It never raises for HTTP or
network failures: the outcome says what the caller (the push dispatcher) should do next —

* ``delivered``: 2xx, the push service accepted the message;
* ``gone``: 404/410, the subscription has expired or was revoked: delete it (DESIGN rule 6);
* ``retry``: 408, 429, 5xx, network error or timeout: try again after :func:`backoff_delay`
  (which honours ``retry_after``);
* ``failed``: any other status, or a request that cannot be made (invalid subscription keys,
  payload too large, endpoint not an http(s) URL): retrying the same message will not help.

Only :mod:`cryptography` and PyJWT are used: no Web Push library.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import email.utils
import functools
import hashlib
import json
import logging
import math
import os
import random
import re
import struct
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, get_args
from urllib.parse import urlsplit

import httpx
import jwt
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from app.services.outbound import read_capped

logger = logging.getLogger("kehu.push")

Outcome = Literal["delivered", "gone", "retry", "failed"]
Urgency = Literal["very-low", "low", "normal", "high"]
URGENCIES: frozenset[str] = frozenset(get_args(Urgency))

#: DESIGN rule 6: a push request never waits longer than this, whatever the caller asks.
MAX_TIMEOUT = 10.0
#: RFC 8292 §2: the JWT's ``exp`` must be no more than 24 hours after the request.
MAX_VAPID_TTL = timedelta(hours=24)
#: Push services keep messages at most about four weeks (FCM: 28 days); longer TTLs are clamped.
MAX_TTL = 28 * 24 * 3600
#: aes128gcm record size (RFC 8291 §4). The whole body is one record.
RECORD_SIZE = 4096
#: RFC 8291 §4: 4096 octets of body less the 86-octet header, the padding delimiter and the
#: 16-octet AEAD tag; push services need not accept more.
MAX_PLAINTEXT = 3993
#: How much of a response body is read (for the error message); the endpoint is a URL the
#: browser gave us, so never read an unbounded body from it.
MAX_RESPONSE_BYTES = 4096

_TOPIC_RE = re.compile(r"[A-Za-z0-9_-]{1,32}")
_DELTA_SECONDS_RE = re.compile(r"\d{1,10}(\.\d{1,6})?")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_SUBJECT_PREFIXES = ("mailto:", "https://")
_rng = random.SystemRandom()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(value: str) -> bytes:
    """Decode base64url with or without padding (also tolerating the standard alphabet)."""
    text = value.strip().replace("+", "-").replace("/", "_").rstrip("=")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not base64url") from exc


# --- VAPID keys (RFC 8292) -----------------------------------------------------------------------


@dataclass(frozen=True)
class VapidKeys:
    """The application server's P-256 key pair."""

    private_pem: str = field(repr=False)
    """PKCS8 PEM of the private key: what is stored (as a secret)."""
    public_key: str
    """base64url (no padding) uncompressed point: the browser's ``applicationServerKey``."""


def _keys_from_private(private_key: ec.EllipticCurvePrivateKey) -> VapidKeys:
    pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")
    public = private_key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return VapidKeys(private_pem=pem, public_key=_b64url(public))


def generate_vapid_keys() -> VapidKeys:
    """A new VAPID key pair."""
    return _keys_from_private(ec.generate_private_key(ec.SECP256R1()))


@functools.lru_cache(maxsize=16)
def _load_private_key(private_pem: str) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(private_pem.encode("ascii"), password=None)
    except (ValueError, TypeError, UnicodeEncodeError) as exc:
        raise ValueError("not an unencrypted PEM private key") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("VAPID needs a P-256 (secp256r1) key")
    return key


def vapid_keys_from_pem(private_pem: str) -> VapidKeys:
    """Keys from a stored private key (PKCS8 or SEC1 PEM); ``private_pem`` comes back as PKCS8."""
    return _keys_from_private(_load_private_key(private_pem))


def endpoint_origin(endpoint: str) -> str:
    """``scheme://host[:port]`` of a push endpoint: the JWT audience (RFC 8292 §2).

    The port is left out when it is the scheme's default, as in an origin's serialization.
    """
    parts = urlsplit(endpoint.strip())
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError("push endpoint must be an http(s) URL with a host")
    host = parts.hostname
    if ":" in host:
        host = f"[{host}]"
    port = parts.port  # raises ValueError for a malformed port
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        host = f"{host}:{port}"
    return f"{scheme}://{host}"


def _check_subject(subject: str) -> None:
    # RFC 8292 §2.1: a contact URI; Apple's push service refuses tokens without a valid one.
    if not subject.startswith(_SUBJECT_PREFIXES) or len(subject) <= len("mailto:"):
        raise ValueError("VAPID subject must be a mailto: or https:// URI")


def vapid_authorization(
    keys: VapidKeys,
    endpoint: str,
    subject: str,
    *,
    now: datetime | None = None,
    ttl: timedelta = timedelta(hours=12),
) -> str:
    """The ``Authorization`` header value for a push to ``endpoint`` (RFC 8292 §3).

    ``vapid t=<ES256 JWT: aud=origin of endpoint, exp=now+ttl, sub=subject>, k=<public key>``.
    """
    if not timedelta(0) < ttl <= MAX_VAPID_TTL:
        raise ValueError("VAPID token lifetime must be > 0 and <= 24 h")
    _check_subject(subject)
    if now is None:
        now = datetime.now(UTC)
    elif now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    claims = {
        "aud": endpoint_origin(endpoint),
        "exp": int((now + ttl).timestamp()),
        "sub": subject,
    }
    # PyJWT's ES256 emits the JWS form (raw r || s, 64 bytes) that RFC 8292 requires.
    token = jwt.encode(claims, _load_private_key(keys.private_pem), algorithm="ES256")
    return f"vapid t={token}, k={keys.public_key}"


# One signed token per push-service origin, reused until an hour before it expires: signing
# costs far more than the rest of a push, and every device of a push service shares the origin.
_TOKEN_TTL = timedelta(hours=12)
_TOKEN_REFRESH = timedelta(hours=1)
_token_cache: dict[tuple[str, str, str], tuple[str, datetime]] = {}


def _cached_authorization(keys: VapidKeys, endpoint: str, subject: str) -> str:
    now = datetime.now(UTC)
    key = (keys.public_key, endpoint_origin(endpoint), subject)
    cached = _token_cache.get(key)
    if cached is not None and cached[1] - now > _TOKEN_REFRESH:
        return cached[0]
    header = vapid_authorization(keys, endpoint, subject, now=now, ttl=_TOKEN_TTL)
    if len(_token_cache) > 1000:  # a handful of push services in practice
        _token_cache.clear()
    _token_cache[key] = (header, now + _TOKEN_TTL)
    return header


# --- Message encryption (RFC 8291, aes128gcm from RFC 8188) --------------------------------------


def _hkdf(salt: bytes, ikm: bytes, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


def _encrypt_record(
    payload: bytes,
    ua_public: bytes,
    auth_secret: bytes,
    *,
    sender_key: ec.EllipticCurvePrivateKey,
    salt: bytes,
) -> bytes:
    """RFC 8291 §3.4 with a given sender key and salt (fixed only by the RFC test vector)."""
    if len(payload) > MAX_PLAINTEXT:
        raise ValueError(f"push payload is {len(payload)} bytes; at most {MAX_PLAINTEXT}")
    if len(auth_secret) != 16:
        raise ValueError("auth secret must be 16 bytes")
    if len(ua_public) != 65 or ua_public[0] != 0x04:
        raise ValueError("p256dh must be an uncompressed P-256 point (65 bytes)")
    ua_key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), ua_public)
    as_public = sender_key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    ecdh_secret = sender_key.exchange(ec.ECDH(), ua_key)
    ikm = _hkdf(auth_secret, ecdh_secret, b"WebPush: info\x00" + ua_public + as_public, 32)
    cek = _hkdf(salt, ikm, b"Content-Encoding: aes128gcm\x00", 16)
    nonce = _hkdf(salt, ikm, b"Content-Encoding: nonce\x00", 12)
    # One record, so it is the last one: delimiter 0x02, no further padding (RFC 8188 §2).
    ciphertext = AESGCM(cek).encrypt(nonce, payload + b"\x02", None)
    header = salt + struct.pack("!IB", RECORD_SIZE, len(as_public)) + as_public
    return header + ciphertext


def encrypt(payload: bytes, p256dh: str, auth: str) -> bytes:
    """Encrypt ``payload`` for a subscription's keys: an RFC 8291 ``aes128gcm`` body.

    A fresh sender key pair and salt for every message. Raises ``ValueError`` for invalid keys
    or a payload over :data:`MAX_PLAINTEXT` bytes.
    """
    return _encrypt_record(
        payload,
        _b64url_decode(p256dh),
        _b64url_decode(auth),
        sender_key=ec.generate_private_key(ec.SECP256R1()),
        salt=os.urandom(16),
    )


# --- Delivery (RFC 8030) -------------------------------------------------------------------------


@dataclass(frozen=True)
class Subscription:
    """What the browser's ``PushSubscription.toJSON()`` gives: endpoint and keys."""

    endpoint: str
    p256dh: str
    auth: str


@dataclass(frozen=True)
class PushResult:
    outcome: Outcome
    status: int | None
    retry_after: float | None
    """Seconds to wait, from the response's Retry-After header when it had one."""
    latency_ms: float
    """Wall time of the whole :func:`send` call."""
    error: str | None


def safe_topic(topic: str) -> str:
    """A valid ``Topic`` header value (RFC 8030 §5.4: at most 32 base64url characters).

    A valid topic is kept as it is; anything else is replaced by a digest of it, so the same
    caller topic always maps to the same header.
    """
    if _TOPIC_RE.fullmatch(topic):
        return topic
    return _b64url(hashlib.sha256(topic.encode("utf-8")).digest())[:32]


def _outcome_for(status: int) -> Outcome:
    if 200 <= status < 300:
        return "delivered"
    if status in (404, 410):
        return "gone"
    if status in (408, 429) or status >= 500:
        return "retry"
    return "failed"


def _parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds from now: delta-seconds or an HTTP-date (RFC 9110 §10.2.3)."""
    if value is None:
        return None
    value = value.strip()
    if _DELTA_SECONDS_RE.fullmatch(value):
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _endpoint_host(endpoint: str) -> str:
    # The endpoint's path is a capability (anyone holding it can push): log the host only.
    try:
        return urlsplit(endpoint).hostname or "?"
    except ValueError:
        return "?"


def _describe(status: int, body: bytes) -> str:
    text = " ".join(body.decode("utf-8", "replace").split())[:200]
    return f"HTTP {status}: {text}" if text else f"HTTP {status}"


async def send(
    client: httpx.AsyncClient,
    keys: VapidKeys,
    subject: str,
    subscription: Subscription,
    payload: dict[str, Any],
    *,
    ttl: int = 3600,
    urgency: Urgency = "normal",
    topic: str | None = None,
    timeout: float = 10.0,  # noqa: ASYNC109 - part of the API: clamped, enforced below
) -> PushResult:
    """Deliver one message to one subscription; the result says what to do next.

    ``ttl`` (seconds the push service keeps an undelivered message) must be > 0 and is clamped to
    four weeks; ``timeout`` bounds the whole request and is clamped to 10 s; an invalid ``topic``
    is replaced by :func:`safe_topic`. Raises ``ValueError`` only for invalid arguments of the
    call itself (ttl, urgency, timeout, subject) — never for the subscription or the network.
    """
    if ttl <= 0:
        raise ValueError("TTL must be > 0")
    if urgency not in URGENCIES:
        raise ValueError(f"urgency must be one of {sorted(URGENCIES)}")
    if not (timeout > 0 and math.isfinite(timeout)):
        raise ValueError("timeout must be > 0")
    _check_subject(subject)
    timeout = min(timeout, MAX_TIMEOUT)
    started = time.perf_counter()
    host = _endpoint_host(subscription.endpoint)

    def finish(
        outcome: Outcome,
        status: int | None = None,
        error: str | None = None,
        retry_after: float | None = None,
    ) -> PushResult:
        latency_ms = (time.perf_counter() - started) * 1000
        logger.log(
            logging.INFO if outcome in ("delivered", "gone") else logging.WARNING,
            "push %s",
            outcome,
            extra={
                "endpoint_host": host,
                "status": status,
                "outcome": outcome,
                "latency_ms": round(latency_ms, 1),
                "error": error,
            },
        )
        return PushResult(outcome, status, retry_after, latency_ms, error)

    try:
        body = encrypt(
            json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8"),
            subscription.p256dh,
            subscription.auth,
        )
        headers = {
            "TTL": str(min(int(ttl), MAX_TTL)),
            "Urgency": urgency,
            "Content-Encoding": "aes128gcm",
            "Content-Type": "application/octet-stream",
            "Authorization": _cached_authorization(keys, subscription.endpoint, subject),
        }
    except ValueError as exc:
        return finish("failed", error=f"cannot build the push request: {exc}")
    if topic:
        headers["Topic"] = safe_topic(topic)

    try:
        # httpx's timeout applies per phase (connect, write, each read); asyncio.timeout bounds
        # the whole exchange, so a server trickling bytes cannot hold us past `timeout`.
        async with (
            asyncio.timeout(timeout),
            client.stream(
                "POST",
                subscription.endpoint,
                content=body,
                headers=headers,
                timeout=httpx.Timeout(timeout),
                follow_redirects=False,
            ) as response,
        ):
            detail = await read_capped(response, MAX_RESPONSE_BYTES)
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        return finish("failed", error=f"{type(exc).__name__}: {exc}")
    except (httpx.TimeoutException, TimeoutError):
        return finish("retry", error=f"timeout after {timeout:g} s")
    except httpx.HTTPError as exc:
        return finish("retry", error=f"{type(exc).__name__}: {exc}" if str(exc) else repr(exc))

    status = response.status_code
    outcome = _outcome_for(status)
    return finish(
        outcome,
        status,
        None if outcome == "delivered" else _describe(status, detail),
        _parse_retry_after(response.headers.get("Retry-After")),
    )


def backoff_delay(
    attempt: int,
    *,
    base: float = 30.0,
    cap: float = 3600.0,
    retry_after: float | None = None,
) -> float:
    """Seconds to wait before the next try: exponential backoff with full jitter.

    ``attempt`` counts the tries that have failed so far, starting at 1: the delay is drawn
    uniformly from ``[0, min(cap, base * 2 ** (attempt - 1))]`` (AWS "full jitter"). A
    ``retry_after`` from the push service is a floor: the delay is never shorter, even above
    ``cap`` (the dispatcher gives up on a message once its TTL has passed).
    """
    if attempt < 1:
        raise ValueError("attempt starts at 1")
    ceiling = min(cap, base * 2.0 ** min(attempt - 1, 64))
    delay = _rng.uniform(0.0, ceiling)
    if retry_after is not None and math.isfinite(retry_after):
        delay = max(delay, retry_after)
    return delay

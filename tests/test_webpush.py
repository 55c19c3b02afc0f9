"""Web Push sender (DESIGN rule 6): encryption, VAPID, headers and outcomes over real HTTP."""

from __future__ import annotations

import base64
import logging
import re
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import http_ece  # type: ignore[import-untyped]
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from app.services import webpush
from app.services.webpush import (
    PushResult,
    Subscription,
    VapidKeys,
    backoff_delay,
    encrypt,
    generate_vapid_keys,
    safe_topic,
    send,
    vapid_authorization,
    vapid_keys_from_pem,
)
from tests.push_endpoint import (
    PushService,
    PushSubscriber,
    Reply,
    b64url_decode,
    parse_vapid,
    unused_port_url,
    verify_vapid,
)

SUBJECT = "mailto:ops@kehu.example"
PAYLOAD = {
    "notification_id": 42,
    "kind": "follow_up_due",
    "title": "跟进：华东机电",
    "body": "今天 15:00",
    "link": "/customers/7",
}


@pytest.fixture(scope="module")
def running_service():
    with PushService().running() as service:
        yield service


@pytest.fixture
def service(running_service: PushService) -> PushService:
    running_service.clear()
    return running_service


@pytest.fixture(scope="module")
def keys() -> VapidKeys:
    return generate_vapid_keys()


@pytest.fixture
async def client():
    async with httpx.AsyncClient() as client:
        yield client


async def push(client, keys, subscriber: PushSubscriber, **kwargs) -> PushResult:
    return await send(client, keys, SUBJECT, subscriber.subscription, PAYLOAD, **kwargs)


# --- encryption ---------------------------------------------------------------------------------

# RFC 8291 Appendix A (published test data, not secrets).
RFC_PLAINTEXT = b"When I grow up, I want to be a watermelon"
RFC_UA_PUBLIC = (
    "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"
)
RFC_UA_PRIVATE = "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94"
RFC_AS_PRIVATE = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw"
RFC_AUTH = "BTBZMqHH6r4Tts7J_aSIgg"
RFC_SALT = "DGv6ra1nlYgDCS1FRnbzlw"
RFC_BODY = (
    "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27ml"
    "mlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPT"
    "pK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN"
)


def private_key(b64: str) -> ec.EllipticCurvePrivateKey:
    return ec.derive_private_key(int.from_bytes(b64url_decode(b64), "big"), ec.SECP256R1())


def test_encryption_matches_the_rfc_8291_example_byte_for_byte():
    body = webpush._encrypt_record(
        RFC_PLAINTEXT,
        b64url_decode(RFC_UA_PUBLIC),
        b64url_decode(RFC_AUTH),
        sender_key=private_key(RFC_AS_PRIVATE),
        salt=b64url_decode(RFC_SALT),
    )
    assert body == b64url_decode(RFC_BODY)
    # ...and the vector itself is what an independent receiver decrypts.
    assert (
        http_ece.decrypt(
            body,
            private_key=private_key(RFC_UA_PRIVATE),
            auth_secret=b64url_decode(RFC_AUTH),
            version="aes128gcm",
        )
        == RFC_PLAINTEXT
    )


def test_encrypt_uses_a_fresh_sender_key_and_salt_with_the_aes128gcm_header():
    subscriber = PushSubscriber("https://push.example/push/x")
    sub = subscriber.subscription
    first, second = encrypt(b"hi", sub.p256dh, sub.auth), encrypt(b"hi", sub.p256dh, sub.auth)
    for body in (first, second):
        assert int.from_bytes(body[16:20], "big") == 4096  # rs
        assert body[20] == 65 and body[21] == 0x04  # idlen, uncompressed sender key
        assert len(body) == 86 + len(b"hi") + 1 + 16
        assert subscriber.decrypt(body) == b"hi"
    assert first[:16] != second[:16] and first[21:86] != second[21:86]


def test_encrypt_refuses_invalid_keys_and_oversized_payloads():
    sub = PushSubscriber("https://push.example/push/x").subscription
    with pytest.raises(ValueError):
        encrypt(b"x", "not-a-key", sub.auth)
    with pytest.raises(ValueError):
        encrypt(b"x", sub.p256dh, base64.urlsafe_b64encode(b"short").decode())
    with pytest.raises(ValueError):
        encrypt(b"x" * 3994, sub.p256dh, sub.auth)
    assert len(encrypt(b"x" * 3993, sub.p256dh, sub.auth)) == 4096


# --- VAPID --------------------------------------------------------------------------------------


def test_vapid_keys_round_trip_through_pem(keys):
    again = vapid_keys_from_pem(keys.private_pem)
    assert again == keys
    assert keys.private_pem.startswith("-----BEGIN PRIVATE KEY-----")  # PKCS8
    assert len(b64url_decode(keys.public_key)) == 65
    assert "PRIVATE" not in repr(keys)


def test_vapid_keys_from_a_sec1_pem_come_back_as_pkcs8(keys):
    key = serialization.load_pem_private_key(keys.private_pem.encode(), None)
    sec1 = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    assert sec1.startswith("-----BEGIN EC PRIVATE KEY-----")
    assert vapid_keys_from_pem(sec1) == keys


def test_vapid_keys_refuse_other_curves_and_garbage():
    p384 = ec.generate_private_key(ec.SECP384R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    for pem in (p384.decode(), "not a key"):
        with pytest.raises(ValueError):
            vapid_keys_from_pem(pem)


def test_vapid_authorization_claims(keys):
    now = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)
    header = vapid_authorization(
        keys, "https://fcm.googleapis.com/fcm/send/abc", SUBJECT, now=now, ttl=timedelta(hours=6)
    )
    token, k = parse_vapid(header)
    assert k == keys.public_key
    claims = jwt.decode(
        token,
        options={"verify_signature": False},
    )
    assert claims == {
        "aud": "https://fcm.googleapis.com",
        "exp": int((now + timedelta(hours=6)).timestamp()),
        "sub": SUBJECT,
    }


@pytest.mark.parametrize(
    ("endpoint", "audience"),
    [
        ("https://Push.Example:443/p/1", "https://push.example"),
        ("https://push.example:8443/p/1", "https://push.example:8443"),
        ("http://127.0.0.1:8080/push/x", "http://127.0.0.1:8080"),
        ("https://[::1]:9000/push/x", "https://[::1]:9000"),
    ],
)
def test_vapid_audience_is_the_endpoint_origin(endpoint, audience):
    assert webpush.endpoint_origin(endpoint) == audience


def test_vapid_refuses_long_lifetimes_naive_times_and_bad_subjects(keys):
    endpoint = "https://push.example/p/1"
    with pytest.raises(ValueError):
        vapid_authorization(keys, endpoint, SUBJECT, ttl=timedelta(hours=24, seconds=1))
    with pytest.raises(ValueError):
        vapid_authorization(keys, endpoint, SUBJECT, now=datetime(2026, 5, 1))
    with pytest.raises(ValueError):
        vapid_authorization(keys, endpoint, "ops@kehu.example")
    with pytest.raises(ValueError):
        vapid_authorization(keys, "ftp://push.example/p/1", SUBJECT)


# --- delivery over HTTP -------------------------------------------------------------------------


async def test_delivered_payload_decrypts_to_the_json_sent(service, client, keys):
    alice = service.subscriber()
    result = await push(client, keys, alice)
    assert result.outcome == "delivered"
    assert result.status == 201 and result.error is None and result.latency_ms > 0
    [received] = service.requests_for(alice.token)
    assert received.method == "POST"
    assert alice.decrypt_json(received.body) == PAYLOAD


async def test_push_request_headers(service, client, keys):
    alice = service.subscriber()
    await push(client, keys, alice, ttl=600, urgency="high", topic="follow-up-7")
    [received] = service.requests_for(alice.token)
    headers = received.headers
    assert int(headers["ttl"]) == 600 > 0
    assert headers["urgency"] == "high"
    assert headers["topic"] == "follow-up-7"
    assert headers["content-encoding"] == "aes128gcm"
    assert headers["content-type"] == "application/octet-stream"
    assert headers["authorization"].startswith("vapid t=")


async def test_default_headers_have_positive_ttl_normal_urgency_and_no_topic(service, client, keys):
    alice = service.subscriber()
    await push(client, keys, alice)
    [received] = service.requests_for(alice.token)
    assert int(received.headers["ttl"]) > 0
    assert received.headers["urgency"] == "normal"
    assert "topic" not in received.headers


async def test_an_invalid_topic_is_replaced_by_a_stable_safe_one(service, client, keys):
    alice = service.subscriber()
    raw = "客户 7 / follow-up reminder for the whole afternoon"
    await push(client, keys, alice, topic=raw)
    [received] = service.requests_for(alice.token)
    topic = received.headers["topic"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,32}", topic)
    assert topic == safe_topic(raw) != safe_topic(raw + "!")


async def test_vapid_jwt_verifies_with_k_and_names_the_push_service(service, client, keys):
    alice = service.subscriber()
    before = time.time()
    await push(client, keys, alice)
    [received] = service.requests_for(alice.token)
    # aud = scheme://host:port of the endpoint; the signature checks out with k.
    claims = verify_vapid(received, audience=service.base_url)
    assert service.base_url.startswith("http://127.0.0.1:")
    assert parse_vapid(received.headers["authorization"])[1] == keys.public_key
    assert 0 < claims["exp"] - before <= 24 * 3600
    assert claims["sub"] == SUBJECT


async def test_vapid_jwt_signed_by_another_key_does_not_verify(service, client, keys):
    alice = service.subscriber()
    await push(client, keys, alice)
    [received] = service.requests_for(alice.token)
    token, _ = parse_vapid(received.headers["authorization"])
    forged = received.headers.copy()
    forged["authorization"] = f"vapid t={token}, k={generate_vapid_keys().public_key}"
    with pytest.raises(jwt.InvalidSignatureError):
        verify_vapid(
            type(received)(received.method, received.path, received.token, forged, b""),
            audience=service.base_url,
        )


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, "delivered"),
        (202, "delivered"),
        (404, "gone"),
        (410, "gone"),
        (429, "retry"),
        (500, "retry"),
        (503, "retry"),
        (400, "failed"),
        (403, "failed"),
        (413, "failed"),
        (302, "failed"),
    ],
)
async def test_status_maps_to_outcome(service, client, keys, status, outcome):
    alice = service.subscriber()
    service.reply(alice.token, status)
    result = await push(client, keys, alice)
    assert (result.outcome, result.status) == (outcome, status)
    assert (result.error is None) == (outcome == "delivered")


async def test_429_with_retry_after_seconds_is_retry_with_the_delay(service, client, keys):
    alice = service.subscriber()
    service.reply(alice.token, Reply(429, retry_after="120"))
    result = await push(client, keys, alice)
    assert result.outcome == "retry"
    assert result.retry_after == 120.0


async def test_retry_after_as_an_http_date_becomes_seconds(service, client, keys):
    alice = service.subscriber()
    when = format_datetime(datetime.now(UTC) + timedelta(minutes=5), usegmt=True)
    service.reply(alice.token, Reply(503, retry_after=when))
    result = await push(client, keys, alice)
    assert result.outcome == "retry"
    assert result.retry_after is not None and 290 <= result.retry_after <= 300


async def test_failure_error_carries_the_push_service_reason(service, client, keys):
    alice = service.subscriber()
    service.reply(alice.token, Reply(403, body=b'{"reason": "BadJwtToken"}' + b" " * 100_000))
    result = await push(client, keys, alice)
    assert result.outcome == "failed"
    assert result.error is not None and "BadJwtToken" in result.error
    assert len(result.error) < 300


async def test_replies_follow_the_configured_sequence(service, client, keys):
    alice = service.subscriber()
    service.reply(alice.token, 500, 201)
    outcomes = [(await push(client, keys, alice)).outcome for _ in range(3)]
    assert outcomes == ["retry", "delivered", "delivered"]


async def test_connection_refused_is_retry_without_raising(client, keys):
    alice = PushSubscriber(f"{unused_port_url()}/push/nobody")
    result = await push(client, keys, alice)
    assert result.outcome == "retry"
    assert result.status is None and result.error


async def test_timeout_is_retry_without_raising(service, client, keys):
    alice = service.subscriber()
    service.reply(alice.token, Reply(201, delay=3.0))
    started = time.perf_counter()
    result = await push(client, keys, alice, timeout=0.3)
    assert time.perf_counter() - started < 2.0
    assert result.outcome == "retry"
    assert result.status is None and result.error and "timeout" in result.error


async def test_timeout_bounds_the_whole_exchange_not_each_read(service, client, keys):
    alice = service.subscriber()
    # Each byte arrives well within the read timeout; the whole body would take 4 s.
    service.reply(alice.token, Reply(400, body=b"x" * 40, trickle=0.1))
    started = time.perf_counter()
    result = await push(client, keys, alice, timeout=0.5)
    assert time.perf_counter() - started < 1.5
    assert result.outcome == "retry" and result.error and "timeout" in result.error


class RecordingTransport(httpx.AsyncBaseTransport):
    """Real HTTP, but remembers the timeouts each request was sent with."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.timeouts: list[dict[str, float | None]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.timeouts.append(request.extensions["timeout"])
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_timeout_is_clamped_to_ten_seconds(service, keys):
    transport = RecordingTransport()
    async with httpx.AsyncClient(transport=transport, timeout=60) as client:
        result = await push(client, keys, service.subscriber(), timeout=120)
    assert result.outcome == "delivered"
    [timeouts] = transport.timeouts
    assert set(timeouts) >= {"connect", "read", "write", "pool"}
    assert all(value is not None and 0 < value <= 10 for value in timeouts.values())


async def test_invalid_subscription_keys_fail_without_a_request(service, client, keys):
    sub = service.subscriber().subscription
    broken = Subscription(endpoint=sub.endpoint, p256dh="bm90IGEga2V5", auth=sub.auth)
    result = await send(client, keys, SUBJECT, broken, PAYLOAD)
    assert result.outcome == "failed" and result.status is None
    assert service.count == 0


async def test_oversized_payload_fails_without_a_request(service, client, keys):
    alice = service.subscriber()
    result = await send(client, keys, SUBJECT, alice.subscription, {"body": "x" * 5000})
    assert result.outcome == "failed"
    assert service.count == 0


async def test_non_http_endpoint_fails(client, keys):
    alice = PushSubscriber("ftp://push.example/push/x")
    assert (await push(client, keys, alice)).outcome == "failed"


@pytest.mark.parametrize(
    "kwargs", [{"ttl": 0}, {"urgency": "urgent"}, {"timeout": 0}, {"timeout": float("nan")}]
)
async def test_invalid_arguments_raise(service, client, keys, kwargs):
    with pytest.raises(ValueError):
        await push(client, keys, service.subscriber(), **kwargs)
    assert service.count == 0


async def test_every_attempt_is_logged_with_the_host_only(service, client, keys, caplog):
    alice = service.subscriber()
    service.reply(alice.token, 410)
    with caplog.at_level(logging.INFO, logger="kehu.push"):
        await push(client, keys, alice)
        await push(client, keys, PushSubscriber(f"{unused_port_url()}/push/secret-token"))
    gone, refused = [r for r in caplog.records if r.name == "kehu.push"]
    assert (gone.endpoint_host, gone.status, gone.outcome) == ("127.0.0.1", 410, "gone")
    assert (refused.status, refused.outcome) == (None, "retry")
    for record in (gone, refused):
        assert record.latency_ms >= 0
        text = record.getMessage() + repr(vars(record))
        assert alice.token not in text and "secret-token" not in text and "/push/" not in text


# --- backoff ------------------------------------------------------------------------------------


def samples(attempt: int, n: int = 300, **kwargs) -> list[float]:
    return [backoff_delay(attempt, **kwargs) for _ in range(n)]


def test_backoff_grows_exponentially_with_full_jitter():
    for attempt in (1, 2, 3, 4):
        ceiling = 30.0 * 2 ** (attempt - 1)
        drawn = samples(attempt)
        assert all(0 <= d <= ceiling for d in drawn)
        # Full jitter: spread over the whole range, not clustered at the ceiling.
        assert min(drawn) < ceiling / 4 and max(drawn) > ceiling * 3 / 4
        assert len(set(drawn)) > 250


def test_backoff_is_capped():
    assert all(d <= 3600 for d in samples(40))
    assert all(d <= 100 for d in samples(1000, base=1, cap=100))


def test_backoff_honours_retry_after_even_above_the_cap():
    assert all(d >= 120 for d in samples(1, retry_after=120))
    assert all(d >= 7200 for d in samples(3, retry_after=7200))
    with pytest.raises(ValueError):
        backoff_delay(0)

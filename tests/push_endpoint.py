"""A local Web Push service and browser-like subscribers, for tests and benchmarks.

The push service is a plain ASGI app served by uvicorn on 127.0.0.1 (a free port) in a background
thread with its own event loop, so it behaves like a remote server over real loopback HTTP and
works from sync and async tests alike. It records every request and answers per endpoint token::

    with PushService().running() as service:           # or the `push_service` fixture
        alice = service.subscriber()                    # Subscription(endpoint=.../push/<token>)
        service.reply(alice.token, 500, 201)            # first 500, then 201 from then on
        service.reply("gone-token", 410)
        ...send to alice.subscription...
        [push] = service.requests_for(alice.token)
        alice.decrypt_json(push.body)                   # http_ece, independent of our sender
        verify_vapid(push, audience=service.base_url)   # PyJWT + the `k` in the header

The receiving side deliberately does not use ``app.services.webpush`` for crypto: bodies are
decrypted with ``http_ece`` and VAPID tokens verified with PyJWT, so a symmetric bug in our
sender cannot hide.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import http_ece  # type: ignore[import-untyped]
import httpx
import jwt
import uvicorn
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from app.services.webpush import Subscription

PUSH_PATH = "/push/"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Reply:
    """How the push service answers one request."""

    status: int = 201
    retry_after: str | None = None
    delay: float = 0.0
    """Seconds to wait before answering (to provoke client timeouts)."""
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    trickle: float = 0.0
    """Send the body one byte every ``trickle`` seconds (a slow server that never stalls)."""


@dataclass(frozen=True)
class ReceivedPush:
    method: str
    path: str
    token: str | None
    """The endpoint token (the part after /push/), None for other paths."""
    headers: httpx.Headers
    body: bytes
    received_at: float = field(default_factory=time.time)


class PushService:
    """ASGI app of a push service: records requests, answers as configured per token.

    Any path outside ``/push/<token>`` gets 404. Unconfigured tokens get ``default`` (201).
    """

    def __init__(self, *, record: bool = True) -> None:
        self.record = record
        """Keep every request (turn off in benchmarks; ``count`` still counts them)."""
        self.default = Reply()
        self.requests: list[ReceivedPush] = []
        self.count = 0
        self.base_url = ""
        self._replies: dict[str, list[Reply]] = {}
        self._lock = threading.Lock()

    # configuration ---------------------------------------------------------------------------

    def reply(self, token: str, *replies: Reply | int) -> None:
        """Answer requests for ``token`` with these replies in order; the last one then sticks."""
        if not replies:
            raise ValueError("give at least one reply")
        with self._lock:
            self._replies[token] = [r if isinstance(r, Reply) else Reply(r) for r in replies]

    def clear(self) -> None:
        """Forget recorded requests and configured replies."""
        with self._lock:
            self.requests.clear()
            self._replies.clear()
            self.count = 0
            self.default = Reply()

    def endpoint(self, token: str | None = None) -> str:
        return f"{self.base_url}{PUSH_PATH}{token or secrets.token_urlsafe(16)}"

    def subscriber(self, token: str | None = None) -> PushSubscriber:
        """A browser-like subscription on this service (the service must be running)."""
        if not self.base_url:
            raise RuntimeError("the push service is not running")
        return PushSubscriber(self.endpoint(token))

    # inspection ------------------------------------------------------------------------------

    def requests_for(self, token: str) -> list[ReceivedPush]:
        with self._lock:
            return [r for r in self.requests if r.token == token]

    async def wait_for(self, count: int, within: float = 5.0) -> list[ReceivedPush]:
        """Wait until at least ``count`` requests arrived (for code that sends in background)."""
        deadline = time.monotonic() + within
        while self.count < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.count} push requests arrived, expected {count}")
            await asyncio.sleep(0.01)
        with self._lock:
            return list(self.requests)

    # ASGI ------------------------------------------------------------------------------------

    def _next_reply(self, token: str | None) -> Reply:
        with self._lock:
            if token is None:
                return Reply(404)
            queue = self._replies.get(token)
            if not queue:
                return self.default
            return queue.pop(0) if len(queue) > 1 else queue[0]

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        path: str = scope["path"]
        token = path[len(PUSH_PATH) :] if path.startswith(PUSH_PATH) else None
        received = ReceivedPush(
            method=scope["method"],
            path=path,
            token=token or None,
            headers=httpx.Headers(
                [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
            ),
            body=b"".join(chunks),
        )
        with self._lock:
            self.count += 1
            if self.record:
                self.requests.append(received)
        reply = self._next_reply(received.token)
        if reply.delay:
            await asyncio.sleep(reply.delay)
        headers = [(b"content-length", str(len(reply.body)).encode())]
        headers += [(k.encode(), v.encode()) for k, v in reply.headers]
        if reply.retry_after is not None:
            headers.append((b"retry-after", reply.retry_after.encode()))
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        if reply.trickle:
            for i in range(len(reply.body)):
                await send(
                    {"type": "http.response.body", "body": reply.body[i : i + 1], "more_body": True}
                )
                await asyncio.sleep(reply.trickle)
            await send({"type": "http.response.body", "body": b""})
        else:
            await send({"type": "http.response.body", "body": reply.body})

    # serving ---------------------------------------------------------------------------------

    @contextlib.contextmanager
    def running(self, host: str = "127.0.0.1") -> Iterator[PushService]:
        """Serve on ``host`` at a free port in a background thread; sets ``base_url``."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, 0))
        port = sock.getsockname()[1]
        config = uvicorn.Config(self, lifespan="off", log_level="warning", access_log=False)
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="push-service", daemon=True
        )
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the push service did not start")
            time.sleep(0.005)
        self.base_url = f"http://{host}:{port}"
        try:
            yield self
        finally:
            # Don't wait for replies still sleeping (timeout tests): drop them.
            server.should_exit = server.force_exit = True
            thread.join(10)
            sock.close()
            self.base_url = ""


def unused_port_url(host: str = "127.0.0.1") -> str:
    """A base URL where nothing listens (connection refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port = sock.getsockname()[1]
    return f"http://{host}:{port}"


class PushSubscriber:
    """What a browser holds for one push subscription: P-256 key pair and 16-byte auth secret."""

    def __init__(self, endpoint: str) -> None:
        self.private_key = ec.generate_private_key(ec.SECP256R1())
        self.auth_secret = os.urandom(16)
        public = self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        self.subscription = Subscription(
            endpoint=endpoint, p256dh=b64url(public), auth=b64url(self.auth_secret)
        )

    @property
    def token(self) -> str:
        return self.subscription.endpoint.rsplit(PUSH_PATH, 1)[-1]

    def decrypt(self, body: bytes) -> bytes:
        """Decrypt an aes128gcm push body as the browser would (with http_ece)."""
        plaintext: bytes = http_ece.decrypt(
            body, private_key=self.private_key, auth_secret=self.auth_secret, version="aes128gcm"
        )
        return plaintext

    def decrypt_json(self, body: bytes) -> Any:
        return json.loads(self.decrypt(body))


def parse_vapid(authorization: str) -> tuple[str, str]:
    """``(t, k)`` from an ``Authorization: vapid t=..., k=...`` header (RFC 8292 §3)."""
    scheme, _, params = authorization.partition(" ")
    if scheme.lower() != "vapid":
        raise ValueError(f"not a vapid authorization: {scheme!r}")
    values = dict(part.strip().split("=", 1) for part in params.split(",") if "=" in part)
    return values["t"], values["k"]


def verify_vapid(push: ReceivedPush, *, audience: str) -> dict[str, Any]:
    """Verify the VAPID JWT of a received push with its ``k`` and return the claims.

    Checks the ES256 signature, ``aud``, that ``exp`` is present and not past, and that the
    token header says ES256 — like a push service would.
    """
    token, k = parse_vapid(push.headers["authorization"])
    public_key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b64url_decode(k))
    if jwt.get_unverified_header(token).get("alg") != "ES256":
        raise ValueError("VAPID JWT must be ES256")
    claims: dict[str, Any] = jwt.decode(
        token,
        public_key,
        algorithms=["ES256"],
        audience=audience,
        options={"require": ["aud", "exp", "sub"]},
    )
    return claims

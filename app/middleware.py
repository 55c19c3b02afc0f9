"""ASGI middleware: request logging with ids, and Idempotency-Key handling for POST."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
import time
import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import logs, metrics
from app.config import Settings
from app.errors import (
    PROBLEM_MEDIA_TYPE,
    DomainError,
    PayloadTooLarge,
    ValidationFailed,
    field_error,
)
from app.security import InvalidToken, TokenSettings, decode_access_token
from app.services import api_keys, idempotency

log = logging.getLogger("kehu.http")

REPLAYED_HEADERS = ("content-type", "etag", "location")


class RequestLogMiddleware:
    """One structured log line per request, with a request id echoed as ``X-Request-ID``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope.get("headers") or () if k == b"x-request-id"), b"")
        request_id = given.decode()[:64] or uuid.uuid4().hex
        started = time.perf_counter()
        status = 500
        token = logs.request_id.set(request_id)

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            metrics.observe_request(scope["method"], route_template(scope), status, seconds)
            logs.request_id.reset(token)
            log.info(
                "request",
                extra={
                    "request_id": request_id,
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status,
                    "duration_ms": round(seconds * 1000, 2),
                },
            )


def route_template(scope: Scope) -> str:
    """The matched route's path template with every prefix it was included or mounted under
    (``/api/v1/customers/{customer_id}``), or ``unmatched``. A route knows its own template
    only below its router's prefix; the prefix is what precedes the route's part of the path."""
    route_format: str | None = getattr(scope.get("route"), "path_format", None)
    if not route_format:
        return "unmatched"
    path: str = scope.get("path", "")
    try:
        rendered = route_format.format(**scope.get("path_params", {}))
    except (KeyError, IndexError, ValueError):
        return route_format
    if rendered and path.endswith(rendered):
        return path[: len(path) - len(rendered)] + route_format
    return route_format


class BodySizeLimitMiddleware:
    """Refuses request bodies over ``max_bytes`` with a 413 problem before the app reads them.

    Bulk endpoints (paths in ``bulk_paths``) take up to ``bulk_max_bytes``: 10,000 orders do not
    fit in the default limit. ``path_max_bytes`` gives single paths a limit of their own (file
    uploads). A declared ``Content-Length`` over the limit is refused without reading a byte; a
    body sent without one (chunked) is counted as it arrives and refused as soon as it passes
    the limit — the rest is never read, whatever the app was doing with it.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        bulk_max_bytes: int | None = None,
        bulk_paths: tuple[str, ...] = (),
        path_max_bytes: Mapping[str, int] | None = None,
    ) -> None:
        self.app = app
        self.default_max_bytes = max_bytes
        self.bulk_max_bytes = bulk_max_bytes or max_bytes
        self.bulk_paths = frozenset(bulk_paths)
        self.path_max_bytes = dict(path_max_bytes or {})

    def limit_for(self, path: str) -> int:
        if path in self.path_max_bytes:
            return self.path_max_bytes[path]
        return self.bulk_max_bytes if path in self.bulk_paths else self.default_max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = chunked = None
        for name, value in scope.get("headers") or ():
            if name == b"content-length":
                declared = value
            elif name == b"transfer-encoding":
                chunked = value
        if declared is None and chunked is None:
            # A request with neither has no body (RFC 9112 §6.3): nothing to count.
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope.get("path", ""))
        too_large = PayloadTooLarge(f"request bodies are limited to {limit} bytes")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _send_plain(send, *_problem_response(too_large))
            return
        seen = 0
        exceeded = refused = False

        async def counting_receive() -> Message:
            nonlocal seen, exceeded
            if exceeded:
                raise _BodyTooLarge
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    exceeded = True
                    raise _BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            # The app may catch the error while parsing the body (FastAPI answers 400 "error
            # parsing the body"): once the limit is passed, its answer is replaced by the 413.
            nonlocal refused
            if not exceeded:
                await send(message)
            elif not refused:
                refused = True
                await _send_plain(send, *_problem_response(too_large))

        try:
            await self.app(scope, counting_receive, guarded_send)
        except _BodyTooLarge:
            if not refused:
                refused = True
                await _send_plain(send, *_problem_response(too_large))


class _BodyTooLarge(Exception):
    pass


def _problem_response(error: DomainError) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    body = json.dumps(error.problem(), ensure_ascii=False).encode()
    headers = [(b"content-type", PROBLEM_MEDIA_TYPE.encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in error.headers.items()]
    return error.status, headers, body


async def _send_plain(
    send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


_BOUNDARY = re.compile(rb'boundary="?([^";]+)"?', re.IGNORECASE)
_PART_NAME = re.compile(rb'\bname="([^"]*)"', re.IGNORECASE)
_PART_FILENAME = re.compile(rb'\bfilename="([^"]*)"', re.IGNORECASE)


def canonical_body(content_type: bytes, body: bytes) -> bytes:
    """The body as it counts for "the same request": a multipart form by its parts' names, file
    names and contents, without the boundary — clients (a browser's ``FormData``) draw a new
    boundary for every send, so a retry of the same upload differs byte for byte. Other bodies
    count as they are."""
    if not content_type.lower().startswith(b"multipart/form-data"):
        return body
    match = _BOUNDARY.search(content_type)
    if match is None:
        return body
    parts: list[bytes] = []
    for raw in body.split(b"--" + match.group(1))[1:]:
        if raw.startswith(b"--"):
            break  # the closing delimiter
        head, separator, content = raw.partition(b"\r\n\r\n")
        if not separator:
            return body
        name = _PART_NAME.search(head)
        filename = _PART_FILENAME.search(head)
        content = content.removesuffix(b"\r\n")
        parts.append(
            b"\0".join(
                (
                    name.group(1) if name else b"",
                    filename.group(1) if filename else b"",
                    hashlib.sha256(content).hexdigest().encode(),
                )
            )
        )
    return b"multipart\0" + b"\n".join(sorted(parts))


class IdempotencyMiddleware:
    """Honours ``Idempotency-Key`` on authenticated POST requests under /api/.

    The caller is identified from the bearer token, so keys are per user; requests that are not
    authenticated pass through untouched (they will be refused by the route anyway).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        maker_getter: Any,
        tokens_getter: Any,
        settings: Settings,
    ) -> None:
        self.app = app
        self._maker_getter = maker_getter
        self._tokens_getter = tokens_getter
        self.ttl = dt.timedelta(hours=settings.idempotency_ttl_hours)
        self.in_flight = dt.timedelta(seconds=settings.idempotency_in_flight_seconds)

    def _caller(self, headers: dict[bytes, bytes]) -> str | None:
        auth = headers.get(b"authorization", b"").decode()
        if not auth.lower().startswith("bearer "):
            return None
        token = auth[7:].strip()
        if api_keys.is_api_key(token):
            return api_keys.caller_id(token)
        tokens: TokenSettings | None = self._tokens_getter()
        if tokens is None:
            return None
        try:
            return "user:" + str(decode_access_token(tokens, token)["sub"])
        except InvalidToken:
            return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or not scope["path"].startswith("/api/")
        ):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        raw_key = headers.get(b"idempotency-key")
        if raw_key is None:
            await self.app(scope, receive, send)
            return
        key = raw_key.decode(errors="replace").strip().strip('"')
        if not key or len(key) > 255:
            error = ValidationFailed(
                "Idempotency-Key must be 1–255 characters",
                errors=[field_error("Idempotency-Key", "1–255 characters", where="header")],
            )
            await _send_plain(send, *_problem_response(error))
            return
        caller = self._caller(headers)
        if caller is None:
            await self.app(scope, receive, send)
            return

        body = b""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        fingerprint = idempotency.request_fingerprint(
            scope["method"],
            scope["path"],
            scope.get("query_string", b"").decode(),
            canonical_body(headers.get(b"content-type", b""), body),
        )

        maker: async_sessionmaker[AsyncSession] = self._maker_getter()
        try:
            outcome = await idempotency.claim_or_replay(
                maker,
                caller=caller,
                key=key,
                method=scope["method"],
                path=scope["path"],
                request_hash=fingerprint,
                ttl=self.ttl,
                in_flight_timeout=self.in_flight,
            )
        except DomainError as error:
            await _send_plain(send, *_problem_response(error))
            return
        if isinstance(outcome, idempotency.StoredResponse):
            replay_headers = [(k.encode(), v.encode()) for k, v in outcome.headers.items()]
            replay_headers.append((b"idempotent-replayed", b"true"))
            await _send_plain(send, outcome.status, replay_headers, outcome.body)
            return

        sent_body = False

        async def replay_receive() -> Message:
            nonlocal sent_body
            if not sent_body:
                sent_body = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        # The response is buffered, stored, and only then sent: a client that disconnects
        # mid-response still finds the stored result when it retries with the same key.
        status = 500
        start_headers: list[tuple[bytes, bytes]] = []
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal status, start_headers
            if message["type"] == "http.response.start":
                status = message["status"]
                start_headers = list(message.get("headers", []))
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        try:
            await self.app(scope, replay_receive, capture)
        except BaseException:
            await idempotency.release(maker, outcome)
            raise
        response_body = b"".join(chunks)
        if status >= 500:
            await idempotency.release(maker, outcome)
        else:
            kept = {
                k.decode().lower(): v.decode()
                for k, v in start_headers
                if k.decode().lower() in REPLAYED_HEADERS
            }
            await idempotency.store_response(
                maker, outcome, idempotency.StoredResponse(status, kept, response_body)
            )
        headers_out = [(k, v) for k, v in start_headers if k.lower() != b"content-length"]
        await _send_plain(send, status, headers_out, response_body)

"""Wake-ups for live notification streams, across worker processes (SPEC D3, L2).

A stream (``GET /notifications/stream``) waits on this process's ``HUB`` for its user instead
of querying the inbox every couple of seconds. ``announce`` — called by
``notifications.deliver``, the one place inbox rows are written — marks the recipients on the
session; when that transaction commits:

- every process hears of it through PostgreSQL: ``pg_notify('kehu_inbox', '<user ids>')`` is
  issued in the same transaction, so it is delivered at commit and dropped on rollback; each
  process holds one ``LISTEN`` connection (``Listener``) that wakes its local streams;
- this process's own streams are woken directly after commit (the only way on SQLite, where
  there is one process).

Streams still look on a timeout (``fallback_seconds``): 30 s while a LISTEN connection is up
(a wake-up lost while it was down is covered by waking every stream on reconnect), 2 s
otherwise — on SQLite, where a separate process may write without waking anyone, and while the
listener is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Iterator
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

log = logging.getLogger("kehu.inbox")

CHANNEL = "kehu_inbox"
_PENDING = "kehu_inbox_users"
# NOTIFY payloads must stay under 8000 bytes.
_PAYLOAD_LIMIT = 7000
# How long a stream waits without a wake-up before it looks anyway.
CONNECTED_FALLBACK_SECONDS = 30.0
DISCONNECTED_FALLBACK_SECONDS = 2.0


class InboxHub:
    """This process's waiting streams, by user id."""

    def __init__(self) -> None:
        self._waiters: dict[int, set[asyncio.Event]] = {}
        # Whether cross-process wake-ups arrive (a LISTEN connection is up) — or are not
        # needed (SQLite: one process). Streams poll fast while this is false.
        self.connected = False
        self.listening = False

    @contextlib.contextmanager
    def subscribe(self, user_id: int) -> Iterator[asyncio.Event]:
        wake = asyncio.Event()
        self._waiters.setdefault(user_id, set()).add(wake)
        try:
            yield wake
        finally:
            waiters = self._waiters.get(user_id)
            if waiters is not None:
                waiters.discard(wake)
                if not waiters:
                    del self._waiters[user_id]

    def publish(self, user_ids: Iterable[int]) -> None:
        for user_id in user_ids:
            for wake in self._waiters.get(user_id, ()):
                wake.set()

    def publish_all(self) -> None:
        for waiters in self._waiters.values():
            for wake in waiters:
                wake.set()

    @property
    def mode(self) -> str:
        """How streams learn of news: ``listening`` (LISTEN/NOTIFY, every process's writes),
        ``in-process`` (SQLite: the one process's writes) or ``polling`` (no listener yet, or
        its connection is down: every couple of seconds)."""
        if not self.connected:
            return "polling"
        return "listening" if self.listening else "in-process"

    @property
    def fallback_seconds(self) -> float:
        """How long a stream may go without looking: long only while every process's writes
        wake it (LISTEN). On SQLite another process (``kehu dispatch-reminders``, a separate
        ``kehu scheduler``) writes without waking this one's streams: they look every 2 s."""
        if self.connected and self.listening:
            return CONNECTED_FALLBACK_SECONDS
        return DISCONNECTED_FALLBACK_SECONDS

    async def wait(self, wake: asyncio.Event, seconds: float) -> bool:
        """Until this stream is woken (True) or ``seconds`` pass (False)."""
        woken = True
        try:
            async with asyncio.timeout(seconds):
                await wake.wait()
        except TimeoutError:
            woken = False
        wake.clear()
        return woken


HUB = InboxHub()


async def announce(session: AsyncSession, user_ids: Iterable[int]) -> None:
    """Tell the recipients' streams, once the caller's transaction commits, that their inbox
    has news."""
    ids = sorted(set(user_ids))
    if not ids:
        return
    session.sync_session.info.setdefault(_PENDING, set()).update(ids)
    if session.get_bind().dialect.name == "postgresql":
        for payload in _payloads(ids):
            await session.execute(text("SELECT pg_notify(:c, :p)"), {"c": CHANNEL, "p": payload})


def _payloads(ids: list[int]) -> Iterator[str]:
    part: list[str] = []
    size = 0
    for user_id in ids:
        item = str(user_id)
        if part and size + len(item) + 1 > _PAYLOAD_LIMIT:
            yield ",".join(part)
            part, size = [], 0
        part.append(item)
        size += len(item) + 1
    if part:
        yield ",".join(part)


@event.listens_for(Session, "after_commit")
def _wake_local_streams(session: Session) -> None:
    ids = session.info.pop(_PENDING, None)
    if ids:
        HUB.publish(ids)


@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop(_PENDING, None)


class Listener:
    """One ``LISTEN kehu_inbox`` connection per process (PostgreSQL), reconnecting when lost."""

    def __init__(self, database_url: str, hub: InboxHub = HUB, retry_seconds: float = 2.0):
        url = make_url(database_url)
        self.enabled = url.get_backend_name() == "postgresql"
        self._dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self.hub = hub
        self.retry_seconds = retry_seconds
        self._task: asyncio.Task[None] | None = None
        self._connection: Any = None

    async def start(self) -> None:
        self.hub.listening = self.enabled
        if not self.enabled:
            self.hub.connected = True  # one process: local wake-ups reach every stream
            return
        self._task = asyncio.create_task(self._run(), name="kehu-inbox-listener")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._close()
        self.hub.connected = False

    def _received(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            ids = [int(part) for part in payload.split(",") if part]
        except ValueError:
            self.hub.publish_all()
            return
        self.hub.publish(ids)

    def _lost(self, _connection: Any) -> None:
        self.hub.connected = False

    async def _close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.close(timeout=2)

    async def _run(self) -> None:
        import asyncpg  # type: ignore[import-untyped]

        while True:
            try:
                self._connection = await asyncpg.connect(self._dsn, timeout=10)
                self._connection.add_termination_listener(self._lost)
                await self._connection.add_listener(CHANNEL, self._received)
                self.hub.connected = True
                # Whatever was announced while no connection listened: every stream looks.
                self.hub.publish_all()
                while not self._connection.is_closed():
                    await asyncio.sleep(self.retry_seconds)
                    with contextlib.suppress(Exception):
                        await self._connection.execute("SELECT 1", timeout=5)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # database away: streams poll until it is back
                log.warning("inbox listener down: %s", type(exc).__name__)
            self.hub.connected = False
            await self._close()
            await asyncio.sleep(self.retry_seconds)

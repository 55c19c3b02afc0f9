"""The job scheduler (SPEC L2): APScheduler 3 with fixed job ids and one active instance.

It runs embedded in the web process (default) or alone (``kehu scheduler``). With PostgreSQL,
several processes may each start one: a session-level advisory lock, held on a dedicated
connection, elects the active instance; the others stay paused and retry the lock, so when the
active process dies (its connection closes and the lock is released) another takes over within
``leader_retry_seconds``. The active instance checks its lock connection every few seconds and
pauses itself if the connection is gone. Jobs are safe even if two instances run at once anyway:
their work items are rows claimed atomically (see services.notifications).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from app import metrics
from app.config import Settings
from app.jobs import housekeeping, imports, lifecycle, pool, reminders, tag_rules, webhooks
from app.services.analytics.frames import AnalyticsStore

log = logging.getLogger("kehu.scheduler")

# pg_advisory_lock key: "kehu" in ASCII.
LEADER_LOCK_KEY = 0x6B656875


async def leader_elsewhere(connection: AsyncConnection | AsyncSession) -> bool:
    """Whether some session holds the leader lock of this database (an active scheduler
    anywhere; advisory locks are per database)."""
    # A one-number advisory key shows in pg_locks as classid (high 32 bits), objid (low 32
    # bits) and objsubid 1.
    held = await connection.scalar(
        text(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " AND classid = :high AND objid = :low AND objsubid = 1)"
        ),
        {"high": LEADER_LOCK_KEY >> 32, "low": LEADER_LOCK_KEY & 0xFFFFFFFF},
    )
    return bool(held)


class KehuScheduler:
    def __init__(
        self,
        engine: AsyncEngine,
        maker: async_sessionmaker[AsyncSession],
        settings: Settings,
        http: httpx.AsyncClient,
        *,
        leader_retry_seconds: float = 10.0,
        lock_check_seconds: float = 5.0,
        analytics: AnalyticsStore | None = None,
    ) -> None:
        self.engine = engine
        self.maker = maker
        self.settings = settings
        self.http = http
        self.leader_retry_seconds = leader_retry_seconds
        self.lock_check_seconds = lock_check_seconds
        self.is_leader = False
        self.lock_backend_pid: int | None = None
        self._aps = AsyncIOScheduler(timezone="UTC")
        self._lock_conn: AsyncConnection | None = None
        self._leader_task: asyncio.Task[None] | None = None
        # Auto-tag rules load frames through an analytics store: the web app's when given,
        # otherwise one of the scheduler's own (``kehu scheduler`` runs without the web app).
        self._owns_analytics = analytics is None
        self.analytics = analytics or AnalyticsStore(
            engine.url.render_as_string(hide_password=False),
            workers=1,
            full_reload_seconds=settings.analytics_full_reload_seconds,
            cache_dir=settings.analytics_cache_dir,
        )
        self._add_jobs()

    def _add_jobs(self) -> None:
        maker, settings = self.maker, self.settings
        # coalesce: ticks missed while paused or busy run once, not many times; the grace time
        # skips a tick that is badly late (the next one picks up the same still-due rows).
        jobs: list[tuple[str, Callable[..., Awaitable[Any]], list[Any], float, int]] = [
            (
                "dispatch_reminders",
                reminders.dispatch_reminders,
                [maker, settings, self.http],
                settings.dispatch_interval_seconds,
                30,
            ),
            ("schedule_digests", reminders.schedule_digests, [maker, settings], 600, 300),
            (
                "schedule_relationship_reminders",
                reminders.schedule_relationship_reminders,
                [maker, settings],
                6 * 3600,
                3600,
            ),
            (
                "notify_stale_opportunities",
                reminders.notify_stale_opportunities,
                [maker, settings],
                3600,
                600,
            ),
            ("contract_deadlines", reminders.contract_deadlines, [maker, settings], 3600, 600),
            ("purge_expired_rows", housekeeping.purge_expired_rows, [maker], 3600, 600),
            (
                "reclaim_neglected_customers",
                pool.reclaim_neglected_customers,
                [maker, settings],
                settings.reclaim_interval_seconds,
                300,
            ),
            ("warn_of_reclaims", pool.warn_of_reclaims, [maker, settings], 3600, 600),
            ("purge_recycle_bin", lifecycle.purge_recycle_bin, [maker, settings], 6 * 3600, 3600),
            (
                "remove_expired_team_members",
                lifecycle.remove_expired_team_members,
                [maker, settings],
                600,
                300,
            ),
            (
                "dispatch_webhooks",
                webhooks.dispatch_webhooks,
                [maker, settings],
                settings.webhook_dispatch_interval_seconds,
                30,
            ),
            (
                imports.JOB_ID,
                imports.run_imports,
                [maker, settings],
                settings.import_poll_seconds,
                60,
            ),
            (
                "evaluate_tag_rules",
                tag_rules.evaluate_tag_rules,
                [maker, settings, self.analytics],
                settings.tag_rules_interval_seconds,
                600,
            ),
        ]
        for job_id, func, args, seconds, grace in jobs:
            self._aps.add_job(
                metrics.timed_job(job_id, func),
                "interval",
                seconds=seconds,
                id=job_id,
                args=args,
                coalesce=True,
                max_instances=1,
                misfire_grace_time=grace,
                replace_existing=True,
            )

    @property
    def job_ids(self) -> list[str]:
        return sorted(j.id for j in self._aps.get_jobs())

    def wake(self, job_id: str) -> None:
        """Run a job now rather than at its next tick (new work just arrived, e.g. an upload);
        only the active instance runs jobs, the others wait for their leader's tick."""
        if self.is_leader:
            self._aps.modify_job(job_id, next_run_time=dt.datetime.now(dt.UTC))

    async def start(self) -> None:
        self._aps.start(paused=True)
        if self.engine.dialect.name != "postgresql":
            # One process per SQLite file: this instance is the scheduler.
            self._become_leader()
            return
        self._leader_task = asyncio.create_task(self._lead(), name="kehu-scheduler-leader")

    async def stop(self) -> None:
        if self._leader_task is not None:
            self._leader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._leader_task
        self._aps.shutdown(wait=False)
        await self._release_lock()
        if self._owns_analytics:
            self.analytics.close()

    def _become_leader(self) -> None:
        self.is_leader = True
        self._aps.resume()
        log.info(
            "scheduler active", extra={"jobs": self.job_ids, "lock_pid": self.lock_backend_pid}
        )

    def _step_down(self, reason: str) -> None:
        if self.is_leader:
            self._aps.pause()
            self.is_leader = False
            log.warning("scheduler paused", extra={"reason": reason})

    async def _release_lock(self) -> None:
        conn, self._lock_conn, self.lock_backend_pid = self._lock_conn, None, None
        if conn is not None:
            # Invalidate rather than close: a pooled connection would keep the session-level
            # lock alive after being handed back to the pool.
            with contextlib.suppress(Exception):
                await conn.invalidate()
            with contextlib.suppress(Exception):
                await conn.close()

    async def _try_lock(self) -> bool:
        conn = await self.engine.connect()
        try:
            raw = await conn.execution_options(isolation_level="AUTOCOMMIT")
            got = bool(
                await raw.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": LEADER_LOCK_KEY})
            )
            if not got:
                await conn.close()
                return False
            self.lock_backend_pid = int(await raw.scalar(text("SELECT pg_backend_pid()")) or 0)
            self._lock_conn = raw
            return True
        except Exception:
            await conn.close()
            raise

    async def _lock_alive(self) -> bool:
        if self._lock_conn is None:
            return False
        try:
            await asyncio.wait_for(
                self._lock_conn.scalar(text("SELECT 1")), self.lock_check_seconds
            )
            return True
        except Exception:
            return False

    async def _watch_lock(self) -> None:
        """Return once the lock connection stops answering."""
        while True:
            await asyncio.sleep(self.lock_check_seconds)
            if not await self._lock_alive():
                return

    async def _lead(self) -> None:
        while True:
            try:
                if await self._try_lock():
                    self._become_leader()
                    await self._watch_lock()
                    self._step_down("lost the leader lock connection")
                    await self._release_lock()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # database away: stay paused and try again
                self._step_down(f"leader election failed: {type(exc).__name__}")
                await self._release_lock()
            await asyncio.sleep(self.leader_retry_seconds)

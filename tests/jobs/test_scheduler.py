"""Scheduler placement and leader election (SPEC L2)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy import text

from app.config import Settings
from app.db import create_engine, create_sessionmaker
from app.jobs.scheduler import KehuScheduler
from app.main import create_app


async def wait_until(condition, within: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def test_embedded_scheduler_runs_in_the_web_process(settings):
    app = create_app(settings.model_copy(update={"scheduler_enabled": True}))
    async with app.router.lifespan_context(app):
        scheduler = app.state.scheduler
        if app.state.engine.dialect.name == "sqlite":
            assert scheduler.is_leader
        else:
            await wait_until(lambda: scheduler.is_leader)
        assert scheduler.job_ids == [
            "contract_deadlines",
            "dispatch_reminders",
            "dispatch_webhooks",
            "evaluate_tag_rules",
            "notify_stale_opportunities",
            "purge_expired_rows",
            "purge_recycle_bin",
            "reclaim_neglected_customers",
            "remove_expired_team_members",
            "run_imports",
            "schedule_digests",
            "schedule_relationship_reminders",
            "warn_of_reclaims",
        ]
    assert app.state.scheduler.is_leader is True  # stopped cleanly, state kept for inspection


async def test_setting_turns_the_embedded_scheduler_off(settings):
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        assert app.state.scheduler is None


async def test_one_active_scheduler_and_takeover_when_the_holder_dies(database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("leader election uses PostgreSQL advisory locks")
    settings = Settings(database_url=database_url, secret_key="k" * 40, analytics_cache_dir=None)
    engines = [create_engine(database_url) for _ in range(3)]
    async with httpx.AsyncClient() as http:
        first, second = (
            KehuScheduler(
                e,
                create_sessionmaker(e),
                settings,
                http,
                leader_retry_seconds=0.2,
                lock_check_seconds=0.2,
            )
            for e in engines[:2]
        )
        await first.start()
        await wait_until(lambda: first.is_leader)
        await second.start()
        await asyncio.sleep(1.0)
        assert first.is_leader and not second.is_leader

        # Kill the holder's database connection, as if its process had died.
        async with engines[2].connect() as admin:
            await admin.execute(
                text("SELECT pg_terminate_backend(:pid)"), {"pid": first.lock_backend_pid}
            )
            await admin.commit()
        await wait_until(lambda: second.is_leader and not first.is_leader, within=10)
        await asyncio.sleep(1.0)
        assert second.is_leader and not first.is_leader  # the old holder stays standby

        await second.stop()
        await wait_until(lambda: first.is_leader, within=10)  # and takes over again when free
        await first.stop()
    for engine in engines:
        await engine.dispose()


async def _ready(app) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        return await c.get("/readyz")


async def test_readiness_reports_the_scheduler(settings):
    web_only = create_app(settings)  # KEHU_SCHEDULER_ENABLED=false: serves, runs no jobs
    async with web_only.router.lifespan_context(web_only):
        alone = await _ready(web_only)
        assert alone.status_code == 200 and alone.json()["scheduler"] == "none"

        embedded = create_app(settings.model_copy(update={"scheduler_enabled": True}))
        async with embedded.router.lifespan_context(embedded):
            await wait_until(lambda: embedded.state.scheduler.is_leader)
            active = await _ready(embedded)
            assert active.status_code == 200
            assert active.json()["status"] == "ok" and active.json()["scheduler"] == "active"
            if embedded.state.engine.dialect.name == "postgresql":
                # Another process's scheduler holds the lock: seen from the web-only worker.
                assert (await _ready(web_only)).json()["scheduler"] == "elsewhere"

            # A process whose scheduler is not active while none is: unready.
            embedded.state.scheduler._step_down("test")
            if embedded.state.engine.dialect.name == "postgresql":
                await embedded.state.scheduler._release_lock()
            paused = await _ready(embedded)
            assert paused.status_code == 503 and paused.json()["scheduler"] == "none"


async def test_job_runs_are_counted_and_timed():
    from app import metrics

    async def works() -> int:
        return 7

    async def breaks() -> None:
        raise RuntimeError("down")

    def runs(job: str, outcome: str) -> float:
        value = metrics.REGISTRY.get_sample_value(
            "kehu_job_runs_total", {"job": job, "outcome": outcome}
        )
        return value or 0.0

    before_ok, before_error = runs("t_job", "ok"), runs("t_job", "error")
    assert await metrics.timed_job("t_job", works)() == 7
    with pytest.raises(RuntimeError):
        await metrics.timed_job("t_job", breaks)()
    assert runs("t_job", "ok") == before_ok + 1 and runs("t_job", "error") == before_error + 1
    count = metrics.REGISTRY.get_sample_value("kehu_job_duration_seconds_count", {"job": "t_job"})
    assert count is not None and count >= 2

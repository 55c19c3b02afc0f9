"""Benchmark: how many reminders per second the dispatcher delivers (inbox + Web Push).

Creates N due reminders for users with one push subscription each on a local push service
(tests/push_endpoint.py: real HTTP over loopback, real aes128gcm encryption and VAPID signing),
then times one dispatcher pass. Usage:

    .venv/bin/python bench/dispatch.py \
        --database-url sqlite+aiosqlite:////tmp/dispatch.db --reminders 2000
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
import time
from pathlib import Path

import httpx
from alembic import command
from alembic.config import Config
from sqlalchemy import insert

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.config import PROJECT_ROOT, Settings
from app.db import create_engine, create_sessionmaker, transaction
from app.models import PushSubscription, Reminder, User
from app.services.notifications import dispatch
from tests.push_endpoint import PushService


async def run(url: str, reminders: int, users: int) -> None:
    cfg = Config(str(PROJECT_ROOT / "alembic.ini"))
    cfg.attributes["database_url"] = url
    cfg.attributes["configure_logging"] = False
    await asyncio.to_thread(command.upgrade, cfg, "head")
    settings = Settings(
        database_url=url, secret_key="b" * 48, push_allow_http=True, log_level="WARNING"
    )
    engine = create_engine(url)
    maker = create_sessionmaker(engine)
    now = dt.datetime.now(dt.UTC)
    with PushService(record=False).running() as service:
        async with transaction(maker) as session:
            user_ids = []
            for i in range(users):
                user = User(
                    username=f"bench{now.timestamp():.0f}_{i}",
                    display_name=f"B{i}",
                    password_hash="x",  # noqa: S106  (cannot log in)
                )
                session.add(user)
                await session.flush()
                user_ids.append(user.id)
                device = service.subscriber().subscription
                session.add(
                    PushSubscription(
                        user_id=user.id,
                        endpoint=device.endpoint,
                        p256dh=device.p256dh,
                        auth=device.auth,
                    )
                )

        async def add_reminders(count: int, due: dt.datetime) -> None:
            rows = [
                {
                    "user_id": user_ids[i % users],
                    "kind": "visit_reminder",
                    "due_at": due,
                    "title": f"提醒 {i}",
                    "body": "",
                    "link": "/",
                    "data": {},
                    "state": "pending",
                    "created_at": now,
                }
                for i in range(count)
            ]
            async with transaction(maker) as session:
                await session.execute(insert(Reminder), rows)

        async with httpx.AsyncClient() as http:
            # Warm up (imports, connection pools, key loading), then measure a fresh batch.
            await add_reminders(users, now - dt.timedelta(seconds=1))
            await dispatch(maker, settings, http, now=now)
            await add_reminders(reminders, now + dt.timedelta(seconds=1))
            service.count = 0
            started = time.perf_counter()
            stats = await dispatch(maker, settings, http, now=now + dt.timedelta(seconds=2))
            elapsed = time.perf_counter() - started
        print(
            f"{engine.dialect.name}: {stats.notified} reminders, {stats.pushed} pushes "
            f"in {elapsed:.2f} s = {stats.pushed / elapsed:.0f} pushes/s "
            f"(push service received {service.count})"
        )
    await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--reminders", type=int, default=2000)
    parser.add_argument("--users", type=int, default=50)
    args = parser.parse_args()
    asyncio.run(run(args.database_url, args.reminders, args.users))


if __name__ == "__main__":
    main()

"""Faults under way (SPEC L2, L3): the database goes away and comes back, a worker is killed in
the middle of a write, the scheduler is killed in the middle of a reclaim. Requests fail cleanly
(503 problems), nothing is half written, and the next attempt completes the work."""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.factories import driver_dsn
from tests.scaleout.conftest import Cluster, bearer, eventually, sql


@pytest.fixture(scope="module")
def faults(cluster) -> Cluster:
    made: Cluster = cluster(
        "faults",
        1,
        {
            "KEHU_SCHEDULER_ENABLED": "false",
            "KEHU_RATE_LIMIT_USER_PER_MINUTE": "0",
            # A claim whose process died is taken over after this long.
            "KEHU_IDEMPOTENCY_IN_FLIGHT_SECONDS": "5",
        },
    )
    return made


def server_url(cluster: Cluster) -> str:
    return make_url(cluster.database_url).set(database="postgres").render_as_string(False)


def database_name(cluster: Cluster) -> str:
    return str(make_url(cluster.database_url).database)


def app_backends(cluster: Cluster, where: str) -> list[Any]:
    return sql(
        server_url(cluster),
        f"SELECT pid, query FROM pg_stat_activity WHERE datname = $1 AND {where}",  # noqa: S608
        database_name(cluster),
    )


def test_requests_fail_cleanly_while_the_database_is_away_and_recover(faults):
    url = faults.urls[0]
    rep = bearer(url, "rep1")
    assert httpx.get(f"{url}/api/v1/customers", headers=rep).status_code == 200
    before = httpx.post(f"{url}/api/v1/customers", json={"name": "断线前"}, headers=rep)
    assert before.status_code == 201, before.text
    detail = f"{url}/api/v1/customers/{before.json()['id']}"  # a direct read (ADR 0014)
    assert httpx.get(detail, headers=rep).status_code == 200
    name = database_name(faults)
    sql(server_url(faults), f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
    try:
        sql(
            server_url(faults),
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
            name,
        )
        for attempt in (
            lambda: httpx.get(f"{url}/api/v1/customers", headers=rep),
            lambda: httpx.get(detail, headers=rep),
            lambda: httpx.get(f"{url}/api/v1/today", headers=rep),
            lambda: httpx.post(f"{url}/api/v1/customers", json={"name": "断线"}, headers=rep),
        ):
            answer = attempt()
            assert answer.status_code == 503, answer.text
            assert answer.headers["content-type"] == "application/problem+json"
            assert answer.json()["type"].endswith("/service-unavailable")
            assert int(answer.headers["Retry-After"]) > 0
        assert httpx.get(f"{url}/readyz").status_code == 503
        assert httpx.get(f"{url}/healthz").status_code == 200  # the process itself is fine
    finally:
        sql(server_url(faults), f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')

    # Back without restarting the app: stale pooled connections are replaced.
    eventually(
        lambda: httpx.get(f"{url}/api/v1/customers", headers=rep).status_code == 200, within=30
    )
    eventually(lambda: httpx.get(detail, headers=rep).status_code == 200, within=30)
    made = httpx.post(f"{url}/api/v1/customers", json={"name": "恢复后"}, headers=rep)
    assert made.status_code == 201, made.text
    assert httpx.get(f"{url}/readyz").status_code == 200


def test_a_worker_killed_mid_write_leaves_nothing_half_done(faults):
    url = faults.urls[0]
    admin, rep = bearer(url, "admin"), bearer(url, "rep1")
    product = httpx.post(
        f"{url}/api/v1/products",
        json={"name": f"故障测试{uuid.uuid4().hex[:4]}", "unit_price": "9.5"},
        headers=admin,
    ).json()
    customer = httpx.post(f"{url}/api/v1/customers", json={"name": "批量订单客户"}, headers=rep)
    marker = f"k{uuid.uuid4().hex[:8]}"
    at = dt.datetime.now(dt.UTC).isoformat()
    body = {
        "orders": [
            {
                "customer_id": customer.json()["id"],
                "ordered_at": at,
                "channel": marker,
                "lines": [{"product_id": product["id"], "quantity": 1 + i % 3}],
            }
            for i in range(10_000)
        ]
    }
    headers = {**rep, "Idempotency-Key": uuid.uuid4().hex}
    outcome: list[Any] = []

    def send() -> None:
        try:
            outcome.append(
                httpx.post(f"{url}/api/v1/orders/bulk", json=body, headers=headers, timeout=120)
            )
        except httpx.TransportError as exc:
            outcome.append(exc)

    sender = threading.Thread(target=send)
    sender.start()
    # The app is writing the orders (its INSERT is running): kill it there.
    eventually(
        lambda: app_backends(faults, "state = 'active' AND query ILIKE 'INSERT INTO order%'"),
        within=60,
        every=0.05,
    )
    faults.kill(0)
    sender.join(30)

    def stored() -> int:
        rows = sql(faults.database_url, "SELECT count(*) FROM orders WHERE channel = $1", marker)
        return int(rows[0][0])

    written = stored()
    assert written in (0, 10_000)  # the bulk is one transaction: all or nothing
    if written == 0:
        assert isinstance(outcome[0], httpx.TransportError)  # the client saw no answer

    # The client retries with the same key once the app is back: recorded exactly once.
    faults.start(0)
    faults.wait_ready(0)
    url = faults.urls[0]

    def retried() -> httpx.Response | None:
        answer = httpx.post(f"{url}/api/v1/orders/bulk", json=body, headers=headers, timeout=120)
        return answer if answer.status_code == 200 else None

    answer = eventually(retried, within=60, every=1)
    assert stored() == 10_000
    assert answer.json()["created"] + answer.json()["existing"] == 10_000
    again = httpx.post(f"{url}/api/v1/orders/bulk", json=body, headers=headers, timeout=120)
    assert again.status_code == 200 and stored() == 10_000


def test_a_scheduler_killed_mid_reclaim_rolls_back_and_the_next_run_completes(faults):
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=400)
    due = [
        row[0]
        for row in sql(
            faults.database_url,
            """UPDATE customers SET owner_assigned_at = $1, created_at = $1,
                      last_follow_up_at = NULL
               WHERE owner_id IS NOT NULL AND signed_at IS NULL
                 AND NOT EXISTS (SELECT 1 FROM opportunities o WHERE o.customer_id = customers.id)
                 AND NOT EXISTS (SELECT 1 FROM contracts k WHERE k.customer_id = customers.id)
               RETURNING id""",
            long_ago,
        )
    ]
    assert due

    def reclaimed() -> list[Any]:
        return sql(
            faults.database_url,
            "SELECT customer_id, count(*) FROM customer_ownership_events"
            " WHERE action = 'reclaimed' AND customer_id = ANY($1::int[]) GROUP BY customer_id",
            due,
        )

    # Hold one due customer's row, so the reclaim's transaction stops in the middle of its batch.
    import asyncio

    import asyncpg  # type: ignore[import-untyped]

    loop = asyncio.new_event_loop()
    holder = loop.run_until_complete(asyncpg.connect(driver_dsn(faults.database_url)))
    blocked = max(due)
    scheduler_env = {"KEHU_SCHEDULER_ENABLED": "true", "KEHU_RECLAIM_INTERVAL_SECONDS": "2"}
    try:
        loop.run_until_complete(holder.execute("BEGIN"))
        loop.run_until_complete(
            holder.execute("SELECT 1 FROM customers WHERE id = $1 FOR UPDATE", blocked)
        )
        faults.start(1, **scheduler_env)
        faults.wait_ready(1)
        eventually(
            lambda: app_backends(faults, "wait_event_type = 'Lock' AND query ILIKE '%customers%'"),
            within=60,
        )
        faults.kill(1)  # mid-reclaim: its batch is open and waiting
        time.sleep(1)
        assert reclaimed() == []
        owners = sql(
            faults.database_url,
            "SELECT count(*) FROM customers WHERE id = ANY($1::int[]) AND owner_id IS NULL",
            due,
        )
        assert owners[0][0] == 0  # the whole batch rolled back
    finally:
        loop.run_until_complete(holder.execute("ROLLBACK"))
        loop.run_until_complete(holder.close())
        loop.close()

    # The next scheduler's run completes it, each customer once.
    faults.start(2, **scheduler_env)
    faults.wait_ready(2)
    moved = eventually(lambda: len(reclaimed()) == len(due) and reclaimed(), within=60)
    assert all(count == 1 for _, count in moved)

"""Three app processes, each with an embedded scheduler, on one PostgreSQL database (SPEC L2):
exactly one runs the jobs — every reclaim, reminder and webhook delivery happens once — and
when its process is killed another takes over within a minute."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from tests.scaleout.conftest import Cluster, bearer, eventually, sql


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A webhook receiver on 127.0.0.1: every body it got, in order."""
    received: list[dict[str, Any]] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            received.append(json.loads(self.rfile.read(length)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    server.shutdown()


@pytest.fixture(scope="module")
def three(cluster) -> Cluster:
    made: Cluster = cluster(
        "schedulers",
        3,
        {
            "KEHU_SCHEDULER_ENABLED": "true",
            "KEHU_DISPATCH_INTERVAL_SECONDS": "2",
            "KEHU_RECLAIM_INTERVAL_SECONDS": "3",
            "KEHU_WEBHOOK_DISPATCH_INTERVAL_SECONDS": "1",
            "KEHU_WEBHOOKS_ALLOW_HTTP": "true",
            "KEHU_WEBHOOKS_ALLOW_PRIVATE": "true",
            "KEHU_RATE_LIMIT_USER_PER_MINUTE": "0",
        },
    )
    return made


def scheduler_states(cluster: Cluster, indexes: list[int]) -> list[str]:
    return [httpx.get(f"{cluster.urls[i]}/readyz").json()["scheduler"] for i in indexes]


def active_index(cluster: Cluster, indexes: list[int]) -> int | None:
    states = scheduler_states(cluster, indexes)
    if sorted(states) != ["active"] + ["standby"] * (len(indexes) - 1):
        return None
    return indexes[states.index("active")]


def due_visit_reminder(url: str, headers: dict[str, str], customer_id: int) -> int:
    """A visit whose one reminder falls due in about a second; the reminder's id."""
    starts = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=61)
    visit = httpx.post(
        f"{url}/api/v1/visits",
        json={
            "customer_id": customer_id,
            "starts_at": starts.isoformat(),
            "reminder_offsets_minutes": [1],
        },
        headers=headers,
    )
    assert visit.status_code == 201, visit.text
    [reminder] = visit.json()["reminders"]
    return int(reminder["id"])


def notifications_of(cluster: Cluster, reminder_id: int) -> int:
    rows = sql(
        cluster.database_url,
        "SELECT count(*) FROM notifications WHERE reminder_id = $1",
        reminder_id,
    )
    return int(rows[0][0])


def test_one_scheduler_runs_each_job_once_and_another_takes_over(three, receiver):
    hook_url, received = receiver
    everyone = [0, 1, 2]
    history: list[list[str]] = []

    def settled() -> tuple[int] | None:
        history.append(scheduler_states(three, everyone))
        found = active_index(three, everyone)
        return None if found is None else (found,)  # index 0 is an answer too

    [leader] = eventually(
        settled,
        within=60,
        seen=lambda: history[-10:],
    )

    admin = bearer(three.urls[0], "admin")
    subscribed = httpx.post(
        f"{three.urls[1]}/api/v1/webhooks",
        json={
            "name": "scale-out test",
            "url": hook_url,
            "event_types": ["customer.created", "customer.reclaimed"],
        },
        headers=admin,
    )
    assert subscribed.status_code == 201, subscribed.text

    # Reclaim: every owned customer without deals or opportunities has been neglected for a year.
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=400)
    sql(
        three.database_url,
        """UPDATE customers SET owner_assigned_at = $1, created_at = $1, last_follow_up_at = NULL
           WHERE owner_id IS NOT NULL AND signed_at IS NULL
             AND NOT EXISTS (SELECT 1 FROM opportunities o WHERE o.customer_id = customers.id)
             AND NOT EXISTS (SELECT 1 FROM contracts k WHERE k.customer_id = customers.id)""",
        long_ago,
    )

    def reclaimed() -> list[Any]:
        return sql(
            three.database_url,
            "SELECT customer_id, count(*) FROM customer_ownership_events"
            " WHERE action = 'reclaimed' AND at > now() - interval '10 minutes'"
            " GROUP BY customer_id",
        )

    moved = eventually(reclaimed, within=60)
    time.sleep(8)  # more reclaim ticks on every process: nothing is taken twice
    moved = reclaimed()
    assert moved and all(count == 1 for _, count in moved)

    # Reminders and webhooks: each once.
    rep = bearer(three.urls[2], "rep1")
    customers = [
        httpx.post(
            f"{three.urls[i % 3]}/api/v1/customers",
            json={"name": f"调度{uuid.uuid4().hex[:6]}"},
            headers=rep,
        ).json()
        for i in range(3)
    ]
    reminder = due_visit_reminder(three.urls[0], rep, customers[0]["id"])
    eventually(lambda: notifications_of(three, reminder) > 0, within=30)

    def created_events() -> Counter[str]:
        return Counter(
            body["id"]
            for body in received
            if body["type"] == "customer.created"
            and body["data"]["customer_id"] in {c["id"] for c in customers}
        )

    eventually(lambda: len(created_events()) == 3, within=30)
    eventually(lambda: len({b["id"] for b in received if b["type"] == "customer.reclaimed"}), 30)
    time.sleep(5)
    assert notifications_of(three, reminder) == 1
    assert sorted(created_events().values()) == [1, 1, 1]
    reclaim_events = Counter(b["id"] for b in received if b["type"] == "customer.reclaimed")
    assert set(reclaim_events.values()) == {1} and len(reclaim_events) == len(moved)

    # The active scheduler's process dies; one of the others takes over within a minute.
    killed_at = time.monotonic()
    three.kill(leader)
    survivors = [i for i in everyone if i != leader]
    [successor] = eventually(
        lambda: None if (found := active_index(three, survivors)) is None else (found,),
        within=60,
        every=1,
        seen=lambda: scheduler_states(three, survivors),
    )
    assert time.monotonic() - killed_at < 60
    url = three.urls[successor]
    rep = bearer(url, "rep1")
    after = httpx.post(f"{url}/api/v1/customers", json={"name": "接管后"}, headers=rep).json()
    reminder_after = due_visit_reminder(url, rep, after["id"])
    eventually(lambda: notifications_of(three, reminder_after) > 0, within=30)
    eventually(
        lambda: any(
            b["type"] == "customer.created" and b["data"]["customer_id"] == after["id"]
            for b in received
        ),
        within=30,
    )
    time.sleep(4)
    assert notifications_of(three, reminder_after) == 1
    assert (
        sum(
            1
            for b in received
            if b["type"] == "customer.created" and b["data"]["customer_id"] == after["id"]
        )
        == 1
    )

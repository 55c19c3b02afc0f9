"""Two app processes on one PostgreSQL database share what must be shared (SPEC L2): live
notification streams are woken across processes (LISTEN/NOTIFY), login throttling, rate
limits and idempotency keys count in the database, not per process."""

from __future__ import annotations

import json
import threading
import time
import uuid

import httpx
import pytest

from tests.scaleout.conftest import bearer, login

RATE_LIMIT = 40


@pytest.fixture(scope="module")
def workers(cluster) -> list[str]:
    """Base URLs of two app processes (no scheduler) sharing one database."""
    made = cluster(
        "workers",
        2,
        {
            "KEHU_SCHEDULER_ENABLED": "false",
            "KEHU_RATE_LIMIT_USER_PER_MINUTE": str(RATE_LIMIT),
            "KEHU_LOGIN_MAX_FAILURES": "5",
            "KEHU_LOGIN_WINDOW_SECONDS": "300",
        },
    )
    return made.urls


def test_a_notification_written_by_one_process_reaches_a_stream_on_the_other(workers):
    first, second = workers
    for url in workers:  # each process listens (LISTEN kehu_inbox) rather than polls
        assert httpx.get(f"{url}/readyz").json()["live_updates"] == "listening"
    rep = bearer(first, "rep1")
    admin = bearer(second, "admin")
    customer = httpx.post(
        f"{first}/api/v1/customers", json={"name": f"跨进程{uuid.uuid4().hex[:6]}"}, headers=rep
    ).json()
    received: list[tuple[float, dict]] = []
    ready = threading.Event()

    def listen() -> None:
        with httpx.stream(
            "GET",
            f"{first}/api/v1/notifications/stream",
            params={"max_seconds": 20},
            headers=rep,
            timeout=30,
        ) as stream:
            event = None
            for line in stream.iter_lines():
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    ready.set()
                    if event == "notification":
                        received.append((time.monotonic(), json.loads(line[6:])))
                        return

    listener = threading.Thread(target=listen)
    listener.start()
    assert ready.wait(20)
    time.sleep(0.5)  # the stream waits for a wake-up now, not polling

    detail = httpx.get(f"{second}/api/v1/customers/{customer['id']}", headers=admin)
    sent = time.monotonic()
    changed = httpx.patch(
        f"{second}/api/v1/customers/{customer['id']}",
        json={"industry": "制造业"},
        headers={**admin, "If-Match": detail.headers["ETag"]},
    )
    assert changed.status_code == 200, changed.text
    listener.join(25)

    assert received, "the rep's stream on the other process heard nothing"
    at, note = received[0]
    assert note["kind"] == "customer_changed" and note["data"]["customer_id"] == customer["id"]
    # Woken by NOTIFY: well inside the stream's 15 s re-check when nothing wakes it.
    assert at - sent < 3.0


def test_failed_logins_count_across_processes(workers):
    first, second = workers
    for i in range(5):
        url = workers[i % 2]
        assert login(url, "rep2", "wrong-password").status_code == 401
    # The right password on either process is now refused until the window passes.
    for url in (first, second):
        refused = login(url, "rep2")
        assert refused.status_code == 429, refused.text
        assert int(refused.headers["Retry-After"]) > 0
        assert refused.headers["content-type"] == "application/problem+json"


def test_the_rate_limit_is_one_budget_across_processes(workers):
    headers = bearer(workers[0], "mgr2")
    # The limit counts in fixed one-minute windows: all requests within one of them.
    into_minute = time.time() % 60
    if into_minute > 40:
        time.sleep(60.5 - into_minute)
    answers = [
        httpx.get(f"{workers[i % 2]}/api/v1/customers?limit=1", headers=headers).status_code
        for i in range(RATE_LIMIT + 10)
    ]
    # One budget for both processes (two per-process counters would allow twice as many).
    assert answers.count(200) <= RATE_LIMIT
    assert answers.count(429) >= 10
    assert set(answers) == {200, 429}


def test_an_idempotency_key_replays_on_the_other_process(workers):
    first, second = workers
    headers = {**bearer(first, "rep1"), "Idempotency-Key": uuid.uuid4().hex}
    body = {"name": f"幂等{uuid.uuid4().hex[:6]}"}
    made = httpx.post(f"{first}/api/v1/customers", json=body, headers=headers)
    again = httpx.post(f"{second}/api/v1/customers", json=body, headers=headers)
    assert made.status_code == 201, made.text
    assert again.status_code == 201 and again.json()["id"] == made.json()["id"]
    found = httpx.get(
        f"{second}/api/v1/customers", params={"q": body["name"]}, headers=headers
    ).json()
    assert [c["id"] for c in found["items"]] == [made.json()["id"]]

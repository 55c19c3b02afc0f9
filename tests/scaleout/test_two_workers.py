"""Two app processes on one PostgreSQL database share what must be shared (SPEC L2): live
notification streams are woken across processes (LISTEN/NOTIFY), login throttling, rate
limits and idempotency keys count in the database, not per process.

Two ``kehu serve`` processes on their own ports, a scratch database migrated and filled with
the demo data; PostgreSQL only (one process per SQLite file)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.conftest import TEST_DB_URL

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "demo1234"
RATE_LIMIT = 40

pytestmark = pytest.mark.skipif(
    not TEST_DB_URL.startswith("postgresql"), reason="several processes need PostgreSQL"
)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _kehu(env: dict[str, str], *args: str) -> None:
    done = subprocess.run(  # noqa: S603 (our own CLI, fixed arguments)
        [sys.executable, "-m", "app.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"kehu {' '.join(args)}: {done.stdout}\n{done.stderr}"


def _scratch_database() -> str:
    url = make_url(TEST_DB_URL)
    name = f"{url.database}_scaleout"
    admin = url.set(drivername="postgresql", database="postgres").render_as_string(False)
    import asyncio

    import asyncpg  # type: ignore[import-untyped]

    async def recreate() -> None:
        connection = await asyncpg.connect(admin)
        try:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await connection.execute(f'CREATE DATABASE "{name}"')
        finally:
            await connection.close()

    asyncio.run(recreate())
    return url.set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="module")
def workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    """Base URLs of two app processes sharing one freshly migrated database with demo data."""
    env = {
        **os.environ,
        "KEHU_DATABASE_URL": _scratch_database(),
        "KEHU_SECRET_KEY": "s" * 48,
        "KEHU_SCHEDULER_ENABLED": "false",
        "KEHU_ANALYTICS_CACHE_DIR": "",
        "KEHU_RATE_LIMIT_USER_PER_MINUTE": str(RATE_LIMIT),
        "KEHU_LOGIN_MAX_FAILURES": "5",
        "KEHU_LOGIN_WINDOW_SECONDS": "300",
        "KEHU_LOG_JSON": "false",
    }
    _kehu(env, "migrate")
    _kehu(env, "seed-demo", "--customers", "30")
    logs = tmp_path_factory.mktemp("scaleout")
    processes, urls = [], []
    for i in range(2):
        port = _free_port()
        log = (logs / f"worker{i}.log").open("w")
        processes.append(
            subprocess.Popen(  # noqa: S603 (our own CLI, fixed arguments)
                [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        urls.append(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 120
        for url, process in zip(urls, processes, strict=True):
            while True:
                assert process.poll() is None, (logs / "worker0.log").read_text()[-3000:]
                try:
                    if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "the app processes did not start"
                time.sleep(0.3)
        yield urls
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def login(url: str, username: str, password: str = PASSWORD) -> httpx.Response:
    return httpx.post(
        f"{url}/api/v1/auth/token",
        data={"username": username, "password": password},
        timeout=10,
    )


def bearer(url: str, username: str) -> dict[str, str]:
    response = login(url, username)
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


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

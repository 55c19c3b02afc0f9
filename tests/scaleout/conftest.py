"""Several ``kehu serve`` processes on one scratch PostgreSQL database (SPEC L2).

``cluster(name, count, env)`` migrates a fresh database ``<test db>_<name>``, loads a small demo
(the demo logins, password ``demo1234``), starts ``count`` app processes on free ports and
waits until each answers ``/readyz``. PostgreSQL only: one process per SQLite file."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.conftest import TEST_DB_URL
from tests.factories import driver_dsn
from tests.live_server import free_port

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "demo1234"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if TEST_DB_URL and TEST_DB_URL.startswith("postgresql"):
        return
    skip = pytest.mark.skip(reason="several app processes need PostgreSQL")
    here = Path(__file__).resolve().parent
    for item in items:
        if Path(str(item.fspath)).resolve().is_relative_to(here):
            item.add_marker(skip)


def eventually(
    check: Callable[[], Any], within: float, every: float = 0.3, seen: Callable[[], Any] = str
) -> Any:
    """``check()``'s first truthy answer, asking every ``every`` seconds for ``within``;
    ``seen()`` describes the state in the failure message."""
    deadline = time.monotonic() + within
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, f"condition not met in time; {seen()}"
        time.sleep(every)


def kehu(env: dict[str, str], *args: str) -> str:
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
    return done.stdout


def sql(database_url: str, query: str, *args: Any) -> list[Any]:
    """Run one statement on the cluster's database (asyncpg); its rows."""
    import asyncpg  # type: ignore[import-untyped]

    async def run() -> list[Any]:
        connection = await asyncpg.connect(driver_dsn(database_url))
        try:
            return list(await connection.fetch(query, *args))
        finally:
            await connection.close()

    return asyncio.run(run())


def scratch_database(name: str) -> str:
    url = make_url(TEST_DB_URL)
    database = f"{url.database}_{name}"
    sql(
        url.set(database="postgres").render_as_string(False),
        f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)',
    )
    sql(url.set(database="postgres").render_as_string(False), f'CREATE DATABASE "{database}"')
    return url.set(database=database).render_as_string(hide_password=False)


@dataclass
class Cluster:
    database_url: str
    env: dict[str, str]
    logs: Path
    urls: list[str] = field(default_factory=list)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, index: int, **env: str) -> None:
        """Start process ``index`` (a new one, or again in a dead one's place), with settings
        of its own on top of the cluster's."""
        port = free_port()
        log = (self.logs / f"worker{index}.log").open("ab")
        process = subprocess.Popen(  # noqa: S603 (our own CLI, fixed arguments)
            [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
            cwd=ROOT,
            env={**self.env, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        if index < len(self.urls):
            self.urls[index], self.processes[index] = f"http://127.0.0.1:{port}", process
        else:
            self.urls.append(f"http://127.0.0.1:{port}")
            self.processes.append(process)

    def wait_ready(self, index: int, within: float = 120) -> None:
        deadline = time.monotonic() + within
        while True:
            log = (self.logs / f"worker{index}.log").read_text(errors="replace")
            assert self.processes[index].poll() is None, log[-3000:]
            try:
                if httpx.get(f"{self.urls[index]}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"worker {index} did not start:\n{log[-3000:]}"
            time.sleep(0.3)

    def kill(self, index: int) -> None:
        """SIGKILL: the process dies mid-whatever, as in a crash."""
        self.processes[index].send_signal(signal.SIGKILL)
        self.processes[index].wait(timeout=20)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    started: list[Cluster] = []

    def make(name: str, count: int, env: dict[str, str]) -> Cluster:
        database_url = scratch_database(name)
        full_env = {
            **os.environ,
            "KEHU_DATABASE_URL": database_url,
            "KEHU_SECRET_KEY": "s" * 48,
            "KEHU_ANALYTICS_CACHE_DIR": "",
            "KEHU_LOG_JSON": "false",
            **env,
        }
        kehu(full_env, "migrate")
        kehu(full_env, "seed-demo", "--customers", "30")
        made = Cluster(database_url, full_env, tmp_path_factory.mktemp(name))
        started.append(made)
        for i in range(count):
            made.start(i)
        for i in range(count):
            made.wait_ready(i)
        return made

    try:
        yield make
    finally:
        for made in started:
            made.stop()


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

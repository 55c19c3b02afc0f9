"""Browser tests: the real app (migrated + demo data, temp SQLite) driven by Debian's Chromium.

Skipped with a reason when /usr/bin/chromium, the built SPA (frontend/dist) or the Python
`playwright` package is missing. Never runs `playwright install`: the browser is the system one.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.live_server import served

ROOT = Path(__file__).resolve().parents[2]
E2E_DIR = Path(__file__).resolve().parent
CHROMIUM = Path("/usr/bin/chromium")
DIST_INDEX = ROOT / "frontend" / "dist" / "index.html"
SCREENSHOTS = E2E_DIR / "screenshots"
PASSWORD = "demo1234"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE = {
    "viewport": {"width": 390, "height": 844},
    "is_mobile": True,
    "has_touch": True,
    "device_scale_factor": 2,
}


def _missing_reason() -> str | None:
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (apt-get install -y chromium)"
    if not DIST_INDEX.exists():
        return f"{DIST_INDEX.relative_to(ROOT)} is missing (cd frontend && npm ci && npm run build)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the Python playwright package is not installed"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = _missing_reason()
    if reason is None:
        return
    skip = pytest.mark.skip(reason=f"e2e: {reason}")
    for item in items:
        if Path(str(item.fspath)).resolve().is_relative_to(E2E_DIR):
            item.add_marker(skip)


def _kehu_command() -> list[str]:
    for candidate in (ROOT / ".venv" / "bin" / "kehu", Path(sys.executable).parent / "kehu"):
        if candidate.exists():
            return [str(candidate)]
    found = shutil.which("kehu")
    return [found] if found else [sys.executable, "-m", "app.cli"]


@pytest.fixture(scope="session")
def app_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of the served app: its temp SQLite database, no scheduler."""
    tmp = tmp_path_factory.mktemp("kehu-e2e")
    return {
        **os.environ,
        "KEHU_DATABASE_URL": f"sqlite+aiosqlite:///{tmp / 'e2e.db'}",
        "KEHU_SCHEDULER_ENABLED": "false",
        "KEHU_ANALYTICS_CACHE_DIR": "",  # the database is made afresh for the session
        # Every test signs in as the same demo users within minutes.
        "KEHU_RATE_LIMIT_USER_PER_MINUTE": "0",
        "KEHU_LOG_JSON": "false",
        # Webhook tests subscribe a receiver they run on 127.0.0.1 over plain http.
        "KEHU_WEBHOOKS_ALLOW_HTTP": "true",
        "KEHU_WEBHOOKS_ALLOW_PRIVATE": "true",
    }


@pytest.fixture(scope="session")
def kehu_has() -> Any:
    """kehu_has(name): whether the `kehu` CLI offers a command (they arrive with their features)."""
    done = subprocess.run(  # noqa: S603 (our own CLI, fixed arguments)
        [*_kehu_command(), "--help"], cwd=ROOT, capture_output=True, text=True, check=False
    )

    def has(name: str) -> bool:
        return re.search(rf"^\W*{re.escape(name)}\s", done.stdout, re.MULTILINE) is not None

    return has


@pytest.fixture
def kehu(app_url: str, app_env: dict[str, str]) -> Any:
    """kehu(*args) runs the CLI against the served app's database and returns its stdout."""

    def run(*args: str) -> str:
        done = subprocess.run(  # noqa: S603 (our own CLI, arguments from the tests)
            [*_kehu_command(), *args],
            cwd=ROOT,
            env=app_env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            command = " ".join(args)
            output = f"{done.stdout}\n{done.stderr}"
            pytest.fail(f"`kehu {command}` failed ({done.returncode}):\n{output}")
        return done.stdout

    return run


@pytest.fixture(scope="session")
def app_url(app_env: dict[str, str]) -> Iterator[str]:
    """Migrate a fresh SQLite file, load the demo data, serve the app on a free port."""
    tmp = Path(app_env["KEHU_DATABASE_URL"].removeprefix("sqlite+aiosqlite:///")).parent
    env = app_env
    kehu = _kehu_command()
    for step in (["migrate"], ["seed-demo"]):
        done = subprocess.run(  # noqa: S603 (our own CLI, fixed arguments)
            [*kehu, *step],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if done.returncode != 0:
            command = " ".join(step)
            pytest.fail(
                f"`kehu {command}` failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
            )

    with served(kehu, env, tmp / "server.log") as url:
        yield url


@pytest.fixture(autouse=True)
def _clean_tables() -> None:
    """Overrides tests/conftest.py's async table cleaner: these tests talk to their own server
    process, and Playwright's sync API cannot share the thread with pytest-asyncio's loop."""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Module scope: Playwright's sync API keeps an event loop marked running in this thread while
    it is open, which would break async tests that run after this module in the same session."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def context(browser: Any, app_url: str) -> Iterator[Any]:
    """A fresh phone-sized browser context (no stored tokens), Chinese UI."""
    ctx = browser.new_context(
        base_url=app_url, locale="zh-CN", timezone_id="Asia/Shanghai", **PHONE
    )
    ctx.set_default_timeout(15_000)
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture
def page(context: Any) -> Iterator[Any]:
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    yield pg
    assert not errors, f"uncaught errors in the page: {errors}"


@pytest.fixture
def shot() -> Any:
    """shot(page, name) saves tests/e2e/screenshots/<name>.png."""
    SCREENSHOTS.mkdir(exist_ok=True)

    def take(pg: Any, name: str, *, full_page: bool = False) -> Path:
        pg.wait_for_timeout(400)  # let Vant's 300 ms transitions (tabs, dialogs, popups) finish
        path = SCREENSHOTS / f"{name}.png"
        pg.screenshot(path=str(path), full_page=full_page)
        return path

    return take


class Api:
    """A small API client for arranging test data (logged in as one demo user)."""

    def __init__(self, base_url: str, username: str) -> None:
        self.client = httpx.Client(base_url=f"{base_url}/api/v1", timeout=60)
        res = self.client.post("/auth/token", data={"username": username, "password": PASSWORD})
        res.raise_for_status()
        self.client.headers["Authorization"] = f"Bearer {res.json()['access_token']}"

    def get(self, path: str, **params: Any) -> Any:
        res = self.client.get(path, params=params)
        res.raise_for_status()
        return res.json()

    def post(self, path: str, body: dict[str, Any]) -> Any:
        res = self.client.post(path, json=body, headers={"Idempotency-Key": str(uuid.uuid4())})
        res.raise_for_status()
        return res.json()

    def create_customer(self, **fields: Any) -> Any:
        body = {
            "name": f"接口创建{uuid.uuid4().hex[:6]}贸易公司",
            "confirm_duplicate": True,
            **fields,
        }
        res = self.client.post(
            "/customers", json=body, headers={"Idempotency-Key": str(uuid.uuid4())}
        )
        res.raise_for_status()
        return res.json()

    def patch_customer(self, customer_id: int, **fields: Any) -> Any:
        etag = self.client.get(f"/customers/{customer_id}").headers["ETag"]
        res = self.client.patch(
            f"/customers/{customer_id}", json=fields, headers={"If-Match": etag}
        )
        res.raise_for_status()
        return res.json()


@pytest.fixture(scope="session")
def rep1_api(app_url: str) -> Iterator[Api]:
    api = Api(app_url, "rep1")
    try:
        yield api
    finally:
        api.client.close()


@pytest.fixture(scope="session")
def api_as(app_url: str) -> Iterator[Any]:
    """api_as(username): an `Api` logged in as that demo user (one client per user and session)."""
    clients: dict[str, Api] = {}

    def get(username: str) -> Api:
        if username not in clients:
            clients[username] = Api(app_url, username)
        return clients[username]

    try:
        yield get
    finally:
        for client in clients.values():
            client.client.close()


def _login(
    page: Any, username: str = "rep1", password: str = PASSWORD, *, landing: str = "customers"
) -> None:
    """Sign in through the login screen; it lands on Today, then (by default) the customer list."""
    page.goto("/login")
    page.get_by_test_id("login-username").locator("input").fill(username)
    page.get_by_test_id("login-password").locator("input").fill(password)
    page.get_by_test_id("login-submit").click()
    page.wait_for_url(re.compile(r"^[^?#]*://[^/]+/$"))
    page.get_by_test_id("today").wait_for()
    if landing == "customers":
        page.get_by_test_id("tab-customers").click()
        page.wait_for_url("**/customers")
        page.get_by_test_id("customer-row").first.wait_for()


@pytest.fixture
def login() -> Any:
    """login(page, username, landing="customers"|"today") signs in through the login screen."""
    return _login


@pytest.fixture
def rep1_page(page: Any) -> Any:
    """A page logged in as rep1 through the login screen, on the customer list."""
    _login(page, "rep1")
    return page

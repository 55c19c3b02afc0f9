"""Load test (SPEC L2, issue 8 item 5): the app served by ``kehu serve`` on loopback, driven by
concurrent reps with a realistic mix, against PostgreSQL with 1,000,000 customers and 200 reps.

The database is bench/analytics_data.py's (``kehu_bench_analytics``; loaded by that script,
``--only postgresql``). The app runs as a real server (``kehu serve --workers N``, no scheduler,
no rate limit) and so does a *raw* endpoint (``bench/raw_detail.py``: Starlette + an asyncpg pool,
the customer detail's core query and nothing else) for comparison. The load generator is this
process: ``--users`` virtual reps (one asyncio task each, httpx, keep-alive), each signed in as
one of rep001..rep200, each on the same machine (2 cores) as the servers and PostgreSQL.

Phases, each ``--seconds`` long, after a warm-up:

1. **mix** against the app: per rep, weighted — customer detail 6, list 4, search 2, today 2,
   funnel 1, log a follow-up 1 — each rep pausing ``--think`` seconds on average (uniformly
   half to one and a half times that) between actions, as a rep tapping through the app does.
   Per endpoint: requests, throughput, p50/p95/p99, errors. ``--think 0`` hammers instead.
2. **detail only** against the app, then the same ids against the raw endpoint, each rep
   sending its next request as soon as the last is answered (no pause: the servers'
   saturation throughput): the ratio of throughputs (target: the app ≥ 50 % of raw). Driven
   by ``wrk`` when it is installed (``apt-get install wrk``; one connection per rep, a Lua
   script cycling through each rep's ids with its token): this process tops out near
   600 req/s, below what the raw endpoint serves, so the Python generator
   (``--python-generator``, or no ``wrk``) understates the raw endpoint and flatters the ratio.

    .venv/bin/python bench/load.py --workers 1 --users 50 --seconds 30
    .venv/bin/python bench/load.py --workers 2 --users 50 --seconds 30
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.config import Settings  # noqa: E402
from app.security import TokenSettings, create_access_token  # noqa: E402

DATABASE_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/kehu_bench_analytics"
SECRET = "bench-load-secret-" + "x" * 32
ADMIN_ID = 1  # admin 1, four managers 2..5, rep001 = 6 (bench/analytics_data.py)
FIRST_REP_ID = 6
MIX: list[tuple[str, int]] = [
    ("detail", 6),
    ("list", 4),
    ("search", 2),
    ("today", 2),
    ("funnel", 1),
    ("follow_up", 1),
]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_env(database_url: str) -> dict[str, str]:
    """The servers' environment: the bench database, no scheduler, no rate limit."""
    return {
        **os.environ,
        "KEHU_DATABASE_URL": database_url,
        "KEHU_SECRET_KEY": SECRET,
        "KEHU_SCHEDULER_ENABLED": "false",
        "KEHU_RATE_LIMIT_USER_PER_MINUTE": "0",
        "KEHU_ANALYTICS_CACHE_DIR": "",
        "KEHU_LOG_LEVEL": "WARNING",
    }


def app_command(port: int, workers: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "app.cli",
        "serve",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]


def raw_command(port: int, workers: int) -> list[str]:
    script = str(ROOT / "bench" / "raw_detail.py")
    return [sys.executable, script, "--port", str(port), "--workers", str(workers)]


def stop(servers: list[subprocess.Popen[bytes]]) -> None:
    for process in servers:
        process.send_signal(signal.SIGTERM)
    for process in servers:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def serve(command: list[str], env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(  # noqa: S603 (our own programs, fixed arguments)
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.3)
    process.kill()
    raise SystemExit(f"{command} did not start")


def token_settings() -> TokenSettings:
    defaults = Settings(secret_key=SECRET)
    return TokenSettings(
        secret=SECRET,
        issuer=defaults.jwt_issuer,
        audience=defaults.jwt_audience,
        access_ttl=dt.timedelta(hours=2),
        refresh_ttl=dt.timedelta(days=1),
    )


def tokens(users: int) -> list[tuple[int, str]]:
    settings = token_settings()
    reps = [FIRST_REP_ID + i for i in range(200)]
    random.Random(7).shuffle(reps)  # noqa: S311 (a load mix, not secrets)
    return [(r, create_access_token(settings, r)) for r in reps[:users]]


class Recorder:
    def __init__(self) -> None:
        self.times: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, int] = defaultdict(int)

    async def timed(self, name: str, call: Awaitable[httpx.Response], ok: tuple[int, ...]) -> Any:
        started = time.perf_counter()
        try:
            response = await call
        except httpx.HTTPError:
            self.errors[name] += 1
            return None
        self.times[name].append(time.perf_counter() - started)
        if response.status_code not in ok:
            self.errors[name] += 1
            return None
        return response

    def report(self, seconds: float) -> list[dict[str, Any]]:
        rows = []
        for name in sorted(self.times, key=lambda n: -len(self.times[n])):
            values = sorted(self.times[name])
            q = statistics.quantiles(values, n=100) if len(values) > 1 else values * 99
            rows.append(
                {
                    "endpoint": name,
                    "requests": len(values),
                    "per_second": round(len(values) / seconds, 1),
                    "p50_ms": round(q[49] * 1000, 1),
                    "p95_ms": round(q[94] * 1000, 1),
                    "p99_ms": round(q[98] * 1000, 1),
                    "errors": self.errors.get(name, 0),
                }
            )
        return rows


async def rep_session(
    base: str,
    token: tuple[int, str],
    until: float,
    recorder: Recorder,
    mix: list[str],
    think: float,
) -> None:
    _, bearer = token
    headers = {"Authorization": f"Bearer {bearer}"}
    rng = random.Random(token[0])  # noqa: S311 (a load mix, not secrets)
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as client:
        first = await client.get("/api/v1/customers", params={"limit": 50})
        ids = [c["id"] for c in first.json()["items"]] or [1]
        names = [c["name"][:2] for c in first.json()["items"]] or ["公司"]
        actions: dict[str, Callable[[], Awaitable[Any]]] = {
            "detail": lambda: recorder.timed(
                "customer detail", client.get(f"/api/v1/customers/{rng.choice(ids)}"), (200,)
            ),
            "list": lambda: recorder.timed(
                "customer list", client.get("/api/v1/customers", params={"limit": 20}), (200,)
            ),
            "search": lambda: recorder.timed(
                "customer search",
                client.get("/api/v1/customers", params={"q": rng.choice(names), "limit": 20}),
                (200,),
            ),
            "today": lambda: recorder.timed("today", client.get("/api/v1/today"), (200,)),
            "funnel": lambda: recorder.timed("funnel", client.get("/api/v1/funnel"), (200,)),
            "follow_up": lambda: recorder.timed(
                "log follow-up",
                client.post(
                    "/api/v1/follow-ups",
                    json={"customer_id": rng.choice(ids), "type": "call", "content": "负载测试"},
                ),
                (201,),
            ),
        }
        while time.monotonic() < until:
            if think:
                await asyncio.sleep(rng.uniform(think / 2, think * 1.5))
            await actions[rng.choice(mix)]()


async def drive(
    base: str, users: list[tuple[int, str]], seconds: float, mix: list[str], think: float
) -> Any:
    recorder = Recorder()
    until = time.monotonic() + seconds
    started = time.monotonic()
    await asyncio.gather(*(rep_session(base, u, until, recorder, mix, think) for u in users))
    return recorder.report(time.monotonic() - started)


def ensure_pipeline(base: str, admin_token: str) -> None:
    """The funnel needs a pipeline; the analytics dataset has none (it has no opportunities)."""
    headers = {"Authorization": f"Bearer {admin_token}"}
    if httpx.get(f"{base}/api/v1/pipelines", headers=headers).json():
        return
    stages = [
        {"name": "初步接洽", "probability": 10},
        {"name": "需求确认", "probability": 40},
        {"name": "方案报价", "probability": 70},
    ]
    created = httpx.post(
        f"{base}/api/v1/pipelines",
        json={"name": "标准销售流程", "is_default": True, "stages": stages},
        headers=headers,
    )
    created.raise_for_status()


async def rep_customer_ids(base: str, users: list[tuple[int, str]]) -> dict[int, list[int]]:
    """Each rep's first 50 customers (as the app lists them): the ids both detail phases use."""
    found: dict[int, list[int]] = {}
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        for user_id, bearer in users:
            listed = await client.get(
                "/api/v1/customers",
                params={"limit": 50},
                headers={"Authorization": f"Bearer {bearer}"},
            )
            found[user_id] = [c["id"] for c in listed.json()["items"]]
    return found


def detail_path(customer: int, user_id: int, raw: bool) -> str:
    """A customer's detail on the app, or on the raw endpoint (which takes the owner in scope)."""
    return f"/raw/customers/{customer}?owner={user_id}" if raw else f"/api/v1/customers/{customer}"


async def detail_only(
    base: str, users: list[tuple[int, str]], ids: dict[int, list[int]], seconds: float, raw: bool
) -> Any:
    """Customer detail only, the same reps and ids for the app and the raw endpoint."""
    recorder = Recorder()
    until = time.monotonic() + seconds
    started = time.monotonic()

    async def one(user_id: int, bearer: str) -> None:
        rng = random.Random(user_id)  # noqa: S311 (a load mix, not secrets)
        headers = {"Authorization": f"Bearer {bearer}"}
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as client:
            while time.monotonic() < until:
                path = detail_path(rng.choice(ids[user_id]), user_id, raw)
                await recorder.timed("customer detail", client.get(path), (200,))

    await asyncio.gather(*(one(u, b) for u, b in users if ids.get(u)))
    return recorder.report(time.monotonic() - started)


# wrk's Lua side: the requests in turn (each rep's ids with its token), and one JSON line at
# the end with what ``Recorder.report`` gives (latencies in microseconds).
WRK_SCRIPT = """
local requests = {
%s
}
local i = 0
request = function()
  i = i %% #requests + 1
  return wrk.format("GET", requests[i][1], {["Authorization"] = requests[i][2]})
end
done = function(summary, latency, _)
  local e = summary.errors
  io.write(string.format(
    '\\n{"requests": %%d, "duration_us": %%d, "errors": %%d, '
      .. '"p50": %%d, "p95": %%d, "p99": %%d}\\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
"""


def detail_with_wrk(
    base: str, users: list[tuple[int, str]], ids: dict[int, list[int]], seconds: float, raw: bool
) -> Any:
    """``detail_only`` driven by wrk (native, one thread, a connection per rep): the Python
    generator tops out near 600 req/s on this VM, below the raw endpoint's capacity."""
    lines = []
    for user_id, bearer in users:
        for customer in ids.get(user_id, []):
            lines.append(f'  {{"{detail_path(customer, user_id, raw)}", "Bearer {bearer}"}},')
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT % "\n".join(lines))
    try:
        command = ["wrk", "-t1", f"-c{len(users)}", f"-d{seconds:.0f}s", "--timeout", "10s"]
        output = subprocess.run(  # noqa: S603 (fixed arguments)
            [*command, "-s", script.name, base], capture_output=True, text=True, check=True
        ).stdout
    finally:
        os.unlink(script.name)
    result = json.loads(next(line for line in output.splitlines() if line.startswith("{")))
    return [
        {
            "endpoint": "customer detail",
            "requests": result["requests"],
            "per_second": round(result["requests"] / (result["duration_us"] / 1e6), 1),
            "p50_ms": round(result["p50"] / 1000, 1),
            "p95_ms": round(result["p95"] / 1000, 1),
            "p99_ms": round(result["p99"] / 1000, 1),
            "errors": result["errors"],
        }
    ]


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| endpoint | requests | req/s | p50 ms | p95 ms | p99 ms | errors |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['endpoint']} | {r['requests']} | {r['per_second']} | {r['p50_ms']} |"
            f" {r['p95_ms']} | {r['p99_ms']} | {r['errors']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=DATABASE_URL)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--think", type=float, default=1.0, help="mean pause between actions")
    parser.add_argument(
        "--python-generator",
        action="store_true",
        help="drive the detail-only phases from Python even when wrk is installed",
    )
    args = parser.parse_args()

    env = server_env(args.database_url)
    app_port, raw_port = free_port(), free_port()
    servers = [
        serve(app_command(app_port, args.workers), env, app_port),
        serve(raw_command(raw_port, args.workers), env, raw_port),
    ]
    try:
        users = tokens(args.users)
        mix = [name for name, weight in MIX for _ in range(weight)]
        app_url, raw_url = f"http://127.0.0.1:{app_port}", f"http://127.0.0.1:{raw_port}"
        ensure_pipeline(app_url, create_access_token(token_settings(), ADMIN_ID))
        load = os.getloadavg()[0]
        print(
            f"{args.users} reps, {args.workers} worker(s), {args.seconds:.0f} s a phase,"
            f" {args.think:g} s think time in the mix; load {load:.1f}"
        )
        asyncio.run(drive(app_url, users, 5, mix, args.think))  # warm-up
        mixed = asyncio.run(drive(app_url, users, args.seconds, mix, args.think))
        print("\nmix (app)\n" + table(mixed))
        ids = asyncio.run(rep_customer_ids(app_url, users))
        if shutil.which("wrk") and not args.python_generator:
            generator = "wrk"
            app_detail = detail_with_wrk(app_url, users, ids, args.seconds, raw=False)
            raw_detail = detail_with_wrk(raw_url, users, ids, args.seconds, raw=True)
        else:
            generator = "Python/httpx: the raw endpoint's figure is this generator's ceiling"
            app_detail = asyncio.run(detail_only(app_url, users, ids, args.seconds, raw=False))
            raw_detail = asyncio.run(detail_only(raw_url, users, ids, args.seconds, raw=True))
        print(f"\ndetail only (app; generator: {generator})\n" + table(app_detail))
        print("\ndetail only (raw asyncpg endpoint)\n" + table(raw_detail))
        ratio = app_detail[0]["per_second"] / raw_detail[0]["per_second"]
        print(f"\napp ÷ raw detail throughput: {ratio:.2f} (target ≥ 0.50)")
    finally:
        stop(servers)


if __name__ == "__main__":
    main()

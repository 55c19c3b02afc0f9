"""Benchmark: customer list, search, filters, nearby, detail and duplicate check at scale.

Runs the real app in-process (httpx ASGITransport, no network) against a database filled by the
demo generator, and prints p50/p95/max per scenario. Usage:

    .venv/bin/python bench/customers_api.py \
        --database-url postgresql+asyncpg://postgres@127.0.0.1/kehu_bench --customers 200000

The database must be empty or hold a previous run's data (it is migrated and seeded if empty).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from pathlib import Path

from alembic import command
from alembic.config import Config
from httpx import ASGITransport, AsyncClient
from sqlalchemy import func, select

from app.config import PROJECT_ROOT, Settings
from app.db import create_engine, create_sessionmaker
from app.main import create_app
from app.models import Customer, Tag, User
from app.security import create_access_token
from app.services.demo import seed_demo


def migrate(url: str) -> None:
    cfg = Config(str(PROJECT_ROOT / "alembic.ini"))
    cfg.attributes["database_url"] = url
    cfg.attributes["configure_logging"] = False
    command.upgrade(cfg, "head")


async def prepare(url: str, customers: int) -> None:
    engine = create_engine(url)
    maker = create_sessionmaker(engine)
    async with maker() as session:
        have = await session.scalar(select(func.count()).select_from(Customer))
    if not have:
        started = time.perf_counter()
        await seed_demo(maker, customers=customers)
        print(f"seeded {customers} customers in {time.perf_counter() - started:.1f} s")
    else:
        print(f"using the existing {have} customers")
    await engine.dispose()


async def run(url: str, rounds: int) -> list[tuple[str, list[float]]]:
    app = create_app(
        Settings(database_url=url, secret_key="b" * 48, spa_dir=Path("/none"), log_level="WARNING")
    )
    results: list[tuple[str, list[float]]] = []
    async with app.router.lifespan_context(app):
        async with app.state.sessionmaker() as session:
            users = {u.username: u.id for u in (await session.scalars(select(User))).all()}
            sample = await session.scalar(
                select(Customer)
                .where(Customer.owner_id == users["rep1"])
                .order_by(Customer.id)
                .limit(1)
            )
            tag_id = await session.scalar(select(Tag.id).where(Tag.name == "高意向"))
        assert sample is not None
        token = {
            n: create_access_token(app.state.token_settings, users[n])
            for n in ("admin", "mgr1", "rep1")
        }
        fragment = sample.name[2:4]
        phone = sample.phones[0][-4:] if sample.phones else "1234"
        lat, lng = (sample.lat or 30.27), (sample.lng or 120.15)
        scenarios = [
            ("list admin (all)", "admin", "/api/v1/customers", {}),
            ("list mgr1 (dept+children)", "mgr1", "/api/v1/customers", {}),
            ("list rep1 (own)", "rep1", "/api/v1/customers", {}),
            (
                "list admin sort -last_follow_up_at",
                "admin",
                "/api/v1/customers",
                {"sort": "-last_follow_up_at"},
            ),
            (
                "filter level+industry (mgr1)",
                "mgr1",
                "/api/v1/customers",
                {"level": "A", "industry": "制造业"},
            ),
            ("filter tag (admin)", "admin", "/api/v1/customers", {"tag_id": tag_id}),
            (
                "filter custom field budget.min (admin)",
                "admin",
                "/api/v1/customers",
                {"cf.budget.min": 100000},
            ),
            ("search name fragment (admin)", "admin", "/api/v1/customers", {"q": fragment}),
            ("search phone digits (admin)", "admin", "/api/v1/customers", {"q": phone}),
            ("search name fragment (rep1)", "rep1", "/api/v1/customers", {"q": fragment}),
            (
                "nearby 5 km (rep1)",
                "rep1",
                "/api/v1/customers",
                {"near": f"{lat},{lng}", "radius_km": 5},
            ),
            (
                "nearby 5 km (admin)",
                "admin",
                "/api/v1/customers",
                {"near": f"{lat},{lng}", "radius_km": 5},
            ),
            ("detail (rep1)", "rep1", f"/api/v1/customers/{sample.id}", {}),
            (
                "duplicates check name+phone (rep1)",
                "rep1",
                "/api/v1/customers/duplicates",
                {"name": sample.name, "phone": "13800000000"},
            ),
        ]
        async with AsyncClient(transport=ASGITransport(app=app), base_url="http://bench") as http:
            for label, who, path, params in scenarios:
                headers = {"Authorization": f"Bearer {token[who]}"}
                response = await http.get(path, params=params, headers=headers)  # warm-up
                assert response.status_code == 200, (label, response.text[:300])
                timings = []
                for _ in range(rounds):
                    started = time.perf_counter()
                    response = await http.get(path, params=params, headers=headers)
                    timings.append((time.perf_counter() - started) * 1000)
                    assert response.status_code == 200
                results.append((label, timings))
            # deep paging: follow next_cursor 20 pages of 50 for admin
            headers = {"Authorization": f"Bearer {token['admin']}"}
            timings, cursor = [], None
            for _ in range(20):
                params = {"limit": 50, **({"cursor": cursor} if cursor else {})}
                started = time.perf_counter()
                body = (await http.get("/api/v1/customers", params=params, headers=headers)).json()
                timings.append((time.perf_counter() - started) * 1000)
                cursor = body["next_cursor"]
            results.append(("page 1..20 by cursor (admin)", timings))
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--customers", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    migrate(args.database_url)
    asyncio.run(prepare(args.database_url, args.customers))
    results = asyncio.run(run(args.database_url, args.rounds))
    print("\n| scenario | p50 ms | p95 ms | max ms |\n| --- | ---: | ---: | ---: |")
    for label, timings in results:
        ordered = sorted(timings)
        p95 = ordered[max(0, int(len(ordered) * 0.95) - 1)]
        print(f"| {label} | {statistics.median(ordered):.1f} | {p95:.1f} | {ordered[-1]:.1f} |")


if __name__ == "__main__":
    main()

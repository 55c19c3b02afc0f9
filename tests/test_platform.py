"""Platform: health probes, OpenAPI document, migrations from empty (SPEC A1, A4, L3)."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

import app.models  # noqa: F401
from app.db import Base, create_engine, include_in_autogenerate
from tests.conftest import TEST_DB_URL, alembic_config
from tests.factories import auth, make_org


async def test_health_and_readiness(client):
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["database"] == "ok"


async def test_readiness_fails_without_database(tmp_path):
    from httpx import ASGITransport, AsyncClient

    from app.config import Settings
    from app.main import create_app

    broken = create_app(
        Settings(database_url="postgresql+asyncpg://nobody@127.0.0.1:1/none", secret_key="k" * 40)
    )
    async with AsyncClient(transport=ASGITransport(app=broken), base_url="http://t") as http:
        response = await http.get("/readyz")
    assert response.status_code == 503


async def test_every_operation_is_documented(client):
    document = (await client.get("/api/v1/openapi.json")).json()
    operation_ids = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            operation_ids.append(operation["operationId"])
            assert operation.get("tags"), (method, path)
            assert operation.get("summary"), (method, path)
            if path.startswith("/api/v1/") and path != "/api/v1/auth/token":
                codes = operation["responses"]
                assert "401" in codes and "422" in codes, (method, path)
                assert codes["422"]["content"]["application/problem+json"]["schema"][
                    "$ref"
                ].endswith("/Problem")
    assert len(operation_ids) == len(set(operation_ids))
    assert "Problem" in document["components"]["schemas"]


async def test_docs_page_is_served(client):
    response = await client.get("/docs")
    assert response.status_code == 200 and "swagger" in response.text.lower()


def _migrate_round_trip(url: str) -> None:
    cfg = alembic_config(url)
    command.upgrade(cfg, "head")

    async def check() -> None:
        engine = create_engine(url)
        async with engine.connect() as conn:
            diff = await conn.run_sync(
                lambda sync: compare_metadata(
                    MigrationContext.configure(
                        sync,
                        opts={
                            "include_object": lambda obj, _n, type_, _r, _o: (
                                include_in_autogenerate(obj, type_, sync.dialect.name)
                            )
                        },
                    ),
                    Base.metadata,
                )
            )
            tables = await conn.run_sync(lambda sync: set(inspect(sync).get_table_names()))
        await engine.dispose()
        assert diff == [], diff  # models and migrations agree
        assert set(Base.metadata.tables) <= tables

    asyncio.run(check())
    command.downgrade(cfg, "base")

    async def empty() -> set[str]:
        engine = create_engine(url)
        async with engine.connect() as conn:
            names = await conn.run_sync(lambda sync: set(inspect(sync).get_table_names()))
        await engine.dispose()
        return names

    assert asyncio.run(empty()) <= {"alembic_version"}
    command.upgrade(cfg, "head")


def test_migrations_upgrade_and_downgrade_on_sqlite():
    with tempfile.TemporaryDirectory() as tmp:
        _migrate_round_trip(f"sqlite+aiosqlite:///{Path(tmp) / 'm.db'}")


def test_migrations_upgrade_and_downgrade_on_postgresql():
    import pytest

    if not TEST_DB_URL or not TEST_DB_URL.startswith("postgresql"):
        pytest.skip("needs KEHU_TEST_DATABASE_URL pointing at PostgreSQL")
    from tests.conftest import reset_schema

    scratch = TEST_DB_URL.rsplit("/", 1)[0] + "/kehu_migration_check"

    async def create_db() -> None:
        engine = create_engine(TEST_DB_URL)
        async with engine.connect() as conn:
            c = await conn.execution_options(isolation_level="AUTOCOMMIT")
            from sqlalchemy import text

            await c.execute(text("DROP DATABASE IF EXISTS kehu_migration_check"))
            await c.execute(text("CREATE DATABASE kehu_migration_check"))
        await engine.dispose()

    asyncio.run(create_db())
    reset_schema(scratch)
    _migrate_round_trip(scratch)


async def test_oversized_body_is_refused_with_413(app, client, maker):
    from tests.factories import auth, make_org

    org = await make_org(maker)
    huge = '{"name": "' + "x" * 1_100_000 + '"}'
    response = await client.post(
        "/api/v1/customers",
        content=huge,
        headers={**auth(app, org.rep_a), "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["type"].endswith("/payload-too-large")


async def test_request_id_is_echoed(client):
    response = await client.get("/healthz", headers={"X-Request-ID": "abc123"})
    assert response.headers["X-Request-ID"] == "abc123"
    assert len((await client.get("/healthz")).headers["X-Request-ID"]) == 32


async def test_metrics_count_requests_by_route_template(app, client, maker):
    from tests.factories import auth, make_customer, make_org

    org = await make_org(maker)
    customer = await make_customer(maker, org.rep_a)
    for _ in range(2):
        found = await client.get(f"/api/v1/customers/{customer.id}", headers=auth(app, org.rep_a))
        assert found.status_code == 200
    assert (await client.get("/no/such/page.php")).status_code == 404

    scraped = await client.get("/metrics")

    assert scraped.status_code == 200
    assert scraped.headers["content-type"].startswith("text/plain")
    lines = scraped.text.splitlines()
    detail = next(
        line
        for line in lines
        if line.startswith("kehu_http_request_duration_seconds_count{")
        and 'route="/api/v1/customers/{customer_id}"' in line
        and 'status="200"' in line
    )
    assert float(detail.rsplit(" ", 1)[1]) >= 2
    assert not any(f"/customers/{customer.id}" in line for line in lines)  # templates only
    assert any('route="unmatched"' in line for line in lines)
    for family in ("kehu_job_runs_total", "kehu_reminders_total", "kehu_webhook_deliveries"):
        assert f"# TYPE {family.removesuffix('_total')}" in scraped.text


async def test_metrics_token_guards_the_endpoint(settings):
    from httpx import ASGITransport, AsyncClient

    from app.main import create_app

    guarded = create_app(settings.model_copy(update={"metrics_token": "s3cret-scrape"}))
    async with AsyncClient(transport=ASGITransport(app=guarded), base_url="http://t") as http:
        refused = await http.get("/metrics")
        wrong = await http.get("/metrics", headers={"Authorization": "Bearer nope"})
        allowed = await http.get("/metrics", headers={"Authorization": "Bearer s3cret-scrape"})
    assert refused.status_code == 401 and wrong.status_code == 401
    assert refused.headers["content-type"] == "application/problem+json"
    assert allowed.status_code == 200 and "kehu_http_request_duration_seconds" in allowed.text


# Found by Schemathesis (tests/fuzz): answers for requests no route can take as they are.


async def test_unreadable_json_body_is_a_422_problem(app, client, maker):
    org = await make_org(maker)
    response = await client.post(
        "/api/v1/tags",
        content=b"L\xff\xff\xff",  # not UTF-8: FastAPI's bare 400 before
        headers={**auth(app, org.admin), "Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"][0]["loc"] == ["body"]


async def test_id_beyond_the_database_range_is_a_422_not_a_500(app, client, maker):
    org = await make_org(maker)
    headers = auth(app, org.rep_a)
    huge = -8328421318030812774400
    listed = await client.get(f"/api/v1/opportunities?customer_id={huge}", headers=headers)
    assert listed.status_code == 422, listed.text
    created = await client.post(
        "/api/v1/opportunities", json={"title": "x", "customer_id": huge}, headers=headers
    )
    assert created.status_code == 422, created.text
    assert created.headers["content-type"] == "application/problem+json"


async def test_wrong_method_is_405_naming_every_method_of_the_path(app, client, maker):
    org = await make_org(maker)
    headers = auth(app, org.admin)
    listing = await client.request("OPTIONS", "/api/v1/customers", headers=headers)
    assert listing.status_code == 405
    assert listing.headers["allow"] == "GET, POST"
    record = await client.put("/api/v1/customers/1", headers=headers)
    assert (record.status_code, record.headers["allow"]) == (405, "DELETE, GET, PATCH")
    # A fixed path beside /customers/{customer_id}: PATCH is no update of customer "duplicates"
    # (it asked for If-Match, 428, before).
    for path in ("/api/v1/customers/duplicates", "/api/v1/users/directory"):
        sibling = await client.patch(path, json={}, headers=headers)
        assert (sibling.status_code, sibling.headers["allow"]) == (405, "GET"), path


async def test_log_lines_inside_a_request_carry_its_request_id(settings):
    import io
    import json
    import logging

    from httpx import ASGITransport, AsyncClient

    from app.logs import JsonFormatter
    from app.main import create_app

    app = create_app(settings)

    async def noisy() -> dict[str, str]:
        logging.getLogger("kehu.test").warning("inside", extra={"step": 1})
        return {"ok": "yes"}

    app.add_api_route("/test-log", noisy)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("kehu.test")
    logger.addHandler(handler)
    try:
        async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t") as http:
            await http.get("/test-log", headers={"X-Request-ID": "req-42"})
            await http.get("/test-log")
    finally:
        logger.removeHandler(handler)
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert (first["msg"], first["request_id"], first["step"]) == ("inside", "req-42", 1)
    assert len(second["request_id"]) == 32 and second["request_id"] != "req-42"
    outside = json.loads(JsonFormatter().format(logging.makeLogRecord({"msg": "job"})))
    assert "request_id" not in outside


async def test_nul_in_a_query_string_is_no_server_error(app, client, maker):
    org = await make_org(maker)
    response = await client.get("/api/v1/customers?q=a%00b", headers=auth(app, org.rep_a))
    # SQLite searches for it (no match); PostgreSQL cannot take it: invalid input, not a 500.
    assert response.status_code in (200, 422), response.text


async def test_what_start_up_built_is_set_aside_from_the_garbage_collector(app):
    """The started app (lifespan run) froze its heap: full collections walk only what requests
    leave behind, not the start-up's modules and models (app.main.settle_heap)."""
    import gc

    from app.routers.customers import router

    assert gc.get_freeze_count() > 10_000
    # What start-up built is among the frozen: untracked by every generation's collection.
    young = {id(o) for generation in range(3) for o in gc.get_objects(generation)}
    assert id(router) not in young and id(app.routes) not in young
